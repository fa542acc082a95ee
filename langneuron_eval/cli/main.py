"""``langneuron`` entry point: one subcommand per module, errors as one line, never a traceback.

Each subcommand lives in ``langneuron_eval/cli/<name>.py`` and exposes ``add_parser(subparsers)``
(which sets ``func`` on its parser) so commands stay independent of each other.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from langneuron_eval.errors import LangNeuronError

# subcommand name -> module under langneuron_eval.cli (imported only when listed, to keep start-up fast)
COMMANDS: dict[str, str] = {
    "record": "record",
    "detect": "detect",
    "neurons-report": "report",
    "ppl-matrix": "ppl_matrix",
    "compare": "compare",
    "normalize-results": "normalize_results",
    "demo": "demo",
    "train-demo": "train_demo",
    "leaderboard": "leaderboard",
    "bench-detector": "bench_detector",
    "import-stats": "import_stats",
    "sweep": "sweep",
}


def build_parser() -> argparse.ArgumentParser:
    from langneuron_eval import __version__

    parser = argparse.ArgumentParser(
        prog="langneuron",
        description="Find, manipulate and evaluate language-specific neurons in multilingual LLMs.")
    parser.add_argument("--version", action="version", version=f"langneuron-eval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():  # a command module that fails to import is a broken install: say so
        importlib.import_module(f"langneuron_eval.cli.{module}").add_parser(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not args.verbose:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        rc = args.func(args)
    except LangNeuronError as e:
        if args.verbose:
            raise
        print(f"langneuron {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"langneuron {args.command}: interrupted; no partial output was written", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
