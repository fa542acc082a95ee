"""``langneuron demo``: the whole pipeline on the embedded demo model, offline, in minutes on a CPU.

record -> detect (lape, kojima_ap, zhang, random) -> perplexity-change matrix -> steering per language ->
xqa/xmath for the base and the aligned twin -> neuron-type shift -> leaderboard -> summary.

Every step writes its own files under ``--out`` (lm-eval results JSON files under ``results/``), so the
leaderboard and ``langneuron compare`` can be re-run on them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.core import demo_assets
from langneuron_eval.core.corpus import resolve_corpus
from langneuron_eval.core.modeling import load_model
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.ppl_matrix import PplMatrixFile
from langneuron_eval.core.recorder import RecordConfig, record
from langneuron_eval.detectors import run_detector
from langneuron_eval.detectors.report import compare_neuron_files
from langneuron_eval.evidence.dominance import dominance_summary
from langneuron_eval.evidence.intervals import mean_interval, paired_rate_gain
from langneuron_eval.evidence.ppl import attach_evidence
from langneuron_eval.evidence.verdict import HOLDS, verdict
from langneuron_eval.fileio import jsonable, write_json, write_text
from langneuron_eval.leaderboard.build import build_leaderboard
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.catalogue import PPL_METRIC, STEER_SUCCESS
from langneuron_eval.lmeval.results import first_metric, write_results
from langneuron_eval.pipelines.measurements import (
    EvalConfig,
    plot_ppl_matrix,
    ppl_change_matrix,
    steering_gains,
)
from langneuron_eval.pipelines.progress import Progress, quiet_lm_eval
from langneuron_eval.provenance import versions


@dataclass
class DemoConfig(EvalConfig):
    """What the demo runs: the shared sizes and intervention, plus its steering detectors and QA; ``quick()`` for CI."""

    steer_detectors: tuple[str, ...] = ("lape", "kojima_ap")
    qa_limit: int | None = 200
    align_langs: tuple[str, ...] = ("zh", "de")
    # ``--seed``: lm-eval's seeds of the sampled steering generations, the random detector's draw and the
    # bootstrap's; None keeps lm-eval's defaults (0, 1234, 1234, 1234), the random draw's 0 and the bootstrap's 0
    seed: int | None = None

    def reference_params(self) -> dict[str, dict[str, Any]]:
        refs = super().reference_params()
        if self.seed is not None:
            refs["random"] = {**refs["random"], "seed": self.seed}
        return refs

    @classmethod
    def quick(cls) -> DemoConfig:
        return cls(detect_sentences=120, steer_limit=10, ppl_limit=20, qa_limit=10,
                   steer_detectors=("lape",))


@dataclass
class _Demo:
    """What the demo's steps share: where to write, what to run, the files written so far."""

    out: Path
    cfg: DemoConfig
    base_model: str
    aligned_model: str
    log: Progress
    summary: dict[str, Any]
    task_manager: Any = None
    stats: dict[str, Any] = field(default_factory=dict)
    neuron_paths: dict[str, Path] = field(default_factory=dict)
    zhang_aligned: Any = None

    @property
    def langs(self) -> list[str]:
        return list(self.cfg.langs)


def run_demo(out: Path, cfg: DemoConfig, base_model: str | None = None, aligned_model: str | None = None,
             progress: bool = True, verbose: bool = False) -> dict[str, Any]:
    """Run the demo pipeline into ``out`` and return the summary (also written to ``summary.json``).

    lm-eval's bars and logs are silenced while it runs (unless ``verbose``) and restored afterwards.
    """
    base_model = base_model or str(demo_assets.base_model_path())
    aligned_model = aligned_model or str(demo_assets.aligned_model_path())
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"config": asdict(cfg), "base_model": base_model, "aligned_model": aligned_model,
                               "versions": versions(), "seeds": evaluation.seeds_record(evaluation.seeds_of(cfg.seed))}
    # 2 ppl matrices + one steering step per detector
    # the step lines always show; --no-progress turns off the bars
    log = Progress("demo", 8 + len(cfg.steer_detectors), bars=progress)
    demo = _Demo(out, cfg, base_model, aligned_model, log, summary)
    with quiet_lm_eval(verbose):
        _record_statistics(demo)
        _detect_neurons(demo)
        demo.task_manager = evaluation.make_task_manager()
        _ppl_matrices(demo)
        _steering(demo)
        _qa(demo)
        _neuron_shift(demo)
        _leaderboard(demo)
    return _write_summary(demo)


