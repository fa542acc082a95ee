"""``langneuron detect``: run a detector on activation statistics and write a neuron file.

    langneuron detect --stats stats.safetensors --method lape [--param top_rate=0.02 ...] --out neurons.json [--force]
    langneuron detect --list
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING

from langneuron_eval.errors import LangNeuronError


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help="find language-specific neurons in activation statistics",
        description="Run a detection method on activation statistics and write a neuron file (JSON). "
                    "Methods: built-ins, third-party entry points (group langneuron_eval.detectors), "
                    "or any 'module:attr' target.")
    # not argparse-required: a missing option must give our one-line error, not usage text
    p.add_argument("--stats", help="activation statistics (.safetensors) from `langneuron record`")
    p.add_argument("--method", default="lape", help="detector name or module:attr target (default: lape)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="detector parameter, repeatable (see --list for names and defaults)")
    p.add_argument("--out", help="neuron file to write (.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="memory for reading per-sentence means (kojima_ap, median/pNN values), e.g. 8G; larger "
                        "means are read in blocks of units that fit (default: half the memory available now)")
    p.add_argument("--list", action="store_true", help="list the available methods and their parameters, then exit")
    p.set_defaults(func=run)
    return p


def list_methods() -> int:
    from langneuron_eval.detectors.registry import REGISTRY, get_detector

    for name in REGISTRY.names():
        try:
            det = get_detector(name)
        except LangNeuronError as e:
            print(f"{name}  [{REGISTRY.origin(name)}]  (cannot be loaded: {e})")
            continue
        print(f"{name}  [{REGISTRY.origin(name)}]  {det.describe()}")
        for spec in det.param_specs():
            default = "required" if spec.default is MISSING else f"default {spec.default!r}"
            print(f"    {spec.name} ({spec.type_name()}, {default}){': ' + spec.help if spec.help else ''}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list:
        return list_methods()
    if not args.stats:
        raise LangNeuronError("--stats is required (activation statistics from `langneuron record`)")
    if not args.out:
        raise LangNeuronError("--out is required (where to write the neuron file)")
    from langneuron_eval.detectors.registry import parse_params

    params = parse_params(args.param)
    from langneuron_eval.core.sentence_store import parse_memory_size, set_memory_budget

    set_memory_budget(parse_memory_size(args.memory_budget) if args.memory_budget else None)

    from langneuron_eval.core.stats import ActivationStats
    from langneuron_eval.detectors.runner import run_detector
    from langneuron_eval.fileio import check_writable

    check_writable(args.out, args.force)  # fail before the (possibly long) detection
    stats = ActivationStats.load(args.stats)
    nf = run_detector(args.method, stats, params)
    nf.save(args.out, force=args.force)
    from langneuron_eval.detectors.report import table

    unique = len({u for units in nf.languages.values() for u in units})
    print(f"{nf.detector}: {unique} unique units in {len(nf.languages)} languages -> {args.out}")
    print(table(["language", "units"], [[lang, len(u)] for lang, u in nf.languages.items()]))
    return 0
