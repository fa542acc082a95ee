"""The measurements that ``langneuron demo``, ``bench-detector``, ``ppl-matrix`` and the leaderboard share.

* :func:`ppl_change_matrix`: LAPE's perplexity-change matrix. Row i = language whose neurons are deactivated,
  column j = language whose held-out text is scored, ``matrix[i][j] = ppl(j | deactivate i) / ppl(j) - 1``
  (byte perplexity by default: comparable across scripts, since ``log ppl_byte = NLL / bytes``).
* :func:`steering_gains`: ``lang_rate`` per language without and with that language's neurons activated.
* :func:`diagonal_dominance`: how clearly each language's neurons hurt that language most.

All run on one loaded ``LangNeuronLM`` whose intervention is switched between runs, so a matrix costs
``1 + #languages`` passes and one model load. :class:`EvalConfig` holds the sizes and the intervention the demo
and the battery share. This module sits between the command line (``langneuron_eval/cli``) and the core.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.core.corpus import overlap_problems, resolve_corpus, split_specs
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import atomic_path
from langneuron_eval.languages import DEMO_LANGUAGES
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.catalogue import LANG_RATE, PPL_METRIC, ppl_task, steer_task
from langneuron_eval.lmeval.results import metric as results_metric
from langneuron_eval.lmeval.results import metric_stderr, write_results

RunHook = Callable[[str], None]  # called with a label before each lm-eval run

# How a real pretrained model steers (docs/real_model.md, measured on Gemma-3-270m): the target language's neurons
# set to their mean activation (x1) and no other language zeroed. The demo's x12 with the others zeroed (EvalConfig)
# suits the 3M demo model but turns Gemma's output into repetitions; bench-detector uses this for any --model.
REAL_MODEL_STEERING: dict[str, Any] = {"steer_value": "mean", "steer_strength": 1.0, "steer_deactivate_others": False}


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


@contextlib.contextmanager
def _counting_tokens(lm: Any, counts: list[int]) -> Iterator[None]:
    """Add the tokens of every rolling-loglikelihood request made inside the block to ``counts[0]``."""
    original = getattr(lm, "loglikelihood_rolling", None)
    if original is None or not hasattr(lm, "tok_encode"):
        yield
        return

    def counted(requests: list[Any], *args: Any, **kwargs: Any) -> Any:
        counts[0] += sum(len(lm.tok_encode(req.args[0])) for req in requests)
        return original(requests, *args, **kwargs)

    lm.loglikelihood_rolling = counted
    try:
        yield
    finally:
        del lm.loglikelihood_rolling  # the instance attribute; the class method shows again


@dataclass
class _PplRuns:
    """How the matrix's runs are evaluated and where their lm-eval results go."""

    lm: Any
    langs: list[str]
    limit: int | None
    task_manager: Any
    metric: str
    results_dir: Path | None
    on_run: RunHook | None
    tokens: list[int] = field(default_factory=lambda: [0])
    runs: int = 0
    loaded: list[Any] | None = None  # Task objects, reused across runs when results are not kept

    def scores(self, name: str, label: str) -> dict[str, float]:
        """One lm-eval pass over every language's held-out text under the current intervention.

        When the lm-eval results are not kept (no ``results_dir``), the pass skips what only those files show:
        the bootstrapped stderr of each perplexity (1000 resamples in a process pool), lm-eval's environment
        report (subprocesses) and re-reading the tasks' documents (the tasks are loaded once and reused).
        """
        if self.on_run is not None:
            self.on_run(label)
        keep = self.results_dir is not None
        tasks: list[Any] = [ppl_task(lang) for lang in self.langs]
        if not keep:
            if self.loaded is None:
                self.loaded = list(self.task_manager.load(tasks)["tasks"].values())
            tasks = self.loaded
        count = _counting_tokens(self.lm, self.tokens) if self.runs == 0 else contextlib.nullcontext()
        with count:
            res = evaluation.evaluate(self.lm, tasks, limit=self.limit, task_manager=self.task_manager,
                                      bootstrap_iters=1000 if keep else 0, environment=keep)
        self.runs += 1
        if keep:
            write_results(self.results_dir / name / "results_ppl.json", res, force=True)
        return {lang: results_metric(res, ppl_task(lang), self.metric) for lang in self.langs}


