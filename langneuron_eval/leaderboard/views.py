"""The ranked views: which detector works, how far steering moves each language, what alignment changed.

Each view is a :class:`~.model.View` of one or more tables (one per model where things are compared
within a model); the Markdown, CSV and HTML renderers show the same cells. Numbers are formatted
here once: shares and ``lang_rate`` in percent with one decimal, task scores with three significant
decimals, a delta with its z-score as ``langneuron compare`` computes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from langneuron_eval.evidence import (
    DEFAULT_CONFIDENCE,
    FLOOR_RULE,
    FloorComparison,
    Interval,
    compare_to_floor,
    ties_with_leader,
)
from langneuron_eval.languages import LANG_CODE
from langneuron_eval.leaderboard import analysis
from langneuron_eval.leaderboard.analysis import DetectorEvidence, ScoreEstimate, Selectivity, Steering
from langneuron_eval.leaderboard.plots import percent
from langneuron_eval.leaderboard.table import Block, Cell, Table, View, format_params
from langneuron_eval.lmeval.catalogue import LANG_RATE, LOWER_IS_BETTER, steer_task
from langneuron_eval.lmeval.comparison import difference
from langneuron_eval.lmeval.results import MetricKey, Score

# task family -> the metric its column shows (the first one present), longest family name first
FAMILIES: dict[str, tuple[str, ...]] = {
    "lang_mt_hub": ("chrf", "bleu"), "lang_mt": ("chrf", "bleu"), "lang_ppl": ("byte_perplexity",),
    "xmath_hub": ("acc", "exact_match"), "xmath": ("acc", "exact_match"),
    "xqa_xling": ("f1", "exact_match"), "xqa_hub": ("f1", "exact_match"), "xqa": ("f1", "exact_match"),
    "belebele_hub": ("acc",), "xcopa_hub": ("acc",),
}


@dataclass(frozen=True)
class Pair:
    """Two models to compare, by the names recorded in the results files."""

    base: str
    aligned: str


# ------------------------------------------------------------------------------------ number texts

def pct(share: float) -> str:
    return f"{100 * share:.1f}"


def points(gain: float) -> str:
    return f"{100 * gain:+.1f}"


def score_text(value: float, stderr: float | None = None) -> str:
    """Three decimals below 10 (F1, accuracy, perplexity), two above (chrF, BLEU); stderr alike."""
    digits = 3 if abs(value) < 10 or not math.isfinite(value) else 2
    text = f"{value:.{digits}f}"
    return text if stderr is None else f"{text} ± {stderr:.{digits}f}"


def rate_cell(score: Score | None) -> Cell:
    """``lang_rate`` in percent (value and stderr too, so the CSV has the units of the header)."""
    if score is None:
        return Cell("")
    se = "" if score.stderr is None else f" ± {100 * score.stderr:.1f}"
    return Cell(pct(score.value) + se, 100 * score.value, None if score.stderr is None else 100 * score.stderr)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# -------------------------------------------------------------------------------------- detectors

@dataclass(frozen=True)
class _Ranked:
    det: DetectorEvidence
    sel: Selectivity | None
    steer: Steering | None
    settings: int  # steering settings the shown one was chosen from
    score: ScoreEstimate | None

    def key(self) -> tuple:
        gain = self.steer.mean_gain if self.steer else -math.inf
        ratio = self.sel.ratio if self.sel and math.isfinite(self.sel.ratio) else -math.inf
        value = self.score.value if self.score else 0.0
        return (self.score is None, -value, -gain, -ratio, self.det.detector, self.det.sha)

    def score_of(self, kind: str) -> float | None:
        """This detector's point score measured as ``kind`` (a floor draw is scored like each block's detectors)."""
        uses_ppl, uses_steer = kind in (analysis.KIND_BOTH, analysis.KIND_PPL), kind in (analysis.KIND_BOTH,
                                                                                          analysis.KIND_STEER)
        if (uses_ppl and self.sel is None) or (uses_steer and self.steer is None):
            return None
        est = analysis.score(self.det.matrix if uses_ppl else None, self.steer if uses_steer else None,
                             self.settings)
        return None if est is None else est.value


def _evaluate(det: DetectorEvidence, base: dict[MetricKey, Score], base_n: dict[str, int]) -> _Ranked:
    sel = analysis.selectivity(det.matrix) if det.matrix else None
    runs = analysis.steering(det, base, base_n)
    steer = runs[0] if runs else None
    return _Ranked(det, sel, steer, len(runs), analysis.score(det.matrix if sel else None, steer, len(runs)))


def _interval_text(iv: Interval) -> str:
    """``91.7 [83.3, 100.0]``; the confidence appended when it is not the default 95%."""
    if not iv.defined:
        return f"{iv.value:.1f} (no interval)"
    conf = "" if abs(iv.confidence - DEFAULT_CONFIDENCE) < 1e-9 else f" ({100 * iv.confidence:.3g}%)"
    return f"{iv.value:.1f} [{iv.low:.1f}, {iv.high:.1f}]{conf}"


def _score_cell(r: _Ranked) -> Cell:
    if r.score is None:
        return Cell("")
    iv = r.score.interval
    title = (f"{100 * iv.confidence:.3g}% interval: each measured part's interval at its share of the error rate "
             "(Bonferroni), the score's bounds the mean of the parts' bounds") if iv.defined else \
        "no interval: a part was measured without one (no per-document scores, or no sample sizes)"
    return Cell(_interval_text(iv), iv.value, title=title, csv=f"{iv.value:.4f}",
                low=iv.low if iv.defined else None, high=iv.high if iv.defined else None)


def _part_cells(sel: Selectivity | None, steer: Steering | None) -> list[Cell]:
    return [
        Cell(f"{sel.diagonal_max}/{sel.n}", sel.diagonal_max / sel.n, csv=f"{sel.diagonal_max}/{sel.n}")
        if sel else Cell(""),
        Cell(f"{sel.ratio:.1f}×", sel.ratio) if sel and math.isfinite(sel.ratio) else Cell(""),
        Cell(points(steer.mean_gain), round(100 * steer.mean_gain, 6), title=f"{steer.family}: {steer.setting}")
        if steer else Cell(""),
        Cell(f"{steer.succeeded}/{len(steer.gains)}", steer.succeeded / len(steer.gains),
             csv=f"{steer.succeeded}/{len(steer.gains)}") if steer else Cell(""),
    ]


TIE_TEXT = {True: "tied", False: "below", None: "no interval"}


def _floor_text(cmp: FloorComparison | None, draws: list[float]) -> str:
    """The "Beats floor" cell: only ``yes`` when :func:`compare_to_floor` says so."""
    if not draws:
        return "no floor"
    if cmp is None or cmp.beats_floor is None:
        return "no verdict (1 draw)"
    return f"{'yes' if cmp.beats_floor else 'no'} (p {cmp.p_value:.2g})"


def _detector_row(rank: str, label: str, r: _Ranked, tie: str, beats: str) -> list[Cell]:
    return [Cell(rank), Cell(label), _score_cell(r), Cell(tie), Cell(beats), *_part_cells(r.sel, r.steer),
            Cell(str(r.settings) if r.steer else "", r.settings if r.steer else None,
                 csv=str(r.settings) if r.steer else None),
            Cell("" if r.det.neurons is None else str(r.det.neurons), r.det.neurons,
                 csv=None if r.det.neurons is None else str(r.det.neurons)),
            Cell(format_params(r.det.params))]


def _floor_row(draws: list[_Ranked], values: list[float]) -> list[Cell]:
    """The random control as the spread of its draws' scores (mean ± sd; each part's mean over the draws)."""
    empty = [Cell("")] * (len(DETECTOR_HEADER) - 2)
    if not values:
        return [Cell("floor"), Cell("random (control)"), *empty]
    m = len(values)
    mean = sum(values) / m
    if m == 1:
        score = Cell(f"{mean:.1f} (1 draw)", mean, csv=f"{mean:.4f}", title="one random draw: no spread")
    else:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (m - 1))
        score = Cell(f"{mean:.1f} ± {sd:.1f} sd ({m} draws)", mean, sd, csv=f"{mean:.4f}", low=min(values),
                     high=max(values), title="draws: " + ", ".join(f"{v:.1f}" for v in values))
    parts = _part_cells(draws[0].sel, draws[0].steer) if m == 1 else _mean_parts(draws)
    return [Cell("floor"), Cell(f"random (control{', ' + str(m) + ' draws' if m > 1 else ''})"), score, Cell(""),
            Cell(""), *parts, Cell(""), Cell(""), Cell("")]


def _mean_parts(draws: list[_Ranked]) -> list[Cell]:
    """Each part's mean over the draws that measured it (one decimal: means of counts)."""
    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    sels = [d.sel for d in draws if d.sel is not None]
    steers = [d.steer for d in draws if d.steer is not None]
    diag = mean([s.diagonal_max for s in sels])
    ratio = mean([s.ratio for s in sels if math.isfinite(s.ratio)])
    gain = mean([s.mean_gain for s in steers])
    ok = mean([s.succeeded for s in steers])
    return [Cell(f"{diag:.1f}/{sels[0].n}", diag / sels[0].n) if diag is not None else Cell(""),
            Cell(f"{ratio:.1f}×", ratio) if ratio is not None else Cell(""),
            Cell(points(gain), round(100 * gain, 6)) if gain is not None else Cell(""),
            Cell(f"{ok:.1f}/{len(steers[0].gains)}", ok / len(steers[0].gains)) if ok is not None else Cell("")]