def _record_statistics(demo: _Demo) -> None:
    """Activation statistics of both models on the demo corpus's detection split."""
    cfg = demo.cfg
    bar = demo.log(f"recording activation statistics ({cfg.detect_sentences} sentences x {len(demo.langs)} "
                   "languages, 2 models)", runs=2)
    sources = resolve_corpus([str(demo_assets.demo_corpus_dir("detect"))], demo.langs)
    rec_cfg = RecordConfig(sentence_means=True, max_sentences=cfg.detect_sentences, batch_size=cfg.batch_size)
    for name, path in (("base", demo.base_model), ("aligned", demo.aligned_model)):
        bar.run(f"{name} model")
        model, tok = load_model(path)
        # the step's bar is the one the reader follows; the recorder's per-language bars would add twelve more
        demo.stats[name] = record(model, tok, sources, rec_cfg, progress=False)
        demo.stats[name].save(demo.out / f"stats_{name}.safetensors", force=True)
        del model
    bar.close()


def _detect_neurons(demo: _Demo) -> None:
    """lape, kojima_ap, zhang and random on the base model; zhang on the aligned one for the type shift."""
    demo.log("detecting neurons: lape, kojima_ap, zhang, random")
    for method, p in demo.cfg.reference_params().items():
        demo.neuron_paths[method] = demo.out / "neurons" / f"{method}.json"
        run_detector(method, demo.stats["base"], p).save(demo.neuron_paths[method], force=True)
    demo.zhang_aligned = run_detector("zhang", demo.stats["aligned"], demo.cfg.zhang_params)
    demo.zhang_aligned.save(demo.out / "neurons" / "zhang_aligned.json", force=True)
    demo.summary["neuron_counts"] = {m: NeuronFile.load(p).counts() for m, p in demo.neuron_paths.items()}


def _ppl_matrices(demo: _Demo) -> None:
    """Perplexity-change matrices with LAPE's neurons and with the random control (the unsteered pass shared)."""
    langs, cfg = demo.langs, demo.cfg
    demo.summary["ppl_matrix"] = {}
    none_nll = None  # the unsteered per-document scores: one pass, paired with both detectors' rows
    for method in ("lape", "random"):
        runs = len(langs) + (none_nll is None)
        bar = demo.log(f"perplexity-change matrix with {method} neurons (deactivate each language, "
                       f"{runs} runs)", runs=runs)
        lm = evaluation.load_model(demo.base_model, demo.neuron_paths[method], batch_size=cfg.batch_size)
        res = ppl_change_matrix(lm, langs, limit=cfg.ppl_limit, task_manager=demo.task_manager, on_run=bar.run,
                                baseline_nll=none_nll)
        none_nll = res["per_document"]["nll"]["none"]
        bar.close()
        pm = attach_evidence(PplMatrixFile(langs, res["matrix"], res["baseline"], PPL_METRIC, provenance={
            "detector": method, "neurons_sha256": NeuronFile.load(demo.neuron_paths[method]).sha256()},
            per_document=res.get("per_document")), seed=cfg.seed or 0)
        pm.save(demo.out / "ppl_matrix" / method / "ppl_matrix.json")
        body = {"languages": langs, "matrix": res["matrix"], "baseline": res["baseline"], "metric": PPL_METRIC,
                **pm.provenance}
        plot_ppl_matrix(demo.out / "ppl_matrix" / method / "ppl_matrix.png", langs, res["matrix"], PPL_METRIC,
                        True)
        demo.summary["ppl_matrix"][method] = {**body, "ci_low": pm.ci_low, "ci_high": pm.ci_high,
                                              "n_docs": pm.n_docs, "diagonal": dominance_summary(pm.dominance)}
        del lm


def _steering(demo: _Demo) -> None:
    """Every language's neurons activated, against the unsteered model (one pass shared by the detectors)."""
    cfg = demo.cfg
    demo.summary["steering"] = {}
    base = None
    for method in cfg.steer_detectors:
        bar = demo.log(f"steering with {method} neurons: activate x{cfg.steer_strength} per language",
                       runs=len(demo.langs) + (base is None))
        lm = evaluation.load_model(demo.base_model, demo.neuron_paths[method], batch_size=cfg.batch_size)
        rates, base = steering_gains(lm, demo.langs, cfg, demo.task_manager, demo.out / "results", method,
                                     base_res=base, results_name="results_demo.json", on_run=bar.run, seed=cfg.seed)
        bar.close()
        demo.summary["steering"][method] = rates
        del lm


