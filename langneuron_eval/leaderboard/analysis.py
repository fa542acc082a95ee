"""What the views rank, computed from the configuration rows and the figure inputs, with its uncertainty.

A *detector* here is one neuron file as used on one model (identified by the file's sha256 or its
content hash, which pins the detector's parameters). For each we gather

* selectivity: the perplexity-change matrix (row = language whose neurons are switched off,
  column = evaluated language), from ``deactivate(<lang>)`` results rows when the results folder
  holds them (``bench-detector`` saves them), else from a ``--ppl-matrix`` file; a schema-2 file
  (with per-document scores and intervals) is preferred over results rows, which carry no intervals;
* steering: ``lang_steer_<lang>/lang_rate`` (and the quality metrics beside it) of runs that activate
  one language's neurons, grouped by the intervention with the target language left out, against the
  model's unsteered rate, with the number of generations behind each rate;
* the number of neurons (from the results' ``neuron_counts`` or a ``--neurons`` file).

The headline score (see docs/leaderboard.md) is the mean of the success shares that were measured:
languages whose column maximum is on the diagonal, and languages whose ``lang_rate`` rises by at least
50 points. Its interval (:func:`score`) combines one interval per part by Bonferroni: with m parts each
part's interval is at ``1 - alpha/m``, so all hold together at ``1 - alpha`` and the mean of their bounds
bounds the score. The steering share's interval counts the languages whose gain clearly reaches 50 points
and those that clearly do not (per-language Newcombe intervals, Bonferroni over languages and over the
settings the best one was chosen from); the diagonal share's is the paired document bootstrap of
``langneuron_eval.evidence.dominance``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DOES_NOT_HOLD,
    HOLDS,
    Interval,
    docs_from_layout,
    dominance_from_docs,
    dominance_from_matrix,
    rate_gain,
    simultaneous_confidence,
    successes_of,
    verdict,
)
from langneuron_eval.leaderboard.sources import NeuronLayers, PplMatrix
from langneuron_eval.leaderboard.table import Row, Table
from langneuron_eval.lmeval.catalogue import (
    LANG_RATE,
    PPL_METRIC,
    QUALITY_METRICS,
    STEER_FAMILIES,
    STEER_SUCCESS,
    ppl_task,
    steer_task,
)
from langneuron_eval.lmeval.results import MetricKey, Score

CONTROL = "random"
# success and damage of a steered generation, shown beside lang_rate where the task reports them
# (names of langneuron_eval.lmeval.text_quality; docs/steering_quality.md)
# what a headline score was measured from; scores of different kinds are ranked in separate tables
KIND_BOTH, KIND_PPL, KIND_STEER = "ppl + steering", "ppl only", "steering only"
KINDS = (KIND_BOTH, KIND_PPL, KIND_STEER)
_NAN = math.nan


@dataclass
class Matrix:
    languages: list[str]
    values: list[list[float]]  # relative change of byte perplexity
    source: str  # "results" or the ppl-matrix file it came from
    baseline: dict[str, float] = field(default_factory=dict)  # perplexity without intervention, per language
    ci_low: list[list[float]] | None = None  # schema-2 files: paired-bootstrap bounds per cell
    ci_high: list[list[float]] | None = None
    n_docs: dict[str, int] | None = None
    interval: dict[str, Any] | None = None  # confidence, n_resamples, method, seed of those bounds
    dominance: dict[str, Any] | None = None  # as stored (Dominance.to_dict())
    per_document: dict[str, Any] | None = field(default=None, repr=False)
    _shares: dict[float, Interval] = field(default_factory=dict, repr=False)  # share interval per confidence

    @property
    def has_intervals(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    @classmethod
    def from_file(cls, pm: PplMatrix) -> Matrix:
        return cls(list(pm.languages), [list(r) for r in pm.matrix], pm.display, dict(pm.baseline),
                   pm.ci_low, pm.ci_high, pm.n_docs, pm.interval, pm.dominance, pm.per_document)


def _iv(doc: dict[str, Any] | None, default_confidence: float) -> Interval | None:
    """An :class:`Interval` from its ``to_dict()`` form (``None`` bounds read as NaN)."""
    if not isinstance(doc, dict) or doc.get("value") is None:
        return None

    def num(key: str) -> float:
        v = doc.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _NAN

    return Interval(num("value"), num("ci_low"), num("ci_high"), float(doc.get("confidence") or default_confidence),
                    str(doc.get("method") or ""))


@dataclass(frozen=True)
class Selectivity:
    diagonal_max: int  # columns whose largest increase is on the diagonal
    n: int
    ratio: float  # geometric-mean perplexity ratio diagonal / off-diagonal (1 = no selectivity)
    p_value: float = _NAN  # permutation test of the diagonal pattern (docs/statistics.md)
    share: Interval | None = None  # share of columns, with the file's stored interval (NaN bounds: none)
    ratio_interval: Interval | None = None


@dataclass(frozen=True)
class Steering:
    family: str  # lang_steer or lang_steer_prompted
    setting: str  # the intervention with the target language written <lang>
    rates: dict[str, Score]  # target language -> lang_rate when steered towards it
    gains: dict[str, float]  # target language -> steered minus unsteered lang_rate
    n: dict[str, int | None] = field(default_factory=dict)  # generations behind each steered rate
    before: dict[str, tuple[float, int | None]] = field(default_factory=dict)  # unsteered rate and its n
    quality: dict[str, dict[str, Score]] = field(default_factory=dict)  # lang -> metric -> score

    @property
    def mean_gain(self) -> float:
        return sum(self.gains.values()) / len(self.gains)

    @property
    def succeeded(self) -> int:
        return sum(1 for g in self.gains.values() if g >= STEER_SUCCESS - 1e-12)

    def gain_interval(self, lang: str, confidence: float) -> Interval | None:
        """Newcombe's interval of one language's gain (independent runs), ``None`` without both sample sizes."""
        before, n_before = self.before.get(lang, (_NAN, None))
        n_after = self.n.get(lang)
        if not n_before or not n_after:
            return None
        try:
            gain = rate_gain(successes_of(before, n_before), n_before,
                             successes_of(self.rates[lang].value, n_after), n_after, confidence)
        except LangNeuronError:  # a rate that is not a count over its n (edited or averaged results)
            return None
        return gain.interval

    def share_interval(self, confidence: float) -> Interval:
        """Share of languages gaining >= 50 points, with bounds that hold at ``confidence`` for all languages.

        Each language's gain gets an interval at ``1 - alpha / L`` (Bonferroni); the lower bound counts the
        languages whose whole interval is at or above 50 points, the upper bound those whose interval
        reaches it. NaN bounds when a sample size is unknown.
        """
        n_lang = len(self.gains)
        point = self.succeeded / n_lang
        per_lang = simultaneous_confidence(confidence, n_lang)
        verdicts = []
        for lang in self.gains:
            iv = self.gain_interval(lang, per_lang)
            if iv is None:
                return Interval(point, _NAN, _NAN, confidence, "bonferroni-newcombe", n_lang)
            verdicts.append(verdict(iv, STEER_SUCCESS))
        low = verdicts.count(HOLDS) / n_lang
        high = (n_lang - verdicts.count(DOES_NOT_HOLD)) / n_lang
        return Interval(point, low, high, confidence, "bonferroni-newcombe", n_lang)


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
    steering_n: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # generations per rate
    quality: dict[tuple[str, str], dict[str, dict[str, Score]]] = field(default_factory=dict)

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


def baseline_samples(table: Table) -> dict[str, dict[str, int]]:
    """Each model's number of documents per task without intervention (the first baseline row that has it)."""
    out: dict[str, dict[str, int]] = {}
    for row in table.rows:
        if row.intervention == "none":
            counts = out.setdefault(row.model, {})
            for task, n in sorted(row.samples.items()):
                counts.setdefault(task, n)
    return out


