"""The standard battery for a detector (``langneuron bench-detector``).

One detector (a registered name, an entry point or a ``module:attr`` target) is run on activation
statistics of a model and scored beside the reference detectors ``lape`` (the demo's parameters),
``kojima_ap`` and ``zhang``, and beside a random control drawn several times:

* neurons per language, overlap between languages and layer distribution (``detectors.report.summarize``);
* the perplexity-change matrix (deactivate each language's neurons) and its diagonal dominance;
* steering: per language, the gain in the combined success ``on_target_fluent`` (the generation is in the
  target language and not degenerate) when its neurons are activated, with ``lang_rate``'s gain beside it;
  the demo's intervention, or per language the setting a ``langneuron sweep`` chose.

The random control matches the *tested* detector: per language and per layer as many units as it selected,
drawn uniformly within each layer, ``floor_draws`` times with seeds derived from ``seed``. The draws' scores
are the floor's spread (a null distribution); the tested detector beats the floor only as
``evidence.floor.compare_to_floor`` decides. ``seed`` also sets lm-eval's seeds of every steering pass (the
generations are sampled) and the bootstrap's.

Everything lands in ``out``: ``stats.safetensors``, ``neurons/``, ``ppl_matrix/<detector>/``, lm-eval results
(``results/**/results_*.json``), ``leaderboard/`` and ``bench.json``. Per-detector figures are cached in
``cache/`` keyed on the model, the neuron file's content and the evaluation settings, so a ``reuse`` run only
evaluates detectors whose neurons changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from langneuron_eval.core import demo_assets
from langneuron_eval.core.corpus import resolve_corpus, split_specs
from langneuron_eval.core.interventions import POSITIONS
from langneuron_eval.core.modeling import load_model
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.ppl_matrix import PplMatrixFile
from langneuron_eval.core.recorder import RecordConfig, record
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors import get_detector, run_detector
from langneuron_eval.detectors.report import summarize, table
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.dominance import dominance_summary
from langneuron_eval.evidence.floor import DEFAULT_DRAWS, compare_to_floor
from langneuron_eval.evidence.intervals import (
    DEFAULT_CONFIDENCE,
    Interval,
    normal_interval,
    paired_rate_gain,
    rate_gain,
    steering_replicates,
    successes_of,
)
from langneuron_eval.evidence.ppl import attach_evidence
from langneuron_eval.evidence.regression import Figure, RegressionRecord, check_regressions
from langneuron_eval.fileio import jsonable, sha256_file, write_json, write_text
from langneuron_eval.leaderboard.build import build_leaderboard
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.catalogue import LANG_RATE, PPL_METRIC, STEER_FAMILY, STEER_SUCCESS, steer_task
from langneuron_eval.lmeval.results import metric as results_metric
from langneuron_eval.lmeval.results import write_results
from langneuron_eval.pipelines.measurements import (
    ON_TARGET_FLUENT,
    OUTCOMES_KEY,
    EvalConfig,
    params_text,
    ppl_change_matrix,
    steering_gains,
    with_outcomes,
)
from langneuron_eval.pipelines.progress import Progress, quiet_lm_eval
from langneuron_eval.provenance import versions

REFERENCES = ("lape", "kojima_ap", "zhang", "random")
SUCCESS = ON_TARGET_FLUENT  # the battery's steering score: on target AND not degenerate (issue #24)
SWEEP_SCHEMA = "langneuron-eval/sweep"
# a sweep's Setting field -> the EvalConfig field steering_gains reads
SETTING_FIELDS = {"strength": "steer_strength", "value": "steer_value", "deactivate_others": "steer_deactivate_others",
                  "positions": "steer_positions"}


@dataclass
class BenchConfig(EvalConfig):
    """Sizes and intervention of the battery: the demo's (:class:`EvalConfig`), ``quick()`` for tests.

    ``steering``: per language, a steering setting (``strength``, ``value``, ``deactivate_others``,
    ``positions``, as ``langneuron sweep`` writes them) replacing the ``steer_*`` defaults for that language.
    """

    seed: int = 0  # lm-eval's seeds of the steering passes, the random control's draws, the bootstrap
    floor_draws: int = DEFAULT_DRAWS  # seeded draws of the random control: the floor is their spread
    steering: dict[str, dict[str, Any]] = field(default_factory=dict)
    steering_from: str | None = None  # the sweep.json the settings came from (recorded, not read again)
    confidence: float = DEFAULT_CONFIDENCE

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(langs=("en", "zh"), detect_sentences=60, ppl_limit=2, steer_limit=2, floor_draws=2)

    def reference_params(self) -> dict[str, dict[str, Any]]:
        """The reference detectors (lape, kojima_ap, zhang); the random control is :meth:`control_params`."""
        refs = super().reference_params()
        refs.pop("random")
        return refs

    def control_params(self, tested_neurons: Path) -> dict[str, dict[str, Any]]:
        """The random control's draws ``random``, ``random_2``, ...: the tested file's per-layer counts."""
        return {"random" if i == 0 else f"random_{i + 1}": {"reference_neurons": str(tested_neurons),
                                                            "per_layer": True, "seed": s}
                for i, s in enumerate(control_seeds(self.seed, self.floor_draws))}

    def setting(self, lang: str) -> dict[str, Any]:
        """The steering setting of ``lang``: the sweep's choice, else the ``steer_*`` defaults."""
        default = {"strength": self.steer_strength, "value": self.steer_value,
                   "deactivate_others": self.steer_deactivate_others, "positions": self.steer_positions}
        return {**default, **self.steering.get(lang, {})}

    def for_setting(self, setting: dict[str, Any]) -> BenchConfig:
        """A copy whose ``steer_*`` fields are ``setting`` (what ``steering_gains`` reads)."""
        return dataclasses.replace(self, **{SETTING_FIELDS[k]: v for k, v in setting.items()})

    def eval_key(self) -> dict[str, Any]:
        """What the evaluation figures depend on besides the model and the neurons."""
        return {"langs": list(self.langs), "ppl_limit": self.ppl_limit, "steer_limit": self.steer_limit,
                "batch_size": self.batch_size, "seed": self.seed, "confidence": self.confidence,
                "steering": {lang: self.setting(lang) for lang in self.langs}}


