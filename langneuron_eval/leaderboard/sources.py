"""The optional figure inputs: ``ppl_matrix.json`` files and neuron files, reduced to what is plotted.

Unlike results files (found by walking folders, where a stray bad file should not stop the build),
these are named one by one on the command line, so a bad one is an error: the user asked for its
figure and would otherwise get a page silently missing it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import read_json, sha256_file

PROVENANCE_KEYS = ("model", "detector", "neurons_sha256", "neurons_content_sha256")


@dataclass(frozen=True)
class PplMatrix:
    """``langneuron ppl-matrix`` output: row = deactivated language, column = evaluated language."""

    display: str
    languages: list[str]
    matrix: list[list[float]]  # relative change; NaN where the file has null
    metric: str
    baseline: dict[str, float]
    provenance: dict[str, str] = field(default_factory=dict)  # PROVENANCE_KEYS, as text


@dataclass(frozen=True)
class NeuronLayers:
    """Per-layer neuron counts of each language of one neuron file."""

    display: str
    detector: str
    params: dict[str, Any]
    sha256: str  # of the file's bytes, as ``config.langneuron.neurons_sha256`` records it
    content_sha256: str
    num_layers: int
    counts: dict[str, list[int]]  # lang -> count per layer


def _float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LangNeuronError(f"{where} is not a number")
    return float(value)


def load_ppl_matrix(path: str | os.PathLike) -> PplMatrix:
    """Read and check a ``ppl_matrix.json``: square matrix over ``languages``, numbers or null."""
    src = f"ppl-matrix file {path}"
    doc = read_json(path, "ppl-matrix file")
    if not isinstance(doc, dict):
        raise LangNeuronError(f"{src} must hold a JSON object")
    langs = doc.get("languages")
    if not isinstance(langs, list) or not langs or not all(isinstance(x, str) for x in langs):
        raise LangNeuronError(f"{src}: 'languages' must be a non-empty list of language codes")
    matrix = doc.get("matrix")
    n = len(langs)
    if not isinstance(matrix, list) or len(matrix) != n or not all(isinstance(r, list) and len(r) == n for r in matrix):
        raise LangNeuronError(f"{src}: 'matrix' must be a {n} x {n} list of lists (one row per language)")
    values = [[_float(v, f"{src}: matrix[{i}][{j}]") for j, v in enumerate(row)] for i, row in enumerate(matrix)]
    baseline_raw = doc.get("baseline") if isinstance(doc.get("baseline"), dict) else {}
    baseline = {str(k): _float(v, f"{src}: baseline[{k!r}]") for k, v in baseline_raw.items()}
    prov_raw = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    # `langneuron ppl-matrix` nests these under "provenance"; demo and bench-detector write them at the top
    provenance = {k: str(prov_raw.get(k, doc.get(k))) for k in PROVENANCE_KEYS
                  if prov_raw.get(k, doc.get(k)) is not None}
    metric = doc.get("metric")
    return PplMatrix(display=Path(path).as_posix(), languages=list(langs), matrix=values,
                     metric=metric if isinstance(metric, str) else "perplexity", baseline=baseline,
                     provenance=provenance)


def load_neuron_layers(path: str | os.PathLike) -> NeuronLayers:
    """Load a neuron file (schema and hash checked by ``NeuronFile.load``) and count neurons per layer."""
    from langneuron_eval.core.neurons import NeuronFile

    nf = NeuronFile.load(path)
    num_layers = nf.fingerprint.num_layers
    counts: dict[str, list[int]] = {}
    for lang in sorted(nf.languages):
        per_layer = [0] * num_layers
        for layer, _unit in nf.languages[lang]:
            per_layer[layer] += 1
        counts[lang] = per_layer
    return NeuronLayers(display=Path(path).as_posix(), detector=nf.detector, params=dict(nf.params),
                        sha256=sha256_file(path), content_sha256=nf.sha256(), num_layers=num_layers, counts=counts)