def selectivity(matrix: Matrix) -> Selectivity | None:
    """Diagonal dominance of a complete matrix (``None`` when a cell is missing), with the file's evidence."""
    if not matrix.values or any(not math.isfinite(v) for row in matrix.values for v in row):
        return None
    k = len(matrix.values)
    if k < 2:  # one language: vacuously its own column's maximum, nothing to test
        return Selectivity(1, 1, _NAN, _NAN, Interval(1.0, _NAN, _NAN), Interval(_NAN, _NAN, _NAN))
    stored = matrix.dominance or {}
    conf = float((matrix.interval or {}).get("confidence") or DEFAULT_CONFIDENCE)
    share, ratio = _iv(stored.get("share"), conf), _iv(stored.get("ratio"), conf)
    p_value = float(stored["p_value"]) if isinstance(stored.get("p_value"), (int, float)) else None
    if share is None or ratio is None or p_value is None:  # no stored evidence: the point figures and p
        d = dominance_from_matrix(matrix.values, matrix.languages)
        share = share or Interval(d.share.value, _NAN, _NAN, conf)
        ratio = ratio or Interval(d.ratio.value, _NAN, _NAN, conf)
        p_value = d.p_value if p_value is None else p_value
    return Selectivity(int(round(share.value * k)), k, ratio.value, p_value, share, ratio)