DETECTOR_HEADER = ["Rank", "Detector", "Score", "vs leader", "Beats floor", "Diagonal max", "Diag / off-diag",
                   "Mean gain (pts)", "Gain ≥ 50 pts", "Settings", "Neurons", "Parameters"]
_NUMERIC = [False, False, True, False, False, True, True, True, True, True, True, False]


def _kind_block(model: str, name: str, kind: str, ranked: list[_Ranked], draws: list[_Ranked],
                labels: dict[int, str]) -> Block:
    """One ranking: the detectors scored as ``kind``, ties with the leader marked, then the floor."""
    draw_scores = [(d, v) for d in draws if (v := d.score_of(kind)) is not None]
    values = [v for _, v in draw_scores]
    ties = ties_with_leader([r.score.interval for r in ranked]) if ranked else None
    rows, kinds, keys = [], [], []
    for i, r in enumerate(ranked):
        cmp = compare_to_floor(r.score.interval, values) if values else None
        tie = "leader" if ties and i == ties.leader else TIE_TEXT[ties.tied[i]] if ties else ""
        rows.append(_detector_row(str(i + 1), labels[id(r.det)], r, tie, _floor_text(cmp, values)))
        kinds.append("")
        keys.append({"model": model, "neurons_sha256": ";".join(sorted(s for s in r.det.shas if s))})
    rows.append(_floor_row([d for d, _ in draw_scores], values))
    kinds.append("control")
    keys.append({"model": model, "neurons_sha256": ";".join(sorted(s for d in draws for s in d.det.shas if s))})
    return Block(caption=f"{name} · {kind}", header=list(DETECTOR_HEADER), rows=rows, numeric=list(_NUMERIC),
                 row_kinds=kinds, csv_keys=keys, anchor=f"detectors-{slug(name)}-{slug(kind)}")


