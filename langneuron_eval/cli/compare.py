"""``langneuron compare BASE ALIGNED``: per-task, per-metric differences between two lm-eval runs.

Each argument is an lm-eval results JSON or an ``--output_path`` directory (the newest
``results_*.json`` below it is used). For every task and metric present in both: base value,
aligned value, delta (aligned - base), the combined standard error ``sqrt(se_base² + se_aligned²)``
from the stderrs lm-eval reports (independent samples; ``N/A`` when lm-eval has none, e.g. for
perplexities or corpus BLEU) and ``z = delta / se``. A |z| below ~2 is within noise. The
computation is :mod:`langneuron_eval.lmeval.comparison`, shared with the leaderboard's alignment table.
"""

from __future__ import annotations

import argparse
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_writable, write_json
from langneuron_eval.lmeval.comparison import compare, load_scores
from langneuron_eval.lmeval.results import find_results


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="compare two lm-eval results files (base vs aligned/intervened)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("base", help="results JSON of the base run, or its --output_path directory")
    p.add_argument("aligned", help="results JSON of the other run, or its --output_path directory")
    p.add_argument("--tasks", default=None, help="comma-separated task names or globs to keep (default: all)")
    p.add_argument("--metrics", default=None, help="comma-separated metric names to keep (default: all)")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="also write the comparison as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.set_defaults(func=run)


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "N/A"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ["task", "metric", "filter", "base", "aligned", "delta", "stderr", "z"]
    body = []
    for r in rows:
        arrow = {True: " ↑", False: " ↓"}.get(r["higher_is_better"], "")
        body.append([r["task"], r["metric"] + arrow, r["filter"], _fmt(r["base"]), _fmt(r["aligned"]),
                     _fmt(r["delta"], signed=True), _fmt(r["stderr"]),
                     "N/A" if r["z"] is None else f"{r['z']:+.2f}"])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    for row in body:
        lines.append("  ".join(str(x).ljust(w) if i < 3 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    base_path, aligned_path = find_results(args.base), find_results(args.aligned)
    if args.json_out:
        check_writable(args.json_out, args.force)
    base, base_doc = load_scores(base_path)
    aligned, aligned_doc = load_scores(aligned_path)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    hib = {**(base_doc.get("higher_is_better") or {}), **(aligned_doc.get("higher_is_better") or {})}
    rows = compare(base, aligned, tasks, metrics, hib)
    print(f"base:    {base_path}")
    print(f"aligned: {aligned_path}")
    if not rows:
        raise LangNeuronError("the two results files share no task/metric (after --tasks/--metrics filtering)")
    print(format_table(rows))
    base_tasks, aligned_tasks = {k.task for k in base}, {k.task for k in aligned}
    only_base, only_aligned = sorted(base_tasks - aligned_tasks), sorted(aligned_tasks - base_tasks)
    if only_base:
        print(f"only in base: {', '.join(only_base)}")
    if only_aligned:
        print(f"only in aligned: {', '.join(only_aligned)}")
    print("stderr = sqrt(stderr_base² + stderr_aligned²) from lm-eval's reported stderrs; z = delta / stderr")
    if args.json_out:
        from langneuron_eval.fileio import sha256_file
        from langneuron_eval.provenance import versions

        write_json(args.json_out, {"base": str(base_path), "aligned": str(aligned_path),
                                   "base_sha256": sha256_file(base_path), "aligned_sha256": sha256_file(aligned_path),
                                   "versions": versions(), "rows": rows},
                   force=args.force)
        print(f"wrote {args.json_out}")
    return 0
