"""What the views rank, computed from the configuration rows and the figure inputs.

A *detector* here is one neuron file as used on one model (identified by the file's sha256 or its
content hash, which pins the detector's parameters). For each we gather

* selectivity: the perplexity-change matrix (row = language whose neurons are switched off,
  column = evaluated language), from ``deactivate(<lang>)`` results rows when the results folder
  holds them (``bench-detector`` saves them), else from a ``--ppl-matrix`` file;
* steering: ``lang_steer_<lang>/lang_rate`` of runs that activate one language's neurons, grouped by
  the intervention with the target language left out, against the model's unsteered rate;
* the number of neurons (from the results' ``neuron_counts`` or a ``--neurons`` file).

The headline score (see docs/leaderboard.md) is the mean of the two success shares that were
measured: languages whose column maximum is on the diagonal, and languages whose ``lang_rate``
rises by at least 50 points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langneuron_eval.evidence.dominance import diagonal_dominance
from langneuron_eval.leaderboard.sources import NeuronLayers, PplMatrix
from langneuron_eval.leaderboard.table import Row, Table
from langneuron_eval.lmeval.catalogue import (
    LANG_RATE,
    PPL_METRIC,
    STEER_FAMILIES,
    STEER_SUCCESS,
    ppl_task,
    steer_task,
)
from langneuron_eval.lmeval.results import MetricKey, Score

CONTROL = "random"


@dataclass
class Matrix:
    languages: list[str]
    values: list[list[float]]  # relative change of byte perplexity
    source: str  # "results" or the ppl-matrix file it came from
    baseline: dict[str, float] = field(default_factory=dict)  # perplexity without intervention, per language


@dataclass(frozen=True)
class Selectivity:
    diagonal_max: int  # columns whose largest increase is on the diagonal
    n: int
    ratio: float  # mean diagonal / mean off-diagonal increase (NaN when no column has a positive off-diagonal)


@dataclass(frozen=True)
class Steering:
    family: str  # lang_steer or lang_steer_prompted
    setting: str  # the intervention with the target language written <lang>
    rates: dict[str, Score]  # target language -> lang_rate when steered towards it
    gains: dict[str, float]  # target language -> steered minus unsteered lang_rate

    @property
    def mean_gain(self) -> float:
        return sum(self.gains.values()) / len(self.gains)

    @property
    def succeeded(self) -> int:
        return sum(1 for g in self.gains.values() if g >= STEER_SUCCESS - 1e-12)


@dataclass
class DetectorEvidence:
    model: str
    detector: str
    shas: set[str]
    params: dict[str, Any] | None = None
    neurons: int | None = None
    matrix: Matrix | None = None
    layers: NeuronLayers | None = None  # the --neurons file, for the layer-distribution figure
    steering: dict[tuple[str, str], dict[str, Score]] = field(default_factory=dict)  # (family, setting) -> rates

    @property
    def control(self) -> bool:
        return self.detector == CONTROL

    @property
    def sha(self) -> str:
        return min(self.shas)


def labels(dets: Sequence[DetectorEvidence]) -> dict[int, str]:
    """Detector names by ``id()``, with a short hash where one model has two neuron files of one detector."""
    unique = list({id(d): d for d in dets}.values())
    names = [d.detector for d in unique]
    return {id(d): d.detector if names.count(d.detector) == 1 else f"{d.detector} ({d.sha[:7]})" for d in unique}


def baselines(table: Table) -> dict[str, dict[MetricKey, Score]]:
    """Each model's scores without intervention (rows whose intervention is ``none``, any neuron file loaded)."""
    out: dict[str, dict[MetricKey, Score]] = {}
    for row in table.rows:
        if row.intervention == "none":
            scores = out.setdefault(row.model, {})
            for mk, score in sorted(row.scores.items(), key=lambda kv: (kv[0].task, kv[0].metric, kv[0].filter)):
                scores.setdefault(mk, score)
    return out


def selectivity(matrix: Matrix) -> Selectivity | None:
    """Diagonal dominance of a complete matrix (``None`` when a cell is missing)."""
    if not matrix.values or any(not math.isfinite(v) for row in matrix.values for v in row):
        return None
    d = diagonal_dominance(matrix.values)
    return Selectivity(int(d["columns_diagonal_max"]), len(matrix.values), float(d["ratio"]))


def steering(det: DetectorEvidence, base: dict[MetricKey, Score]) -> list[Steering]:
    """Every steering setting of a detector with a baseline to compare with, best mean gain first."""
    out = []
    for (family, setting), rates in det.steering.items():
        gains = {}
        for lang, score in rates.items():
            before = base.get(MetricKey(steer_task(lang, family), LANG_RATE))
            if before is not None:
                gains[lang] = score.value - before.value
        if gains:
            out.append(Steering(family, setting, dict(sorted(rates.items())), dict(sorted(gains.items()))))
    return sorted(out, key=lambda s: (-s.mean_gain, s.family, s.setting))


