"""``langneuron ppl-matrix``: LAPE's perplexity-change matrix, computed with lm-eval's ``lang_ppl_*`` tasks.

Row i = language whose neurons are deactivated, column j = language whose held-out text is scored; the
measurement itself is :func:`langneuron_eval.pipelines.measurements.ppl_change_matrix`. One model is loaded and all
``1 + #languages`` conditions are scored in one engine call (rows of a batch carry different interventions).
``--corpus`` scores the user's own held-out text (the corpus spec ``langneuron record`` takes), handed to the
tasks as lm-eval metadata; it must not share lines with the text the neurons were detected on.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langneuron_eval.core.ppl_matrix import PplMatrixFile
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_output_dir, check_writable, sha256_file
from langneuron_eval.lmeval.catalogue import PPL_METRIC, PPL_METRICS, ppl_task
from langneuron_eval.pipelines.measurements import (
    check_held_out,
    eval_task_manager,
    format_change,
    held_out_sources,
    plot_ppl_matrix,
    ppl_change_matrix,
)
from langneuron_eval.pipelines.progress import Progress, quiet_lm_eval
from langneuron_eval.provenance import versions


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="perplexity change matrix when each language's neurons are deactivated",
                       description="Evaluate lang_ppl_<lang> (lm-eval) without intervention and with each language's "
                                   "neurons deactivated; write ppl_matrix.json and a heatmap ppl_matrix.png.")
    p.add_argument("--model", default=None, help="model directory or hub id (default: the shipped demo model)")
    p.add_argument("--neurons", required=True, help="neuron file from `langneuron detect`")
    p.add_argument("--langs", default=None,
                   help="comma-separated languages (any code `langneuron` knows, e.g. zh-Hans, deu_Latn), rows and "
                        "columns in this order (default: the neuron file's languages that have held-out text)")
    p.add_argument("--corpus", action="append", default=None, metavar="SPEC",
                   help="held-out text to score, as `langneuron record --corpus` takes it: a folder of "
                        "<lang>.txt/.jsonl, lang=path or lang=hf:DATASET...; repeatable (default: the shipped "
                        "demo text, evaluation split)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="only warn when the held-out text shares lines with the neurons' statistics corpus")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--metric", default=PPL_METRIC, choices=PPL_METRICS)
    p.add_argument("--limit", type=int, default=None, help="score only the first N lines per language")
    p.add_argument("--batch-size", default="auto",
                   help="windows per forward pass (an integer), or 'auto': as many as the engine's memory budget allows")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    p.add_argument("--confidence", type=float, default=0.95,
                   help="confidence of the per-cell intervals (paired document bootstrap; default 0.95)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing ppl_matrix.json / ppl_matrix.png")
    p.set_defaults(func=run)


def _batch_size(text: str) -> int | str:
    if text == "auto" or text.startswith("auto:"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise LangNeuronError(f"--batch-size must be an integer or 'auto', got {text!r}") from None
    if value < 1:
        raise LangNeuronError("--batch-size must be at least 1")
    return value


def _requested(arg: str) -> list[str]:
    from langneuron_eval.languages import normalize

    langs = []
    for code in dict.fromkeys(x.strip() for x in arg.split(",") if x.strip()):
        try:
            langs.append(normalize(code))
        except LangNeuronError as e:
            raise LangNeuronError(f"no lang_ppl task for {code!r}: {e}") from None
    return list(dict.fromkeys(langs))


def _languages(arg: str | None, file_langs: list[str], sources: list[Any] | None) -> list[str]:
    """The rows/columns: ``--langs`` (normalised), else the neuron file's languages that have held-out text."""
    from langneuron_eval.languages import DEMO_LANGUAGES

    text_langs = list(DEMO_LANGUAGES) if sources is None else [s.lang for s in sources]
    langs = _requested(arg) if arg else [lang for lang in file_langs if lang in text_langs]
    if not langs:
        raise LangNeuronError(f"no languages to evaluate; the neuron file has {', '.join(file_langs) or 'none'} and "
                              f"the held-out text covers {', '.join(text_langs)}")
    for lang in langs:
        if lang not in file_langs:
            raise LangNeuronError(f"language {lang!r} has no neurons in the neuron file (it has {', '.join(file_langs)})")
    return langs


@dataclass
class _Plan:
    """Everything checked before the model is loaded."""

    out: Path
    langs: list[str]
    neurons: Any
    model_path: str
    batch_size: int | str
    task_manager: Any
    corpus: list[Any] | None  # CorpusSource per language with --corpus


