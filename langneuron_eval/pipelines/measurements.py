"""The measurements that ``langneuron demo``, ``bench-detector``, ``ppl-matrix`` and the leaderboard share.

* :func:`ppl_change_matrix`: LAPE's perplexity-change matrix. Row i = language whose neurons are deactivated,
  column j = language whose held-out text is scored, ``matrix[i][j] = ppl(j | deactivate i) / ppl(j) - 1``
  (byte perplexity by default: comparable across scripts, since ``log ppl_byte = NLL / bytes``).
* :func:`steering_gains`: ``lang_rate`` per language without and with that language's neurons activated, the gain
  with a paired interval over the same prompts and seeds; every language's steered generations in one pass.
* :func:`diagonal_dominance`: how clearly each language's neurons hurt that language most.

All run on one loaded ``LangNeuronLM``; a matrix is one engine call over its ``1 + #languages`` conditions
(rows of a batch carry different interventions) and one model load. :class:`EvalConfig` holds the sizes and the intervention the demo
and the battery share. This module sits between the command line (``langneuron_eval/cli``) and the core.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from langneuron_eval.core.corpus import overlap_problems, resolve_corpus, split_specs
from langneuron_eval.core.interventions import OTHERS, InterventionSpec, LanguageEdit
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.intervals import (
    DEFAULT_CONFIDENCE,
    Gain,
    paired_rate_gain,
    rate_gain,
    successes_of,
)
from langneuron_eval.fileio import atomic_path
from langneuron_eval.languages import DEMO_LANGUAGES, written_with_spaces
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.catalogue import LANG_RATE, ON_TARGET_FLUENT, PPL_METRIC, ppl_task, steer_task
from langneuron_eval.lmeval.engine import perplexity
from langneuron_eval.lmeval.results import metric as results_metric
from langneuron_eval.lmeval.results import metric_stderr, write_results

RunHook = Callable[[str], None]  # called with a label before each lm-eval run
NONE = "none"  # the condition without intervention (per_document["nll"] key)

# bench-detector's steering setting for a user's --model when no sweep chose one: a DECLARED default, not a finding
# (the `langneuron` model's own defaults: the target language's neurons set to their mean activation, x1, no other
# language zeroed). It replaces an earlier default that had been read off 3 generations per setting. The setting to
# report is the one `langneuron sweep` chooses on its dev half: `bench-detector --steering-from sweep.json`.
USER_MODEL_STEERING: dict[str, Any] = {"steer_value": "mean", "steer_strength": 1.0, "steer_deactivate_others": False}


@dataclass
class EvalConfig:
    """Detection sizes, evaluation sizes and the steering intervention shared by the demo and the battery."""

    langs: tuple[str, ...] = DEMO_LANGUAGES
    detect_sentences: int = 1000  # per language, detection split
    ppl_limit: int | None = 300
    steer_limit: int | None = 100
    batch_size: int = 50
    steer_value: str = "mean"
    steer_strength: float = 12.0
    steer_deactivate_others: bool = True
    steer_positions: str = "all"  # all | generated (core/interventions.py)
    # LAPE's reference rule (1%) leaves the Latin-script languages of a 3M model near noise; the demo uses
    # 5% of neurons with one quota per language (documented option beside the reference rule).
    lape_params: dict[str, Any] = field(default_factory=lambda: {"top_rate": 0.05, "per_language_quota": True})
    kojima_params: dict[str, Any] = field(default_factory=lambda: {"k_top": 150, "k_bottom": 150})
    zhang_params: dict[str, Any] = field(default_factory=dict)

    def reference_params(self) -> dict[str, dict[str, Any]]:
        """Parameters of the reference detectors; ``random`` draws as many units per layer as ``lape``."""
        return {"lape": self.lape_params, "kojima_ap": self.kojima_params, "zhang": self.zhang_params,
                "random": {"reference": "lape", "reference_params": params_text(self.lape_params)}}


def params_text(params: dict[str, Any]) -> str:
    """``{"a": 1, "b": 2}`` -> ``"a=1,b=2"`` (the form detector parameters take on the command line)."""
    return ",".join(f"{k}={v}" for k, v in params.items())


@dataclass
class _PplRuns:
    """The matrix as (1 + #languages) lm-eval passes, each saved as an lm-eval results file (for the leaderboard)."""

    lm: Any
    langs: list[str]
    limit: int | None
    task_manager: Any
    results_dir: Path
    on_run: RunHook | None
    runs: int = 0

    def nll(self, name: str, label: str) -> dict[str, list[float]]:
        """One lm-eval pass over every language's held-out text under the current intervention: NLL per document.

        lm-eval reports no standard error for perplexity aggregations (nothing is bootstrapped); intervals come
        from the per-document NLL (``langneuron_eval.evidence``).
        """
        if self.on_run is not None:
            self.on_run(label)
        res = evaluation.evaluate(self.lm, [ppl_task(lang) for lang in self.langs], limit=self.limit,
                                  task_manager=self.task_manager, bootstrap_iters=0, log_samples=True)
        self.runs += 1
        samples = res.pop("samples", {})
        write_results(self.results_dir / name / "results_ppl.json", res, force=True)
        return {lang: [-float(np.ravel(s["filtered_resps"])[0])
                       for s in sorted(samples[ppl_task(lang)], key=lambda s: s["doc_id"])] for lang in self.langs}


def ppl_documents(task_manager: Any, langs: Sequence[str], limit: int | None) -> dict[str, list[str]]:
    """The texts lm-eval's ``lang_ppl_<lang>`` tasks score (the first ``limit`` documents), per language."""
    tasks = task_manager.load([ppl_task(lang) for lang in langs])["tasks"]
    out = {}
    for lang in langs:
        task = tasks[ppl_task(lang)]
        docs = task.eval_docs
        n = len(docs) if limit is None else min(int(limit), len(docs))
        out[lang] = [task.doc_to_target(docs[i]) for i in range(n)]
    return out


def _units(texts: dict[str, list[str]], metric: str) -> dict[str, list[int | None]]:
    """Per document, what the metric normalises by: UTF-8 bytes (as lm-eval counts) or words (spaced scripts).

    ``None`` per document where the metric is not defined (word perplexity of a language written without spaces).
    """
    if metric == "word_perplexity":
        return {lang: [len(t.split()) if written_with_spaces(lang) else None for t in ts]
                for lang, ts in texts.items()}
    return {lang: [len(t.encode("utf-8")) for t in ts] for lang, ts in texts.items()}


def _one_call(lm: Any, texts: dict[str, list[str]], conditions: list[str], labels: dict[str, str],
              on_run: RunHook | None) -> tuple[dict[str, dict[str, list[float]]], int]:
    """NLL per (condition, language, document), every condition in one engine call; and the scored tokens."""
    edits = {c: () if c == NONE else (LanguageEdit("deactivate", c),) for c in conditions}
    items = [(c, lang, t) for c in conditions for lang, ts in texts.items() for t in ts]
    started = [0]

    def on_batch(done: int, total: int) -> None:  # one progress step per condition's share of the windows
        while on_run is not None and started[0] < len(conditions) and done >= started[0] * total / len(conditions):
            on_run(labels[conditions[started[0]]])
            started[0] += 1

    on_batch(0, 1)
    scores = lm.score_conditions([t for _, _, t in items], [c for c, _, _ in items], edits, on_batch=on_batch)
    nll: dict[str, dict[str, list[float]]] = {c: {lang: [] for lang in texts} for c in conditions}
    for (c, lang, _), score in zip(items, scores):
        nll[c][lang].append(-score.loglikelihood)
    return nll, sum(score.tokens for score in scores)


def _reused_baseline(baseline_nll: Mapping[str, Sequence[float]], texts: dict[str, list[str]]) -> dict[str, list[float]]:
    """An earlier call's unsteered per-document NLL, checked to cover the same documents of every language."""
    for lang, ts in texts.items():
        if len(baseline_nll.get(lang, ())) != len(ts):
            raise LangNeuronError(f"baseline_nll has {len(baseline_nll.get(lang, ()))} {lang} documents, this call "
                                  f"scores {len(ts)}: it comes from another limit or corpus")
    return {lang: [float(v) for v in baseline_nll[lang]] for lang in texts}


def _change(log_row: float, log_base: float) -> float:
    """``exp(log_row - log_base) - 1`` (the ratio of two perplexities minus one): inf past float range, never raises."""
    d = log_row - log_base
    if math.isnan(d):
        return math.nan
    return math.inf if d > 709.0 else math.expm1(d)


def _cells(nll: dict[str, dict[str, list[float]]], units: dict[str, list[int | None]], langs: list[str],
           baseline: dict[str, float] | None, metric: str, skip_rows: Sequence[str] = ()) -> dict[str, Any]:
    """Perplexities, the matrix (``ppl_row / ppl_none - 1``, taken as ``exp(mean NLL difference) - 1`` so that it
    stays finite when both perplexities overflow) and the reason of every value that is not finite."""
    nonfinite: list[dict[str, str]] = []

    def mean_nll(cond: str, lang: str) -> float:
        u = units[lang]
        if None in u or not sum(u):
            return math.nan
        return math.fsum(nll[cond][lang]) / sum(u)

    def why(row: str, col: str, value: float, what: str) -> None:
        if math.isfinite(value):
            return
        if None in units[col]:
            reason = f"{metric} is not defined for {col}: it is written without spaces between words"
        elif math.isnan(value):
            reason = f"{what}: no units to normalise by, or a non-finite log-likelihood"
        else:
            reason = f"{what} exceeds the float range"
        nonfinite.append({"row": row, "column": col, "reason": reason})

    base_log = {c: (mean_nll(NONE, c) if baseline is None else (math.log(baseline[c]) if baseline[c] > 0 else math.nan))
                for c in langs}
    base = {c: perplexity(-base_log[c], 1) if math.isfinite(base_log[c]) else base_log[c] for c in langs}
    for c in langs:
        why(NONE, c, base[c], "the perplexity without intervention")
    ppl, matrix = [], []
    for r in langs:
        logs = [base_log[c] if r in skip_rows else mean_nll(r, c) for c in langs]
        ppl.append([perplexity(-v, 1) if math.isfinite(v) else v for v in logs])
        matrix.append([_change(v, base_log[c]) for v, c in zip(logs, langs)])
        for c, p, m in zip(langs, ppl[-1], matrix[-1]):
            why(r, c, p, f"the perplexity with {r} deactivated")
            why(r, c, m, "the relative change")
    return {"baseline": base, "perplexity": ppl, "matrix": matrix, "nonfinite": nonfinite}


def ppl_change_matrix(lm: Any, langs: list[str], limit: int | None = None, task_manager: Any = None,
                      baseline: dict[str, float] | None = None, metric: str = PPL_METRIC,
                      results_dir: Path | None = None, tag: str = "", skip_rows: Sequence[str] = (),
                      on_run: RunHook | None = None,
                      baseline_nll: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """The perplexity-change matrix of a loaded ``LangNeuronLM`` whose neuron file covers ``langs``.

    Without ``results_dir`` every condition (no intervention, and each language's neurons deactivated) is scored
    in ONE engine call (:meth:`LangNeuronLM.score_conditions`): rows of a batch carry different interventions, each
    document is tokenised once. With ``results_dir``, the conditions run as lm-eval passes (through the same engine)
    whose results are saved as ``results_dir/<base|tag>-<mode>-<lang>/results_ppl.json`` for the leaderboard.
    ``baseline`` (language -> perplexity without intervention, from an earlier call on the same model and limit)
    skips the unsteered condition. ``baseline_nll`` (``per_document["nll"]["none"]`` of an earlier call on the same
    model, limit and task manager) skips it too and keeps the per-document scores, so the intervals still pair up.
    Rows in ``skip_rows`` (languages without neurons) are the baseline.

    Returns ``baseline``, ``perplexity`` (rows x columns), ``matrix`` (``ppl(col | deactivate row) / ppl(col) - 1``),
    ``nonfinite`` (``[{row, column, reason}]`` for every value that is inf or NaN; ``row`` "none" = baseline),
    ``per_document`` (``{"units": {lang: [bytes or words]}, "nll": {"none"|row: {lang: [NLL in nats]}}}``, documents
    in the same order everywhere; a unit is ``None`` where the metric is undefined), ``seconds``, ``runs`` (conditions
    scored), ``tokens`` (scored over all conditions) and ``tokens_per_second``.
    """
    tm = task_manager or evaluation.make_task_manager()
    langs = list(langs)
    started = time.perf_counter()
    texts = ppl_documents(tm, langs, limit)
    rows = [r for r in langs if r not in skip_rows]
    conditions = ([NONE] if baseline is None and baseline_nll is None else []) + rows
    labels = {NONE: "no intervention", **{r: f"deactivating {r} neurons ({len(lm.neuron_file.units(r))} units)"
                                         for r in rows}}
    if results_dir is None:
        nll, tokens = _one_call(lm, texts, conditions, labels, on_run)
    else:
        runs = _PplRuns(lm, langs, limit, tm, results_dir, on_run)
        nll = {}
        for c in conditions:
            lm.set_intervention(mode="none") if c == NONE else lm.set_intervention(mode="deactivate", lang=c)
            nll[c] = runs.nll("base-none-ppl" if c == NONE else f"base-{tag}-deactivate-{c}", labels[c])
        lm.set_intervention(mode="none")
        tokens = sum(len(lm.tok_encode(t)) for ts in texts.values() for t in ts) * len(conditions)
    if baseline_nll is not None:
        nll[NONE] = _reused_baseline(baseline_nll, texts)
    for r in skip_rows:  # nothing deactivated: the documents' NLL is the baseline's
        if r in langs and NONE in nll:
            nll[r] = nll[NONE]
    units = _units(texts, metric)
    cells = _cells(nll, units, langs, baseline, metric, skip_rows)
    seconds = time.perf_counter() - started
    return {**cells, "per_document": {"units": units, "nll": nll}, "seconds": round(seconds, 2),
            "runs": len(conditions), "tokens": tokens, "tokens_per_second": tokens / seconds if seconds > 0 else 0.0}


# ------------------------------------------------------------------------------------------ steering
STEER_OUTCOMES = (LANG_RATE, ON_TARGET_FLUENT)  # the 0/1 outcomes kept per generation, paired across runs
OUTCOMES_KEY = "steer_outcomes"  # where an unsteered results dict keeps its per-generation outcomes
_PER_TASK_SECTIONS = ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "samples")


def steer_spec(cfg: EvalConfig, lang: str) -> InterventionSpec:
    """The steering intervention for target ``lang``: activate its neurons (``cfg``'s value, strength, positions)."""
    return InterventionSpec.from_args("activate", lang, cfg.steer_value, cfg.steer_strength, cfg.steer_positions,
                                      OTHERS if cfg.steer_deactivate_others else None)


def _outcomes(samples: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """lm-eval's logged samples of one task -> ``{"doc_id": [...], "lang_rate": [...], "on_target_fluent": [...]}``,
    in document order (metrics a task does not report are left out)."""
    rows = sorted(samples, key=lambda smp: int(smp["doc_id"]))
    out: dict[str, list[Any]] = {"doc_id": [int(smp["doc_id"]) for smp in rows]}
    out.update({m: [float(smp[m]) for smp in rows] for m in STEER_OUTCOMES if rows and all(m in smp for smp in rows)})
    return out


def with_outcomes(res: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``res`` without lm-eval's bulky ``samples``, with the per-generation outcomes under
    :data:`OUTCOMES_KEY` (``doc_id`` and one 0/1 list per outcome, in document order)."""
    out = {k: v for k, v in res.items() if k != "samples"}
    out[OUTCOMES_KEY] = {task: _outcomes(rows) for task, rows in (res.get("samples") or {}).items()}
    return out


def _task_results(res: dict[str, Any], task: str, info: dict[str, Any]) -> dict[str, Any]:
    """The part of a many-task results dict that one task's own pass would have written, with its intervention.

    A batched steering pass runs every target language's task at once; the leaderboard and the battery read one
    results file per (detector, target language) whose ``config.langneuron`` names that language's intervention.
    """
    out = {k: v for k, v in res.items() if k not in _PER_TASK_SECTIONS + ("groups", "group_subtasks")}
    out.update({k: {task: res[k][task]} for k in _PER_TASK_SECTIONS if task in (res.get(k) or {})})
    out["config"] = {**res.get("config", {}), "langneuron": info}
    return out


def _save(res: dict[str, Any], path: Path) -> dict[str, Any]:
    """Write lm-eval results as a results file (outcomes stay in memory), and return them with their outcomes."""
    res = with_outcomes(res)
    write_results(path, {k: v for k, v in res.items() if k != OUTCOMES_KEY}, force=True)
    return res


@dataclass(frozen=True)
class _Passes:
    """What every steering pass of one :func:`steering_gains` call shares besides the model."""

    task_manager: Any
    seeds: tuple[int | None, ...]
    gen_kwargs: dict[str, Any] | None

    def evaluate(self, lm: Any, tasks: list[str], limit: int | None) -> dict[str, Any]:
        return evaluation.evaluate(lm, tasks, limit=limit, task_manager=self.task_manager, seeds=self.seeds,
                                   log_samples=True, gen_kwargs=self.gen_kwargs)


def _steered_passes(lm: Any, specs: dict[str, InterventionSpec], limit: int | None, passes: _Passes,
                    batched: bool, on_run: RunHook | None) -> dict[str, dict[str, Any]]:
    """Each language's steered results (with its samples): one lm-eval pass per ``positions`` value of the
    languages' settings (rows of a ``generate`` call share it), or one pass per language."""
    lm.set_intervention(mode="none")
    out: dict[str, dict[str, Any]] = {}
    if batched and len(specs) > 1 and lm.row_conditions_supported:
        groups: dict[str, list[str]] = {}
        for lang, spec in specs.items():
            groups.setdefault(spec.positions, []).append(lang)
        for group in groups.values():
            if on_run is not None:
                on_run(f"activating each language's neurons ({', '.join(group)} in one pass)")
            with lm.task_interventions({steer_task(lang): specs[lang] for lang in group}):
                res = passes.evaluate(lm, [steer_task(lang) for lang in group], limit)
            out.update({lang: _task_results(res, steer_task(lang), lm.intervention_info(specs[lang]))
                        for lang in group})
        return out
    for lang, spec in specs.items():
        if on_run is not None:
            on_run(f"activating {lang} neurons x{spec.strength:g}")
        lm.set_intervention(mode="activate", lang=lang, value=spec.value, strength=spec.strength,
                            positions=spec.positions, deactivate="+".join(spec.deactivate) or None)
        out[lang] = passes.evaluate(lm, [steer_task(lang)], limit)
    lm.set_intervention(mode="none")
    return out


def steering_gains(lm: Any, langs: list[str], cfg: EvalConfig, task_manager: Any, results_dir: Path, tag: str,
                   base_res: dict[str, Any] | None = None, results_name: str = "results_demo.json",
                   on_run: RunHook | None = None, seed: int | None = None, batched: bool = True,
                   confidence: float = DEFAULT_CONFIDENCE, gen_kwargs: dict[str, Any] | None = None,
                   settings: Mapping[str, EvalConfig] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """lang_rate per language without and with that language's neurons activated, with paired intervals.

    ``cfg`` supplies ``steer_value``, ``steer_strength``, ``steer_positions``, ``steer_deactivate_others`` and
    ``steer_limit``. ``base_res`` (the unsteered results of an earlier call on the same model, limit and seed, as
    this function returns them) skips the unsteered run. ``seed``: lm-eval's four seeds (python, numpy, torch,
    few-shot) all set to it, as ``lm_eval --seed N`` does; ``None`` keeps lm-eval's defaults (0,1234,1234,1234).
    ``gen_kwargs`` overrides the tasks' generation settings as lm-eval's ``--gen_kwargs`` does (``None``: the
    tasks' own, 64 tokens sampled at temperature 0.8). ``settings`` gives some languages a steering setting of
    their own (``steer_value``, ``steer_strength``, ``steer_positions`` and ``steer_deactivate_others`` of
    ``settings[lang]``; ``cfg``'s for the others, and ``cfg.steer_limit`` for all); they still share one pass.

    ``batched`` (default): every target language's generations in ONE lm-eval pass (one per ``steer_positions``
    value among ``settings``), rows of a ``generate`` call each steered towards their own task's language, with
    that language's setting (:meth:`LangNeuronLM.task_interventions`). Greedy outputs equal
    one pass per language; sampled ones follow the same distribution but not the same draws (the batch shares one
    random stream), so a sampled rate moves within its interval when ``batched`` changes. Mixture-of-experts neuron
    files always take one pass per language. Results files: ``results_dir/base-none-steer/<results_name>`` and
    ``results_dir/base-<tag>-activate-<lang>/<results_name>`` (one per language, as a pass of its own would write).

    Returns ``(rates, base_res)``. ``rates[lang]``: ``unsteered``, ``steered``, ``gain``, ``stderr`` (lm-eval's, of
    the steered rate) and, from the per-generation outcomes matched by ``doc_id``: ``n`` (paired generations),
    ``paired``, ``confidence``, ``se``, ``ci_low``/``ci_high`` and ``p_value`` of the gain (Newcombe's paired
    interval, exact McNemar test), ``unsteered_ci``/``steered_ci`` (Wilson), ``on_target_fluent`` (the same
    figures for that outcome) and ``outcomes`` (``{"doc_id": [...], "unsteered": {metric: [0/1...]}, "steered":
    {...}}``). A ``base_res`` without outcomes gives the unpaired interval (``paired`` false). ``base_res`` is
    lm-eval's unsteered results with the outcomes under ``"steer_outcomes"``.
    """
    passes = _Passes(task_manager, evaluation.seeds_of(seed), gen_kwargs)
    if base_res is None:
        if on_run is not None:
            on_run("no intervention")
        lm.set_intervention(mode="none")
        base_res = _save(passes.evaluate(lm, [steer_task(lang) for lang in langs], cfg.steer_limit),
                         results_dir / "base-none-steer" / results_name)
    elif OUTCOMES_KEY not in base_res and base_res.get("samples"):
        base_res = with_outcomes(dict(base_res))
    specs = {lang: steer_spec((settings or {}).get(lang, cfg), lang) for lang in langs}
    steered = _steered_passes(lm, specs, cfg.steer_limit, passes, batched, on_run)
    rates = {}
    for lang in langs:
        res = _save(steered[lang], results_dir / f"base-{tag}-activate-{lang}" / results_name)
        rates[lang] = _rate_figures(base_res, res, steer_task(lang), confidence)
    return rates, base_res


def _rate_figures(base: dict[str, Any], res: dict[str, Any], task: str, confidence: float) -> dict[str, Any]:
    """One language's rates, gain and intervals (see :func:`steering_gains`)."""
    before, after = results_metric(base, task, LANG_RATE), results_metric(res, task, LANG_RATE)
    out: dict[str, Any] = {"unsteered": before, "steered": after, "gain": after - before,
                           "stderr": metric_stderr(res, task, LANG_RATE), "confidence": confidence}
    b = (base.get(OUTCOMES_KEY) or {}).get(task)
    a = (res.get(OUTCOMES_KEY) or {}).get(task)
    if b is None or a is None:  # unsteered outcomes not kept: only the counts pair up, not the generations
        out.update(_unpaired(before, _n_samples(base, task), after, _n_samples(res, task), confidence))
        out["outcomes"] = None
        return out
    common = sorted(set(b["doc_id"]) & set(a["doc_id"]))
    pick = {name: {m: _by_doc(o, m, common) for m in STEER_OUTCOMES if m in o} for name, o in (("unsteered", b),
                                                                                                ("steered", a))}
    out.update(_paired(pick["unsteered"][LANG_RATE], pick["steered"][LANG_RATE], confidence))
    if ON_TARGET_FLUENT in pick["unsteered"] and ON_TARGET_FLUENT in pick["steered"]:
        fb, fa = pick["unsteered"][ON_TARGET_FLUENT], pick["steered"][ON_TARGET_FLUENT]
        out[ON_TARGET_FLUENT] = {"unsteered": _mean(fb), "steered": _mean(fa), "gain": _mean(fa) - _mean(fb),
                                 **_paired(fb, fa, confidence)}
    out["outcomes"] = {"doc_id": common, **pick}
    return out


def _by_doc(outcomes: dict[str, list[Any]], metric: str, docs: list[int]) -> list[float]:
    where = {d: i for i, d in enumerate(outcomes["doc_id"])}
    return [outcomes[metric][where[d]] for d in docs]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _interval_keys(g: Gain) -> dict[str, Any]:
    return {"se": g.interval.se, "ci_low": g.interval.low, "ci_high": g.interval.high, "p_value": g.p_value,
            "unsteered_ci": [g.before.low, g.before.high], "steered_ci": [g.after.low, g.after.high]}


def _paired(before: Sequence[float], after: Sequence[float], confidence: float) -> dict[str, Any]:
    """Newcombe's paired interval of the gain and Wilson intervals of both rates, generation by generation."""
    return {"n": len(before), "paired": True, **_interval_keys(paired_rate_gain(before, after, confidence))}


def _unpaired(before: float, n_before: int | None, after: float, n_after: int | None,
              confidence: float) -> dict[str, Any]:
    """Newcombe's interval for independent samples (counts only), where the unsteered outcomes were not kept."""
    if not n_before or not n_after:
        return {"n": None, "paired": False, "se": None, "ci_low": None, "ci_high": None, "p_value": None,
                "unsteered_ci": None, "steered_ci": None}
    g = rate_gain(successes_of(before, n_before), n_before, successes_of(after, n_after), n_after, confidence)
    return {"n": min(n_before, n_after), "paired": False, **_interval_keys(g)}


def _n_samples(res: dict[str, Any], task: str) -> int | None:
    """How many generations a rate is the mean of (lm-eval's ``n-samples``), if recorded."""
    try:
        return int(res["n-samples"][task]["effective"])
    except (KeyError, TypeError, ValueError):
        return None


def format_change(v: float) -> str:
    """A relative change with two decimals, or in scientific notation when too small to show that way."""
    return f"{v:+.2f}" if v == 0 or abs(v) >= 0.005 or not math.isfinite(v) else f"{v:+.0e}"


def plot_ppl_matrix(path: Path, langs: list[str], matrix: list[list[float]], metric: str, force: bool) -> None:
    """Heatmap of the relative changes (diverging colours centred at 0), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [abs(v) for row in matrix for v in row if math.isfinite(v)]
    vmax = max(finite, default=1.0) or 1.0
    size = 1.0 + 0.7 * len(langs)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("evaluated language")
    ax.set_ylabel("deactivated language")
    ax.set_title(f"relative change of {metric.replace('_', ' ')}")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, format_change(v), ha="center", va="center", fontsize=8,
                    color="white" if math.isfinite(v) and abs(v) > 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ held-out text
def held_out_sources(specs: Sequence[str] | None, langs: Sequence[str] | None) -> list[Any] | None:
    """The user's held-out text per language (``None``: the shipped demo text), checked before any model loads.

    ``specs`` is a corpus spec as ``langneuron record --corpus`` takes it; ``langs`` (normalised codes) must all
    be covered. Without ``specs`` every language in ``langs`` must be one the shipped text covers.
    """
    if specs:
        return resolve_corpus(split_specs(specs), list(langs) if langs else None)
    missing = [lang for lang in langs or () if lang not in DEMO_LANGUAGES]
    if missing:
        raise LangNeuronError(f"no held-out text for {', '.join(missing)}: the shipped demo text covers "
                              f"{', '.join(DEMO_LANGUAGES)}; pass your own with --corpus")
    return None


def check_held_out(sources: Sequence[Any], recorded: dict[str, Any] | None, allow_overlap: bool,
                   flag: str = "--allow-overlap") -> list[str]:
    """Refuse held-out text that shares lines with the statistics' corpus ``recorded``; returns warnings.

    ``recorded`` is a statistics file's ``corpus`` metadata (as neuron files keep it in
    ``provenance.stats_corpus``). With ``allow_overlap`` the overlaps become warnings instead of an error.
    """
    if not recorded:
        return ["the neurons do not record the corpus their statistics came from; cannot check that the "
                "evaluation text is held out"]
    problems = overlap_problems(sources, recorded)
    if problems and not allow_overlap:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LangNeuronError(f"{problems[0]}{more}; evaluate on held-out text or pass {flag}")
    return problems


def eval_task_manager(sources: Sequence[Any] | None, tasks: Sequence[str]) -> Any:
    """A task manager whose ``lang_ppl_*`` tasks read ``sources`` (lm-eval metadata ``corpus``), ``tasks`` checked."""
    metadata = None if sources is None else {"corpus": ",".join(f"{s.lang}={s.location}" for s in sources)}
    tm = evaluation.make_task_manager(metadata=metadata)
    evaluation.check_tasks(tasks, tm)
    return tm