def _unscored_block(model: str, name: str, unscored: list[_Ranked], labels: dict[int, str]) -> Block:
    rows = [_detector_row("–", labels[id(r.det)], r, "", "") for r in unscored]
    keys = [{"model": model, "neurons_sha256": ";".join(sorted(s for s in r.det.shas if s))} for r in unscored]
    return Block(caption=f"{name} · not scored", header=list(DETECTOR_HEADER), rows=rows, numeric=list(_NUMERIC),
                 row_kinds=[""] * len(rows), csv_keys=keys, anchor=f"detectors-{slug(name)}-not-scored")


def _detector_blocks(model: str, name: str, dets: list[DetectorEvidence], base: dict[MetricKey, Score],
                     base_n: dict[str, int]) -> list[Block]:
    """Per measurement kind, one ranking (kinds are never mixed); detectors with nothing measured last."""
    ranked = sorted((_evaluate(d, base, base_n) for d in dets), key=_Ranked.key)
    labels = analysis.labels([r.det for r in ranked])
    draws = [r for r in ranked if r.det.control]
    detectors = [r for r in ranked if not r.det.control]
    blocks = []
    for kind in analysis.KINDS:
        of_kind = [r for r in detectors if r.score is not None and r.score.kind == kind]
        if of_kind or any(d.score is not None and d.score.kind == kind for d in draws):
            blocks.append(_kind_block(model, name, kind, of_kind, draws, labels))
    unscored = [r for r in detectors if r.score is None]
    if unscored or not blocks:
        blocks.append(_unscored_block(model, name, unscored, labels))
        if not any(b.row_kinds.count("control") for b in blocks):  # the floor is always shown, measured or not
            blocks[-1].rows.append(_floor_row([], []))
            blocks[-1].row_kinds.append("control")
            blocks[-1].csv_keys.append({"model": model, "neurons_sha256": ""})
    return blocks