def ppl_change_matrix(lm: Any, langs: list[str], limit: int | None = None, task_manager: Any = None,
                      baseline: dict[str, float] | None = None, metric: str = PPL_METRIC,
                      results_dir: Path | None = None, tag: str = "", skip_rows: Sequence[str] = (),
                      on_run: RunHook | None = None) -> dict[str, Any]:
    """The perplexity-change matrix of a loaded ``LangNeuronLM`` whose neuron file covers ``langs``.

    ``baseline`` (language -> perplexity without intervention, from an earlier call on the same model and
    limit) skips the unsteered pass. With ``results_dir``, each pass's lm-eval results are saved as
    ``results_dir/<base|tag>-<mode>-<lang>/results_ppl.json`` for the leaderboard. Rows in ``skip_rows``
    (languages without neurons: deactivating nothing changes nothing) are the baseline without a run.
    Returns ``baseline``, ``perplexity`` (rows x columns), ``matrix``, ``seconds``, ``runs``, ``tokens``
    (scored tokens over all runs) and ``tokens_per_second``.
    """
    runs = _PplRuns(lm, list(langs), limit, task_manager or evaluation.make_task_manager(), metric, results_dir,
                    on_run)
    started = time.perf_counter()
    if baseline is None:
        lm.set_intervention(mode="none")
        baseline = runs.scores("base-none-ppl", "no intervention")
    rows: dict[str, dict[str, float]] = {}
    for row in langs:
        if row in skip_rows:
            rows[row] = dict(baseline)
            continue
        lm.set_intervention(mode="deactivate", lang=row)
        rows[row] = runs.scores(f"base-{tag}-deactivate-{row}",
                                f"deactivating {row} neurons ({len(lm.neuron_file.units(row))} units)")
    lm.set_intervention(mode="none")
    seconds = time.perf_counter() - started
    tokens = runs.tokens[0] * runs.runs  # every run scores the same documents
    return {"baseline": baseline, "perplexity": [[rows[r][c] for c in langs] for r in langs],
            "matrix": [[rows[r][c] / baseline[c] - 1.0 for c in langs] for r in langs],
            "seconds": round(seconds, 2), "runs": runs.runs, "tokens": tokens,
            "tokens_per_second": tokens / seconds if seconds > 0 else 0.0}


def steering_gains(lm: Any, langs: list[str], cfg: EvalConfig, task_manager: Any, results_dir: Path, tag: str,
                   base_res: dict[str, Any] | None = None, results_name: str = "results_demo.json",
                   on_run: RunHook | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """lang_rate per language without and with that language's neurons activated (the demo's intervention).

    ``cfg`` supplies ``steer_value``, ``steer_strength``, ``steer_deactivate_others`` and ``steer_limit``.
    ``base_res`` (the unsteered ``lang_steer_*`` results of the same model and limit) skips the unsteered
    run. Every run's lm-eval results are saved under ``results_dir``. Returns (rates, unsteered results).
    """
    if base_res is None:
        if on_run is not None:
            on_run("no intervention")
        lm.set_intervention(mode="none")
        base_res = evaluation.evaluate(lm, [steer_task(lang) for lang in langs], limit=cfg.steer_limit,
                                       task_manager=task_manager)
        write_results(results_dir / "base-none-steer" / results_name, base_res, force=True)
    rates = {}
    for lang in langs:
        if on_run is not None:
            on_run(f"activating {lang} neurons x{cfg.steer_strength}")
        lm.set_intervention(mode="activate", lang=lang, value=cfg.steer_value, strength=cfg.steer_strength,
                            deactivate="others" if cfg.steer_deactivate_others else None)
        res = evaluation.evaluate(lm, [steer_task(lang)], limit=cfg.steer_limit, task_manager=task_manager)
        write_results(results_dir / f"base-{tag}-activate-{lang}" / results_name, res, force=True)
        before = results_metric(base_res, steer_task(lang), LANG_RATE)
        after = results_metric(res, steer_task(lang), LANG_RATE)
        stderr = metric_stderr(res, steer_task(lang), LANG_RATE)
        rates[lang] = {"unsteered": before, "steered": after, "gain": after - before, "stderr": stderr}
    lm.set_intervention(mode="none")
    return rates, base_res


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
