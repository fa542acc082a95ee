"""The standard battery for a detector (``langneuron bench-detector``).

One detector (a registered name, an entry point or a ``module:attr`` target) is run on activation
statistics of a model and scored beside the reference detectors ``lape`` (the demo's parameters),
``kojima_ap``, ``zhang`` and ``random``:

* neurons per language, overlap between languages and layer distribution (``detectors.report.summarize``);
* the perplexity-change matrix (deactivate each language's neurons) and its diagonal dominance;
* steering: lang_rate gain per language when its neurons are activated (the demo's intervention).

Everything lands in ``out``: ``stats.safetensors``, ``neurons/``, ``ppl_matrix/<detector>/``, lm-eval results
(``results/**/results_*.json``), ``leaderboard/`` and ``bench.json``. Per-detector figures are cached in
``cache/`` keyed on the model, the neuron file's content and the evaluation sizes, so a ``reuse`` run only
evaluates detectors whose neurons changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.core import demo_assets
from langneuron_eval.core.corpus import resolve_corpus, split_specs
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
from langneuron_eval.evidence.intervals import normal_interval, rate_gain, successes_of
from langneuron_eval.evidence.ppl import attach_evidence
from langneuron_eval.evidence.regression import Figure, RegressionRecord, check_regressions
from langneuron_eval.fileio import jsonable, write_json, write_text
from langneuron_eval.leaderboard.build import build_leaderboard
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.catalogue import LANG_RATE, PPL_METRIC, STEER_FAMILY, STEER_SUCCESS, steer_task
from langneuron_eval.lmeval.results import metric as results_metric
from langneuron_eval.lmeval.results import write_results
from langneuron_eval.pipelines.measurements import (
    EvalConfig,
    params_text,
    ppl_change_matrix,
    steering_gains,
)
from langneuron_eval.pipelines.progress import Progress, quiet_lm_eval
from langneuron_eval.provenance import versions

REFERENCES = ("lape", "kojima_ap", "zhang", "random")


@dataclass
class BenchConfig(EvalConfig):
    """Sizes and intervention of the battery: the demo's (:class:`EvalConfig`), ``quick()`` for tests."""

    seed: int = 0  # the random control's draws and the bootstrap's resampling
    floor_draws: int = DEFAULT_DRAWS  # seeded draws of the random control: the floor is their spread

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(langs=("en", "zh"), detect_sentences=60, ppl_limit=2, steer_limit=2, floor_draws=2)

    def reference_params(self) -> dict[str, dict[str, Any]]:
        """The references, the random control drawn ``floor_draws`` times with seeds ``seed``, ``seed + 1``, ..."""
        refs = super().reference_params()
        control = refs.pop("random")
        for i in range(max(1, self.floor_draws)):
            refs["random" if i == 0 else f"random_{i + 1}"] = {**control, "seed": self.seed + i}
        return refs

    def eval_key(self) -> dict[str, Any]:
        """What the evaluation figures depend on besides the model and the neurons."""
        return {"langs": list(self.langs), "ppl_limit": self.ppl_limit, "steer_limit": self.steer_limit,
                "batch_size": self.batch_size, "steer_value": self.steer_value,
                "steer_strength": self.steer_strength, "steer_deactivate_others": self.steer_deactivate_others}


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


def run_bench(target: str, params: dict[str, Any], out: Path, cfg: BenchConfig, model: str | None = None,
              corpus: str | None = None, stats_path: str | None = None, reuse: bool = False,
              progress: bool = True, verbose: bool = False, task_manager: Any = None) -> dict[str, Any]:
    """Run the battery for ``target`` (with ``params``) and the references; returns what ``bench.json`` holds.

    ``task_manager`` (one that knows ``lang_ppl_*``/``lang_steer_*``, e.g. with an evaluation corpus in its
    metadata) replaces the default one. lm-eval's bars and logs are silenced unless ``verbose``.
    """
    started = time.perf_counter()
    get_detector(target)  # unknown names fail before any slow work
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
    result = {"schema": "langneuron-eval/bench-detector", "schema_version": 1, "tested": bench.label,
              "target": target, "params": figures[bench.label]["params"], "model": bench.model,
              "corpus": None if stats_path else bench.corpus,
              "stats": bench.stats_path, "config": asdict(cfg), "languages": bench.langs,
              "detector_order": list(figures), "detect_seconds": round(bench.detect_seconds, 2),
              "seconds": round(time.perf_counter() - started, 1),
              "detectors": figures, "floor": floor_comparison(bench.label, bench.runs, figures),
              "leaderboard": str(out / "leaderboard"), "versions": versions(),
              "seeds": evaluation.seeds_record()}
    write_json(out / "bench.json", jsonable(result), force=True)
    return result