def _settings_note(dets: list[DetectorEvidence], base: dict[str, dict[MetricKey, Score]],
                   base_n: dict[str, dict[str, int]]) -> str:
    chosen = []
    for d in dets:
        runs = analysis.steering(d, base.get(d.model, {}), base_n.get(d.model, {}))
        if runs:
            extra = f" (best of {len(runs)}, interval corrected for the choice)" if len(runs) > 1 else ""
            chosen.append(f"{d.detector}: {runs[0].family}, {runs[0].setting}{extra}")
    return "Steering setting shown per detector: " + "; ".join(sorted(set(chosen))) + "." if chosen else ""


SCORE_NOTE = ("Score = mean of the measured shares, in percent: languages whose perplexity rises most when their "
              "own neurons are switched off (Diagonal max), and languages whose lang_rate gains at least 50 points "
              "when steered (Gain ≥ 50 pts). Scores measured differently (ppl + steering, ppl only, steering only) "
              "are ranked in separate tables, never against each other.")
INTERVAL_NOTE = ("Score interval (95%): each measured part gets an interval at 1 - 0.05/parts (Bonferroni), so "
                 "they hold together and the mean of their bounds bounds the score. Diagonal max: paired "
                 "bootstrap over documents (schema-2 ppl_matrix.json; older files and results rows give 'no "
                 "interval'). Gain ≥ 50 pts: the languages whose gain interval (Newcombe, Bonferroni over the "
                 "languages and over the steering settings the shown one was chosen from) lies wholly above 50 "
                 "points, up to those whose interval reaches 50 points.")
TIE_NOTE = ("vs leader: 'tied' when the detector's score interval overlaps the leader's (a conservative rule: "
            "only 'below' is a difference one can cite; the order among tied detectors is not evidence), "
            "'no interval' when either has none.")


def detectors_view(table: Table, dets: list[DetectorEvidence]) -> View:
    base, base_n = analysis.baselines(table), analysis.baseline_samples(table)
    models = sorted({d.model for d in dets}, key=lambda m: (m == "", table.names.get(m, m)))
    blocks = [b for m in models for b in _detector_blocks(
        m, table.names.get(m, m) or "model not recorded", [d for d in dets if d.model == m], base.get(m, {}),
        base_n.get(m, {}))]
    notes = [SCORE_NOTE, INTERVAL_NOTE, TIE_NOTE,
             "Floor: the random control (random units, same per-layer counts), every draw of it run on the model "
             "(detector 'random'), scored like the table's detectors and shown as the mean ± sd of the draws' "
             "scores. " + FLOOR_RULE[0].upper() + FLOOR_RULE[1:] + f" (confidence {100 * DEFAULT_CONFIDENCE:.0f}%); "
             "'no verdict' with one draw."]
    settings = _settings_note(dets, base, base_n)
    if settings:
        notes.append(settings)
    return View("detectors", "Detectors", "Which detector finds neurons that control a language?", blocks, notes)


# --------------------------------------------------------------------------------------- steering

