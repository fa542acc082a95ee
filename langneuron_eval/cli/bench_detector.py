"""``langneuron bench-detector``: the standard battery for a detector, beside the reference detectors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_output_dir


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name, help="score a detector beside lape, kojima_ap, zhang and a random floor (counts, ppl matrix, steering)",
        description="Record statistics (or reuse them), run the detector, the references lape, kojima_ap and zhang, "
                    "and a random control with the detector's per-layer counts drawn --floor-draws times, then report "
                    "neuron counts, overlap, layer distribution, the perplexity-change matrix with its diagonal "
                    "dominance and the steering gain per language (on_target_fluent: on target and not degenerate; "
                    "lang_rate beside it), each with its interval. Writes bench.json, bench.md, "
                    "lm-eval results and a leaderboard into --out. With --baseline, exits 1 when a figure of the "
                    "tested detector is significantly worse than the golden value given both runs' uncertainty "
                    "(one-sided tests, Holm-corrected: a rerun without real change fails with probability at most "
                    "--alpha; docs/statistics.md).")
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
    p.add_argument("--alpha", type=float, default=0.05,
                   help="false-alarm rate of the --baseline check (Holm-corrected over the figures; default 0.05)")
    p.add_argument("--seed", type=int, default=0,
                   help="lm-eval's seeds of the (sampled) steering generations, the random control's draws, a "
                        "tested detector's own 'seed' parameter unless given, and the bootstrap (default 0)")
    p.add_argument("--floor-draws", type=int, default=None,
                   help="seeded draws of the random control that make the floor (default 5; 2 with --quick)")
    p.add_argument("--steering-from", default=None, metavar="SWEEP.json",
                   help="per language, steer with the setting `langneuron sweep` chose (its overall setting for a "
                        "language it chose none for) instead of the default intervention")
    p.add_argument("--ppl-limit", type=int, default=None, help="held-out lines per language for the matrix")
    p.add_argument("--steer-limit", type=int, default=None, help="generations per language and steering run")
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

    if args.strength is not None and args.steering_from:
        raise LangNeuronError("--strength and --steering-from cannot be combined: the sweep sets each strength")
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
        format_regressions,
        read_golden,
        run_bench,
        steering_from_sweep,
        write_golden,
        write_report,
    )

    out = check_output_dir(args.out, args.force or args.reuse, hint="pass --reuse to continue from its files, "
                           "--force to replace them, or choose another --out")
    if not 0 < args.alpha < 1:
        raise LangNeuronError("--alpha must be between 0 and 1")
    for flag, value in (("--floor-draws", args.floor_draws), ("--ppl-limit", args.ppl_limit),
                        ("--steer-limit", args.steer_limit)):
        if value is not None and value < 1:
            raise LangNeuronError(f"{flag} must be at least 1")
    if args.baseline:
        read_golden(Path(args.baseline))  # a malformed golden file fails now, not after the battery ran
    params = parse_params(args.param)
    cfg = BenchConfig.quick() if args.quick else BenchConfig()
    if args.model:  # a user's model: a declared default (the demo's x12 suits only the 3M demo model)
        from langneuron_eval.pipelines.measurements import USER_MODEL_STEERING

        for key, value in USER_MODEL_STEERING.items():
            setattr(cfg, key, value)
    if args.strength is not None:
        cfg.steer_strength = args.strength
    cfg.seed = args.seed
    for key in ("floor_draws", "ppl_limit", "steer_limit"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    if args.langs:
        cfg.langs = tuple(dict.fromkeys(normalize_many([x.strip() for x in args.langs.split(",") if x.strip()])))
    task_manager = _check_inputs(args, list(cfg.langs))
    if args.steering_from:
        cfg.steering, notes = steering_from_sweep(Path(args.steering_from), list(cfg.langs))
        cfg.steering_from = str(args.steering_from)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)

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
        records, warnings = check_golden(result, Path(args.baseline), args.alpha)
        for w in warnings:
            print(w, file=sys.stderr)
        print(f"\nregression check against {args.baseline} (alpha {args.alpha:g}):")
        print(format_regressions(records))
        regressed = [r for r in records if r.regressed]
        for r in regressed:
            print(f"langneuron bench-detector: {r.verdict}: {r.figure}", file=sys.stderr)
        if regressed:
            return 1
        print(f"no significant regression against {args.baseline}")
    return 0
