"""The project's own multilingual demo corpus (en, de, fr, es, zh, ja), generated deterministically.

Sentences come from ~50 hand-written frame templates (one abstract meaning realised with correct
grammar in six languages) plus hand-written free-form sentences. Each meaning gets its split from a
SHA-256 of its id (80% ``train``, 10% ``detect``, 10% ``eval``), so a meaning never crosses splits.
Everything is stdlib-only and depends only on ``seed``, which shuffles and subsamples. See
``docs/demo_corpus.md``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from typing import Any

from langneuron_eval.demo_corpus import build, freeform, mathwords, qa, writer
from langneuron_eval.demo_corpus.splits import SPLITS, rng
from langneuron_eval.languages import DEMO_LANGUAGES

__all__ = ["LANGUAGES", "SPLITS", "math_items", "parallel_pairs", "qa_items", "sentences", "write_corpus"]

LANGUAGES = DEMO_LANGUAGES


def _check(lang: str, split: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def _take(items: list, n: int | None, seed: int, *purpose: object) -> list:
    """Deterministic shuffle by ``seed`` (and purpose), then the first ``n`` (all if ``n`` is None)."""
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        raise ValueError(f"n must be None or a non-negative int, not {n!r}")
    rng(seed, *purpose).shuffle(items)
    return items if n is None else items[:n]


def _unique(items: Iterable) -> tuple:
    return tuple(dict.fromkeys(items))


@functools.cache
def _sentence_pool(lang: str, split: str) -> tuple[str, ...]:
    framed = (build.line_text(lang, line) for line in build.lines_of(split))
    free = (freeform.lines(lang)[i] for i in freeform.indices(split))
    return _unique([*framed, *free])


@functools.cache
def _pair_pool(lang: str, split: str) -> tuple[tuple[str, str], ...]:
    framed = ((build.line_text("en", line), build.line_text(lang, line)) for line in build.lines_of(split))
    free = ((freeform.lines("en")[i], freeform.lines(lang)[i]) for i in freeform.indices(split))
    return _unique([*framed, *free])


@functools.cache
def _qa_pool(lang: str, split: str, cross_lingual: bool) -> tuple[dict[str, Any], ...]:
    return tuple(qa.realise(s, lang, cross_lingual) for s in qa.structures(split))


@functools.cache
def _math_pool(lang: str, split: str) -> tuple[dict[str, Any], ...]:
    return tuple(mathwords.realise(f, lang) for f in mathwords.problems(split))


def sentences(lang: str, split: str, n: int | None = None, seed: int = 0) -> list[str]:
    """Distinct text lines of ``lang`` in ``split`` (single sentences and 2-3 sentence paragraphs,
    free-form lines mixed in), shuffled by ``seed``; the first ``n`` of them, or all."""
    _check(lang, split)
    return _take(list(_sentence_pool(lang, split)), n, seed, "sentences", lang, split)


def parallel_pairs(lang: str, split: str, n: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """``(English line, the same meaning in lang)`` pairs of ``split``, shuffled by ``seed``."""
    _check(lang, split)
    return _take(list(_pair_pool(lang, split)), n, seed, "pairs", lang, split)


def qa_items(lang: str, split: str, n: int | None = None, seed: int = 0,
             cross_lingual: bool = False) -> list[dict[str, Any]]:
    """Extractive QA in XQuAD format: ``{"id", "context", "question", "answers": {"text", "answer_start"}}``.

    With ``cross_lingual`` the context (and so the answer span) is English and the question is in ``lang``.
    Item ids are the same across languages.
    """
    _check(lang, split)
    items = [{**it, "answers": {k: list(v) for k, v in it["answers"].items()}}
             for it in _qa_pool(lang, split, bool(cross_lingual))]
    return _take(items, n, seed, "qa", split)


def math_items(lang: str, split: str, n: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Word problems in MGSM format: ``{"question", "answer_number", "equation"}`` (parallel across languages)."""
    _check(lang, split)
    return _take([dict(it) for it in _math_pool(lang, split)], n, seed, "math", split)


def write_corpus(out_dir: str | os.PathLike, langs: Iterable[str] = LANGUAGES, splits: Iterable[str] = SPLITS,
                 n_per_split: Mapping[str, int | None] | None = None, seed: int = 0) -> dict[str, dict[str, int]]:
    """Write ``out_dir/<split>/<lang>.txt`` (one line per sentence, UTF-8); returns ``{split: {lang: lines}}``.

    ``n_per_split`` caps the lines per split (``{"train": 5000}``; missing splits are written in full).
    """
    langs, splits = list(langs), list(splits)
    for lang in langs:
        for split in splits:
            _check(lang, split)
    caps = dict(n_per_split or {})
    unknown = set(caps) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)} in n_per_split; choose from {', '.join(SPLITS)}")
    return writer.write_all(out_dir, langs, splits, caps,
                            lambda lang, split, n: sentences(lang, split, n=n, seed=seed))
