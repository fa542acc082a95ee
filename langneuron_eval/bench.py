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
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .demo import DemoConfig, _jsonable, _kv, diagonal_dominance, ppl_change_matrix, steering_gains
from .errors import LangNeuronError
from .fileio import write_json, write_text
from .provenance import versions

REFERENCES = ("lape", "kojima_ap", "zhang", "random")
EPS = 1e-9  # float noise allowed when comparing against a golden file


@dataclass
class BenchConfig:
    """Sizes and intervention of the battery; defaults are the demo's, ``quick()`` is for tests."""

    langs: tuple[str, ...] = ("en", "de", "fr", "es", "zh", "ja")
    detect_sentences: int = 1000
    ppl_limit: int | None = 300
    steer_limit: int | None = 100
    batch_size: int = 50
    steer_value: str = "mean"
    steer_strength: float = 12.0
    steer_deactivate_others: bool = True
    lape_params: dict[str, Any] = field(default_factory=lambda: dict(DemoConfig().lape_params))
    kojima_params: dict[str, Any] = field(default_factory=lambda: dict(DemoConfig().kojima_params))
    zhang_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(langs=("en", "zh"), detect_sentences=60, ppl_limit=2, steer_limit=2)

    def reference_params(self) -> dict[str, dict[str, Any]]:
        return {"lape": self.lape_params, "kojima_ap": self.kojima_params, "zhang": self.zhang_params,
                "random": {"reference": "lape", "reference_params": _kv(self.lape_params)}}

    def eval_key(self) -> dict[str, Any]:
        """What the evaluation figures depend on besides the model and the neurons."""
        return {"langs": list(self.langs), "ppl_limit": self.ppl_limit, "steer_limit": self.steer_limit,
                "batch_size": self.batch_size, "steer_value": self.steer_value,
                "steer_strength": self.steer_strength, "steer_deactivate_others": self.steer_deactivate_others}


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled, self.started = enabled, time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[bench {time.perf_counter() - self.started:5.0f}s] {msg}", file=sys.stderr, flush=True)


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_cache(path: Path, key: str) -> Any:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc.get("value") if doc.get("key") == key else None