def floor_comparison(tested: str, runs: list[tuple[str, str, dict[str, Any]]],
                     figures: dict[str, Any]) -> dict[str, Any] | None:
    """The tested detector's mean steering gain against the seeded draws of the random control."""
    draws = [figures[name]["mean_gain"] for name, method, _ in runs if method == "random" and name != tested]
    if not draws:
        return None
    fig = figures[tested]
    cmp = compare_to_floor(normal_interval(fig["mean_gain"], fig.get("mean_gain_se")), draws)
    return {"figure": "mean_steering_gain", **cmp.to_dict()}


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
    """The tested detector first, then the references; each neuron file saved under ``neurons/``."""
    bench.runs = [(bench.label, bench.target, bench.params)] + [
        (m, "random" if m.startswith("random_") else m, p) for m, p in bench.cfg.reference_params().items()]
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
    steering = fig["steering"]
    gains = [r["gain"] for r in steering.values()]
    fig["mean_gain"] = sum(gains) / len(gains) if gains else 0.0
    ses = [r.get("se") for r in steering.values()]
    fig["mean_gain_se"] = math.sqrt(sum(x**2 for x in ses)) / len(ses) if ses and None not in ses else None
    fig["steered_50"] = sum(1 for g in gains if g >= STEER_SUCCESS)
    pm = attach_evidence(PplMatrixFile(bench.langs, fig["ppl_matrix"], fig["ppl_baseline"], PPL_METRIC, provenance={
        "detector": nf.detector, "neurons_sha256": fig["neurons_sha256"]}, per_document=fig.get("ppl_per_document")),
        seed=bench.cfg.seed)
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
    ppl = ppl_change_matrix(lm, langs, cfg.ppl_limit, bench.task_manager, baseline=bench.baselines.get("ppl"),
                            results_dir=bench.out / "results", tag=_slug(name), skip_rows=empty, on_run=bar.run)
    bar.close()
    bench.baselines["ppl"] = ppl["baseline"]  # the unsteered pass once, shared by every detector
    docs = ppl.get("per_document")
    if docs and "none" in docs["nll"]:
        bench.baselines["ppl_none_nll"] = docs["nll"]["none"]  # the shared pass's per-document scores
    elif docs and "ppl_none_nll" in bench.baselines:
        docs["nll"]["none"] = bench.baselines["ppl_none_nll"]
    else:
        ppl["per_document"] = None  # no baseline documents to pair with: the matrix gets no intervals
    runs = len(langs) - len(empty) + ("steer" not in bench.baselines)
    bar = bench.log(f"{name}: steering ({len(langs)} activation runs, x{cfg.steer_strength})", runs=runs)
    rates = _steer(bench, lm, _slug(name), empty, bar.run)
    bar.close()
    del lm
    return {"ppl_matrix": ppl["matrix"], "ppl_baseline": ppl["baseline"],
            "ppl_per_document": ppl.get("per_document"), "steering": rates,
            "eval_seconds": round(time.perf_counter() - t0, 1)}