def _qa(demo: _Demo) -> None:
    """xqa / xmath for the base and the aligned model, per item, with paired intervals of the change."""
    cfg = demo.cfg
    bar = demo.log("xqa / xmath for the base and the aligned model", runs=2)
    qa_tasks = [f"{fam}_{lang}" for fam in ("xqa", "xmath") for lang in demo.langs]
    qa, items = {}, {}
    for name, path in (("base", demo.base_model), ("aligned", demo.aligned_model)):
        bar.run(f"{name} model, {len(qa_tasks)} tasks")
        res = evaluation.evaluate("langneuron", qa_tasks, model_args={"pretrained": path}, log_samples=True,
                                  limit=cfg.qa_limit, batch_size=cfg.batch_size, task_manager=demo.task_manager)
        items[name] = {t: _item_scores(res["samples"][t], _qa_metric(t)) for t in qa_tasks}
        res.pop("samples")
        write_results(demo.out / "results" / f"{name}-none-qa" / "results_demo.json", res, force=True)
        qa[name] = {t: first_metric(res, t, ("f1", "acc")) for t in qa_tasks}
    bar.close()
    demo.summary["qa"] = qa
    demo.summary["qa_evidence"] = {t: qa_change(items["base"][t], items["aligned"][t]) for t in qa_tasks}


def _qa_metric(task: str) -> str:
    return "f1" if task.startswith("xqa") else "acc"


def _item_scores(samples: list[dict[str, Any]], metric: str) -> dict[int, float]:
    return {int(s["doc_id"]): float(s[metric]) for s in samples}


def qa_change(base: dict[int, float], aligned: dict[int, float]) -> dict[str, Any]:
    """Base and aligned means and the aligned - base change, paired by item.

    0/1 scores (accuracy): Wilson intervals and Newcombe's paired interval of the change, which stay informative
    at 0 of 200; graded scores (token F1): t intervals of the means and of the per-item differences.
    """
    ids = sorted(set(base) & set(aligned))
    b, a = [base[i] for i in ids], [aligned[i] for i in ids]
    if all(v in (0.0, 1.0) for v in b + a):
        gain = paired_rate_gain(b, a)
        return {"n": len(ids), "base": gain.before.to_dict(), "aligned": gain.after.to_dict(),
                "change": gain.interval.to_dict()}
    return {"n": len(ids), "base": mean_interval(b).to_dict(), "aligned": mean_interval(a).to_dict(),
            "change": mean_interval([y - x for x, y in zip(b, a)]).to_dict()}


def _neuron_shift(demo: _Demo) -> None:
    """Zhang et al.'s neuron-type shift: zhang on the base vs the aligned model's statistics."""
    demo.log("neuron-type shift between base and aligned model (zhang)")
    shift = compare_neuron_files(NeuronFile.load(demo.neuron_paths["zhang"]), demo.zhang_aligned)
    write_json(demo.out / "neuron_shift.json", shift, force=True)
    demo.summary["neuron_shift"] = shift


def _leaderboard(demo: _Demo) -> None:
    demo.log("leaderboard")
    build_leaderboard([demo.out / "results"], demo.out / "leaderboard", force=True,
                      ppl_matrices=[demo.out / "ppl_matrix" / m / "ppl_matrix.json" for m in ("lape", "random")],
                      neurons=list(demo.neuron_paths.values()))
    demo.summary["leaderboard"] = str(demo.out / "leaderboard")


def _write_summary(demo: _Demo) -> dict[str, Any]:
    """summary.json and summary.md; the summary and where the page is go to the terminal."""
    demo.log("summary")
    write_json(demo.out / "summary.json", jsonable(demo.summary), force=True)
    text = format_summary(demo.summary, demo.langs, demo.cfg)
    write_text(demo.out / "summary.md", text, force=True)
    print(text)
    print(f"Leaderboard: {demo.out / 'leaderboard' / 'index.html'} (also leaderboard.md); "
          f"summary: {demo.out / 'summary.md'}; all files under {demo.out}")
    return demo.summary


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _g(v: Any) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.3g}"


def _ci(pair: Any) -> str:
    """`` [low, high]`` for an interval, empty where there is none."""
    if not pair or any(v is None or not math.isfinite(float(v)) for v in pair):
        return ""
    return f" [{float(pair[0]):.2f}, {float(pair[1]):.2f}]"


def _cell(v: float, low: Any, high: Any, i: int, j: int) -> str:
    return f"{v:+.3f}" + (_ci([low[i][j], high[i][j]]) if low and high else "")


