"""Hand-written free-form sentences: ``freeform/<lang>.txt``, one sentence per line, line i of every file
being a translation of line i of the others (so they also serve as parallel pairs)."""

from __future__ import annotations

import functools
from importlib import resources

from langneuron_eval.demo_corpus.entries import LANGS
from langneuron_eval.demo_corpus.splits import split_of


@functools.cache
def lines(lang: str) -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("freeform", f"{lang}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@functools.lru_cache(maxsize=1)
def count() -> int:
    sizes = {lang: len(lines(lang)) for lang in LANGS}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"free-form files are not aligned: {sizes}")
    return sizes["en"]


@functools.cache
def indices(split: str) -> tuple[int, ...]:
    """Line numbers whose meaning belongs to ``split`` (the split key is the line number)."""
    return tuple(i for i in range(count()) if split_of(f"freeform|{i}") == split)
