"""Cost of the perplexity-change matrix beyond the model's own forward passes, before and after the cuts.

One model is loaded (as ``langneuron ppl-matrix`` does) with a neuron file of random units per language, and the
matrix (1 + #languages lm-eval passes over every language's ``lang_ppl`` text) is computed two ways on it, in
alternating order:

* **before**: the loop ``ppl-matrix`` once ran: every pass a fresh ``simple_evaluate`` by task name, with
  lm-eval's environment report and git probe (lm-eval bootstraps no perplexity stderr: its aggregations have none);
* **after**: :func:`langneuron_eval.pipelines.measurements.ppl_change_matrix` without saved results: every condition
  in one engine call (rows of a batch carry different interventions), documents tokenised once.

It prints each way's wall time, the share spent inside the model's forward (``_model_call``), tokens per second,
the ratio after / before, and whether both ways gave the same matrix.

    PYTHONPATH=. python benchmarks/bench_ppl_matrix.py                    # demo model, 6 languages, 50 lines each
    PYTHONPATH=. python benchmarks/bench_ppl_matrix.py --limit 20 --repeats 1
    PYTHONPATH=. python benchmarks/bench_ppl_matrix.py --model DIR --neurons N.json --langs en,zh
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOKENS = [0]  # tokens scored by the last full matrix


def random_neurons(model_dir: str, langs: list[str], path: Path, per_lang: int = 30) -> Path:
    """A neuron file with ``per_lang`` random FFN units per language for the model in ``model_dir``."""
    from transformers import AutoConfig

    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    cfg = AutoConfig.from_pretrained(model_dir)
    layers, width = cfg.num_hidden_layers, cfg.intermediate_size
    rng = random.Random(0)
    units = [(layer, u) for layer in range(layers) for u in range(width)]
    NeuronFile(ModelFingerprint(cfg.model_type, layers, width, "act_out"), "bench",
               {lang: sorted(rng.sample(units, per_lang)) for lang in langs}).save(path, force=True)
    return path


def before(lm: Any, langs: list[str], limit: int, tm: Any) -> list[list[float]]:
    """The earlier loop: one ``evaluate`` by task name per pass, lm-eval's defaults otherwise."""
    from langneuron_eval.lmeval import evaluation, results

    tasks = [f"lang_ppl_{lang}" for lang in langs]

    def scores() -> dict[str, float]:
        res = evaluation.evaluate(lm, tasks, limit=limit, task_manager=tm)
        return {lang: results.metric(res, f"lang_ppl_{lang}", "byte_perplexity") for lang in langs}

    lm.set_intervention(mode="none")
    base = scores()
    rows = {}
    for row in langs:
        lm.set_intervention(mode="deactivate", lang=row)
        rows[row] = scores()
    lm.set_intervention(mode="none")
    return [[rows[r][c] / base[c] - 1.0 for c in langs] for r in langs]


def after(lm: Any, langs: list[str], limit: int, tm: Any) -> list[list[float]]:
    from langneuron_eval.pipelines.measurements import ppl_change_matrix

    res = ppl_change_matrix(lm, langs, limit=limit, task_manager=tm)
    TOKENS[0] = res["tokens"]
    return res["matrix"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped demo model)")
    parser.add_argument("--neurons", default=None, help="neuron file (default: 30 random units per language)")
    parser.add_argument("--langs", default=None, help="comma-separated (default: the demo languages)")
    parser.add_argument("--limit", type=int, default=50, help="lines per language")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    from bench_intervention_overhead import _model_share  # this folder is on sys.path when run as a script

    from langneuron_eval.core import demo_assets
    from langneuron_eval.languages import DEMO_LANGUAGES
    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.pipelines.progress import quiet_lm_eval

    langs = args.langs.split(",") if args.langs else list(DEMO_LANGUAGES)
    model = args.model or str(demo_assets.base_model_path())
    with tempfile.TemporaryDirectory() as tmp, quiet_lm_eval():
        neurons = args.neurons or random_neurons(model, langs, Path(tmp) / "neurons.json")
        lm = evaluation.load_model(model, neurons, batch_size=args.batch_size)
        tm = evaluation.make_task_manager()
        after(lm, langs, 2, tm)  # warm-up: first-call costs (imports, allocator) hit neither measured run
        best: dict[str, tuple[float, float]] = {}
        matrices = {}
        for rep in range(args.repeats):
            for name, fn in ((("before", before), ("after", after)) if rep % 2 == 0
                             else (("after", after), ("before", before))):
                t0 = time.perf_counter()
                share = _model_share(lm, lambda name=name, fn=fn: matrices.__setitem__(name, fn(lm, langs, args.limit, tm)))
                wall = time.perf_counter() - t0
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, share * wall)
    runs, tokens = len(langs) + 1, TOKENS[0]
    print(f"perplexity-change matrix, {len(langs)} languages x {args.limit} lines, {runs} passes, "
          f"{tokens} tokens; fastest of {args.repeats}")
    for name in ("before", "after"):
        wall, fwd = best[name]
        print(f"  {name:6s} {wall:8.1f} s  forward {fwd:7.1f} s ({fwd / wall:5.1%})  "
              f"{tokens / wall:8.0f} tokens/s  not forward {wall - fwd:6.1f} s")
    print(f"  after / before wall time: {best['after'][0] / best['before'][0]:.2f}; "
          f"time outside the forward: {(best['after'][0] - best['after'][1]) / (best['before'][0] - best['before'][1]):.2f}")
    print(f"  same matrix: {matrices['before'] == matrices['after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
