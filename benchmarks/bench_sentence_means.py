"""Per-sentence means at 7B/70B width: memory and bytes written against corpus size, and AP out of core.

Parts (each measurement in a fresh subprocess, so that its peak RSS is its own):

* ``io``: ``langneuron record --sentence-means`` (the library call) on a Llama-7B-shaped slice: ``--layers``
  layers of FFN width 11,008, hidden size ``--hidden`` (4,096 as Llama-2-7B), random weights, for 1x, 4x and 16x
  ``--sentences`` (chunks of ``--chunk``, a checkpoint every ``--checkpoint-every`` chunks). ``--through store``
  writes random rows straight through the store instead (no model); ``--legacy`` adds an emulation of the
  pre-store recorder (rows kept in RAM, every checkpoint rewriting all of them, a doubled ``[S, L, N]`` block at
  the end). Prints peak RSS and bytes written (``wchar`` of /proc/self/io: every byte passed to write calls).
* ``dtype``: the effect of float16/bfloat16 storage of the per-sentence means on kojima_ap's sets, on the demo
  model (``--dtype-sentences`` per language): Jaccard of each language's set with the float32 one.
* ``ap``: Kojima's AP out of core on ``--ap-sentences`` sentences (6 languages) x ``--ap-layers`` x 11,008
  units under ``--budget``: time, chunks, peak RSS, seconds per unit; ``--check`` also runs the in-memory
  kernel on the whole block and compares (needs the block in RAM).
* ``project``: Kojima's protocol (6 languages x 1,000 sentences) at 7B (32 x 11,008) and 70B (80 x 28,672)
  from the per-unit AP cost measured by ``ap``: time on one core, disk, memory in and out of core.

Usage: ``python benchmarks/bench_sentence_means.py all [--legacy] [--json FILE]`` on an idle machine (the
defaults: 256/1,024/4,096 sentences through a 4-layer 7B-width slice, AP on 6,000 sentences x 2 layers under
1 GiB); ``--smoke`` runs every part at toy sizes in about a minute, for testing the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from langneuron_eval.core.sentence_store import (
    SentenceMeansFile,
    SentenceStoreWriter,
    finalize_store,
    format_bytes,
    parse_memory_size,
)
from langneuron_eval.detectors.out_of_core import (
    average_precision,
    average_precision_out_of_core,
    plan_ap_chunks,
)

WIDTH_7B = 11_008
MODELS = {"Llama-2-7B": (32, 11_008), "Llama-2-70B": (80, 28_672)}
PROTOCOL_LANGS, PROTOCOL_SENTENCES = 6, 1_000  # Kojima et al.: six languages, about a thousand sentences each
BATCH = 8


# ---------------------------------------------------------------------- measuring a child process
def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (x.split(": ") for x in f)}


def _measured(fn, **kw) -> dict:
    """Run ``fn`` and add its wall time, bytes written, RSS before it and peak RSS (kB) of the process."""
    base, io0, t0 = _rss_kb(), _io(), time.perf_counter()
    out = fn(**kw)
    io1 = _io()
    return {**out, "seconds": time.perf_counter() - t0, "wchar": io1["wchar"] - io0["wchar"],
            "base_rss_kb": base, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def _child(part: str, **kw) -> dict:
    """This script in a fresh interpreter, running ``part`` with ``kw``; returns its JSON answer."""
    cmd = [sys.executable, os.path.abspath(__file__), f"_{part}", json.dumps(kw)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{part} child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- io: store vs pre-store recorder
def _batches(n: int, chunk: int, layers: int, width: int):
    """(chunk first, chunk size, ids [B], rows [B, layers, width]) in the order a recording produces them."""
    g = torch.Generator().manual_seed(0)
    for first in range(0, n, chunk):
        count = min(chunk, n - first)
        order = torch.randperm(count, generator=g) + first  # length-sorted batches: not corpus order
        for b in range(0, count, BATCH):
            ids = order[b: b + BATCH]
            yield first, count, b == 0, ids, torch.randn(len(ids), layers, width, generator=g)


def store_run(n: int, chunk: int, layers: int, width: int, every: int, dtype: str, workdir: str) -> dict:
    shard, out = Path(workdir) / "rank0.shard", Path(workdir) / "means.safetensors"
    w = SentenceStoreWriter(shard, layers, width, dtype)
    chunks = 0
    for first, count, new, ids, rows in _batches(n, chunk, layers, width):
        if new:
            if chunks and chunks % every == 0:
                w.checkpoint()
            w.reserve(first, count)
            chunks += 1
        w.write(ids, rows)
    info = finalize_store([shard], [w.close()], out, n)
    return {"file_bytes": out.stat().st_size, "sha256": info.sha256}


def legacy_run(n: int, chunk: int, layers: int, width: int, every: int, dtype: str, workdir: str) -> dict:
    """What the recorder did before the store: rows in RAM, each checkpoint rewriting all of them."""
    from safetensors.torch import save_file

    rows_kept, ids_kept, chunks = [], [], 0
    ckpt = Path(workdir) / "ckpt.safetensors"
    for _first, _count, new, ids, rows in _batches(n, chunk, layers, width):
        if new:
            if chunks and chunks % every == 0:
                save_file({"sentence_rows": torch.cat(rows_kept), "sentence_ids": torch.cat(ids_kept)}, str(ckpt))
            chunks += 1
        rows_kept.append(rows)
        ids_kept.append(ids)
    means = torch.zeros(n, layers, width)  # _sentence_tensors: the whole block once more
    means[torch.cat(ids_kept)] = torch.cat(rows_kept)
    out = Path(workdir) / "stats.safetensors"
    save_file({"sentence_means": means}, str(out))
    return {"file_bytes": out.stat().st_size}


def recorder_run(n: int, chunk: int, layers: int, width: int, every: int, dtype: str, workdir: str,
                 hidden: int = 4096) -> dict:
    """``record`` with --sentence-means through the real recorder, on a random-init Llama slice."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from langneuron_eval.core.corpus import CorpusSource
    from langneuron_eval.core.recorder import RecordConfig, record

    heads = max(1, hidden // 128)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=width, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=256)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    text = Path(workdir) / "en.txt"
    with open(text, "w") as f:
        for i in range(n):  # written line by line: the corpus is not kept in memory either
            f.write(("lorem ipsum dolor sit amet " * (1 + i % 5))[: 30 + (i * 37) % 90] + f" {i}\n")
    out = Path(workdir) / "means.safetensors"
    io0 = _io()
    record(model, _Tok(), [CorpusSource("en", str(text), "txt")],
           RecordConfig(batch_size=BATCH, max_length=64, sentence_means=True, chunk_size=chunk, sentence_dtype=dtype),
           progress=False, checkpoint=str(Path(workdir) / "ckpt"), checkpoint_every=every, sentence_store=str(out))
    return {"file_bytes": out.stat().st_size, "record_wchar": _io()["wchar"] - io0["wchar"]}


VOCAB = 32_000


class _Tok:
    """Deterministic stand-in tokenizer: text -> pseudo-random ids, lengths like short sentences."""

    pad_token_id = 0

    def __call__(self, texts, add_special_tokens=True, truncation=False, return_special_tokens_mask=False):
        out = [torch.randint(1, VOCAB, (len(t) // 4 + 4,), generator=torch.Generator().manual_seed(len(t))).tolist()
               for t in texts]
        if return_special_tokens_mask:
            return {"input_ids": out, "special_tokens_mask": [[0] * len(x) for x in out]}
        return {"input_ids": out}


def part_io(args) -> list[dict]:
    results = []
    first = "recorder" if args.through == "recorder" else "store"
    for mode in (first, "legacy") if args.legacy else (first,):
        for factor in (1, 4, 16):
            extra = {"hidden": args.hidden} if mode == "recorder" else {}
            with tempfile.TemporaryDirectory(dir=args.workdir) as d:
                r = _child(f"io_{mode}", n=args.sentences * factor, chunk=args.chunk, layers=args.layers,
                           width=WIDTH_7B, every=args.checkpoint_every, dtype=args.dtype, workdir=d, **extra)
            r.update(mode=mode, factor=factor, sentences=args.sentences * factor)
            r["wchar"] = r.get("record_wchar", r["wchar"])  # the recorder's own writes, not the corpus file's
            results.append(r)
            print(f"{mode:6} {factor:2}x {r['sentences']:6} sentences: peak RSS {r['peak_rss_kb']:>9,} kB "
                  f"(before the run {r['base_rss_kb']:,} kB), written {r['wchar']:>14,} B "
                  f"({r['wchar'] / r['file_bytes']:.2f} x the final file), {r['seconds']:.1f} s", flush=True)
    for mode in sorted({r["mode"] for r in results}):
        rs = [r for r in results if r["mode"] == mode]
        print(f"{mode}: 16x / 1x -- peak RSS {rs[2]['peak_rss_kb'] / rs[0]['peak_rss_kb']:.3f}, "
              f"bytes written {rs[2]['wchar'] / rs[0]['wchar']:.2f} (linear: 16)")
    return results


# ---------------------------------------------------------------------- dtype: effect of 16-bit storage on AP
def dtype_effect(sentences: int) -> dict:
    """kojima_ap on the demo model's per-sentence means as recorded (float32) and rounded to 16 bits."""
    import warnings

    from langneuron_eval.core.corpus import resolve_corpus
    from langneuron_eval.core.demo_assets import demo_corpus_dir
    from langneuron_eval.core.modeling import default_model_path, load_model
    from langneuron_eval.core.recorder import RecordConfig, record
    from langneuron_eval.detectors.runner import run_detector

    model, tok = load_model(str(default_model_path()))
    stats = record(model, tok, resolve_corpus([str(demo_corpus_dir("detect"))]),
                   RecordConfig(sentence_means=True, max_sentences=sentences), progress=False)
    sets = {}
    for name, dt in (("float32", None), ("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        means = stats.sentence_means if dt is None else stats.sentence_means.to(dt).float()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sets[name] = run_detector("kojima_ap", dataclasses.replace(stats, sentence_means=means), {}).languages
    out = {}
    for name in ("float16", "bfloat16"):
        out[name] = {lang: len(set(a) & set(sets[name][lang])) / len(set(a) | set(sets[name][lang]))
                     for lang, a in sets["float32"].items()}
        print(f"kojima_ap sets from {name}-stored sentence means vs float32 ({sentences} sentences/language, demo "
              f"model): Jaccard per language " + ", ".join(f"{k} {v:.4f}" for k, v in out[name].items()), flush=True)
    return out


# ---------------------------------------------------------------------- ap: out of core at 7B width
def make_store(path: str, sentences: int, layers: int, width: int, langs: int, dtype: str) -> dict:
    """Sentence means with a language signal: per language 1% of units shifted by +0.5, noise N(0, 1)."""
    g = torch.Generator().manual_seed(1)
    shift = (torch.rand(langs, layers, width, generator=g) < 0.01).float() * 0.5
    shard = Path(path).with_suffix(".shard")
    w = SentenceStoreWriter(shard, layers, width, dtype)
    w.reserve(0, sentences)
    for first in range(0, sentences, 64):
        ids = torch.arange(first, min(sentences, first + 64))
        w.write(ids, torch.randn(len(ids), layers, width, generator=g) + shift[ids * langs // sentences])
    info = finalize_store([shard], [w.close()], path, sentences)
    return {"file_bytes": os.path.getsize(path), "sha256": info.sha256}


def ap_run(path: str, langs: int, budget: int, check: bool) -> dict:
    store = SentenceMeansFile(path)
    S = store.num_sentences
    labels = torch.arange(S) * langs // S  # languages one after the other, as recorded
    rss0, t0 = _rss_kb(), time.perf_counter()
    ap, plan = average_precision_out_of_core(store, labels, langs, budget=budget)
    seconds = time.perf_counter() - t0
    out = {"sentences": S, "units": store.num_units, "ap_seconds": seconds, "per_unit_s": seconds / store.num_units,
           "chunk_units": plan.chunk_units, "chunks": plan.num_chunks, "planned_peak": plan.peak_bytes,
           "kernel_units": plan.kernel_units, "same_chunks_as_in_memory": plan.identical,
           "rss_before_ap_kb": rss0, "ap_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    if check:  # the in-memory path on the whole block: same AP, bit for bit
        expected = average_precision(store.to_tensor().reshape(S, -1), labels, langs)
        out["identical_to_in_memory"] = bool(torch.equal(ap, expected))
        out["max_abs_ap_difference"] = float((ap - expected).abs().max())
        k = max(1, ap.shape[-1] // 100)  # the top 1% of units per language, as a detector would select them
        out["same_top_1pct_units"] = all(set(ap[i].topk(k).indices.tolist()) == set(expected[i].topk(k).indices.tolist())
                                         for i in range(ap.shape[0]))
    return out


def part_ap(args) -> dict:
    budget = parse_memory_size(args.budget)
    with tempfile.TemporaryDirectory(dir=args.workdir) as d:
        path = os.path.join(d, "means.safetensors")
        made = _child("make", path=path, sentences=args.ap_sentences, layers=args.ap_layers, width=WIDTH_7B,
                      langs=PROTOCOL_LANGS, dtype=args.dtype)
        r = {**_child("ap", path=path, langs=PROTOCOL_LANGS, budget=budget, check=args.check), **made,
             "budget": budget}
    print(f"AP out of core: {r['sentences']:,} sentences x {r['units']:,} units ({format_bytes(r['file_bytes'])} "
          f"{args.dtype}), budget {format_bytes(budget)}: {r['chunks']} chunks of {r['chunk_units']:,} units "
          f"(kernel calls of {r['kernel_units']:,}{'' if r['same_chunks_as_in_memory'] else ', not'} as in memory), "
          f"planned peak {format_bytes(r['planned_peak'])}; {r['ap_seconds']:.1f} s "
          f"({r['per_unit_s'] * 1e3:.3f} ms/unit); peak RSS {r['ap_peak_rss_kb']:,} kB "
          f"({r['ap_peak_rss_kb'] - r['rss_before_ap_kb']:,} kB above the process before the AP)"
          + (f"; identical to in-memory: {r['identical_to_in_memory']} (largest AP difference "
             f"{r['max_abs_ap_difference']:.1e}, same top-1% units per language: {r['same_top_1pct_units']})"
             if args.check else ""), flush=True)
    return r


# ---------------------------------------------------------------------- projection
def project(per_unit_s: float, measured_sentences: int, budget: int) -> list[dict]:
    """Kojima's protocol at 7B and 70B width from the measured per-unit AP cost (one core).

    The cost per unit is dominated by sorting the S sentence scores, so a measurement at another S is
    scaled by S log S (marked in the output); at S = 6,000 nothing is scaled.
    """
    S = PROTOCOL_LANGS * PROTOCOL_SENTENCES
    scale = (S * math.log2(S)) / (measured_sentences * math.log2(max(2, measured_sentences)))
    rows = []
    for name, (layers, width) in MODELS.items():
        U = layers * width
        plan = plan_ap_chunks(S, U, PROTOCOL_LANGS, budget)
        rows.append({"model": name, "layers": layers, "width": width, "units": U, "sentences": S,
                     "row_bytes_f32": layers * width * 4, "disk_f32": S * U * 4, "disk_f16": S * U * 2,
                     "in_memory_legacy": 2 * S * U * 4, "budget": budget, "chunks": plan.num_chunks,
                     "planned_peak": plan.peak_bytes, "ap_seconds_1core": per_unit_s * scale * U,
                     "scaled_from_sentences": None if scale == 1 else measured_sentences})
    print(f"\nKojima's protocol ({PROTOCOL_LANGS} x {PROTOCOL_SENTENCES:,} sentences), projected from "
          f"{per_unit_s * 1e3:.3f} ms/unit at {measured_sentences:,} sentences"
          + ("" if scale == 1 else f" (scaled by S log S: x{scale:.2f})") + ":")
    print("| model | units | per sentence (f32) | disk f32 / f16 | RAM, pre-store recorder | AP budget | chunks "
          "| AP time, 1 core |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['units']:,} | {format_bytes(r['row_bytes_f32'])} | {format_bytes(r['disk_f32'])}"
              f" / {format_bytes(r['disk_f16'])} | {format_bytes(r['in_memory_legacy'])} | "
              f"{format_bytes(r['budget'])} | {r['chunks']} | {r['ap_seconds_1core'] / 60:.1f} min |")
    return rows


# ---------------------------------------------------------------------- command line
CHILDREN = {
    "_io_store": lambda kw: _measured(store_run, **kw),
    "_io_recorder": lambda kw: _measured(recorder_run, **kw),
    "_io_legacy": lambda kw: _measured(legacy_run, **kw),
    "_make": lambda kw: make_store(**kw),
    "_ap": lambda kw: _measured(ap_run, **kw),
}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in CHILDREN:
        print(json.dumps(CHILDREN[sys.argv[1]](json.loads(sys.argv[2]))))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["io", "ap", "project", "dtype", "all"])
    p.add_argument("--through", default="recorder", choices=["recorder", "store"], help="io: what writes the rows")
    p.add_argument("--hidden", type=int, default=4096, help="io: hidden size of the model slice")
    p.add_argument("--dtype-sentences", type=int, default=120, help="dtype: demo sentences per language")
    p.add_argument("--sentences", type=int, default=256, help="io: sentences at 1x")
    p.add_argument("--layers", type=int, default=4, help="io: layers of 11,008 units")
    p.add_argument("--chunk", type=int, default=64, help="io: sentences per chunk")
    p.add_argument("--checkpoint-every", type=int, default=2, help="io: chunks between checkpoints")
    p.add_argument("--legacy", action="store_true", help="io: also emulate the pre-store recorder")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--ap-sentences", type=int, default=PROTOCOL_LANGS * PROTOCOL_SENTENCES)
    p.add_argument("--ap-layers", type=int, default=2, help="ap: layers of 11,008 units")
    p.add_argument("--budget", default="1G", help="ap: memory budget")
    p.add_argument("--check", action="store_true", help="ap: compare with the in-memory AP")
    p.add_argument("--per-unit-s", type=float, default=None, help="project: seconds per unit (else measured)")
    p.add_argument("--workdir", default=None, help="where the temporary files go (default: the system's)")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--smoke", action="store_true", help="toy sizes, seconds")
    args = p.parse_args()
    if args.smoke:
        args.sentences, args.layers, args.chunk, args.ap_sentences, args.ap_layers = 8, 1, 4, 120, 1
        args.hidden, args.dtype_sentences = 64, 20
        args.check = True
    res: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
                            f"numpy {np.__version__}", "args": vars(args)}
    if args.part in ("io", "all"):
        res["io"] = part_io(args)
    if args.part in ("dtype", "all"):
        res["dtype"] = dtype_effect(args.dtype_sentences)
    if args.part in ("ap", "all") or (args.part == "project" and args.per_unit_s is None):
        res["ap"] = part_ap(args)
    if args.part in ("project", "all"):
        per_unit = args.per_unit_s if args.per_unit_s is not None else res["ap"]["per_unit_s"]
        measured_at = args.ap_sentences if args.per_unit_s is None else PROTOCOL_LANGS * PROTOCOL_SENTENCES
        res["projection"] = project(per_unit, measured_at, parse_memory_size(args.budget))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