def _steer(bench: _Bench, lm: Any, tag: str, empty: list[str], on_run: Any) -> dict[str, Any]:
    """Steering gains; the unsteered run once for all detectors; languages without neurons gain nothing."""
    langs, results_dir = bench.langs, bench.out / "results"
    if "steer" not in bench.baselines:
        on_run("no intervention")
        lm.set_intervention(mode="none")
        res = evaluation.evaluate(lm, [steer_task(lang) for lang in langs], limit=bench.cfg.steer_limit,
                                  task_manager=bench.task_manager)
        write_results(results_dir / "base-none-steer" / "results_bench.json", res, force=True)
        bench.baselines["steer"] = {"results": {t: v for t, v in res["results"].items()
                                                if t.startswith(f"{STEER_FAMILY}_")},
                                    "n-samples": res.get("n-samples", {})}
    rows = [lang for lang in langs if lang not in empty]
    rates, _ = steering_gains(lm, rows, bench.cfg, bench.task_manager, results_dir, tag,
                              base_res=bench.baselines["steer"], results_name="results_bench.json",
                              on_run=on_run) if rows else ({}, None)
    for lang in empty:
        before = results_metric(bench.baselines["steer"], steer_task(lang), LANG_RATE)
        rates[lang] = {"unsteered": before, "steered": before, "gain": 0.0, "stderr": None}
    add_gain_evidence(rates, results_dir, tag, "results_bench.json", bench.baselines["steer"], empty)
    return {lang: rates[lang] for lang in langs}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _n_samples(res: dict[str, Any], task: str) -> int | None:
    """How many generations a steering rate is the mean of (lm-eval's ``n-samples``), if recorded."""
    try:
        return int(res["n-samples"][task]["effective"])
    except (KeyError, TypeError, ValueError):
        return None


def add_gain_evidence(rates: dict[str, dict[str, Any]], results_dir: Path, tag: str, results_name: str,
                      base_res: dict[str, Any] | None = None, unchanged: list[str] | tuple[str, ...] = ()) -> None:
    """Add intervals to ``steering_gains``' rates, with the sample sizes read from the saved lm-eval results.

    ``base_res``: the unsteered results (else ``results_dir/base-none-steer/<results_name>``); languages in
    ``unchanged`` had no neurons, so their steered rate is the unsteered one.
    """
    base = base_res if base_res and base_res.get("n-samples") else _read_json(
        results_dir / "base-none-steer" / results_name)
    for lang, r in rates.items():
        n_before = _n_samples(base, steer_task(lang))
        after = _read_json(results_dir / f"base-{tag}-activate-{lang}" / results_name)
        n_after = n_before if lang in unchanged else _n_samples(after, steer_task(lang))
        r.update(gain_evidence(r["unsteered"], n_before, r["steered"], n_after))


def gain_evidence(before: float, n_before: int | None, after: float, n_after: int | None) -> dict[str, Any]:
    """Wilson intervals of both rates and Newcombe's interval of the gain (the runs' outcomes not paired here).

    Per-generation outcomes of both runs would allow the paired interval (``evidence.paired_rate_gain``),
    narrower when the runs are correlated; lm-eval's aggregated results give only the rates and their n.
    """
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
def golden_figures(result: dict[str, Any]) -> dict[str, Figure]:
    """The tested detector's figures a golden file pins, each with its standard error and sample size.

    ``diagonal_share``: se from the document bootstrap (0 without per-document scores: the matrix is then a
    deterministic measurement); steering gains: Newcombe's interval over the generations; their mean: the
    languages' errors combined as independent.
    """
    fig = result["detectors"][result["tested"]]
    d = fig["diagonal"]
    out = {"diagonal_share": Figure(_num(d.get("share")), _num(d.get("share_se"), 0.0), len(result["languages"])),
           "mean_steering_gain": Figure(_num(fig["mean_gain"]), fig.get("mean_gain_se"),
                                        _min_n(fig["steering"].values()))}
    out.update({f"steering_gain.{lang}": Figure(_num(r["gain"]), r.get("se"), r.get("n"))
                for lang, r in fig["steering"].items()})
    return out


def _num(value: Any, default: float = math.nan) -> float:
    return default if value is None else float(value)


def _min_n(rates: Any) -> int | None:
    ns = [r.get("n") for r in rates]
    return None if not ns or None in ns else min(ns)


def write_golden(path: Path, result: dict[str, Any]) -> None:
    figures = {name: f.to_dict() for name, f in golden_figures(result).items()}
    write_json(path, jsonable({"schema": "langneuron-eval/bench-golden", "schema_version": 2,
                               "detector": result["target"], "params": result["params"], "config": result["config"],
                               "seed": result["config"].get("seed"), "figures": figures}), force=True)


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