def control_seeds(seed: int, draws: int) -> list[int]:
    """Seeds of the random control's draws, derived from ``seed`` (numpy's ``SeedSequence``).

    Derived rather than ``seed, seed + 1, ...`` so that a tested ``random`` detector run with the battery's own
    ``--seed`` is never one of its control draws, and neighbouring ``--seed`` values share no draw.
    """
    state = np.random.SeedSequence([int(seed), 0x5EED]).generate_state(max(1, int(draws)), dtype=np.uint32)
    return [int(x) & 0x7FFFFFFF for x in state]


def steering_from_sweep(path: Path, langs: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per language, the setting ``langneuron sweep`` chose (``chosen.<lang>``, else its ``overall`` one).

    Returns (settings, notes). One clear line, before anything runs, when the file is not a sweep or has no
    setting for a language.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LangNeuronError(f"sweep file not found: {path}") from None
    except (OSError, ValueError) as e:
        raise LangNeuronError(f"{path} is not a sweep.json ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SWEEP_SCHEMA:
        raise LangNeuronError(f"{path} is not a sweep.json of `langneuron sweep` (schema {SWEEP_SCHEMA})")
    overall = (doc.get("overall") or {}).get("setting")
    settings, notes = {}, []
    if doc.get("family", STEER_FAMILY) != STEER_FAMILY:
        notes.append(f"{path} chose its settings on {doc.get('family')}; the battery steers {STEER_FAMILY}")
    for lang in langs:
        chosen = (doc.get("chosen") or {}).get(lang) or {}
        setting = chosen.get("setting")
        if setting is None and overall is not None:
            why = chosen.get("reason") or "the sweep did not cover it"
            notes.append(f"{lang}: no per-language setting in {path} ({why}); using its overall setting")
            setting = overall
        if setting is None:
            raise LangNeuronError(f"{path} chose no steering setting for {lang} and no overall one "
                                  f"({chosen.get('reason') or 'language not swept'})")
        settings[lang] = _check_setting(setting, f"{path}: {lang}")
    return settings, notes


def _check_setting(setting: Any, where: str) -> dict[str, Any]:
    if not isinstance(setting, dict) or set(setting) - set(SETTING_FIELDS):
        raise LangNeuronError(f"{where}: a setting has {', '.join(SETTING_FIELDS)}, got {setting!r}")
    strength = setting.get("strength", 1.0)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not (
            math.isfinite(strength) and strength > 0):
        raise LangNeuronError(f"{where}: strength must be a positive number, got {strength!r}")
    if setting.get("positions", "all") not in POSITIONS:
        raise LangNeuronError(f"{where}: positions must be one of {', '.join(POSITIONS)}")
    return {**setting, "strength": float(strength)}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_cache(path: Path, key: str) -> Any:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc.get("value") if doc.get("key") == key else None


def _write_cache(path: Path, key: str, value: Any) -> None:
    write_json(path, jsonable({"key": key, "value": value}), force=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "detector"


def neuron_figures(nf: Any) -> dict[str, Any]:
    """Counts, unique units, mean cross-language overlap and layer distribution of a neuron file."""
    s = summarize(nf)
    langs = list(s["overlap"])
    offs = [s["overlap"][a][b] for a in langs for b in langs if a != b and s["counts"][a]]
    layers = [sum(row[i] for row in s["layer_distribution"].values())
              for i in range(nf.fingerprint.num_layers)]
    total = sum(layers)
    return {"counts": s["counts"], "total_units": sum(s["counts"].values()), "unique_units": s["unique_units"],
            "mean_overlap": sum(offs) / len(offs) if offs else 0.0, "overlap": s["overlap"],
            "layer_distribution": s["layer_distribution"], "layer_totals": layers,
            "layer_share": [x / total if total else 0.0 for x in layers], "general": s["general"]}


@dataclass
class _Bench:
    """What the battery's steps share: inputs, where to write, and what earlier steps produced."""

    target: str
    params: dict[str, Any]
    out: Path
    cfg: BenchConfig
    model: str
    corpus: str
    stats_path: str | None
    reuse: bool
    log: Progress
    task_manager: Any = None
    runs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    neuron_paths: dict[str, Path] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    detect_seconds: float = 0.0

    @property
    def langs(self) -> list[str]:
        return list(self.cfg.langs)

    @property
    def cache(self) -> Path:
        return self.out / "cache"

    @property
    def label(self) -> str:
        """The tested detector's name in the tables (``<name>_tested`` when it is also a reference)."""
        return self.target if self.target not in REFERENCES else f"{self.target}_tested"


def params_with_seed(target: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """``params``, with ``seed`` filled in when the detector draws random numbers and the user set none."""
    specs = getattr(get_detector(target), "param_specs", lambda: [])()
    if "seed" in {s.name for s in specs} and "seed" not in params:
        return {**params, "seed": seed}
    return dict(params)


def run_bench(target: str, params: dict[str, Any], out: Path, cfg: BenchConfig, model: str | None = None,
              corpus: str | None = None, stats_path: str | None = None, reuse: bool = False,
              progress: bool = True, verbose: bool = False, task_manager: Any = None) -> dict[str, Any]:
    """Run the battery for ``target`` (with ``params``) and the references; returns what ``bench.json`` holds.

    ``task_manager`` (one that knows ``lang_ppl_*``/``lang_steer_*``, e.g. with an evaluation corpus in its
    metadata) replaces the default one. lm-eval's bars and logs are silenced unless ``verbose``.
    """
    started = time.perf_counter()
    params = params_with_seed(target, params, cfg.seed)  # unknown names fail here, before any slow work
    bench = _Bench(target, params, out, cfg, str(model or demo_assets.base_model_path()),
                   str(corpus or demo_assets.demo_corpus_dir("detect")), stats_path, reuse,
                   Progress("bench", None, progress), task_manager=task_manager)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_lm_eval(verbose):
        stats = _statistics(bench)
        _detect(bench, stats)
        bench.task_manager = bench.task_manager or evaluation.make_task_manager()
        base_key = _hash({"model": bench.model, **cfg.eval_key()})
        bench.baselines = (_read_cache(bench.cache / "baselines.json", base_key) if reuse else None) or {}
        figures = {name: _detector_figures(bench, name, method, base_key) for name, method, _ in bench.runs}
        _leaderboard(bench, figures)
    result = {"schema": "langneuron-eval/bench-detector", "schema_version": 2, "tested": bench.label,
              "target": target, "params": figures[bench.label]["params"], "model": bench.model,
              "corpus": None if stats_path else bench.corpus,
              "stats": bench.stats_path, "config": asdict(cfg), "languages": bench.langs,
              "steering_metric": SUCCESS, "steering": {lang: cfg.setting(lang) for lang in bench.langs},
              "steering_from": None if not cfg.steering_from else {
                  "path": cfg.steering_from, "sha256": sha256_file(cfg.steering_from)},
              "detector_order": list(figures), "detect_seconds": round(bench.detect_seconds, 2),
              "seconds": round(time.perf_counter() - started, 1),
              "detectors": figures, "floor": floor_comparison(bench.label, bench.runs, figures, cfg.confidence),
              "leaderboard": str(out / "leaderboard"), "versions": versions(),
              "seeds": evaluation.seeds_record(evaluation.seeds_of(cfg.seed))}
    write_json(out / "bench.json", jsonable(result), force=True)
    return result


def floor_comparison(tested: str, runs: list[tuple[str, str, dict[str, Any]]], figures: dict[str, Any],
                     confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """Per figure (mean steering gain, diagonal share): the tested detector against the random control's draws.

    The floor is the draws' spread; "beats the floor" is :func:`compare_to_floor`'s one-sided Welch test at
    ``1 - confidence``. Empty when there are no draws.
    """
    draws = [name for name, method, _ in runs if method == "random" and name != tested]
    if not draws:
        return {}
    out = {}
    for figure in ("mean_steering_gain", "diagonal_share"):
        values = [_figure_interval(figures[d], figure).value for d in draws]
        if not all(math.isfinite(v) for v in values):
            continue
        cmp = compare_to_floor(_figure_interval(figures[tested], figure), values, confidence)
        out[figure] = {"figure": figure, "draw_names": draws, **cmp.to_dict()}
    return out


def _figure_interval(fig: dict[str, Any], figure: str) -> Interval:
    """A detector's figure with its interval, as stored in its ``bench.json`` entry."""
    if figure == "mean_steering_gain":
        g = fig["mean_gain_ci"]
        return Interval(fig["mean_gain"], _num(g.get("ci_low")), _num(g.get("ci_high")), g.get("confidence", 0.95),
                        g.get("method", ""), g.get("n"))
    d = fig["diagonal"]
    low, high = d.get("share_ci") or (None, None)
    return Interval(_num(d.get("share")), _num(low), _num(high), DEFAULT_CONFIDENCE, "percentile",
                    len(fig["counts"]))


def _statistics(bench: _Bench) -> Any:
    """The statistics: given (``--stats``), reused from an earlier run in ``out``, or recorded now."""
    cfg, langs = bench.cfg, bench.langs
    if bench.stats_path:
        bench.log(f"loading statistics {bench.stats_path}")
        stats = ActivationStats.load(bench.stats_path)
    else:
        stats_file = bench.out / "stats.safetensors"
        key = _hash({"model": bench.model, "corpus": bench.corpus, "langs": langs, "n": cfg.detect_sentences})
        if bench.reuse and stats_file.exists() and _read_cache(bench.cache / "stats.json", key):
            bench.log(f"reusing {stats_file}")
            stats = ActivationStats.load(stats_file)
        else:
            bench.log(f"recording statistics of {bench.model} ({cfg.detect_sentences} sentences x {len(langs)} "
                      "languages)")
            stats = _record(bench)
            stats.save(stats_file, force=True)
            _write_cache(bench.cache / "stats.json", key, True)
        bench.stats_path = str(stats_file)
    missing = [lang for lang in langs if lang not in stats.languages]
    if missing:
        raise LangNeuronError(f"the statistics have no {', '.join(missing)} (have {', '.join(stats.languages)})")
    return stats


def _record(bench: _Bench) -> Any:
    sources = resolve_corpus(split_specs(bench.corpus), bench.langs)
    m, tok = load_model(bench.model)
    stats = record(m, tok, sources, RecordConfig(sentence_means=True, max_sentences=bench.cfg.detect_sentences,
                                                 batch_size=bench.cfg.batch_size), progress=False)
    del m
    return stats


def _detect(bench: _Bench, stats: Any) -> None:
    """The tested detector first, then the references, then the random draws shaped like the tested neurons."""
    tested = bench.out / "neurons" / f"{_slug(bench.label)}.json"
    bench.runs = [(bench.label, bench.target, bench.params)]
    bench.runs += [(m, m, p) for m, p in bench.cfg.reference_params().items()]
    bench.runs += [(m, "random", p) for m, p in bench.cfg.control_params(tested).items()]
    for name, method, p in bench.runs:
        bench.log(f"detecting: {name}" + (f" ({params_text(p)})" if p else ""))
        t0 = time.perf_counter()
        nf = run_detector(method, stats, p)
        path = bench.out / "neurons" / f"{_slug(name)}.json"
        nf.save(path, force=True)
        bench.neuron_paths[name] = path
        if name == bench.label:
            bench.detect_seconds = time.perf_counter() - t0


def _detector_figures(bench: _Bench, name: str, method: str, base_key: str) -> dict[str, Any]:
    """Neuron figures, perplexity matrix and steering of one detector (cached); writes its ppl_matrix.json."""
    nf = NeuronFile.load(bench.neuron_paths[name])
    fig: dict[str, Any] = {"method": method, "params": nf.params, "neurons": str(bench.neuron_paths[name]),
                           "neurons_sha256": nf.sha256(), **neuron_figures(nf)}
    key = _hash({"model": bench.model, "neurons": fig["neurons_sha256"], **bench.cfg.eval_key()})
    cached = _read_cache(bench.cache / f"{_slug(name)}.json", key) if bench.reuse else None
    if cached:
        bench.log(f"{name}: reusing cached perplexity and steering figures")
    else:
        cached = _evaluate(bench, name, nf)
        _write_cache(bench.cache / "baselines.json", base_key, bench.baselines)
        _write_cache(bench.cache / f"{_slug(name)}.json", key, cached)
    fig.update(cached)
    fig.update(summarize_steering(fig["steering"], bench.cfg.seed, bench.cfg.confidence))
    for r in fig["steering"].values():
        r.pop("outcomes", None)  # kept in the cache for the bootstrap, not repeated in bench.json
    pm = attach_evidence(PplMatrixFile(bench.langs, fig["ppl_matrix"], fig["ppl_baseline"], PPL_METRIC, provenance={
        "detector": nf.detector, "neurons_sha256": fig["neurons_sha256"]}, per_document=fig.get("ppl_per_document")),
        confidence=bench.cfg.confidence, seed=bench.cfg.seed)
    pm.save(bench.out / "ppl_matrix" / _slug(name) / "ppl_matrix.json")
    fig["diagonal"] = dominance_summary(pm.dominance)
    fig.pop("ppl_per_document", None)  # kept in ppl_matrix.json, not repeated in bench.json
    return fig


def _evaluate(bench: _Bench, name: str, nf: Any) -> dict[str, Any]:
    """The perplexity-change matrix and steering gains of one neuron file, on one model load."""
    cfg, langs = bench.cfg, bench.langs
    t0 = time.perf_counter()
    lm = evaluation.load_model(bench.model, bench.neuron_paths[name], batch_size=cfg.batch_size)
    empty = [lang for lang in langs if lang not in nf.languages or not nf.languages[lang]]
    if empty:  # nothing to deactivate or activate: the figures are those of no intervention
        bench.log(f"{name}: no neurons for {', '.join(empty)}; those rows count as unchanged")
    runs = len(langs) - len(empty) + ("ppl" not in bench.baselines)
    bar = bench.log(f"{name}: perplexity-change matrix ({len(langs)} deactivation runs)", runs=runs)
    none_nll = bench.baselines.get("ppl_none_nll")  # the shared pass's per-document scores, when kept
    ppl = ppl_change_matrix(lm, langs, cfg.ppl_limit, bench.task_manager, results_dir=bench.out / "results",
                            baseline=None if none_nll else bench.baselines.get("ppl"), baseline_nll=none_nll,
                            tag=_slug(name), skip_rows=empty, on_run=bar.run)
    bar.close()
    bench.baselines["ppl"] = ppl["baseline"]  # the unsteered pass once, shared by every detector
    docs = ppl.get("per_document")
    if docs and "none" in docs["nll"]:
        bench.baselines["ppl_none_nll"] = docs["nll"]["none"]
    else:
        ppl["per_document"] = None  # no baseline documents to pair with: the matrix gets no intervals
    runs = len(langs) - len(empty) + ("steer" not in bench.baselines)
    bar = bench.log(f"{name}: steering ({len(langs)} activation runs)", runs=runs)
    rates = _steer(bench, lm, _slug(name), empty, bar.run)
    bar.close()
    del lm
    return {"ppl_matrix": ppl["matrix"], "ppl_baseline": ppl["baseline"],
            "ppl_per_document": ppl.get("per_document"), "steering": rates,
            "eval_seconds": round(time.perf_counter() - t0, 1)}


def _steer(bench: _Bench, lm: Any, tag: str, empty: list[str], on_run: Any) -> dict[str, Any]:
    """Per language the success and lang_rate gains, paired by generation; the unsteered pass once for all
    detectors; languages without neurons gain nothing (their steered generations are the unsteered ones)."""
    cfg, langs, results_dir = bench.cfg, bench.langs, bench.out / "results"
    if "steer" not in bench.baselines:
        on_run("no intervention")
        lm.set_intervention(mode="none")
        res = evaluation.evaluate(lm, [steer_task(lang) for lang in langs], limit=cfg.steer_limit,
                                  task_manager=bench.task_manager, seeds=evaluation.seeds_of(cfg.seed),
                                  log_samples=True)
        res = with_outcomes(res)
        write_results(results_dir / "base-none-steer" / "results_bench.json",
                      {k: v for k, v in res.items() if k != OUTCOMES_KEY}, force=True)
        bench.baselines["steer"] = {"results": {t: v for t, v in res["results"].items()
                                                if t.startswith(f"{STEER_FAMILY}_")},
                                    "n-samples": res.get("n-samples", {}), OUTCOMES_KEY: res[OUTCOMES_KEY]}
    base = bench.baselines["steer"]
    rows = [lang for lang in langs if lang not in empty]
    groups: dict[str, list[str]] = {}  # one steering_gains call per distinct setting
    for lang in rows:
        groups.setdefault(json.dumps(cfg.setting(lang), sort_keys=True), []).append(lang)
    rates: dict[str, Any] = {}
    for setting, group in groups.items():
        got, _ = steering_gains(lm, group, cfg.for_setting(json.loads(setting)), bench.task_manager, results_dir,
                                tag, base_res=base, results_name="results_bench.json", on_run=on_run,
                                seed=cfg.seed, confidence=cfg.confidence)
        rates.update(got)
    out = {}
    for lang in langs:
        entry = steering_entry(lang, base, rates.get(lang), cfg.confidence)
        out[lang] = {**entry, "setting": cfg.setting(lang), "neurons": lang not in empty}
    return out


def steering_entry(lang: str, base: dict[str, Any], rates: dict[str, Any] | None,
                   confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """One language's steering figures: the success (``on_target_fluent``) gain with its interval, as the score,
    and ``lang_rate``'s beside it under ``lang_rate``.

    ``rates`` is ``steering_gains``' entry for the language (``None``: the detector has no neurons for it, so the
    steered generations are the unsteered ones). With per-generation outcomes both gains are paired (Newcombe's
    paired interval, McNemar's test); without, Newcombe's interval for independent samples from the counts.
    Falls back to ``lang_rate`` as the score (``metric`` says which) when the task reports no success.
    """
    task = steer_task(lang)
    before = (base.get(OUTCOMES_KEY) or {}).get(task)
    if rates is None:
        after = before
    else:
        after = rates.get("outcomes")
        before = after["unsteered"] if after else None
        after = after["steered"] if after else None
    metric = SUCCESS if _has_metric(base, task, SUCCESS, rates, before, after) else LANG_RATE
    per = {m: _gain(m, task, base, rates, before, after, confidence) for m in dict.fromkeys((metric, LANG_RATE))}
    entry = {"metric": metric, **per[metric], "lang_rate": per[LANG_RATE]}
    if before is not None and after is not None:
        entry["outcomes"] = {"unsteered": before[metric], "steered": after[metric]}
    return entry


def _has_metric(base: dict[str, Any], task: str, metric: str, rates: dict[str, Any] | None, before: Any,
                after: Any) -> bool:
    """Whether both runs report ``metric``: per generation, or (unpaired) as the rates' aggregate."""
    if before is not None and after is not None:
        return metric in before and metric in after
    return f"{metric},none" in (base.get("results") or {}).get(task, {}) and (rates is None or metric in rates)


def _gain(metric: str, task: str, base: dict[str, Any], rates: dict[str, Any] | None, before: Any, after: Any,
          confidence: float) -> dict[str, Any]:
    """Unsteered and steered rate of one 0/1 outcome and the gain, with intervals (paired where possible)."""
    if before is not None and after is not None and metric in before and metric in after:
        g = paired_rate_gain(before[metric], after[metric], confidence)
    else:  # counts only: the steered run's results file, or no neurons (steered = unsteered)
        n_b = _n_samples(base, task)
        b = results_metric(base, task, metric)
        a, n_a = (b, n_b) if rates is None else (rates["steered"] if metric == LANG_RATE
                                                 else rates.get(metric, {}).get("steered"), rates.get("n") or n_b)
        if not n_b or not n_a or a is None:
            return {"unsteered": b, "steered": a, "gain": None if a is None else a - b, "n": None, "se": None,
                    "ci_low": None, "ci_high": None, "paired": False}
        g = rate_gain(successes_of(b, n_b), n_b, successes_of(a, n_a), n_a, confidence)
    return {"unsteered": g.before.value, "steered": g.after.value, "gain": g.value, "n": g.interval.n,
            "se": g.interval.se, "ci_low": g.interval.low, "ci_high": g.interval.high, "p_value": g.p_value,
            "unsteered_ci": [g.before.low, g.before.high], "steered_ci": [g.after.low, g.after.high],
            "paired": g.paired, "confidence": confidence}


def summarize_steering(steering: dict[str, dict[str, Any]], seed: int = 0,
                       confidence: float = DEFAULT_CONFIDENCE, n_resamples: int = 2000) -> dict[str, Any]:
    """The detector's steering score over languages: the mean success gain with its interval, and the count of
    languages gaining at least ``STEER_SUCCESS``.

    With every language's per-generation outcomes: a percentile bootstrap over generations (paired within a
    language, independent across languages; ``evidence.steering_replicates``), whose bounds cannot leave
    [-1, 1]. Otherwise ``mean ± z·se`` with the languages' standard errors combined as independent, clipped to
    [-1, 1].
    """
    gains = [r["gain"] for r in steering.values() if r.get("gain") is not None]
    mean = sum(gains) / len(gains) if gains else math.nan
    lang_rate = [r["lang_rate"]["gain"] for r in steering.values() if r["lang_rate"].get("gain") is not None]
    out = {"mean_gain": mean, "mean_lang_rate_gain": sum(lang_rate) / len(lang_rate) if lang_rate else math.nan,
           "steered_50": sum(1 for g in gains if g >= STEER_SUCCESS), "steering_metric": SUCCESS}
    outcomes = {lang: (r["outcomes"]["unsteered"], r["outcomes"]["steered"]) for lang, r in steering.items()
                if r.get("outcomes")}
    if steering and len(outcomes) == len(steering) and all(len(b) >= 2 for b, _ in outcomes.values()):
        reps = steering_replicates(outcomes, STEER_SUCCESS, n_resamples=n_resamples, seed=seed)["mean_gain"]
        iv = reps.interval(confidence, n=min(len(b) for b, _ in outcomes.values()))
        out["mean_gain_se"] = reps.se
    else:
        ses = [r.get("se") for r in steering.values()]
        se = math.sqrt(sum(x**2 for x in ses)) / len(ses) if ses and None not in ses else None
        iv = normal_interval(mean, se, confidence, _min_n(steering.values()))
        if iv.defined:
            iv = dataclasses.replace(iv, low=max(-1.0, iv.low), high=min(1.0, iv.high))
        out["mean_gain_se"] = se
    out["mean_gain_ci"] = iv.to_dict()
    return out


def _n_samples(res: dict[str, Any], task: str) -> int | None:
    """How many generations a steering rate is the mean of (lm-eval's ``n-samples``), if recorded."""
    try:
        return int(res["n-samples"][task]["effective"])
    except (KeyError, TypeError, ValueError):
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def add_gain_evidence(rates: dict[str, dict[str, Any]], results_dir: Path, tag: str, results_name: str,
                      base_res: dict[str, Any] | None = None, unchanged: list[str] | tuple[str, ...] = ()) -> None:
    """Add intervals to ``steering_gains``' rates that have none, with the sample sizes read from the saved
    lm-eval results (``steering_gains`` now adds paired intervals itself: those rates are left as they are).

    ``base_res``: the unsteered results (else ``results_dir/base-none-steer/<results_name>``); languages in
    ``unchanged`` had no neurons, so their steered rate is the unsteered one.
    """
    base = base_res if base_res and base_res.get("n-samples") else _read_json(
        results_dir / "base-none-steer" / results_name)
    for lang, r in rates.items():
        if r.get("ci_low") is not None:
            continue
        n_before = _n_samples(base, steer_task(lang))
        after = _read_json(results_dir / f"base-{tag}-activate-{lang}" / results_name)
        n_after = n_before if lang in unchanged else _n_samples(after, steer_task(lang))
        r.update(gain_evidence(r["unsteered"], n_before, r["steered"], n_after))


def gain_evidence(before: float, n_before: int | None, after: float, n_after: int | None) -> dict[str, Any]:
    """Wilson intervals of both rates and Newcombe's interval of the gain, from counts only (unpaired)."""
    if not n_before or not n_after:
        return {"n": None, "se": None, "ci_low": None, "ci_high": None}
    g = rate_gain(successes_of(before, n_before), n_before, successes_of(after, n_after), n_after)
    return {"n": min(n_before, n_after), "se": g.interval.se, "ci_low": g.interval.low, "ci_high": g.interval.high,
            "p_value": g.p_value, "unsteered_ci": [g.before.low, g.before.high],
            "steered_ci": [g.after.low, g.after.high]}


def _leaderboard(bench: _Bench, figures: dict[str, Any]) -> None:
    bench.log("leaderboard")
    build_leaderboard([bench.out / "results"], bench.out / "leaderboard", force=True,
                      ppl_matrices=[bench.out / "ppl_matrix" / _slug(n) / "ppl_matrix.json" for n in figures],
                      neurons=list(bench.neuron_paths.values()))


# ---------------------------------------------------------------------------------------------- golden files
GOLDEN_SCHEMA = "langneuron-eval/bench-golden"
GOLDEN_VERSION = 3  # 3: figures carry their interval; steering figures are on_target_fluent gains


def golden_figures(result: dict[str, Any]) -> dict[str, Figure]:
    """The tested detector's figures a golden file pins, each with its standard error and sample size.

    ``diagonal_share``: se from the document bootstrap (0 without per-document scores: the matrix is then a
    deterministic measurement); ``steering_gain.<lang>``: the success gain, se from Newcombe's (paired)
    interval over the generations; ``mean_steering_gain``: their mean, se from the bootstrap over generations.
    """
    fig = result["detectors"][result["tested"]]
    d = fig["diagonal"]
    out = {"diagonal_share": Figure(_num(d.get("share")), _num(d.get("share_se"), 0.0), len(result["languages"])),
           "mean_steering_gain": Figure(_num(fig["mean_gain"]), fig.get("mean_gain_se"),
                                        _min_n(fig["steering"].values()))}
    out.update({f"steering_gain.{lang}": Figure(_num(r["gain"]), r.get("se"), r.get("n"))
                for lang, r in fig["steering"].items()})
    return out


def golden_intervals(result: dict[str, Any]) -> dict[str, Interval]:
    """The interval of every golden figure as the battery computed it: the share's bootstrap percentile interval
    (inside [0, 1]), Newcombe's interval of each gain and the bootstrap interval of the mean gain (inside
    [-1, 1]) -- never ``value ± z·se``, which leaves those ranges at small n."""
    fig = result["detectors"][result["tested"]]
    conf = float(result["config"].get("confidence", DEFAULT_CONFIDENCE))
    share = _figure_interval(fig, "diagonal_share")
    if not share.defined and share.value == share.value and not fig["diagonal"].get("share_se"):
        share = dataclasses.replace(share, low=share.value, high=share.value, method="exact")  # no resampling
    out = {"diagonal_share": dataclasses.replace(share, confidence=conf),
           "mean_steering_gain": _figure_interval(fig, "mean_steering_gain")}
    for lang, r in fig["steering"].items():
        out[f"steering_gain.{lang}"] = Interval(_num(r["gain"]), _num(r.get("ci_low")), _num(r.get("ci_high")),
                                                conf, "newcombe-paired" if r.get("paired") else "newcombe",
                                                r.get("n"))
    return out


def _num(value: Any, default: float = math.nan) -> float:
    return default if value is None else float(value)


def _min_n(rates: Any) -> int | None:
    ns = [r.get("n") for r in rates]
    return None if not ns or None in ns else min(ns)


def write_golden(path: Path, result: dict[str, Any]) -> None:
    """The golden file: per figure its value, se, n and interval (``ci_low``/``ci_high``, method, confidence)."""
    intervals = golden_intervals(result)
    figures = {name: {**f.to_dict(), "ci_low": intervals[name].low, "ci_high": intervals[name].high,
                      "method": intervals[name].method, "confidence": intervals[name].confidence}
               for name, f in golden_figures(result).items()}
    write_json(path, jsonable({"schema": GOLDEN_SCHEMA, "schema_version": GOLDEN_VERSION,
                               "detector": result["target"], "params": result["params"], "config": result["config"],
                               "seed": result["config"].get("seed"),
                               "steering_metric": result.get("steering_metric", SUCCESS), "figures": figures}),
               force=True)


def read_golden(golden_path: Path) -> tuple[dict[str, Any], dict[str, Figure]]:
    """The golden file and its figures; schema 1 files (bare values, no uncertainty) load with ``se=None``."""
    try:
        golden = json.loads(Path(golden_path).read_text())
        wanted = golden["figures"]
        figures = {name: Figure.from_dict(v if isinstance(v, dict) else {"value": v}) for name, v in wanted.items()}
    except FileNotFoundError:
        raise LangNeuronError(f"golden file not found: {golden_path}") from None
    except LangNeuronError as e:
        raise LangNeuronError(f"{golden_path} is not a bench-detector golden file ({e})") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LangNeuronError(f"{golden_path} is not a bench-detector golden file (no 'figures')") from None
    return golden, figures


def _stored_interval(doc: Any, figure: Figure, confidence: float) -> Interval:
    """A golden figure's stored interval; files before schema 3 have none: the noise model's own."""
    if isinstance(doc, dict) and doc.get("ci_low") is not None and doc.get("ci_high") is not None:
        return Interval(figure.value, float(doc["ci_low"]), float(doc["ci_high"]),
                        float(doc.get("confidence", confidence)), str(doc.get("method", "")), figure.n)
    return figure.interval(confidence)


def check_golden(result: dict[str, Any], golden_path: Path,
                 alpha: float = 0.05) -> tuple[list[RegressionRecord], list[str]]:
    """(one record per golden figure, warnings): a figure regresses when its drop is significant given both
    runs' noise (one-sided tests, Holm-corrected over the figures: false-alarm rate <= ``alpha``).

    The records' intervals are the ones the battery computed (stored in the golden file), not ``value ± z·se``.
    """
    golden, wanted = read_golden(golden_path)
    warnings = []
    ignore = ("seed", "floor_draws", "steering_from")
    config = {k: v for k, v in json.loads(json.dumps(result["config"])).items() if k not in ignore}
    if golden.get("config") and {k: v for k, v in golden["config"].items() if k not in ignore} != config:
        warnings.append(f"warning: {golden_path} was written with other battery settings "
                        "(e.g. --quick vs full, another steering setting); figures may not be comparable")
    if golden.get("steering_metric", LANG_RATE) != result.get("steering_metric", SUCCESS):
        warnings.append(f"warning: {golden_path} pins {golden.get('steering_metric', LANG_RATE)} gains, this run "
                        f"measures {result.get('steering_metric', SUCCESS)}: rewrite it with --write-baseline")
    if any(f.se is None for f in wanted.values()):
        warnings.append(f"warning: {golden_path} stores figures without standard errors (an older golden file); "
                        "those are compared exactly: rewrite it with --write-baseline")
    conf = float(result["config"].get("confidence", DEFAULT_CONFIDENCE))
    new_iv = golden_intervals(result)
    records = check_regressions(wanted, golden_figures(result), alpha=alpha, confidence=conf)
    return [dataclasses.replace(r, golden_interval=_stored_interval(golden["figures"][r.figure], r.golden, conf),
                                new_interval=new_iv.get(r.figure, r.new_interval)) for r in records], warnings


def format_regressions(records: list[RegressionRecord]) -> str:
    """One line per figure: golden and new value with their intervals, z, corrected p and the verdict."""
    def iv(i: Any) -> str:
        return "" if i is None or not i.defined else f"[{i.low:.3f}, {i.high:.3f}]"

    pct = {round(100 * r.golden_interval.confidence) for r in records} or {95}
    ci = f"{pct.pop()}% CI" if len(pct) == 1 else "CI"
    rows = [[r.figure, f"{r.golden.value:.3f}", iv(r.golden_interval),
             "" if r.new is None else f"{r.new.value:.3f}", iv(r.new_interval),
             "" if math.isnan(r.z) else f"{r.z:+.2f}", "" if math.isnan(r.p_adjusted) else f"{r.p_adjusted:.3g}",
             r.verdict] for r in records]
    return table(["figure", "golden", f"golden {ci}", "new", f"new {ci}", "z", "p (Holm)", "verdict"], rows)


# ---------------------------------------------------------------------------------------------- text
def _ci_text(low: Any, high: Any) -> str:
    return "" if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) else \
        f" [{low:+.2f}, {high:+.2f}]"


def _floor_lines(result: dict[str, Any]) -> list[str]:
    """One line per floor figure: the draws' spread, the tested detector and the verdict."""
    lines = []
    for figure, floor in (result.get("floor") or {}).items():
        verdict = {True: "beats", False: "does not beat", None: "cannot tell whether it beats"}[floor["beats_floor"]]
        p = "" if floor["p_value"] is None or math.isnan(floor["p_value"]) else \
            f" (one-sided Welch p = {floor['p_value']:.3g})"
        lines.append(f"random floor, {figure} ({len(floor['draws'])} draws of the tested detector's per-layer "
                     f"counts): mean {floor['mean']:+.3f}, sd {floor['sd']:.3f}; {result['tested']} "
                     f"{floor['detector']['value']:+.3f}, {verdict} the floor{p}")
    return [*lines, ""] if lines else []


def _setting_line(result: dict[str, Any]) -> str:
    settings = result.get("steering") or {}
    keys = {json.dumps(v, sort_keys=True) for v in settings.values()}
    def text(v: dict[str, Any]) -> str:
        return (f"{v['value']} x{v['strength']:g}{', others zeroed' if v['deactivate_others'] else ''}"
                f"{'' if v.get('positions', 'all') == 'all' else ', ' + v['positions']}")
    where = f" (from {result['config'].get('steering_from')})" if result["config"].get("steering_from") else ""
    if len(keys) == 1:
        return f"steering setting{where}: {text(next(iter(settings.values())))}"
    return f"steering settings{where}: " + "; ".join(f"{lang} {text(v)}" for lang, v in settings.items())


def format_table(result: dict[str, Any]) -> str:
    langs = result["languages"]
    figs = result["detectors"]
    metric = result.get("steering_metric", SUCCESS)
    rows = []
    for name, f in figs.items():
        d = f["diagonal"]
        ratio = d.get("ratio")
        ci = f.get("mean_gain_ci") or {}
        rows.append([name, f["total_units"], f["unique_units"], f["mean_overlap"],
                     "/".join(f"{round(100 * s)}" for s in f["layer_share"]),
                     f"{d['columns_diagonal_max']}/{len(langs)}",
                     "nan" if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) else f"{ratio:.2f}",
                     f"{f['mean_gain']:+.3f}{_ci_text(ci.get('ci_low'), ci.get('ci_high'))}",
                     f"{f.get('mean_lang_rate_gain', math.nan):+.3f}", f"{f['steered_50']}/{len(langs)}"])
    per_lang = [[n, *(f"{f['steering'][lang]['gain']:+.2f}"
                      f"{_ci_text(f['steering'][lang].get('ci_low'), f['steering'][lang].get('ci_high'))}"
                      for lang in langs)] for n, f in figs.items()]
    raw = [[n, *(f"{f['steering'][lang]['lang_rate']['gain']:+.2f}" for lang in langs)] for n, f in figs.items()]
    parts = [f"== bench-detector: {result['tested']} vs lape, kojima_ap, zhang and the random control on "
             f"{result['model']} ==", "", _setting_line(result), "", *_floor_lines(result),
             table(["detector", "units", "unique", "overlap", "layers %", "diag max", "diag/off",
                    f"{metric} gain [95% CI]", "lang_rate gain", "gain>=.5"], rows), "",
             "neurons per language:",
             table(["detector", *langs], [[n, *(f["counts"].get(lang, 0) for lang in langs)] for n, f in figs.items()]),
             "", f"steering gain per language ({metric}, activated - unsteered, 95% CI):",
             table(["detector", *langs], per_lang),
             "", "lang_rate gain per language (the language-ID share alone, activated - unsteered):",
             table(["detector", *langs], raw)]
    return "\n".join(parts) + "\n"


def write_report(out: Path, result: dict[str, Any]) -> str:
    text = format_table(result)
    write_text(out / "bench.md", text, force=True)
    return text
