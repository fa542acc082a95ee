"""Recording overhead and memory: `record` against the plain forward pass of the same batches.

Prints ratios measured in one run on a random-init Llama-shaped model (~100M parameters) built from a
config, on this machine's CPU:

* time ratio: record (hooks + counters) / plain forward over identical padded batches;
* peak RSS ratio: recording 10x the tokens / 1x the tokens (each in a fresh subprocess), without
  per-sentence means.

Usage: python benchmarks/bench_record.py [--sentences 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

HIDDEN, INTER, LAYERS, HEADS, VOCAB = 768, 2048, 12, 12, 32000


def build_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                      num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=512)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


class _Tok:
    """Deterministic stand-in tokenizer: text -> pseudo-random ids; lengths vary like real sentences."""

    pad_token_id = 0

    def __call__(self, texts, add_special_tokens=True, truncation=False, return_special_tokens_mask=False):
        out = []
        for t in texts:
            g = torch.Generator().manual_seed(hash(t) % (2**31))
            out.append(torch.randint(1, VOCAB, (len(t) // 2 + 8,), generator=g).tolist())
        if return_special_tokens_mask:  # no special tokens: every position is text
            return {"input_ids": out, "special_tokens_mask": [[0] * len(x) for x in out]}
        return {"input_ids": out}


def line(i: int) -> str:
    return ("lorem ipsum dolor sit amet " * (1 + i % 7))[: 40 + (i * 37) % 200] + str(i)


def corpus(n: int) -> list[str]:
    return [line(i) for i in range(n)]


def time_ratio(sentences: int, repeats: int, batch_size: int = 8) -> dict:
    from langneuron_eval.core.corpus import CorpusSource
    from langneuron_eval.core.recorder import RecordConfig, record

    model, tok = build_model(), _Tok()
    texts = corpus(sentences)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "en.txt")
        with open(path, "w") as f:
            f.write("\n".join(texts) + "\n")
        src = [CorpusSource("en", path, "txt")]
        cfg = RecordConfig(batch_size=batch_size, max_length=256)

        enc = tok(texts)["input_ids"]
        order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
        batches = []
        for s in range(0, len(order), batch_size):
            rows = [enc[i] for i in order[s: s + batch_size]]
            w = max(map(len, rows))
            ids = torch.zeros(len(rows), w, dtype=torch.long)
            mask = torch.zeros(len(rows), w, dtype=torch.long)
            for r, x in enumerate(rows):
                ids[r, : len(x)] = torch.tensor(x)
                mask[r, : len(x)] = 1
            batches.append((ids, mask))

        def plain():
            with torch.inference_mode():
                for ids, mask in batches:
                    model(input_ids=ids, attention_mask=mask, use_cache=False)

        def rec():
            record(model, tok, src, cfg, progress=False)

        plain()  # warm-up
        t_plain, t_rec = [], []
        for _ in range(repeats):  # interleaved, so drift in machine speed hits both alike
            t0 = time.perf_counter()
            plain()
            t_plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rec()
            t_rec.append(time.perf_counter() - t0)
    tokens = sum(len(x) for x in enc)
    return {"tokens": tokens, "plain_s": min(t_plain), "record_s": min(t_rec), "ratio": min(t_rec) / min(t_plain)}


def record_only(sentences: int) -> None:
    """Only the recorder over a corpus file (nothing else that grows with the corpus is kept)."""
    from langneuron_eval.core.corpus import CorpusSource
    from langneuron_eval.core.recorder import RecordConfig, record

    model, tok = build_model(), _Tok()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "en.txt")
        with open(path, "w") as f:
            for i in range(sentences):  # written line by line: the text list itself is not kept either
                f.write(line(i) + "\n")
        record(model, tok, [CorpusSource("en", path, "txt")], RecordConfig(batch_size=8, max_length=256),
               progress=False)


def peak_rss(sentences: int) -> int:
    code = (
        "import resource; import benchmarks.bench_record as b; "
        f"b.record_only({sentences}); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    n_params = sum(p.numel() for p in build_model().parameters())
    res = {"machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads", "params_M": round(n_params / 1e6, 1)}
    res["time"] = time_ratio(args.sentences, args.repeats)
    print(f"record / plain forward time ratio: {res['time']['ratio']:.3f} "
          f"({res['time']['tokens']} tokens, best of {args.repeats})", flush=True)
    if not args.skip_memory:
        small, large = peak_rss(args.sentences), peak_rss(args.sentences * 10)
        res["memory"] = {"peak_rss_kb_1x": small, "peak_rss_kb_10x": large, "ratio": large / small}
        print(f"peak RSS 10x tokens / 1x tokens: {large / small:.3f} ({small} kB -> {large} kB)")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