def selectivity_share(matrix: Matrix, confidence: float) -> Interval:
    """The diagonal share with an interval at ``confidence``: recomputed from the per-document scores (same
    resamples and seed as the file's intervals) where the file has them, else as stored, else none."""
    if confidence in matrix._shares:
        return matrix._shares[confidence]
    sel = selectivity(matrix)
    point = sel.share.value if sel and sel.share else _NAN
    out = sel.share if sel and sel.share else Interval(point, _NAN, _NAN, confidence)
    if matrix.per_document and len(matrix.languages) > 1:
        info = matrix.interval or {}
        try:
            docs = docs_from_layout(matrix.per_document, matrix.languages)
            dom = dominance_from_docs(docs, matrix.languages, confidence,
                                      int(info.get("n_resamples") or DEFAULT_RESAMPLES), int(info.get("seed") or 0))
            out = dom.share
        except LangNeuronError:
            pass  # malformed per-document scores: keep the stored interval
    matrix._shares[confidence] = out
    return out


def steering(det: DetectorEvidence, base: dict[MetricKey, Score],
             base_n: dict[str, int] | None = None) -> list[Steering]:
    """Every steering setting of a detector with a baseline to compare with, best mean gain first."""
    out = []
    for (family, setting), rates in det.steering.items():
        gains, before = {}, {}
        for lang, score in rates.items():
            task = steer_task(lang, family)
            unsteered = base.get(MetricKey(task, LANG_RATE))
            if unsteered is not None:
                gains[lang] = score.value - unsteered.value
                before[lang] = (unsteered.value, (base_n or {}).get(task))
        if gains:
            n = det.steering_n.get((family, setting), {})
            quality = det.quality.get((family, setting), {})
            out.append(Steering(family, setting, dict(sorted(rates.items())), dict(sorted(gains.items())),
                                {lang: n.get(lang) for lang in gains}, before,
                                {lang: quality[lang] for lang in sorted(quality)}))
    return sorted(out, key=lambda s: (-s.mean_gain, s.family, s.setting))


# ---------------------------------------------------------------------------------- the headline score

@dataclass(frozen=True)
class ScoreEstimate:
    """A headline score in percent with its interval (NaN bounds where a part has none)."""

    kind: str  # KIND_BOTH, KIND_PPL or KIND_STEER: what it was measured from
    interval: Interval  # on the 0-100 scale; its confidence is what the parts' intervals hold together at
    settings: int  # steering settings the reported one was chosen from (1 without steering)

    @property
    def value(self) -> float:
        return self.interval.value


def kind_of(sel: Selectivity | None, steer: Steering | None) -> str | None:
    if sel is not None and steer is not None:
        return KIND_BOTH
    return KIND_PPL if sel is not None else KIND_STEER if steer is not None else None


def score(matrix: Matrix | None, steer: Steering | None, settings: int = 1,
          confidence: float = DEFAULT_CONFIDENCE) -> ScoreEstimate | None:
    """Mean of the measured success shares, in percent, with a Bonferroni-combined interval (module docstring).

    ``settings``: how many steering settings ``steer`` was chosen from (the best one is reported); its
    interval is then at ``1 - alpha_part / settings``, which keeps it valid despite the choice.
    """
    sel = selectivity(matrix) if matrix is not None else None
    kind = kind_of(sel, steer)
    if kind is None:
        return None
    alpha = 1.0 - confidence
    n_parts = 2 if kind == KIND_BOTH else 1
    part_conf = 1.0 - alpha / n_parts
    parts: list[Interval] = []
    if sel is not None:
        parts.append(selectivity_share(matrix, part_conf))
    if steer is not None:
        share = steer.share_interval(simultaneous_confidence(part_conf, max(1, settings)))
        parts.append(Interval(share.value, share.low, share.high, part_conf, share.method, share.n))
    value = 100.0 * sum(p.value for p in parts) / len(parts)
    spent = sum(1.0 - p.confidence for p in parts)  # Bonferroni: the parts hold together at 1 - spent
    if all(p.defined for p in parts):
        low = 100.0 * sum(p.low for p in parts) / len(parts)
        high = 100.0 * sum(p.high for p in parts) / len(parts)
    else:
        low = high = _NAN
    return ScoreEstimate(kind, Interval(value, low, high, max(1e-9, 1.0 - spent), "bonferroni", None),
                         max(1, settings) if steer is not None else 1)


def headline(sel: Selectivity | None, steer: Steering | None) -> float | None:
    """Mean of the measured success shares, in percent (``None`` when nothing was measured); no interval."""
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
        task = steer_task(target, family)
        score = row.scores.get(MetricKey(task, LANG_RATE))
        if score is None:
            continue
        key = (family, row.first.setting)
        det.steering.setdefault(key, {})[target] = score
        if task in row.samples:
            det.steering_n.setdefault(key, {})[target] = row.samples[task]
        quality = {m: row.scores[MetricKey(task, m)] for m in QUALITY_METRICS if MetricKey(task, m) in row.scores}
        if quality:
            det.quality.setdefault(key, {})[target] = quality


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
            # a file with intervals beats results rows, which carry none (same neuron file, same cells)
            if det.matrix is None or (pm.ci_low is not None and not det.matrix.has_intervals):
                det.matrix = Matrix.from_file(pm)
    return reg.all()