def _docs(pm: dict[str, Any]) -> str:
    counts = sorted(set((pm.get("n_docs") or {}).values()))
    return "/".join(str(c) for c in counts) or "?"


def _qa_lines(summary: dict[str, Any], cfg: DemoConfig) -> list[str]:
    """QA per task: both models' means and the change paired by item, each with its 95% t interval."""
    lines = ["", "## QA (xqa F1, xmath acc): base vs aligned on " + "/".join(cfg.align_langs), "",
             "| task | n | base | aligned | change [95% CI, paired by item; acc: Wilson / Newcombe, F1: t] |", "|---|---|---|---|---|"]
    for t, ev in summary.get("qa_evidence", {}).items():
        def fig(d: dict[str, Any], sign: str = "") -> str:
            bounds = [d["ci_low"], d["ci_high"]]
            ci = "" if not all(math.isfinite(_num(v)) for v in bounds) else f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"
            return f"{d['value']:{sign}.3f}{ci}"

        lines.append(f"| {t} | {ev['n']} | {fig(ev['base'])} | {fig(ev['aligned'])} | {fig(ev['change'], '+')} |")
    return lines


def format_summary(summary: dict[str, Any], langs: list[str], cfg: DemoConfig) -> str:
    """A short Markdown summary, also printed to the terminal."""
    lines = ["# langneuron demo summary", ""]
    lines += ["## Neurons per language", "", "| detector | " + " | ".join(langs) + " |",
              "|---|" + "---|" * len(langs)]
    for m, counts in summary["neuron_counts"].items():
        lines.append(f"| {m} | " + " | ".join(str(counts.get(lang, 0)) for lang in langs) + " |")
    for m, pm in summary["ppl_matrix"].items():
        d = pm["diagonal"]
        lines += ["", f"## Perplexity change, {m} neurons deactivated (row) x evaluated language (column)", "",
                  "| deactivated | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
        low, high = pm.get("ci_low"), pm.get("ci_high")
        for i, (lang, row) in enumerate(zip(langs, pm["matrix"])):
            lines.append(f"| {lang} | " + " | ".join(_cell(v, low, high, i, j) for j, v in enumerate(row)) + " |")
        lines.append(f"\nDiagonal is the column maximum for {d['columns_diagonal_max']} of {len(langs)} languages "
                     f"(permutation p = {_g(d['p_value'])}); diagonal/off-diagonal perplexity ratio "
                     f"{_g(d['ratio'])}{_ci(d['ratio_ci'])}" + (f"; 95% intervals over {_docs(pm)} held-out "
                                                                "documents per language (paired bootstrap)."
                                                                if low else "."))
    for m, rates in summary["steering"].items():
        ok = sum(1 for r in rates.values() if r["gain"] >= STEER_SUCCESS)
        lines += ["", f"## Steering with {m} neurons (activate x{cfg.steer_strength}"
                      f"{', others zeroed' if cfg.steer_deactivate_others else ''})", "",
                  "| language | unsteered | steered | gain [95% CI] | n |", "|---|---|---|---|---|"]
        for lang, r in rates.items():
            lines.append(f"| {lang} | {r['unsteered']:.2f}{_ci(r.get('unsteered_ci'))} | "
                         f"{r['steered']:.2f}{_ci(r.get('steered_ci'))} | "
                         f"{r['gain']:+.2f}{_ci([r.get('ci_low'), r.get('ci_high')])} | {r.get('n') or ''} |")
        clear = sum(1 for r in rates.values() if verdict((_num(r.get("ci_low")), _num(r.get("ci_high"))),
                                                         STEER_SUCCESS) == HOLDS)
        lines.append(f"\nlang_rate rose by >= 50 points for {ok} of {len(rates)} languages ({clear} with the whole "
                     "95% interval of the gain at or above 50 points; rates: Wilson, gains: Newcombe).")
    lines += _qa_lines(summary, cfg)
    shift = summary.get("neuron_shift", {})
    if shift.get("per_language"):
        lines += ["", "## Neuron types before -> after alignment (zhang)", "",
                  "| language | specific | related | overlap |", "|---|---|---|---|"]
        for lang, r in shift["per_language"].items():
            lines.append(f"| {lang} | {r['specific_a']} -> {r['specific_b']} | {r['related_a']} -> {r['related_b']} "
                         f"| {r['overlap']:.2f} |")
        lines.append(f"\nGeneral neurons: {shift['general_a']} -> {shift['general_b']}.")
    return "\n".join(lines) + "\n"