def _steer_rows(model: str, family: str, dets: list[DetectorEvidence],
                base: dict[MetricKey, Score]) -> tuple[list[str], list[tuple[str, str, Steering]]]:
    """Target languages, and (detector label, setting, steering) of every steering setting, best first."""
    found = [(d, s) for d in dets if d.model == model for s in analysis.steering(d, base) if s.family == family]
    labels = analysis.labels([d for d, _ in found] + [d for d in dets if d.model == model])
    runs = [(labels[id(d)], s.setting, s) for d, s in found]
    runs.sort(key=lambda x: (-x[2].mean_gain, x[0], x[1]))
    langs = sorted({lang for _, _, s in runs for lang in s.rates})
    return langs, runs


QUALITY_HEADER = ["Detector", "Intervention", "Language", "lang_rate (%)", "On-target and fluent (%)", "Distinct-2",
                  "Degenerate (%)"]


def _quality_cells(rate: Score | None, quality: dict[str, Score]) -> list[Cell]:
    """lang_rate, success (on-target and fluent) and damage (distinct-2, degenerate) of one language."""
    d2 = quality.get("distinct_2")
    return [rate_cell(rate), rate_cell(quality.get("on_target_fluent")),
            Cell(score_text(d2.value, d2.stderr), d2.value, d2.stderr) if d2 else Cell(""),
            rate_cell(quality.get("degenerate"))]


def _quality_block(model: str, name: str, family: str, langs: list[str], runs: list[tuple[str, str, Steering]],
                   base: dict[MetricKey, Score]) -> Block | None:
    """Success and damage beside lang_rate, one row per (run, language); ``None`` when no run reports them."""
    def base_quality(lang: str) -> dict[str, Score]:
        return {m: base[k] for m in analysis.QUALITY_METRICS if (k := MetricKey(steer_task(lang, family), m)) in base}

    if not any(s.quality for _, _, s in runs) and not any(base_quality(lang) for lang in langs):
        return None
    rows = [[Cell("none"), Cell("unsteered"), Cell(lang),
             *_quality_cells(base.get(MetricKey(steer_task(lang, family), LANG_RATE)), base_quality(lang))]
            for lang in langs]
    kinds = ["baseline"] * len(rows)
    for label, setting, s in runs:
        for lang in s.rates:
            rows.append([Cell(label), Cell(setting), Cell(lang), *_quality_cells(s.rates[lang], s.quality.get(lang, {}))])
            kinds.append("")
    return Block(caption=f"{name} · {family} · success and damage", header=list(QUALITY_HEADER), rows=rows,
                 numeric=[False, False, False, True, True, True, True], row_kinds=kinds,
                 csv_keys=[{"model": model, "family": family}] * len(rows),
                 anchor=f"steering-{slug(name)}-{slug(family)}-quality", kind="quality")


def steering_view(table: Table, dets: list[DetectorEvidence]) -> View:
    base = analysis.baselines(table)
    blocks = []
    for model in sorted({d.model for d in dets}, key=lambda m: table.names.get(m, m)):
        for family in analysis.STEER_FAMILIES:
            langs, runs = _steer_rows(model, family, dets, base.get(model, {}))
            if not runs:
                continue
            name = table.names.get(model, model) or "model not recorded"
            header = ["Rank", "Detector", "Intervention", *langs, "Mean gain (pts)"]
            unsteered = [base.get(model, {}).get(MetricKey(steer_task(lang, family), LANG_RATE)) for lang in langs]
            rows = [[Cell("–"), Cell("none"), Cell("unsteered"), *map(rate_cell, unsteered), Cell("")]]
            for i, (label, setting, s) in enumerate(runs, 1):
                rows.append([Cell(str(i)), Cell(label), Cell(setting), *(rate_cell(s.rates.get(lang)) for lang in langs),
                             Cell(points(s.mean_gain), round(100 * s.mean_gain, 6))])
            blocks.append(Block(caption=f"{name} · {family}", header=header, rows=rows,
                                numeric=[False, False, False] + [True] * (len(langs) + 1),
                                row_kinds=["baseline"] + [""] * len(runs),
                                csv_keys=[{"model": model, "family": family}] * len(rows),
                                anchor=f"steering-{slug(name)}-{slug(family)}"))
            quality = _quality_block(model, name, family, langs, runs, base.get(model, {}))
            if quality is not None:
                blocks.append(quality)
    notes = ["Rows are ranked by mean gain over the languages, against the unsteered row. "
             "<lang> stands for each column's language; others = every other language of the neuron file."]
    if any(b.kind == "quality" for b in blocks):
        notes.append("Success and damage (docs/steering_quality.md): On-target and fluent = generations in the target "
                     "language that are not degenerate (the success lang_rate alone cannot be gamed into); "
                     "Distinct-2 = unique bigrams / bigrams (lower = more repetition); Degenerate = generations "
                     "caught in a repetition loop. Each a mean over generations ± lm-eval's standard error.")
    return View("steering", "Steering", "How far does activating a language's neurons move generation into it? "
                "Share of generations in the target language (lang_rate, %, ± standard error).", blocks, notes,
                key_columns=3)


