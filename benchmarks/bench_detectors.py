"""Time the two detector hot paths on random statistics of realistic size.

* Kojima AP selection: 3,000 sentences x 100,000 units (6 languages x 500 sentences, as in the paper's
  data), top-1000 + bottom-1000 per language.
* LAPE: 32 layers x 11,008 units x 7 languages (LLaMA-2-7B shape, the paper's languages).

Each must finish in under a minute on a 2-core CPU. Run::

    PYTHONPATH=. python benchmarks/bench_detectors.py [--quick]

``--quick`` uses 1/10 of the sizes (a smoke test of the script itself).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.kojima import KojimaAPDetector
from langneuron_eval.detectors.lape import LapeDetector
from langneuron_eval.detectors.zhang import ZhangDetector


def random_stats(K: int, L: int, N: int, S: int = 0, seed: int = 0) -> ActivationStats:
    g = torch.Generator().manual_seed(seed)
    n = torch.full((K,), 1_000_000, dtype=torch.int64)
    # per-unit base rate plus per-language jitter, so entropies spread like real ones
    base = torch.rand(L, N, generator=g)
    p = base[None] * (0.5 + torch.rand(K, L, N, generator=g)) / 1.5  # < 1: no pile-up at p = 1
    pos = (p * n[:, None, None]).to(torch.int64)
    zeros = torch.zeros(K, L, N, dtype=torch.float64)
    sm = sl = None
    if S:
        sl = torch.arange(S) % K
        sm = torch.randn(S, L, N, generator=g)
        sm += 0.1 * sl.float()[:, None, None] * torch.randn(1, L, N, generator=g)  # some language signal
    return ActivationStats([f"l{k}" for k in range(K)], n, pos, zeros, zeros, ModelFingerprint("llama", L, N, "act_out"),
                           sm, sl)


def timed(label: str, fn) -> float:
    t0 = time.perf_counter()
    res = fn()
    dt = time.perf_counter() - t0
    counts = {k: len(v) for k, v in res.languages.items()}
    print(f"{label}: {dt:.2f} s  (per-language counts {counts})", flush=True)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    S, U = 3000 // scale, 100_000 // scale
    kojima = KojimaAPDetector()
    kst = random_stats(6, 1, U, S=S, seed=1)
    timed(f"kojima_ap AP selection, {S} sentences x {U} units x 6 languages",
          partial(kojima.detect, kst, kojima.make_params({})))
    del kst  # 1.2 GB of sentence means

    L, N = 32 // (scale // 5 or 1), 11008 // (scale // 5 or 1)
    lst = random_stats(7, L, N, seed=2)
    lape = LapeDetector()
    timed(f"lape, {L} x {N} units x 7 languages", lambda: lape.detect(lst, lape.make_params({})))
    zhang = ZhangDetector()
    timed(f"zhang with lambda search, {L} x {N} units x 7 languages", lambda: zhang.detect(lst, zhang.make_params({})))


if __name__ == "__main__":
    main()
