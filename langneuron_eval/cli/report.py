"""``langneuron neurons-report``: describe a neuron file, or compare two.

    langneuron neurons-report neurons.json [other.json] [--json report.json [--force]]
"""

from __future__ import annotations

import argparse

from langneuron_eval.errors import LangNeuronError


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help="counts, layer distribution, overlaps and classes of neuron files",
        description="Summarise a neuron file (per-language counts, units per layer, pairwise overlap "
                    "|A∩B|/|A|, units by number of languages); with a second file, also compare them "
                    "(per-language overlap, change of specific/related/general counts).")
    p.add_argument("files", nargs="*", metavar="NEURONS.json", help="one or two neuron files")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    p.add_argument("--force", action="store_true", help="overwrite --json OUT if it exists")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if not 1 <= len(args.files) <= 2:
        raise LangNeuronError(f"give one or two neuron files, got {len(args.files)}")
    from langneuron_eval.core.neurons import NeuronFile
    from langneuron_eval.detectors.report import (
        compare_neuron_files,
        render_comparison,
        render_summary,
        summarize,
    )
    from langneuron_eval.fileio import check_writable, write_json

    if args.json:
        check_writable(args.json, args.force)
    files = [NeuronFile.load(f) for f in args.files]
    from langneuron_eval.provenance import versions

    report: dict = {"files": list(args.files), "content_sha256": [nf.sha256() for nf in files],
                    "summaries": [summarize(nf) for nf in files], "versions": versions()}
    texts = [render_summary(s, f) for s, f in zip(report["summaries"], args.files)]
    if len(files) == 2:
        report["comparison"] = compare_neuron_files(files[0], files[1])
        texts.append(render_comparison(report["comparison"], args.files[0], args.files[1]))
    print("\n\n".join(texts))
    if args.json:
        write_json(args.json, report, force=args.force)
    return 0