# ------------------------------------------------------------------------------------ selectivity

def _matrix_block(model: str, name: str, label: str, m: analysis.Matrix) -> Block:
    """The perplexity-change matrix with each cell's interval where the file has one (percent)."""
    rows = []
    for i, row_lang in enumerate(m.languages):
        cells = [Cell(row_lang)]
        for j, v in enumerate(m.values[i]):
            lo = m.ci_low[i][j] if m.has_intervals else math.nan
            hi = m.ci_high[i][j] if m.has_intervals else math.nan
            bounded = math.isfinite(lo) and math.isfinite(hi)
            text = percent(v) + (f" [{percent(lo)}, {percent(hi)}]" if bounded else "")
            cells.append(Cell(text, 100 * v if math.isfinite(v) else None, low=100 * lo if bounded else None,
                              high=100 * hi if bounded else None))
        rows.append(cells)
    return Block(caption=f"{name} · {label}: perplexity change (row: neurons switched off)",
                 header=["Switched off ↓ · evaluated →", *m.languages], rows=rows,
                 numeric=[False] + [True] * len(m.languages), row_kinds=[""] * len(rows),
                 csv_keys=[{"model": model, "detector": label}] * len(rows),
                 anchor=f"selectivity-{slug(name)}-{slug(label)}")


def _interval_source(m: analysis.Matrix) -> str:
    if not m.has_intervals:
        where = "results rows" if m.source == "results" else "a file without per-document scores (schema 1)"
        return f"no interval: from {where}"
    info = m.interval or {}
    conf = info.get("confidence", DEFAULT_CONFIDENCE)
    return f"{100 * conf:.3g}% paired bootstrap over documents, {info.get('n_resamples', '?')} resamples"


def _dominance_row(label: str, m: analysis.Matrix) -> list[Cell]:
    sel = analysis.selectivity(m)
    if sel is None or sel.share is None or sel.ratio_interval is None:
        return [Cell(label), Cell("incomplete matrix"), Cell(""), Cell(""), Cell(""), Cell(_interval_source(m))]
    sh, ratio, k = sel.share, sel.ratio_interval, sel.n
    share_text = f"{sel.diagonal_max}/{k}" + (f" [{round(sh.low * k)}/{k}, {round(sh.high * k)}/{k}]"
                                              if sh.defined else "")
    ratio_text = "" if not math.isfinite(ratio.value) else f"{ratio.value:.2f}×" + (
        f" [{ratio.low:.2f}, {ratio.high:.2f}]" if ratio.defined else "")
    docs = ", ".join(f"{lang} {n}" for lang, n in (m.n_docs or {}).items())
    return [Cell(label), Cell(share_text, sh.value, csv=f"{sel.diagonal_max}/{k}",
                              low=sh.low if sh.defined else None, high=sh.high if sh.defined else None),
            Cell(ratio_text, ratio.value if math.isfinite(ratio.value) else None,
                 low=ratio.low if ratio.defined else None, high=ratio.high if ratio.defined else None),
            Cell("" if math.isnan(sel.p_value) else f"{sel.p_value:.3g}",
                 None if math.isnan(sel.p_value) else sel.p_value),
            Cell(docs), Cell(_interval_source(m))]


DOMINANCE_HEADER = ["Detector", "Diagonal max", "Diag / off-diag", "p (dominance)", "Documents", "Interval"]