def check_golden(result: dict[str, Any], golden_path: Path,
                 alpha: float = 0.05) -> tuple[list[RegressionRecord], list[str]]:
    """(one record per golden figure, warnings): a figure regresses when its drop is significant given both
    runs' noise (one-sided tests, Holm-corrected over the figures: false-alarm rate <= ``alpha``)."""
    golden, wanted = read_golden(golden_path)
    warnings = []
    config = {k: v for k, v in json.loads(json.dumps(result["config"])).items() if k not in ("seed", "floor_draws")}
    if golden.get("config") and {k: v for k, v in golden["config"].items()
                                 if k not in ("seed", "floor_draws")} != config:
        warnings.append(f"warning: {golden_path} was written with other battery settings "
                        "(e.g. --quick vs full); figures may not be comparable")
    if any(f.se is None for f in wanted.values()):
        warnings.append(f"warning: {golden_path} stores figures without standard errors (an older golden file); "
                        "those are compared exactly: rewrite it with --write-baseline")
    return check_regressions(wanted, golden_figures(result), alpha=alpha), warnings


def format_regressions(records: list[RegressionRecord]) -> str:
    """One line per figure: golden and new value with their 95% intervals, z, corrected p and the verdict."""
    def iv(i: Any) -> str:
        return "" if i is None or not i.defined else f"[{i.low:.3f}, {i.high:.3f}]"

    rows = [[r.figure, f"{r.golden.value:.3f}", iv(r.golden_interval),
             "" if r.new is None else f"{r.new.value:.3f}", iv(r.new_interval),
             "" if math.isnan(r.z) else f"{r.z:+.2f}", "" if math.isnan(r.p_adjusted) else f"{r.p_adjusted:.3g}",
             r.verdict] for r in records]
    return table(["figure", "golden", "golden 95% CI", "new", "new 95% CI", "z", "p (Holm)", "verdict"], rows)


# ---------------------------------------------------------------------------------------------- text
def format_table(result: dict[str, Any]) -> str:
    langs = result["languages"]
    figs = result["detectors"]
    rows = []
    for name, f in figs.items():
        d = f["diagonal"]
        ratio = d.get("ratio")
        rows.append([name, f["total_units"], f["unique_units"], f["mean_overlap"],
                     "/".join(f"{round(100 * s)}" for s in f["layer_share"]),
                     f"{d['columns_diagonal_max']}/{len(langs)}",
                     "nan" if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) else f"{ratio:.2f}",
                     f"{f['mean_gain']:+.3f}", f"{f['steered_50']}/{len(langs)}"])
    floor = result.get("floor")
    floor_line = [] if not floor else [
        f"random floor ({len(floor['draws'])} draws, mean steering gain): mean {floor['mean']:+.3f}, "
        f"sd {floor['sd']:+.3f}; {result['tested']} {floor['detector']['value']:+.3f}, "
        f"{'beats' if floor['beats_floor'] else 'does not beat' if floor['beats_floor'] is False else 'cannot tell'}"
        f" the floor (one-sided Welch p = {floor['p_value']:.3g})", ""]
    parts = [f"== bench-detector: {result['tested']} vs {', '.join(REFERENCES)} on {result['model']} ==", "",
             *floor_line,
             table(["detector", "units", "unique", "overlap", "layers %", "diag max", "diag/off", "mean gain",
                    "gain>=.5"], rows), "",
             "neurons per language:",
             table(["detector", *langs], [[n, *(f["counts"].get(lang, 0) for lang in langs)] for n, f in figs.items()]),
             "", "steering gain per language (lang_rate, activated - unsteered):",
             table(["detector", *langs], [[n, *(f"{f['steering'][lang]['gain']:+.2f}" for lang in langs)]
                                          for n, f in figs.items()])]
    return "\n".join(parts) + "\n"


def write_report(out: Path, result: dict[str, Any]) -> str:
    text = format_table(result)
    write_text(out / "bench.md", text, force=True)
    return text
