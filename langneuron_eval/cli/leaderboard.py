"""``langneuron leaderboard``: tables and a static page from lm-eval results files.

The work is in ``langneuron_eval.leaderboard``; this
module only maps arguments onto it, so the command and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys

from langneuron_eval.leaderboard.build import DEFAULT_TITLE


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name, help="build leaderboard.md / leaderboard.csv / index.html from lm-eval results",
        description="Read lm-eval results files (results_*.json, found recursively; samples_*.jsonl next to them "
                    "are counted) and write ranked views (detectors, selectivity, steering, models and alignment, and "
                    "--sweep results) to "
                    "leaderboard.md and one CSV each, every (model, detector, intervention) configuration to "
                    "leaderboard.csv, and a self-contained index.html with the views, figures and the full table. "
                    "Malformed results files and files from lm-eval other than 0.4.x are skipped with a warning.")
    p.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                   help="folder(s) searched recursively for results_*.json (lm-eval's --output_path), or results files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--ppl-matrix", nargs="+", action="extend", default=[], metavar="FILE",
                   help="ppl_matrix.json from `langneuron ppl-matrix`: one heatmap each")
    p.add_argument("--neurons", nargs="+", action="extend", default=[], metavar="FILE",
                   help="neuron files from `langneuron detect`: per-layer counts per language, and the detector "
                        "parameters of rows whose neuron sha256 matches")
    p.add_argument("--sweep", nargs="+", action="extend", default=[], metavar="FILE",
                   help="sweep.json from `langneuron sweep`: the setting chosen per language on dev with its test "
                        "scores (success, lang_rate, damage, controls) and every setting tried, as a view")
    p.add_argument("--title", default=DEFAULT_TITLE, help=f"page and Markdown title (default: {DEFAULT_TITLE!r})")
    p.add_argument("--description", default="", help="one paragraph under the title: what is compared, and why")
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("BASE", "ALIGNED"),
                   help="models to compare in the alignment table, by name as shown or as recorded (repeatable); "
                        "default: every x-base with each other x-... model")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs in --out")
    p.set_defaults(func=run)


def _warn(message: str) -> None:
    print(f"langneuron leaderboard: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from langneuron_eval.leaderboard import build_leaderboard

    written = build_leaderboard(args.results, args.out, ppl_matrices=args.ppl_matrix, neurons=args.neurons,
                                force=args.force, warn=_warn, title=args.title, description=args.description,
                                pairs=[tuple(p) for p in args.pair], sweeps=args.sweep)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
