"""The optional figure inputs: ``ppl_matrix.json`` files and neuron files, reduced to what is plotted.

Unlike results files (found by walking folders, where a stray bad file should not stop the build),
these are named one by one on the command line, so a bad one is an error: the user asked for its
figure and would otherwise get a page silently missing it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.ppl_matrix import PplMatrixFile
from langneuron_eval.fileio import sha256_file

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
    # schema-2 evidence (None in older files): cell bounds [row][column], documents per language, how the
    # intervals were computed, the stored dominance statistics, and the per-document scores they came from
    ci_low: list[list[float]] | None = None
    ci_high: list[list[float]] | None = None
    n_docs: dict[str, int] | None = None
    interval: dict[str, Any] | None = None
    dominance: dict[str, Any] | None = None
    per_document: dict[str, Any] | None = field(default=None, repr=False)


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


def load_ppl_matrix(path: str | os.PathLike) -> PplMatrix:
    """Read and check a ``ppl_matrix.json`` (any schema version) and keep what the page shows.

    Schema-2 files bring their intervals, dominance and per-document scores (the detector ranking recomputes
    the diagonal share's interval from them at its own confidence); older files bring none.
    """
    doc = PplMatrixFile.load(path)
    provenance = {k: str(doc.provenance[k]) for k in PROVENANCE_KEYS if doc.provenance.get(k) is not None}
    return PplMatrix(display=Path(path).as_posix(), languages=list(doc.languages), matrix=doc.matrix,
                     metric=doc.metric, baseline=doc.baseline, provenance=provenance, ci_low=doc.ci_low,
                     ci_high=doc.ci_high, n_docs=doc.n_docs, interval=doc.interval, dominance=doc.dominance,
                     per_document=doc.per_document)


def load_neuron_layers(path: str | os.PathLike) -> NeuronLayers:
    """Load a neuron file (schema and hash checked by ``NeuronFile.load``) and count neurons per layer."""
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
