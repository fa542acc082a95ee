"""``langneuron import-stats``: activation files of the seed code -> a statistics file every detector reads.

    langneuron import-stats data/ --model-type llama --out stats.safetensors
    langneuron import-stats activations/mgsm --model-type mistral --langs en,zh,ja --out stats.safetensors
    langneuron import-stats zh=activation.zh.train.llama-7b en=activation.en.train.llama-7b --model PATH --out s.safetensors
"""

from __future__ import annotations

import argparse
import sys

from langneuron_eval.core.sites import FFN_SITES
from langneuron_eval.errors import LangNeuronError


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name, help="import activation counts recorded by the LAPE or NJUNLP reference code",
        description="Convert the reference code's per-language activation files (torch.save dicts with "
                    "'over_zero' and 'n' or 'total_tokens', loaded with weights_only=True) into a statistics file "
                    "for `langneuron detect`. NJUNLP's prefix.activation.* files are subtracted (response tokens).")
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="a folder of activation.<lang>.<model> files, such files, or lang=PATH")
    p.add_argument("--out", help="statistics file to write (.safetensors)")
    p.add_argument("--model-type", help="config.model_type of the recorded model (llama, mistral, bloom, ...)")
    p.add_argument("--model", help="model directory or hub id: read its config (no weights) for the model type "
                                   "and check the files' layers x units against it")
    p.add_argument("--site", default="act_out", choices=FFN_SITES,
                   help="site the counts were taken at (default act_out: the gate activation LAPE and NJUNLP count)")
    p.add_argument("--langs", help="comma-separated languages to import, in this order (default: all found, sorted)")
    p.add_argument("--tag", help="the model part of the names (after activation.<lang>.) when a folder holds several")
    p.add_argument("--no-prefix", action="store_true",
                   help="ignore prefix.activation.* files (count every token instead of response tokens)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from langneuron_eval.core.import_stats import (
        ImportConfig,
        find_reference_files,
        import_reference,
        model_shape,
    )
    from langneuron_eval.fileio import check_writable

    if not args.out:
        raise LangNeuronError("--out is required (the statistics file to write)")
    if not args.model_type and not args.model:
        raise LangNeuronError("name the recorded model: --model-type TYPE (e.g. llama, mistral) or --model PATH")
    check_writable(args.out, args.force)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()] if args.langs else None
    model_type = args.model_type or model_shape(args.model)[0]
    config = ImportConfig(model_type=model_type, site=args.site, langs=langs, tag=args.tag,
                          subtract_prefix=not args.no_prefix, model=args.model)
    refs = find_reference_files(args.sources, config)  # every file and language checked before loading any
    stats, report = import_reference(refs, config)
    for line in report.warnings():
        print(f"langneuron import-stats: warning: {line}", file=sys.stderr)
    stats.save(args.out, force=args.force)
    tokens = ", ".join(f"{lang} {int(n)}" for lang, n in zip(stats.languages, stats.n_tokens))
    what = "response tokens" if any(r.prefix_path for r in refs) else "tokens"
    sums = "" if stats.has_activation_sums else "; counts only (no activation sums: `activate` needs value=<number>)"
    print(f"wrote {args.out}: {report.fmt} files, {len(stats.languages)} languages x {stats.num_layers} layers x "
          f"{stats.intermediate_size} units ({stats.fingerprint.describe()}); {what}: {tokens}{sums}")
    return 0
