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

from langneuron_eval.languages import LANG_CODE
from langneuron_eval.leaderboard import analysis
from langneuron_eval.leaderboard.analysis import DetectorEvidence, Selectivity, Steering
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
    score: float | None

    def key(self) -> tuple:
        gain = self.steer.mean_gain if self.steer else -math.inf
        ratio = self.sel.ratio if self.sel and math.isfinite(self.sel.ratio) else -math.inf
        return (self.score is None, -(self.score or 0.0), -gain, -ratio, self.det.detector, self.det.sha)


def _rank_detectors(dets: list[DetectorEvidence], base: dict[MetricKey, Score]) -> list[_Ranked]:
    ranked = []
    for det in dets:
        sel = analysis.selectivity(det.matrix) if det.matrix else None
        steer = next(iter(analysis.steering(det, base)), None)
        ranked.append(_Ranked(det, sel, steer, analysis.headline(sel, steer)))
    ranked.sort(key=_Ranked.key)
    return [r for r in ranked if not r.det.control] + [r for r in ranked if r.det.control]


def _score_text(r: _Ranked) -> str:
    """The score, marked when only one of its two parts was measured (then it compares less directly)."""
    if r.score is None:
        return ""
    only = "" if (r.sel is None) == (r.steer is None) else " (ppl only)" if r.steer is None else " (steering only)"
    return f"{r.score:.1f}{only}"


def _detector_row(rank: str, label: str, r: _Ranked) -> list[Cell]:
    sel, steer = r.sel, r.steer
    return [
        Cell(rank),
        Cell(label + (" (control)" if r.det.control else "")),
        Cell(_score_text(r), r.score, csv=None if r.score is None else f"{r.score:.4f}"),
        Cell(f"{sel.diagonal_max}/{sel.n}", sel.diagonal_max / sel.n, csv=f"{sel.diagonal_max}/{sel.n}")
        if sel else Cell(""),
        Cell(f"{sel.ratio:.1f}×", sel.ratio) if sel and math.isfinite(sel.ratio) else Cell(""),
        Cell(points(steer.mean_gain), round(100 * steer.mean_gain, 6), title=f"{steer.family}: {steer.setting}")
        if steer else Cell(""),
        Cell(f"{steer.succeeded}/{len(steer.gains)}", steer.succeeded / len(steer.gains),
             csv=f"{steer.succeeded}/{len(steer.gains)}") if steer else Cell(""),
        Cell("" if r.det.neurons is None else str(r.det.neurons), r.det.neurons,
             csv=None if r.det.neurons is None else str(r.det.neurons)),
        Cell(format_params(r.det.params)),
    ]


DETECTOR_HEADER = ["Rank", "Detector", "Score", "Diagonal max", "Diag / off-diag", "Mean gain (pts)",
                   "Gain ≥ 50 pts", "Neurons", "Parameters"]


def _detector_block(model: str, name: str, dets: list[DetectorEvidence], base: dict[MetricKey, Score]) -> Block:
    ranked = _rank_detectors(dets, base)
    if not any(r.det.control for r in ranked):  # the floor is always shown, measured or not
        ranked.append(_Ranked(DetectorEvidence(model, analysis.CONTROL, {""}), None, None, None))
    labels = analysis.labels([r.det for r in ranked])
    rows, kinds, keys, n = [], [], [], 0
    for r in ranked:
        if r.det.control:
            rank = "floor"
        else:
            n += 1
            rank = str(n) if r.score is not None else "–"
        rows.append(_detector_row(rank, labels[id(r.det)], r))
        kinds.append("control" if r.det.control else "")
        keys.append({"model": model, "neurons_sha256": ";".join(sorted(s for s in r.det.shas if s))})
    return Block(caption=name, header=list(DETECTOR_HEADER), rows=rows, numeric=[False, False] + [True] * 6 + [False],
                 row_kinds=kinds, csv_keys=keys, anchor=f"detectors-{slug(name)}")


def detectors_view(table: Table, dets: list[DetectorEvidence]) -> View:
    base = analysis.baselines(table)
    models = sorted({d.model for d in dets}, key=lambda m: (m == "", table.names.get(m, m)))
    blocks = [_detector_block(m, table.names.get(m, m) or "model not recorded", [d for d in dets if d.model == m],
                              base.get(m, {})) for m in models]
    settings = sorted({s.setting for d in dets for s in analysis.steering(d, base.get(d.model, {}))[:1]})
    notes = ["Score = mean of the measured shares: languages whose perplexity rises most when their own neurons "
             "are switched off (Diagonal max), and languages whose lang_rate gains at least 50 points when steered "
             "(Gain ≥ 50 pts); in percent. '(ppl only)' / '(steering only)': one of the two was not measured, so the score "
             "compares directly only with scores measured the same way. The random control (same neuron counts, "
             "random units) is the floor: a detector should beat it."]
    if settings:
        notes.append("Steering: " + "; ".join(settings) + " (best setting per detector).")
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
    return View("steering", "Steering", "How far does activating a language's neurons move generation into it? "
                "Share of generations in the target language (lang_rate, %, ± standard error).", blocks,
                ["Rows are ranked by mean gain over the languages, against the unsteered row. "
                 "<lang> stands for each column's language; others = every other language of the neuron file."],
                key_columns=3)


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
    steer = steering_view(table, dets)
    if steer.blocks:
        views.append(steer)
    models = models_view(table, pairs)
    if models is not None:
        views.append(models)
    return views
