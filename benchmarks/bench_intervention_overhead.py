"""Overhead of the ``langneuron`` model's hooks over plain ``hf`` inside lm-eval, measured in one run.

A random-init Llama-shaped model is built from a config (no download) with the byte-level test
tokenizer, plus a neuron file holding 1% of the FFN units for each of six languages with per-unit
mean values. Both models run the same log-likelihood task (``lang_ppl_en``) and the same
generation task (``lang_steer_en``: 64 sampled tokens per document) through
``lm_eval.simple_evaluate``; runs alternate hf / langneuron and the fastest of ``--repeats`` runs is
kept, so background load hits both sides alike; the median of the per-repeat ratios (each langneuron run
over the hf run just before it) is printed too, since a single lucky run on one side moves the ratio of
the fastest runs. The intervention is the heaviest usual one:
``mode=activate lang=zh value=mean deactivate=others`` (every language's neurons edited on every
forward pass, prompt and generated tokens).

    PYTHONPATH=. python benchmarks/bench_intervention_overhead.py            # ~2 minutes on 2 CPU cores
    PYTHONPATH=. python benchmarks/bench_intervention_overhead.py --quick    # smaller, ~20 s
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langneuron_eval.languages import DEMO_LANGUAGES as LANGS  # noqa: E402  (after the environment is set)


def build(workdir: Path, hidden: int, intermediate: int, layers: int) -> tuple[Path, Path]:
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile
    from langneuron_eval.testing import make_tiny_model

    model_dir = workdir / "model"
    heads = max(1, hidden // 64)
    make_tiny_model("llama", model_dir, seed=0, hidden_size=hidden, intermediate_size=intermediate,
                    num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                    max_position_embeddings=2048)
    rng = random.Random(0)
    per_lang = max(1, round(0.01 * layers * intermediate))
    all_units = [(layer, u) for layer in range(layers) for u in range(intermediate)]
    languages = {lang: sorted(rng.sample(all_units, per_lang)) for lang in LANGS}
    values = {lang: {"mean": [rng.uniform(0.05, 0.5) for _ in units]} for lang, units in languages.items()}
    neurons = workdir / "neurons.json"
    NeuronFile(ModelFingerprint("llama", layers, intermediate, "act_out"), "bench", languages,
               values=values).save(neurons, force=True)
    return model_dir, neurons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller model and fewer documents")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ppl-docs", type=int, default=None, help="documents of lang_ppl_en")
    parser.add_argument("--gen-docs", type=int, default=None, help="documents of lang_steer_en")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps timings stable on a shared machine)")
    args = parser.parse_args(argv)
    hidden, intermediate, layers = (128, 344, 4) if args.quick else (384, 1024, 8)
    ppl_docs = args.ppl_docs or (40 if args.quick else 200)
    gen_docs = args.gen_docs or (8 if args.quick else 64)

    import torch
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(args.threads)

    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.lmeval.model import LangNeuronLM

    with tempfile.TemporaryDirectory(prefix="ln-bench-") as tmp:
        model_dir, neurons = build(Path(tmp), hidden, intermediate, layers)
        common = {"pretrained": str(model_dir), "device": "cpu", "dtype": "float32", "batch_size": args.batch_size}
        hf = HFLM(**common)
        ln = LangNeuronLM(**common, neurons=str(neurons), mode="activate", lang="zh", value="mean",
                          deactivate="others")
        n_params = sum(p.numel() for p in hf.model.parameters())
        edited = sum(len(u) for u in ln.neuron_file.languages.values())
        print(f"model: llama {layers} layers x {intermediate} FFN units, hidden {hidden}, {n_params / 1e6:.1f}M "
              f"params; {edited} neuron assignments over {len(LANGS)} languages; torch threads "
              f"{torch.get_num_threads()}", flush=True)
        tm = evaluation.make_task_manager()
        cases = [("log-likelihood", "lang_ppl_en", ppl_docs), ("generation", "lang_steer_en", gen_docs)]
        best: dict[tuple[str, str], float] = {}
        paired: dict[str, list[float]] = {}  # langneuron / hf of runs made back to back
        for label, task, docs in cases:
            for rep in range(args.repeats):
                for name, lm in (("hf", hf), ("langneuron", ln)):
                    before = ln.intervention.edit_calls
                    t0 = time.perf_counter()
                    evaluation.evaluate(lm, [task], limit=docs, task_manager=tm)
                    dt = time.perf_counter() - t0
                    best[(label, name)] = min(best.get((label, name), float("inf")), dt)
                    if name == "hf":
                        last_hf = dt
                    else:
                        paired.setdefault(label, []).append(dt / last_hf)
                    hooks = ln.intervention.edit_calls - before if name == "langneuron" else 0
                    print(f"  {label:<15} {name:<10} run {rep + 1}: {dt:7.2f} s"
                          + (f"  ({hooks} hooked layer calls)" if name == "langneuron" else ""), flush=True)
        print()
        print(f"{'task':<44}{'hf [s]':>10}{'langneuron [s]':>16}{'ratio':>8}{'median paired':>15}  paired ratios")
        for label, task, docs in cases:
            a, b = best[(label, "hf")], best[(label, "langneuron")]
            pairs = paired[label]
            print(f"{label + ' (' + task + f', {docs} docs)':<44}{a:>10.2f}{b:>16.2f}{b / a:>8.3f}"
                  f"{statistics.median(pairs):>15.3f}  {' '.join(f'{r:.3f}' for r in pairs)}")
        print("(ratio: fastest langneuron run / fastest hf run; median paired: median over repeats of "
              "langneuron / the hf run just before it)")
        # One more hf run, untimed above: the share of it spent inside the model's forward pass, which tells
        # whether the end-to-end ratio is diluted by lm-eval's own work (task set-up, metrics).
        share = _model_share(hf, lambda: evaluation.evaluate(hf, [cases[0][1]], limit=cases[0][2], task_manager=tm))
        print(f"\nshare of the hf log-likelihood run spent in the model forward pass: {share:.0%}")
    return 0


def _model_share(lm, run) -> float:
    """Fraction of ``run()``'s wall time spent in ``lm._model_call`` (timed through an instance attribute)."""
    inner, spent = lm._model_call, [0.0]

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    lm._model_call = timed
    try:
        t0 = time.perf_counter()
        run()
        total = time.perf_counter() - t0
    finally:
        del lm._model_call
    return spent[0] / total


if __name__ == "__main__":
    sys.exit(main())
