"""``langneuron bench-detector``: the standard battery for a detector, beside the reference detectors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_output_dir


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name, help="score a detector beside lape, kojima_ap, zhang and random (counts, ppl matrix, steering)",
        description="Record statistics (or reuse them), run the detector and the references lape, kojima_ap, zhang "
                    "and random, then report neuron counts, overlap, layer distribution, the perplexity-change matrix "
                    "with its diagonal dominance and the steering gain per language. Writes bench.json, bench.md, "
                    "lm-eval results and a leaderboard into --out. With --baseline, exits 1 when a figure of the "
                    "tested detector falls below the golden value minus --tolerance.")
    p.add_argument("detector", metavar="METHOD_OR_MODULE:CLASS",
                   help="a detector name (built-in or entry point) or a 'module:attr' target")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="detector parameter (repeatable)")
    p.add_argument("--model", default=None, help="model directory or hub id (default: the shipped demo model)")
    p.add_argument("--corpus", action="append", default=None, metavar="SPEC",
                   help="text to record the statistics on, as `langneuron record --corpus` takes it (a folder of "
                        "<lang>.txt/.jsonl, lang=path, lang=hf:...); repeatable (default: the demo corpus, detection "
                        "split)")
    p.add_argument("--eval-corpus", action="append", default=None, metavar="SPEC",
                   help="held-out text for the perplexity matrix (lang_ppl_<lang>), in the same form; it must not "
                        "share lines with the statistics' text (default: the shipped demo text, evaluation split)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="only warn when --eval-corpus shares lines with the statistics' text")
    p.add_argument("--stats", default=None, help="use these activation statistics instead of recording "
                                                 "(need per-sentence means for kojima_ap)")
    p.add_argument("--langs", default=None, help="comma-separated languages, any code `langneuron` knows "
                                                 "(default: the demo's six)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--baseline", default=None, metavar="GOLDEN.json", help="fail (exit 1) on regressions against it")
    p.add_argument("--tolerance", type=float, default=0.05, help="allowed drop below the golden values (default 0.05)")
    p.add_argument("--write-baseline", default=None, metavar="FILE", help="write a golden file from this run")
    p.add_argument("--quick", action="store_true", help="tiny sample sizes (a smoke test; figures are noise)")
    p.add_argument("--strength", type=float, default=None, help="steering strength (default: 12 with the other languages "
                   "zeroed on the demo model; 1, nothing zeroed, with --model: docs/real_model.md)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse statistics and cached figures of an earlier run in --out (a detector is re-evaluated "
                        "only if its neurons changed)")
    p.add_argument("--force", action="store_true", help="use a non-empty --out folder, replacing its files")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _detection_corpus(args: argparse.Namespace, langs: list[str]) -> dict[str, dict]:
    """The statistics' corpus fingerprints (language -> sha256, path), from --stats or the text to record."""
    from langneuron_eval.core.corpus import resolve_corpus, split_specs
    from langneuron_eval.core.stats import ActivationStats

    if args.stats:
        return ActivationStats.load(args.stats).metadata.get("corpus") or {}
    from langneuron_eval.core.demo_assets import demo_corpus_dir

    specs = split_specs(args.corpus) if args.corpus else [str(demo_corpus_dir("detect"))]
    return {s.lang: s.fingerprint() for s in resolve_corpus(specs, langs)}


def _check_inputs(args: argparse.Namespace, langs: list[str]) -> object:
    """Corpora, held-out text, overlap and tasks, before anything is recorded; returns the task manager."""
    from langneuron_eval.pipelines.measurements import check_held_out, eval_task_manager, held_out_sources

    if args.baseline and not Path(args.baseline).is_file():
        raise LangNeuronError(f"golden file not found: {args.baseline}")
    if args.stats and not Path(args.stats).is_file():
        raise LangNeuronError(f"statistics file not found: {args.stats}")
    recorded = _detection_corpus(args, langs)
    sources = held_out_sources(args.eval_corpus, langs)
    if sources is not None:
        for line in check_held_out(sources, recorded, args.allow_overlap):
            print(f"warning: {line}", file=sys.stderr)
    tasks = [f"{family}_{lang}" for family in ("lang_ppl", "lang_steer") for lang in langs]
    return eval_task_manager(sources, tasks)


def run(args: argparse.Namespace) -> int:
    from langneuron_eval.detectors.registry import parse_params
    from langneuron_eval.languages import normalize_many
    from langneuron_eval.pipelines.detector_battery import (
        BenchConfig,
        check_golden,
        run_bench,
        write_golden,
        write_report,
    )

    out = check_output_dir(args.out, args.force or args.reuse, hint="pass --reuse to continue from its files, "
                           "--force to replace them, or choose another --out")
    if args.tolerance < 0:
        raise LangNeuronError("--tolerance must be >= 0")
    params = parse_params(args.param)
    cfg = BenchConfig.quick() if args.quick else BenchConfig()
    if args.model:  # a user's (real) model: the steering that works on real models, not the demo model's
        from langneuron_eval.pipelines.measurements import REAL_MODEL_STEERING

        for key, value in REAL_MODEL_STEERING.items():
            setattr(cfg, key, value)
    if args.strength is not None:
        cfg.steer_strength = args.strength
    if args.langs:
        cfg.langs = tuple(dict.fromkeys(normalize_many([x.strip() for x in args.langs.split(",") if x.strip()])))
    task_manager = _check_inputs(args, list(cfg.langs))

    result = run_bench(args.detector, params, out, cfg, model=args.model,
                       corpus=",".join(args.corpus) if args.corpus else None, stats_path=args.stats,
                       reuse=args.reuse, progress=not args.no_progress, verbose=getattr(args, "verbose", False),
                       task_manager=task_manager)
    print(write_report(out, result), end="")
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'} and {out / 'leaderboard'} ({result['seconds']:.0f}s)")
    if args.write_baseline:
        write_golden(Path(args.write_baseline), result)
        print(f"wrote golden file {args.write_baseline}")
    if args.baseline:
        regressions, warnings = check_golden(result, Path(args.baseline), args.tolerance)
        for w in warnings:
            print(w, file=sys.stderr)
        for line in regressions:
            print(f"langneuron bench-detector: {line}", file=sys.stderr)
        if regressions:
            return 1
        print(f"no regression against {args.baseline} (tolerance {args.tolerance:g})")
    return 0
