"""``langneuron normalize-results RUN --out FILE``: an lm-eval results file without its clock fields.

``RUN`` is a results JSON or an ``lm_eval --output_path`` directory (its newest ``results_*.json``).
The output drops ``date`` and ``total_evaluation_time_seconds`` (and ``start_time``/``end_time`` where
present), sorts keys and records what it dropped, so two runs with the same model, tasks, arguments,
seeds and versions give byte-identical files that ``cmp`` or ``sha256sum`` can check.
"""

from __future__ import annotations

import argparse

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_writable, read_json
from langneuron_eval.lmeval.results import find_results, write_results


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="drop the clock fields of an lm-eval results file (reproducible bytes)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("run", help="lm-eval results JSON, or the --output_path directory of a run")
    p.add_argument("--out", required=True, help="file to write the normalised results to")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, args.force)
    source = find_results(args.run)
    doc = read_json(source, "lm-eval results file")
    try:  # normalize() rejects anything that is not a results dict, lists and scalars included
        write_results(args.out, doc, force=args.force)
    except LangNeuronError as e:
        raise LangNeuronError(f"{source}: {e}") from None
    print(f"wrote {args.out} (from {source})")
    return 0