def _write_cache(path: Path, key: str, value: Any) -> None:
    write_json(path, _jsonable({"key": key, "value": value}), force=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "detector"


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> dict (values stay strings; the detector converts them by their declared type)."""
    out: dict[str, str] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise LangNeuronError(f"--param {item!r} is not NAME=VALUE")
        out[k.strip()] = v.strip()
    return out


def neuron_figures(nf: Any) -> dict[str, Any]:
    """Counts, unique units, mean cross-language overlap and layer distribution of a neuron file."""
    from .detectors.report import summarize

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


def run_bench(target: str, params: dict[str, Any], out: Path, cfg: BenchConfig, model: str | None = None,
              corpus: str | None = None, stats_path: str | None = None, reuse: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Run the battery for ``target`` (with ``params``) and the references; returns what ``bench.json`` holds."""
    import logging

    from . import demo_assets, evaluation
    from .detectors import get_detector, run_detector
    from .neurons import NeuronFile
    from .stats import ActivationStats

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    log = _Log(progress)
    started = time.perf_counter()
    get_detector(target)  # unknown names fail before any slow work
    model = str(model or demo_assets.base_model_path())
    corpus = str(corpus or demo_assets.demo_corpus_dir("detect"))
    langs = list(cfg.langs)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"

    # 1. statistics (given, reused, or recorded)
    given_stats = bool(stats_path)
    if stats_path:
        log(f"loading statistics {stats_path}")
        stats = ActivationStats.load(stats_path)
    else:
        stats_file = out / "stats.safetensors"
        key = _hash({"model": model, "corpus": corpus, "langs": langs, "n": cfg.detect_sentences})
        if reuse and stats_file.exists() and _read_cache(cache / "stats.json", key):
            log(f"reusing {stats_file}")
            stats = ActivationStats.load(stats_file)
            stats_path = str(stats_file)
        else:
            from .corpus import resolve_corpus
            from .modeling import load_model
            from .recorder import RecordConfig, record

            log(f"recording statistics of {model} ({cfg.detect_sentences} sentences x {len(langs)} languages)")
            sources = resolve_corpus([corpus], langs)
            m, tok = load_model(model)
            stats = record(m, tok, sources, RecordConfig(sentence_means=True, max_sentences=cfg.detect_sentences,
                                                         batch_size=cfg.batch_size), progress=False)
            del m
            stats.save(stats_file, force=True)
            _write_cache(cache / "stats.json", key, True)
            stats_path = str(stats_file)
    missing = [lang for lang in langs if lang not in stats.languages]
    if missing:
        raise LangNeuronError(f"the statistics have no {', '.join(missing)} (have {', '.join(stats.languages)})")

    # 2. detectors: the tested one first, then the references
    label = target if target not in REFERENCES else f"{target}_tested"
    runs = [(label, target, params)] + [(m, m, p) for m, p in cfg.reference_params().items()]
    neuron_paths: dict[str, Path] = {}
    for name, method, p in runs:
        log(f"detecting: {name}" + (f" ({_kv(p)})" if p else ""))
        t0 = time.perf_counter()
        nf = run_detector(method, stats, p)
        path = out / "neurons" / f"{_slug(name)}.json"
        nf.save(path, force=True)
        neuron_paths[name] = path
        if name == label:
            detect_seconds = time.perf_counter() - t0

    # 3. evaluation per detector (cached), with the unsteered baselines shared by all detectors
    tm = evaluation.make_task_manager()
    ekey = cfg.eval_key()
    base_key = _hash({"model": model, **ekey})
    baselines = (_read_cache(cache / "baselines.json", base_key) if reuse else None) or {}
    figures: dict[str, dict[str, Any]] = {}
    for name, method, _ in runs:
        nf = NeuronFile.load(neuron_paths[name])
        fig: dict[str, Any] = {"method": method, "params": nf.params, "neurons": str(neuron_paths[name]),
                               "neurons_sha256": nf.sha256(), **neuron_figures(nf)}
        key = _hash({"model": model, "neurons": fig["neurons_sha256"], **ekey})
        cached = _read_cache(cache / f"{_slug(name)}.json", key) if reuse else None
        if cached:
            log(f"{name}: reusing cached perplexity and steering figures")
            fig.update(cached)
        else:
            t0 = time.perf_counter()
            lm = evaluation.load_model(model, neuron_paths[name], batch_size=cfg.batch_size)
            empty = [lang for lang in langs if lang not in nf.languages or not nf.languages[lang]]
            if empty:  # nothing to deactivate or activate: the figures are those of no intervention
                log(f"{name}: no neurons for {', '.join(empty)}; those rows count as unchanged")
            log(f"{name}: perplexity-change matrix ({len(langs)} deactivation runs)")
            ppl = _ppl(lm, langs, cfg, tm, baselines, out / "results", _slug(name), empty)
            log(f"{name}: steering ({len(langs)} activation runs, x{cfg.steer_strength})")
            rates = _steer(lm, langs, cfg, tm, baselines, out / "results", _slug(name), empty)
            del lm
            _write_cache(cache / "baselines.json", base_key, baselines)
            cached = {"ppl_matrix": ppl["matrix"], "ppl_baseline": ppl["baseline"],
                      "diagonal": diagonal_dominance(ppl["matrix"]), "steering": rates,
                      "eval_seconds": round(time.perf_counter() - t0, 1)}
            _write_cache(cache / f"{_slug(name)}.json", key, cached)
            fig.update(cached)
        gains = [r["gain"] for r in fig["steering"].values()]
        fig["mean_gain"] = sum(gains) / len(gains) if gains else 0.0
        fig["steered_50"] = sum(1 for g in gains if g >= 0.5)
        body = {"languages": langs, "matrix": fig["ppl_matrix"], "baseline": fig["ppl_baseline"],
                "metric": "byte_perplexity", "detector": nf.detector, "neurons_sha256": fig["neurons_sha256"]}
        write_json(out / "ppl_matrix" / _slug(name) / "ppl_matrix.json", body, force=True)
        figures[name] = fig

    # 4. leaderboard over the saved lm-eval results
    log("leaderboard")
    from .leaderboard.build import build_leaderboard

    build_leaderboard([out / "results"], out / "leaderboard", force=True,
                      ppl_matrices=[out / "ppl_matrix" / _slug(n) / "ppl_matrix.json" for n in figures],
                      neurons=list(neuron_paths.values()))
    result = {"schema": "langneuron-eval/bench-detector", "schema_version": 1, "tested": label,
              "target": target, "params": figures[label]["params"], "model": model,
              "corpus": None if given_stats else corpus,
              "stats": stats_path, "config": asdict(cfg), "languages": langs,
              "detector_order": list(figures), "detect_seconds": round(detect_seconds, 2), "seconds": round(time.perf_counter() - started, 1),
              "detectors": figures, "leaderboard": str(out / "leaderboard"), "versions": versions(),
              "seeds": evaluation.seeds_record()}
    write_json(out / "bench.json", _jsonable(result), force=True)
    return result


def _ppl(lm: Any, langs: list[str], cfg: BenchConfig, tm: Any, baselines: dict[str, Any], results_dir: Path,
         tag: str, empty: list[str]) -> dict[str, Any]:
    res = ppl_change_matrix(lm, langs, cfg.ppl_limit, tm, baseline=baselines.get("ppl"), results_dir=results_dir,
                            tag=tag, skip_rows=empty)
    baselines["ppl"] = res["baseline"]  # the unsteered pass once, shared by every detector
    return res


def _steer(lm: Any, langs: list[str], cfg: BenchConfig, tm: Any, baselines: dict[str, Any], results_dir: Path,
           tag: str, empty: list[str]) -> dict[str, Any]:
    from . import evaluation

    if "steer" not in baselines:
        lm.set_intervention(mode="none")
        res = evaluation.evaluate(lm, [f"lang_steer_{lang}" for lang in langs], limit=cfg.steer_limit,
                                  task_manager=tm)
        from .results import write_results

        write_results(results_dir / "base-none-steer" / "results_bench.json", res, force=True)
        baselines["steer"] = {"results": {t: v for t, v in res["results"].items() if t.startswith("lang_steer_")}}
    rows = [lang for lang in langs if lang not in empty]
    rates, _ = steering_gains(lm, rows, cfg, tm, results_dir, tag, base_res=baselines["steer"],
                              results_name="results_bench.json") if rows else ({}, None)
    for lang in empty:
        before = evaluation.metric(baselines["steer"], f"lang_steer_{lang}", "lang_rate")
        rates[lang] = {"unsteered": before, "steered": before, "gain": 0.0, "stderr": None}
    return {lang: rates[lang] for lang in langs}


# ---------------------------------------------------------------------------------------------- golden files
def golden_figures(result: dict[str, Any]) -> dict[str, float]:
    """The tested detector's figures a golden file pins: diagonal share, mean and per-language steering gain."""
    fig = result["detectors"][result["tested"]]
    out = {"diagonal_share": fig["diagonal"]["share"], "mean_steering_gain": fig["mean_gain"]}
    out.update({f"steering_gain.{lang}": r["gain"] for lang, r in fig["steering"].items()})
    return out


def write_golden(path: Path, result: dict[str, Any]) -> None:
    write_json(path, {"schema": "langneuron-eval/bench-golden", "schema_version": 1, "detector": result["target"],
                      "params": result["params"], "config": result["config"], "figures": golden_figures(result)},
               force=True)


def check_golden(result: dict[str, Any], golden_path: Path, tolerance: float) -> tuple[list[str], list[str]]:
    """(regressions, warnings): one line per figure below golden - tolerance."""
    try:
        golden = json.loads(Path(golden_path).read_text())
        wanted = golden["figures"]
    except FileNotFoundError:
        raise LangNeuronError(f"golden file not found: {golden_path}") from None
    except (ValueError, KeyError, TypeError):
        raise LangNeuronError(f"{golden_path} is not a bench-detector golden file (no 'figures')") from None
    warnings = []
    if golden.get("config") and golden["config"] != json.loads(json.dumps(result["config"])):
        warnings.append(f"warning: {golden_path} was written with other battery settings "
                        "(e.g. --quick vs full); figures may not be comparable")
    have = golden_figures(result)
    regressions = []
    for name, g in wanted.items():
        v = have.get(name)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            regressions.append(f"regressed: {name} is missing (golden {g:.4f})")
        elif v < float(g) - tolerance - EPS:
            regressions.append(f"regressed: {name} = {v:.4f}, golden {float(g):.4f} "
                               f"(below golden - tolerance {tolerance:g} = {float(g) - tolerance:.4f})")
    return regressions, warnings


# ---------------------------------------------------------------------------------------------- text
def format_table(result: dict[str, Any]) -> str:
    from .detectors.report import table

    langs = result["languages"]
    figs = result["detectors"]
    rows = []
    for name, f in figs.items():
        d = f["diagonal"]
        ratio = d["mean_diag_offdiag_ratio"]
        rows.append([name, f["total_units"], f["unique_units"], f["mean_overlap"],
                     "/".join(f"{round(100 * s)}" for s in f["layer_share"]),
                     f"{d['columns_diagonal_max']}/{len(langs)}",
                     "nan" if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) else f"{ratio:.2f}",
                     f"{f['mean_gain']:+.3f}", f"{f['steered_50']}/{len(langs)}"])
    parts = [f"== bench-detector: {result['tested']} vs {', '.join(REFERENCES)} on {result['model']} ==", "",
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