def _plan(args: argparse.Namespace) -> _Plan:
    """Check outputs, languages, text, overlap and tasks; nothing slow has run yet."""
    from langneuron_eval.core.modeling import default_model_path
    from langneuron_eval.core.neurons import NeuronFile

    out = check_output_dir(args.out)
    for path in (out / "ppl_matrix.json", out / "ppl_matrix.png"):
        check_writable(path, args.force)
    if args.limit is not None and args.limit < 1:
        raise LangNeuronError("--limit must be at least 1")
    batch_size = _batch_size(str(args.batch_size))
    neurons = NeuronFile.load(args.neurons)
    sources = held_out_sources(args.corpus, _requested(args.langs) if args.langs else None)
    langs = _languages(args.langs, list(neurons.languages), sources)
    if sources is not None:
        sources = [s for s in sources if s.lang in langs]
        for line in check_held_out(sources, neurons.provenance.get("stats_corpus"), args.allow_overlap):
            print(f"warning: {line}", file=sys.stderr)
    tm = eval_task_manager(sources, [ppl_task(lang) for lang in langs])
    return _Plan(out, langs, neurons, args.model or str(default_model_path()), batch_size, tm, sources)


def run(args: argparse.Namespace) -> int:
    from langneuron_eval.evidence.intervals import check_confidence  # scipy: only when the command runs
    from langneuron_eval.lmeval import evaluation

    check_confidence(args.confidence)
    if args.resamples < 1:
        raise LangNeuronError("--resamples must be at least 1")
    plan = _plan(args)
    log = Progress("ppl-matrix")
    log(f"loading {plan.model_path} with neurons {args.neurons}")
    with quiet_lm_eval(getattr(args, "verbose", False)):
        lm = evaluation.load_model(plan.model_path, neurons=args.neurons, device=args.device,
                                   batch_size=plan.batch_size, dtype=args.dtype)
        bar = log(f"perplexity-change matrix: {len(plan.langs)} languages, {len(plan.langs) + 1} runs",
                  runs=len(plan.langs) + 1)
        result = ppl_change_matrix(lm, plan.langs, metric=args.metric, limit=args.limit,
                                   task_manager=plan.task_manager, on_run=bar.run)
        bar.close()
    json_path, png_path = plan.out / "ppl_matrix.json", plan.out / "ppl_matrix.png"
    _document(args, plan, result).save(json_path, force=args.force)
    plot_ppl_matrix(png_path, plan.langs, result["matrix"], args.metric, args.force)
    _print_matrix(plan.langs, result)
    for cell in result["nonfinite"]:
        print(f"not finite: row {cell['row']}, column {cell['column']}: {cell['reason']}")
    print(f"{result['tokens']} tokens scored under {result['runs']} conditions in one pass: "
          f"{result['tokens_per_second']:.0f} tokens/s")
    print(f"wrote {json_path} and {png_path} ({result['seconds']:.0f} s)")
    return 0


def _document(args: argparse.Namespace, plan: _Plan, result: dict[str, Any]) -> PplMatrixFile:
    """ppl_matrix.json: the matrix, its definition and what it was computed from."""
    import lm_eval

    from langneuron_eval import __version__
    from langneuron_eval.lmeval import evaluation

    neurons = plan.neurons
    provenance = {
        "model": plan.model_path,
        "neurons": str(Path(args.neurons).resolve()),
        "neurons_sha256": sha256_file(args.neurons),
        "neurons_content_sha256": neurons.sha256(),
        "detector": neurons.detector,
        "neuron_counts": {lang: len(neurons.units(lang)) for lang in plan.langs},
        "limit": args.limit,
        "dtype": args.dtype,
        "device": args.device,
        "langneuron_eval_version": __version__,
        "lm_eval_version": lm_eval.__version__,
        "versions": versions(),
        "seeds": evaluation.seeds_record(),
    }
    if plan.corpus is not None:
        provenance["corpus"] = {s.lang: s.fingerprint() for s in plan.corpus}
    from langneuron_eval.evidence.ppl import attach_evidence

    pm = PplMatrixFile(plan.langs, result["matrix"], result["baseline"], args.metric, result["perplexity"],
                       provenance, per_document=result.get("per_document"), nonfinite=result.get("nonfinite") or None)
    return attach_evidence(pm, args.confidence, args.resamples, args.seed)


def _print_matrix(langs: list[str], result: dict[str, Any]) -> None:
    width = max(7, *(len(x) for x in langs)) + 1
    print("baseline " + " ".join(f"{result['baseline'][c]:>{width}.4g}" for c in langs))
    print("deact\\eval" + "".join(f"{c:>{width + 1}}" for c in langs))
    for r, row in zip(langs, result["matrix"]):
        print(f"{r:<10}" + "".join(f"{format_change(v):>{width + 1}}" for v in row))