def selectivity_view(table: Table, dets: list[DetectorEvidence]) -> View | None:
    """Per model, diagonal dominance of every matrix (with intervals and p-value), then each matrix's cells."""
    blocks = []
    for model in sorted({d.model for d in dets if d.matrix is not None}, key=lambda m: table.names.get(m, m)):
        group = sorted((d for d in dets if d.model == model and d.matrix is not None),
                       key=lambda d: (d.control, d.detector, d.sha))
        name = table.names.get(model, model) or "model not recorded"
        labels = analysis.labels(group)
        rows = [_dominance_row(labels[id(d)], d.matrix) for d in group]
        blocks.append(Block(caption=f"{name} · diagonal dominance", header=list(DOMINANCE_HEADER), rows=rows,
                            numeric=[False, True, True, True, False, False],
                            row_kinds=["control" if d.control else "" for d in group],
                            csv_keys=[{"model": model}] * len(rows), anchor=f"selectivity-{slug(name)}"))
        blocks += [_matrix_block(model, name, labels[id(d)], d.matrix) for d in group]
    if not blocks:
        return None
    notes = ["Cells: byte perplexity with the row language's neurons switched off ÷ without, minus 1, with the "
             "paired document bootstrap interval where the ppl_matrix.json (schema 2) has per-document scores; "
             "older files and matrices from results rows have no interval and say so.",
             "Diagonal max: columns whose largest increase is on the diagonal, with its bootstrap interval. "
             "Diag / off-diag: geometric-mean perplexity ratio on the diagonal ÷ off it (1 = no selectivity). "
             "p (dominance): exact permutation test over row labels of the diagonal's rank score "
             "(docs/statistics.md); with K languages it cannot go below 1/K!."]
    return View("selectivity", "Selectivity", "Does switching a language's neurons off hurt that language most? "
                "The perplexity-change matrices, with intervals and a test of the diagonal.", blocks, notes,
                key_columns=1)


# ------------------------------------------------------------------------------ models / alignment

def task_language(task: str) -> tuple[str, str] | None:
    """``(family, language)`` of a per-language task such as ``xqa_de`` or ``lang_mt_hub_zh``."""
    for family in FAMILIES:
        if task.startswith(family + "_") and LANG_CODE.match(task[len(family) + 1:]):
            return family, task[len(family) + 1:]
    return None


def family_scores(scores: dict[MetricKey, Score]) -> dict[str, dict[str, tuple[MetricKey, Score]]]:
    """family -> language -> (metric key, score) for the family's headline metric."""
    out: dict[str, dict[str, tuple[MetricKey, Score]]] = {}
    for mk, score in sorted(scores.items(), key=lambda kv: (kv[0].task, kv[0].metric, kv[0].filter)):
        parsed = task_language(mk.task)
        if parsed is None or mk.filter != "none":
            continue
        family, lang = parsed
        wanted = FAMILIES[family]
        current = out.get(family, {}).get(lang)
        rank = wanted.index(mk.metric) if mk.metric in wanted else None
        if rank is not None and (current is None or rank < wanted.index(current[0].metric)):
            out.setdefault(family, {})[lang] = (mk, score)
    return out


def _higher_better(table: Table, mk: MetricKey) -> bool:
    return table.higher_is_better.get((mk.task, mk.metric), mk.metric not in LOWER_IS_BETTER)


def _family_block(table: Table, family: str, per_model: dict[str, dict[str, tuple[MetricKey, Score]]]) -> Block:
    langs = sorted({lang for by_lang in per_model.values() for lang in by_lang})
    metric = next(mk for by_lang in per_model.values() for mk, _ in by_lang.values()).metric
    higher = _higher_better(table, next(mk for by_lang in per_model.values() for mk, _ in by_lang.values()))

    def mean(model: str) -> float:
        values = [s.value for _, s in per_model[model].values()]
        return sum(values) / len(values)

    order = sorted(per_model, key=lambda m: ((-mean(m) if higher else mean(m)), table.names.get(m, m)))
    rows = []
    for i, model in enumerate(order, 1):
        cells = [Cell(str(i)), Cell(table.names.get(model, model), title=model)]
        for lang in langs:
            got = per_model[model].get(lang)
            cells.append(Cell(score_text(got[1].value, got[1].stderr), got[1].value, got[1].stderr) if got else Cell(""))
        cells.append(Cell(score_text(mean(model)), mean(model)))
        rows.append(cells)
    arrow = "↑" if higher else "↓"
    return Block(caption=f"{family} · {metric} {arrow}", header=["Rank", "Model", *langs, "Mean"], rows=rows,
                 numeric=[False, False] + [True] * (len(langs) + 1), row_kinds=[""] * len(rows),
                 csv_keys=[{"family": family, "metric": metric, "model": m} for m in order],
                 anchor=f"models-{slug(family)}")


