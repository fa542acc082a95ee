"""``ppl_matrix.json``: the perplexity-change matrix as a file, with its schema, version and provenance.

Row ``i`` deactivates language ``i``'s neurons, column ``j`` evaluates language ``j``'s held-out text;
a cell is ``metric(j | deactivate i) / metric(j | no intervention) - 1``. Every command that writes the
matrix (``ppl-matrix``, ``bench-detector``, ``demo``) writes it through :class:`PplMatrixFile`, and every
reader (the leaderboard, the tests) loads it through :meth:`PplMatrixFile.load`, which also reads the files
of earlier versions (schema 1, and the schema-less files that demo and bench-detector used to write).

Schema 2 adds optional evidence (``langneuron_eval.evidence.ppl.attach_evidence`` fills it): ``per_document``
(units and NLL per document for every run, so any aggregate can be resampled), ``ci_low``/``ci_high`` (the
matrix's shape), ``n_docs`` per language, ``interval`` (confidence, resamples, method, seed) and ``dominance``
(diagonal-dominance statistics, intervals and permutation p-value). See docs/statistics.md.

``null`` in ``matrix`` or ``baseline`` stands for a value that is not a finite number; loaded, it is NaN.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import jsonable, read_json, write_json

SCHEMA = "langneuron-eval/ppl-matrix"
SCHEMA_VERSION = 2
ROWS = "deactivated language"
COLUMNS = "evaluated language (lang_ppl_<lang>)"
# provenance keys that older schema-less files (demo, bench-detector) wrote at the top level
_LEGACY_TOP_LEVEL = ("detector", "neurons_sha256")


def _number(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LangNeuronError(f"{where} is not a number")
    return float(value)


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass
class PplMatrixFile:
    """One perplexity-change matrix and what it was computed from.

    Attributes:
        languages: row and column order.
        matrix: ``[row][column]`` relative change (NaN where not finite).
        baseline: per evaluated language, the metric without intervention.
        metric: ``byte_perplexity`` (default) or ``word_perplexity``.
        perplexity: optional ``[row][column]`` metric under each intervention.
        provenance: model, neuron file and its hashes, detector, versions, seeds, corpus fingerprints.
        per_document: ``{"units": {lang: [...]}, "nll": {"none" | row lang: {lang: [...]}}}`` (schema 2).
        ci_low, ci_high: ``[row][column]`` interval bounds (NaN where there is none); n_docs: per language.
        interval: how the intervals were computed; dominance: diagonal-dominance evidence.
        nonfinite: ``[{"row", "column", "reason"}]`` for every cell that is not a finite number, and why.
    """

    languages: list[str]
    matrix: list[list[float]]
    baseline: dict[str, float]
    metric: str = "byte_perplexity"
    perplexity: list[list[float]] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    per_document: dict[str, Any] | None = None
    ci_low: list[list[float]] | None = None
    ci_high: list[list[float]] | None = None
    n_docs: dict[str, int] | None = None
    interval: dict[str, Any] | None = None
    dominance: dict[str, Any] | None = None
    nonfinite: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        n = len(self.languages)
        if not n or len(self.matrix) != n or any(len(row) != n for row in self.matrix):
            raise LangNeuronError(f"a perplexity-change matrix needs {n} x {n} cells over its {n} languages")

    @property
    def definition(self) -> str:
        return f"{self.metric}(column | deactivate row) / {self.metric}(column | no intervention) - 1"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "languages": list(self.languages),
            "rows": ROWS, "columns": COLUMNS, "metric": self.metric, "matrix_definition": self.definition,
            "matrix": [[_json_number(v) for v in row] for row in self.matrix],
            "baseline": {k: _json_number(v) for k, v in self.baseline.items()},
            "provenance": self.provenance,
        }
        if self.perplexity is not None:
            doc["perplexity"] = [[_json_number(v) for v in row] for row in self.perplexity]
        for name in ("ci_low", "ci_high"):
            if getattr(self, name) is not None:
                doc[name] = [[_json_number(v) for v in row] for row in getattr(self, name)]
        for name in ("per_document", "n_docs", "interval", "dominance"):
            if getattr(self, name) is not None:
                doc[name] = jsonable(getattr(self, name))
        if self.nonfinite:
            doc["nonfinite"] = jsonable(self.nonfinite)
        return doc

    def save(self, path: str | os.PathLike, force: bool = True) -> Path:
        """Write atomically (sorted keys, so equal content gives equal bytes)."""
        return write_json(path, self.to_dict(), force=force)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PplMatrixFile:
        """Read and check a file of any schema version; one line naming the problem otherwise."""
        src = f"ppl-matrix file {path}"
        doc = read_json(path, "ppl-matrix file")
        if not isinstance(doc, dict):
            raise LangNeuronError(f"{src} must hold a JSON object")
        return cls.from_dict(doc, src)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], src: str = "ppl-matrix") -> PplMatrixFile:
        if doc.get("schema", SCHEMA) != SCHEMA or not isinstance(doc.get("schema_version", 1), int) \
                or doc.get("schema_version", 1) > SCHEMA_VERSION:
            raise LangNeuronError(f"{src}: schema {doc.get('schema')!r} version {doc.get('schema_version')!r} is not "
                                  f"{SCHEMA} up to version {SCHEMA_VERSION}; a newer langneuron-eval wrote it?")
        langs = doc.get("languages")
        if not isinstance(langs, list) or not langs or not all(isinstance(x, str) for x in langs):
            raise LangNeuronError(f"{src}: 'languages' must be a non-empty list of language codes")
        n = len(langs)
        matrix = _square(doc.get("matrix"), n, src, "matrix")
        perplexity = _square(doc["perplexity"], n, src, "perplexity") if doc.get("perplexity") else None
        raw = doc.get("baseline") if isinstance(doc.get("baseline"), dict) else {}
        baseline = {str(k): _number(v, f"{src}: baseline[{k!r}]") for k, v in raw.items()}
        provenance = dict(doc["provenance"]) if isinstance(doc.get("provenance"), dict) else {}
        for key in _LEGACY_TOP_LEVEL:
            if key in doc and key not in provenance:
                provenance[key] = doc[key]
        metric = doc.get("metric")
        evidence = {name: _square(doc[name], n, src, name) for name in ("ci_low", "ci_high") if doc.get(name)}
        for name in ("per_document", "n_docs", "interval", "dominance"):
            if doc.get(name) is not None:
                if not isinstance(doc[name], dict):
                    raise LangNeuronError(f"{src}: '{name}' must be a JSON object")
                evidence[name] = doc[name]
        if doc.get("nonfinite") is not None:
            if not isinstance(doc["nonfinite"], list) or not all(isinstance(c, dict) for c in doc["nonfinite"]):
                raise LangNeuronError(f"{src}: 'nonfinite' must be a list of objects")
            evidence["nonfinite"] = doc["nonfinite"]
        return cls(list(langs), matrix, baseline, metric if isinstance(metric, str) else "perplexity", perplexity,
                   provenance, **evidence)


def _square(matrix: Any, n: int, src: str, name: str) -> list[list[float]]:
    if not isinstance(matrix, list) or len(matrix) != n or not all(isinstance(r, list) and len(r) == n for r in matrix):
        raise LangNeuronError(f"{src}: '{name}' must be a {n} x {n} list of lists (one row per language)")
    return [[_number(v, f"{src}: {name}[{i}][{j}]") for j, v in enumerate(row)] for i, row in enumerate(matrix)]
