"""``langneuron record``: stream a corpus through a model and write activation statistics."""

from __future__ import annotations

import argparse
import os
import sys
import time

from langneuron_eval.core.corpus import resolve_corpus
from langneuron_eval.core.sites import SITES
from langneuron_eval.fileio import check_writable


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="record per-language activation statistics",
                       description="Run a corpus through a model and count, per language, layer and FFN neuron, "
                                   "the tokens with activation > 0 plus activation sums (safetensors output).")
    p.add_argument("--model", default=None, help="model directory or hub id (default: the shipped demo model)")
    p.add_argument("--corpus", action="append", default=None,
                   help="folder of <lang>.txt/<lang>.jsonl, or lang=path, or lang=hf:DATASET[:CONFIG][@SPLIT][#COLUMN]; "
                        "repeatable (default: the shipped demo corpus, detection split)")
    p.add_argument("--langs", default=None, help="comma-separated languages, in the order stored (default: all found)")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--site", default="act_out", choices=SITES,
                   help="neuron site (default: act_out; linear_out: the output of every linear module of a layer, "
                        "Kojima et al.'s unit scope)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512, help="truncate texts to this many tokens")
    p.add_argument("--max-sentences", type=int, default=None, help="use at most this many texts per language")
    p.add_argument("--sentence-means", action="store_true",
                   help="also store each sentence's mean activation (needed by kojima_ap) in OUT's sidecar "
                        "<stem>.sentences.safetensors, written row by row: S x layers x neurons x 4 bytes on disk "
                        "(2 with --sentence-dtype float16/bfloat16), flat memory")
    p.add_argument("--sentence-dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="storage of the per-sentence means (default float32; half the disk in 16 bits, see "
                        "docs/file_formats.md for the effect on kojima_ap)")
    p.add_argument("--count-special-tokens", action="store_true",
                   help="also count the positions of tokens the tokenizer adds (BOS, ...), as LAPE's code does; "
                        "by default only text tokens are counted (the choice is stored in the statistics)")
    p.add_argument("--act-module", default=None, metavar="TEMPLATE",
                   help="module path of the activation in every layer, with {layer}, e.g. "
                        "model.layers.{layer}.mlp.act_fn (overrides discovery for --site act_out)")
    p.add_argument("--down-module", default=None, metavar="TEMPLATE",
                   help="module path of the down projection in every layer, with {layer} (for --site down_in)")
    p.add_argument("--lid-check", type=float, default=0.2, metavar="SHARE",
                   help="warn when fastText LID disagrees with a file's declared language on more than this share "
                        "of its first 200 texts (default 0.2; 1 disables)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--device-map", default=None, metavar="MAP",
                   help="let Accelerate spread the layers over the available devices (auto, balanced, sequential, "
                        "cpu) instead of --device; counters stay on each layer's device; not with torchrun")
    p.add_argument("--chunk-size", type=int, default=1024, help="texts read, sorted by length and batched at a time")
    p.add_argument("--checkpoint-every", type=int, default=8, metavar="CHUNKS",
                   help="snapshot progress to OUT.partial every this many chunks (0: never)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.partial")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _init_distributed(device: str) -> tuple[int, int, str]:
    """Join the process group that torchrun / accelerate launch describe in the environment.

    Returns (rank, world size, device). With ``--device cuda`` each process takes the GPU of its local rank
    and the group uses NCCL (collectives then run on that GPU); otherwise gloo on the CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, device
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    if device == "cuda":  # one GPU per process, as torchrun / accelerate number them
        device = f"cuda:{local_rank}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _module_template(args: argparse.Namespace) -> str | None:
    """The user's module-path template for the chosen site, checked before any model is loaded."""
    from langneuron_eval.core.templates import check_template
    from langneuron_eval.errors import LangNeuronError

    if args.site == "linear_out" and (args.act_module or args.down_module):
        raise LangNeuronError("--act-module/--down-module name one module per layer; --site linear_out hooks every "
                              "linear module of a layer and takes no module template")
    other = args.down_module if args.site == "act_out" else args.act_module
    if other:
        flag = "--down-module" if args.site == "act_out" else "--act-module"
        raise LangNeuronError(f"{flag} names the module of the other site; with --site {args.site} use "
                              f"{'--act-module' if args.site == 'act_out' else '--down-module'}")
    template = args.act_module if args.site == "act_out" else args.down_module
    return check_template(template) if template else None


def _sources(args: argparse.Namespace) -> list:
    """The corpus sources to record (the demo corpus by default), warning where LID disagrees with a label."""
    langs = [x.strip() for x in args.langs.split(",") if x.strip()] if args.langs else None
    corpus = args.corpus
    if not corpus:
        from langneuron_eval.core.demo_assets import demo_corpus_dir

        corpus = [str(demo_corpus_dir("detect"))]
    sources = resolve_corpus(corpus, langs)
    if args.lid_check < 1:
        from langneuron_eval.core.corpus import lid_mismatch

        for src in sources:
            share, label = lid_mismatch(src)
            if share > args.lid_check:
                print(f"langneuron record: warning: {share:.0%} of the first texts of the {src.lang} corpus "
                      f"({src.location}) are identified as another language (mostly {label!r})", file=sys.stderr)
    return sources


def run(args: argparse.Namespace) -> int:
    from langneuron_eval.core.modeling import check_device_map, default_model_path, load_model
    from langneuron_eval.core.recorder import RecordConfig, record
    from langneuron_eval.core.stats import sidecar_path
    from langneuron_eval.errors import LangNeuronError

    rank, world, device = _init_distributed(args.device)
    if args.device_map and world > 1:
        raise LangNeuronError("--device-map spreads one model over the devices; it cannot be combined with "
                              "torchrun / accelerate launch, which run one model per process")
    check_device_map(args.device_map)
    check_writable(args.out, args.force)  # fail before loading a model
    sidecar = str(sidecar_path(args.out)) if args.sentence_means else None
    if sidecar:
        check_writable(sidecar, args.force)
    template = _module_template(args)
    sources = _sources(args)
    config = RecordConfig(site=args.site, batch_size=args.batch_size, max_length=args.max_length,
                          sentence_means=args.sentence_means, max_sentences=args.max_sentences,
                          chunk_size=args.chunk_size, count_special_tokens=args.count_special_tokens,
                          module_template=template, sentence_dtype=args.sentence_dtype)
    model, tok = load_model(args.model or default_model_path(), dtype=args.dtype, device=device,
                            device_map=args.device_map)
    started = time.perf_counter()
    checkpoint = f"{args.out}.partial" + (f".rank{rank}" if world > 1 else "")
    try:
        stats = record(model, tok, sources, config, progress=not args.no_progress,
                       checkpoint=checkpoint if args.checkpoint_every > 0 else None,
                       checkpoint_every=args.checkpoint_every, resume=args.resume, sentence_store=sidecar)
    except KeyboardInterrupt:
        if not os.path.exists(checkpoint):
            raise  # nothing was written: the generic message says so
        print(f"langneuron record: interrupted; {args.out} was not written, progress so far is kept in {checkpoint} "
              "- rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    if rank == 0:
        stats.save(args.out, force=args.force)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    if rank != 0:
        return 0
    total = int(stats.n_tokens.sum())
    per_lang = ", ".join(f"{lang} {int(n)}" for lang, n in zip(stats.languages, stats.n_tokens))
    print(f"wrote {args.out}: {len(stats.languages)} languages x {stats.num_layers} layers x "
          f"{stats.intermediate_size} neurons at {stats.fingerprint.site}; tokens: {per_lang} "
          f"({total / max(elapsed, 1e-9):.0f} tok/s" + (f", {world} processes" if world > 1 else "") + ")",
          file=sys.stderr)
    return 0