def _delta_cell(base: tuple[MetricKey, Score] | None, aligned: tuple[MetricKey, Score] | None) -> Cell:
    if base is None or aligned is None:
        return Cell("")
    d = difference(base[1], aligned[1])
    if d["delta"] is None:
        return Cell("")
    z = "" if d["z"] is None else f" (z {d['z']:+.1f})"
    title = f"{score_text(base[1].value, base[1].stderr)} → {score_text(aligned[1].value, aligned[1].stderr)}"
    return Cell(f"{d['delta']:+.3f}{z}", d["delta"], d["stderr"], title=title)


def _pair_block(table: Table, pair: Pair, base: dict, aligned: dict) -> Block | None:
    families = sorted(set(base) & set(aligned))
    langs = sorted({lang for f in families for lang in set(base[f]) & set(aligned[f])})
    if not langs:
        return None
    rows = []
    for family in families:
        cells = [Cell(family), *(_delta_cell(base[family].get(lang), aligned[family].get(lang)) for lang in langs)]
        deltas = [c.value for c in cells[1:] if c.value is not None]
        rows.append(cells + [Cell(f"{sum(deltas) / len(deltas):+.3f}", sum(deltas) / len(deltas)) if deltas
                             else Cell("")])
    name = f"{table.names.get(pair.base, pair.base)} → {table.names.get(pair.aligned, pair.aligned)}"
    return Block(caption=name, header=["Task", *langs, "Mean Δ"], rows=rows, numeric=[False] + [True] * (len(langs) + 1),
                 row_kinds=[""] * len(rows), csv_keys=[{"base": pair.base, "aligned": pair.aligned}] * len(rows),
                 anchor=f"alignment-{slug(name)}")


def auto_pairs(table: Table) -> list[Pair]:
    """``x-base`` with every ``x-<other>`` (``demo-base`` → ``demo-aligned``), by display name."""
    by_name = {name: model for model, name in table.names.items()}
    pairs = []
    for name, model in sorted(by_name.items()):
        match = re.match(r"^(?P<stem>.+?)[-_.]?base$", name)
        if not match:
            continue
        for other, other_model in sorted(by_name.items()):
            if other != name and other.startswith(match.group("stem")) and not other.endswith("base"):
                pairs.append(Pair(model, other_model))
    return pairs


def models_view(table: Table, pairs: Sequence[Pair] = ()) -> View | None:
    per_model = {m: family_scores(s) for m, s in analysis.baselines(table).items()}
    families = sorted({f for by_family in per_model.values() for f in by_family})
    blocks = [_family_block(table, f, {m: s[f] for m, s in per_model.items() if f in s}) for f in families]
    notes = []
    for pair in list(pairs) or auto_pairs(table):
        block = _pair_block(table, pair, per_model.get(pair.base, {}), per_model.get(pair.aligned, {}))
        if block is not None:
            blocks.append(block)
    if len(blocks) > len(families):
        notes.append("Alignment tables: aligned minus base, with z = delta / sqrt(se_base² + se_aligned²) as "
                     "`langneuron compare` computes it; |z| below about 2 is within noise.")
    if not blocks:
        return None
    return View("models", "Models and alignment", "How do the models score per task and language, and what did "
                "alignment change? Scores without any intervention.", blocks, notes)


def all_views(table: Table, dets: list[DetectorEvidence], pairs: Sequence[Pair] = ()) -> list[View]:
    views = []
    if dets:
        views.append(detectors_view(table, dets))
    selective = selectivity_view(table, dets)
    if selective is not None:
        views.append(selective)
    steer = steering_view(table, dets)
    if steer.blocks:
        views.append(steer)
    models = models_view(table, pairs)
    if models is not None:
        views.append(models)
    return views