def headline(sel: Selectivity | None, steer: Steering | None) -> float | None:
    """Mean of the measured success shares, in percent (``None`` when nothing was measured)."""
    shares = []
    if sel is not None:
        shares.append(sel.diagonal_max / sel.n)
    if steer is not None:
        shares.append(steer.succeeded / len(steer.gains))
    return 100.0 * sum(shares) / len(shares) if shares else None


class _DetectorIndex:
    """Detectors by (model, sha256), where either of a neuron file's two hashes finds it."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], DetectorEvidence] = {}

    def find(self, model: str, shas: list[str]) -> DetectorEvidence | None:
        return next((self.by_key[(model, s)] for s in shas if s and (model, s) in self.by_key), None)

    def get(self, model: str, shas: list[str], detector: str) -> DetectorEvidence:
        det = self.find(model, shas)
        if det is None:
            det = DetectorEvidence(model=model, detector=detector, shas=set())
        if det.detector in ("unknown", "none", "") and detector not in ("unknown", "none", ""):
            det.detector = detector
        for s in shas:
            if s:
                det.shas.add(s)
                self.by_key[(model, s)] = det
        return det

    def models_of(self, shas: list[str], hint: str | None) -> list[str]:
        """Models a figure input belongs to: those whose rows used the file, else its own record, else the only one."""
        found = sorted({m for (m, s) in self.by_key if s in shas and s})
        if found:
            return found
        if hint:
            return [hint]
        models = sorted({m for (m, _) in self.by_key})
        return models if len(models) == 1 else [""]

    def all(self) -> list[DetectorEvidence]:
        unique = {id(d): d for d in self.by_key.values()}
        return sorted(unique.values(), key=lambda d: (d.model, d.detector, d.sha))


def _from_rows(reg: _DetectorIndex, table: Table) -> None:
    for row in table.rows:
        if row.detector == "none" or not row.neurons_sha256:
            continue
        det = reg.get(row.model, [row.neurons_sha256, row.content_sha256], row.detector)
        det.params = det.params or row.detector_params
        counts = row.first.neuron_counts
        det.neurons = det.neurons if det.neurons is not None else (sum(counts.values()) if counts else None)
        if row.first.target is not None:
            _add_rates(det, row)


def _add_rates(det: DetectorEvidence, row: Row) -> None:
    target = row.first.target
    for family in STEER_FAMILIES:
        score = row.scores.get(MetricKey(steer_task(target, family), LANG_RATE))
        if score is not None:
            det.steering.setdefault((family, row.first.setting), {})[target] = score


def _matrix_from_rows(rows: list[Row], base: dict[MetricKey, Score]) -> Matrix | None:
    """The perplexity-change matrix of ``deactivate(<lang>)`` rows, where every cell is measured."""
    by_lang = {row.first.ablated: row for row in rows if row.first.ablated}
    langs = sorted(by_lang)
    if len(langs) < 2:
        return None
    values = []
    for r in langs:
        line = []
        for c in langs:
            after = by_lang[r].scores.get(MetricKey(ppl_task(c), PPL_METRIC))
            before = base.get(MetricKey(ppl_task(c), PPL_METRIC))
            if after is None or before is None or not before.value:
                return None
            line.append(after.value / before.value - 1.0)
        values.append(line)
    return Matrix(langs, values, "results",
                  {c: base[MetricKey(ppl_task(c), PPL_METRIC)].value for c in langs})


def detectors(table: Table, matrices: Sequence[PplMatrix] = (), layers: Sequence[NeuronLayers] = ()) -> list[DetectorEvidence]:
    """Every detector of every model, with what the results and figure inputs say about it."""
    reg = _DetectorIndex()
    _from_rows(reg, table)
    base = baselines(table)
    for det in reg.all():
        rows = [r for r in table.rows if r.model == det.model and r.neurons_sha256 in det.shas]
        det.matrix = _matrix_from_rows(rows, base.get(det.model, {}))
    for nl in layers:
        for model in reg.models_of([nl.sha256, nl.content_sha256], None):
            det = reg.get(model, [nl.sha256, nl.content_sha256], nl.detector)
            det.params, det.layers = nl.params, nl
            det.neurons = sum(sum(c) for c in nl.counts.values())
    for pm in matrices:
        shas = [pm.provenance.get("neurons_sha256", ""), pm.provenance.get("neurons_content_sha256", "")]
        shas = shas if any(shas) else [f"file:{pm.display}"]  # no neuron hash recorded: the file is the detector
        for model in reg.models_of(shas, pm.provenance.get("model")):
            det = reg.get(model, shas, pm.provenance.get("detector", "unknown"))
            if det.matrix is None:
                det.matrix = Matrix(list(pm.languages), [list(r) for r in pm.matrix], pm.display, dict(pm.baseline))
    return reg.all()

