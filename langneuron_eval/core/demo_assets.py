"""The embedded default: the shipped demo models and the generated demo corpus on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from langneuron_eval import demo_corpus
from langneuron_eval.errors import LangNeuronError

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def _model_dir(name: str) -> Path:
    path = ASSETS / name
    if not (path / "config.json").exists():
        raise LangNeuronError(
            f"the shipped demo model {name!r} is missing from {ASSETS}; build it with `langneuron train-demo` "
            "or pass --model PATH")
    return path


def base_model_path() -> Path:
    return _model_dir("demo-base")


def aligned_model_path() -> Path:
    return _model_dir("demo-aligned")


def cache_dir() -> Path:
    root = os.environ.get("LANGNEURON_EVAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "langneuron_eval")
    return Path(root)


def _corpus_key() -> str:
    """Changes whenever the corpus generator's sources change, so a stale materialised copy is never used."""
    src = Path(__file__).resolve().parents[1] / "demo_corpus"
    h = hashlib.sha256()
    for p in sorted(src.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".txt"):
            h.update(p.relative_to(src).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def demo_corpus_dir(split: str = "detect") -> Path:
    """The demo corpus written out as ``<split>/<lang>.txt`` files (generated once, then cached)."""
    root = cache_dir() / "demo_corpus" / _corpus_key()
    target = root / split
    if not (root / ".complete").exists():
        demo_corpus.write_corpus(root)
        (root / ".complete").write_text("ok\n")
    if not target.is_dir():
        raise LangNeuronError(f"unknown demo corpus split {split!r}; choose train, detect or eval")
    return target
