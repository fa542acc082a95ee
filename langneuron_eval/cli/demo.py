"""``langneuron demo``: the full pipeline on the shipped tiny model, offline."""

from __future__ import annotations

import argparse

from langneuron_eval.fileio import check_output_dir


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="run the whole pipeline on the embedded demo model (offline, CPU)",
                       description="Record statistics, run lape/kojima_ap/zhang/random, the perplexity-change "
                                   "matrix, steering per language, xqa/xmath for the base and aligned demo models, "
                                   "the neuron-type shift and the leaderboard; prints a summary table.")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--quick", action="store_true", help="tiny sample sizes (a smoke test, numbers are noise)")
    p.add_argument("--model", default=None, help="base model (default: the shipped demo model)")
    p.add_argument("--aligned-model", default=None, help="aligned twin (default: the shipped one)")
    p.add_argument("--strength", type=float, default=None, help="steering strength (default: the demo's choice)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the sampled steering generations (lm-eval's four seeds, as lm_eval --seed N), the "
                        "random detector's draw and the bootstrap intervals (default: lm-eval's seeds, 0 otherwise)")
    p.add_argument("--force", action="store_true", help="reuse a non-empty --out folder, replacing its files")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from langneuron_eval.pipelines.demo import DemoConfig, run_demo

    out = check_output_dir(args.out, args.force, hint="pass --force to overwrite the demo's files there or choose --out")
    cfg = DemoConfig.quick() if args.quick else DemoConfig()
    if args.strength is not None:
        cfg.steer_strength = args.strength
    cfg.seed = args.seed
    run_demo(out, cfg, base_model=args.model, aligned_model=args.aligned_model, progress=not args.no_progress,
             verbose=getattr(args, "verbose", False))
    return 0
