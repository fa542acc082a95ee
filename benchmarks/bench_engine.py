"""Rolling log-likelihood: the engine against lm-eval's ``hf`` on the demo model, and its memory on the Gemma shape.

* **speed** (the shipped demo model, the demo corpus's evaluation split): wall time of
  ``HFLM.loglikelihood_rolling`` at each ``--hf-batch-sizes`` and of :class:`RollingEngine` (default budget) on
  the same documents, runs interleaved, median of ``--repeats``; scored tokens per second; the largest relative
  difference between the two per document.
* **memory** (a random-init model shaped like Gemma-3-270m: 262,144-token vocabulary, hidden 640, 18 layers, FFN
  2048, 4 heads, 1 key/value head, head_dim 256): peak memory of one engine pass over ``--batch`` documents of
  ``--length`` tokens in one batch, above the memory held once the model is loaded, next to the model's own
  parameter memory. CPU: peak resident set size (``VmHWM``, reset before the pass); CUDA: peak allocated memory.
  ``--hf-memory`` measures ``HFLM.loglikelihood_rolling`` on the same batch too (several GB of logits on this
  vocabulary).

* **matrix**: ``ppl_change_matrix`` (model load included, every condition in one engine call) against the limit
  written here independently: model load plus (K+1) plain batched forward passes with a full log-softmax over the
  same documents (rolling windows of one window each, batches of ``--plain-batch`` documents sorted by length), on
  the demo model and on a saved random-init model of the Gemma-3-270m shape (``--matrix-models demo,gemma``).
* **steering**: generated tokens per second of the batched steering path (``LangNeuronLM.generate_until`` inside
  ``task_interventions``: the six demo languages' ``lang_steer`` requests in one ``generate`` call, each row
  activating its own language's neurons, ``--positions``) against one call per language under the model-wide
  intervention and against a plain batched ``model.generate`` of the same BOS-only prompts; greedy, exactly
  ``--new-tokens`` tokens each (``min_new_tokens``), on the demo model, median of ``--repeats``.
* **decoding**: two of the demo's generation passes through lm-eval on the demo model, with rows leaving the batch
  once finished (``compact_generation``, the default) against ``generate``'s own loop (``compact_generation=false``):
  the greedy QA step (``xqa_<lang>`` and ``xmath_<lang>``, six languages, ``--qa-limit`` items each, stop at the
  first line break) and the unsteered sampled steering pass (``lang_steer_<lang>``, ``--steer-limit`` BOS-only samples
  each, temperature 0.8, up to 64 tokens, lm-eval's seeds); batch ``--gen-batch``; wall time of the lm-eval pass,
  row-steps computed, whether every text is identical; runs interleaved, median of ``--repeats``.

    PYTHONPATH=. python benchmarks/bench_engine.py --part all                        # every part
    PYTHONPATH=. python benchmarks/bench_engine.py --part speed --limit 100 --repeats 3
    PYTHONPATH=. python benchmarks/bench_engine.py --part memory --batch 16 --length 256 [--device cuda]
    PYTHONPATH=. python benchmarks/bench_engine.py --part matrix --matrix-models demo,gemma --limit 100
    PYTHONPATH=. python benchmarks/bench_engine.py --part steering --prompts 36 --new-tokens 32 [--positions generated]
    PYTHONPATH=. python benchmarks/bench_engine.py --part decoding --qa-limit 200 --steer-limit 100 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

GEMMA_270M_SHAPE = dict(vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                        num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                        max_position_embeddings=32_768)


def _requests(texts: list[str]) -> list[Any]:
    from lm_eval.api.instance import Instance

    return [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def speed(limit: int, repeats: int, hf_batch_sizes: list[int]) -> None:
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from langneuron_eval.core import demo_assets
    from langneuron_eval.demo_corpus import LANGUAGES, sentences
    from langneuron_eval.lmeval.engine import RollingEngine, RollingSpec

    path = demo_assets.base_model_path()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    texts = [s for lang in LANGUAGES for s in sentences(lang, "eval", limit)]
    lms = {bs: HFLM(pretrained=model, tokenizer=tok, batch_size=bs) for bs in hf_batch_sizes}
    lm = lms[hf_batch_sizes[0]]
    engine = RollingEngine(model, RollingSpec(lm.prefix_token_id, lm.max_length))
    methods: dict[str, Callable[[], list[float]]] = {
        f"hf batch {bs}": (lambda m=m: m.loglikelihood_rolling(_requests(texts), disable_tqdm=True))
        for bs, m in lms.items()}
    # the engine's time includes tokenising, as hf's does
    methods["engine"] = lambda: [s.loglikelihood for s in engine.score([lm.tok_encode(t) for t in texts])]
    times: dict[str, list[float]] = {name: [] for name in methods}
    results: dict[str, list[float]] = {}
    for r in range(repeats):
        for name in (list(methods) if r % 2 == 0 else list(methods)[::-1]):
            seconds, results[name] = _timed(methods[name])
            times[name].append(seconds)
    tokens = sum(len(lm.tok_encode(t)) for t in texts)
    print(f"demo model, {len(texts)} documents ({limit} per language), {tokens} scored tokens, "
          f"{torch.get_num_threads()} threads, median of {repeats}")
    engine_s = statistics.median(times["engine"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<12} {med:7.3f} s  {tokens / med:9.0f} tokens/s  {med / engine_s:5.2f}x the engine's time")
    ref = results[f"hf batch {hf_batch_sizes[0]}"]
    worst = max(abs(a - b) / abs(a) for a, b in zip(ref, results["engine"]) if a)
    print(f"  largest relative difference engine vs hf: {worst:.2e}; engine: {engine.stats}")


# ------------------------------------------------------------------------------------------------ memory
def _rss_peak_reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _proc_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def _gemma_shaped(device: str) -> torch.nn.Module:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(**GEMMA_270M_SHAPE, bos_token_id=2, eos_token_id=1, pad_token_id=0)
    return Gemma3ForCausalLM(config).eval().to(device)


def _peak_above_loaded(device: str, fn: Callable[[], Any]) -> tuple[float, float]:
    """(seconds, peak bytes above the memory held before ``fn``)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        seconds, _ = _timed(fn)
        torch.cuda.synchronize()
        return seconds, torch.cuda.max_memory_allocated() - base
    base = _proc_kib("VmRSS")
    _rss_peak_reset()
    seconds, _ = _timed(fn)
    return seconds, (_proc_kib("VmHWM") - base) * 1024.0


def memory(batch: int, length: int, device: str, hf_memory: bool) -> None:
    from langneuron_eval.lmeval.engine import Budget, RollingEngine, RollingSpec

    model = _gemma_shaped(device)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    docs = [torch.randint(3, GEMMA_270M_SHAPE["vocab_size"], (length,), generator=gen).tolist() for _ in range(batch)]
    engine = RollingEngine(model, RollingSpec(prefix_token_id=1, max_length=length), Budget(batch_size=batch, max_batch_tokens=batch * length))  # one pass
    seconds, peak = _peak_above_loaded(device, lambda: engine.score(docs))
    gib = 1 << 30
    print(f"Gemma-3-270m shape on {device}: model parameters {param_bytes / gib:.2f} GiB; one batch of {batch} x "
          f"{length} tokens ({engine.stats.forward_passes} forward pass): engine peak {peak / gib:.2f} GiB above the "
          f"loaded model, {seconds:.1f} s; logit chunk {engine.chunk_rows(GEMMA_270M_SHAPE['vocab_size'], torch.float32)}"
          " positions")
    if hf_memory:
        hf_peak(model, docs, batch, length, device)


def hf_peak(model: torch.nn.Module, docs: list[list[int]], batch: int, length: int, device: str) -> None:
    """The same batch through ``HFLM.loglikelihood_rolling`` (token ids given as pre-tokenised requests)."""
    from lm_eval.models.huggingface import HFLM

    from langneuron_eval.testing import make_tokenizer

    lm = HFLM(pretrained=model, tokenizer=make_tokenizer(), batch_size=batch, max_length=length, device=device)
    lm.tok_encode = lambda text, **_: [int(t) for t in text.split()]  # the documents' ids, not the byte tokenizer's
    texts = [" ".join(map(str, d)) for d in docs]
    seconds, peak = _peak_above_loaded(device, lambda: lm.loglikelihood_rolling(_requests(texts), disable_tqdm=True))
    print(f"  hf batch {batch}: peak {peak / (1 << 30):.2f} GiB above the loaded model, {seconds:.1f} s")


# ------------------------------------------------------------------------------------------------ matrix
def _random_neurons(model_dir: str, langs: list[str], path: str, per_lang: int = 30) -> str:
    """A neuron file with ``per_lang`` random FFN units per language for the model in ``model_dir``."""
    import random

    from transformers import AutoConfig

    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    cfg = AutoConfig.from_pretrained(model_dir).get_text_config()
    units = [(layer, u) for layer in range(cfg.num_hidden_layers) for u in range(cfg.intermediate_size)]
    rng = random.Random(0)
    NeuronFile(ModelFingerprint(cfg.model_type, cfg.num_hidden_layers, cfg.intermediate_size, "act_out"), "bench",
               {lang: sorted(rng.sample(units, per_lang)) for lang in langs}).save(path, force=True)
    return path


def _plain_limit(model_dir: str, texts: list[str], passes: int, batch: int) -> float:
    """Seconds for: model load + ``passes`` plain batched forward passes with log-softmax over ``texts``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    docs = sorted((tok(t, add_special_tokens=False)["input_ids"] for t in texts), key=len, reverse=True)
    with torch.no_grad():
        for _ in range(passes):
            for i in range(0, len(docs), batch):
                rows = docs[i:i + batch]
                width = len(rows[0])
                ids = torch.zeros(len(rows), width, dtype=torch.long)
                targets = torch.zeros(len(rows), width, dtype=torch.long)
                for r, d in enumerate(rows):
                    ids[r, :len(d)] = torch.tensor([bos, *d[:-1]])
                    targets[r, :len(d)] = torch.tensor(d)
                logprobs = torch.log_softmax(model(ids, use_cache=False).logits, dim=-1)
                logprobs.gather(2, targets[..., None]).sum()
    return time.perf_counter() - start


def _gemma_dir(root: str) -> str:
    from langneuron_eval.testing import make_tokenizer

    path = os.path.join(root, "gemma-shape")
    model = _gemma_shaped("cpu")
    model.save_pretrained(path)
    make_tokenizer(path)
    return path


def _warm_imports(model_dir: str) -> None:
    """Import the model's modeling module and lm-eval's HF model before either side is timed.

    A process pays these imports once (about a second); whichever side ran first would otherwise pay them.
    """
    import lm_eval.models.huggingface  # noqa: F401
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(model_dir))]


def _engine_matrix(model_dir: str, neurons: str, langs: list[str], limit: int, tm: Any) -> tuple[float, dict]:
    """Seconds for: model load + ``ppl_change_matrix`` (every condition in one engine call); and its result."""
    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.pipelines.measurements import ppl_change_matrix

    start = time.perf_counter()
    lm = evaluation.load_model(model_dir, neurons, batch_size="auto")
    res = ppl_change_matrix(lm, langs, limit=limit, task_manager=tm)
    wall = time.perf_counter() - start
    del lm
    return wall, res


def matrix(models: list[str], limit: int, plain_batch: int, repeats: int) -> None:
    """Engine and plain limit interleaved ``repeats`` times; the fastest of each (the least disturbed run)."""
    import tempfile

    from langneuron_eval.core import demo_assets
    from langneuron_eval.languages import DEMO_LANGUAGES
    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.pipelines.measurements import ppl_documents

    langs = list(DEMO_LANGUAGES)
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            model_dir = str(demo_assets.base_model_path()) if name == "demo" else _gemma_dir(tmp)
            neurons = _random_neurons(model_dir, langs, os.path.join(tmp, f"{name}.json"))
            tm = evaluation.make_task_manager()
            texts = [t for ts in ppl_documents(tm, langs, limit).values() for t in ts]
            _warm_imports(model_dir)
            walls, plains = [], []
            for _ in range(repeats):
                wall, res = _engine_matrix(model_dir, neurons, langs, limit, tm)
                walls.append(wall)
                plains.append(_plain_limit(model_dir, texts, len(langs) + 1, plain_batch))
            wall, plain = min(walls), min(plains)
            print(f"ppl-matrix on {name}: {len(langs)} languages x {limit} lines, {res['tokens']} tokens over "
                  f"{res['runs']} conditions, fastest of {repeats} interleaved: wall {wall:.1f} s "
                  f"(runs {', '.join(f'{w:.1f}' for w in walls)}), limit (load + {len(langs) + 1} plain passes) "
                  f"{plain:.1f} s (runs {', '.join(f'{p:.1f}' for p in plains)}), wall / limit {wall / plain:.2f}")


# ------------------------------------------------------------------------------------------------ steering
def _steer_requests(tasks: list[str], per_task: int, gen: dict[str, Any]) -> list[Any]:
    """BOS-only generation requests, ``per_task`` for each task (lm-eval fills ``task_name`` from the metadata)."""
    from lm_eval.api.instance import Instance

    return [Instance("generate_until", {}, ("", dict(gen)), i, metadata=(task, i, 1))
            for task in tasks for i in range(per_task)]


def steering(n_prompts: int, new_tokens: int, repeats: int, positions: str) -> None:
    """Generated tokens/s: every language's steered rows in shared ``generate`` calls against plain ``generate``."""
    import tempfile

    from langneuron_eval.core import demo_assets
    from langneuron_eval.core.interventions import InterventionSpec
    from langneuron_eval.languages import DEMO_LANGUAGES
    from langneuron_eval.lmeval import evaluation

    langs = list(DEMO_LANGUAGES)
    per_task = max(1, n_prompts // len(langs))
    n = per_task * len(langs)
    model_dir = str(demo_assets.base_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        neurons = _random_neurons(model_dir, langs, os.path.join(tmp, "n.json"))
        lm = evaluation.load_model(model_dir, neurons, batch_size=n)
    tasks = [f"lang_steer_{lang}" for lang in langs]
    specs = {t: InterventionSpec.from_args("activate", lang, 1.0, 2.0, positions) for t, lang in zip(tasks, langs)}
    gen = {"until": [], "max_gen_toks": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}

    def batched() -> list[str]:
        with lm.task_interventions(specs):
            return lm.generate_until(_steer_requests(tasks, per_task, gen), disable_tqdm=True)

    def one_by_one() -> list[str]:
        out = []
        for task, lang in zip(tasks, langs):
            lm.set_intervention(mode="activate", lang=lang, value=1.0, strength=2.0, positions=positions)
            out += lm.generate_until(_steer_requests([task], per_task, gen), disable_tqdm=True)
        lm.set_intervention(mode="none")
        return out

    def plain() -> Any:
        ids = torch.full((n, 1), int(lm.prefix_token_id), dtype=torch.long)
        with torch.no_grad():
            return lm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=new_tokens, min_new_tokens=new_tokens)

    methods = {"batched steering": batched, "one language per call": one_by_one, "plain generate": plain}
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, Any] = {}
    for r in range(repeats):
        for name in (list(methods) if r % 2 == 0 else list(methods)[::-1]):
            seconds, outputs[name] = _timed(methods[name])
            times[name].append(seconds)
    tokens = n * new_tokens
    rate = {name: tokens / statistics.median(ts) for name, ts in times.items()}
    print(f"steering on the demo model: {len(langs)} languages x {per_task} BOS-only prompts x {new_tokens} tokens, "
          f"greedy, positions={positions}, {torch.get_num_threads()} threads, median of {repeats}")
    for name, tps in rate.items():
        print(f"  {name:<22} {tps:8.0f} generated tokens/s  {tps / rate['plain generate']:5.2f}x plain generate")
    same = outputs["batched steering"] == outputs["one language per call"]
    print(f"  batched outputs identical to one language per call: {same}")


LOOP = "generate's loop"


def decoding(label: str, families: tuple[str, ...], limit: int, batch: int, repeats: int) -> None:
    """One of the demo's generation passes with rows leaving the batch against ``generate``'s own loop."""
    from langneuron_eval.core import demo_assets
    from langneuron_eval.languages import DEMO_LANGUAGES
    from langneuron_eval.lmeval import evaluation
    from langneuron_eval.lmeval.model import LangNeuronLM

    tm = evaluation.make_task_manager()
    tasks = [f"{family}_{lang}" for family in families for lang in DEMO_LANGUAGES]
    model_dir = str(demo_assets.base_model_path())
    models = {name: LangNeuronLM(pretrained=model_dir, device="cpu", batch_size=batch, compact_generation=compact)
              for name, compact in (("rows leave", True), (LOOP, False))}

    def run(lm: Any) -> dict[str, list[str]]:
        res = evaluation.evaluate(lm, tasks, limit=limit, task_manager=tm, log_samples=True, bootstrap_iters=0,
                                  environment=False)
        return {t: [s["resps"][0][0] for s in sorted(res["samples"][t], key=lambda s: s["doc_id"])] for t in tasks}

    run(models[LOOP])  # warm-up: task data, imports
    times: dict[str, list[float]] = {name: [] for name in models}
    texts: dict[str, Any] = {}
    for r in range(repeats):
        for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
            seconds, texts[name] = _timed(lambda lm=models[name]: run(lm))
            times[name].append(seconds)
    stats = models["rows leave"].decoding_stats
    n = sum(len(a) for a in texts["rows leave"].values())
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"{label} on the demo model: {len(tasks)} tasks x {limit} ({n} generations), batch {batch}, lm-eval's "
          f"seeds, {torch.get_num_threads()} threads, median of {repeats} (all runs: "
          + "; ".join(f"{name} {', '.join(f'{t:.1f}' for t in ts)} s" for name, ts in times.items()) + ")")
    for name, seconds in med.items():
        print(f"  {name:<16} {seconds:6.1f} s  {seconds / med[LOOP]:5.2f}x {LOOP}")
    per_run = stats["row_steps"] / repeats
    unshrunk = stats["row_steps_unshrunk"] / repeats
    print(f"  row-steps per run with rows leaving: {per_run:.0f} (every row to its batch's last step: {unshrunk:.0f}, "
          f"{per_run / unshrunk:.2f}x); fallbacks: {sorted(set(stats['fallbacks'])) or 'none'}")
    print(f"  texts identical: {texts['rows leave'] == texts[LOOP]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["speed", "memory", "matrix", "steering", "decoding", "both", "all"],
                   default="all",
                   help="both = speed and memory")
    p.add_argument("--limit", type=int, default=100, help="speed, matrix: documents per demo language")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hf-batch-sizes", default="1,16", help="speed: hf batch sizes to time, comma-separated")
    p.add_argument("--batch", type=int, default=16, help="memory: documents in the one batch")
    p.add_argument("--length", type=int, default=256, help="memory: tokens per document")
    p.add_argument("--device", default="cpu")
    p.add_argument("--hf-memory", action="store_true", help="memory: measure hf's peak on the same batch too")
    p.add_argument("--matrix-models", default="demo,gemma", help="matrix: demo and/or gemma")
    p.add_argument("--plain-batch", type=int, default=16, help="matrix: documents per plain forward pass")
    p.add_argument("--prompts", type=int, default=36, help="steering: prompts generated together (split evenly "
                   "over the six demo languages, one steering task each)")
    p.add_argument("--positions", choices=["all", "generated"], default="all", help="steering: edited positions")
    p.add_argument("--new-tokens", type=int, default=32, help="steering: tokens generated per prompt")
    p.add_argument("--qa-limit", type=int, default=200, help="decoding: QA items per task (the demo's 200)")
    p.add_argument("--steer-limit", type=int, default=100, help="decoding: samples per language (the demo's 100)")
    p.add_argument("--gen-batch", type=int, default=50, help="decoding: rows per generate call (the demo's 50)")
    args = p.parse_args()
    parts = {"both": {"speed", "memory"},
             "all": {"speed", "memory", "matrix", "steering", "decoding"}}.get(args.part, {args.part})
    if "speed" in parts:
        speed(args.limit, args.repeats, [int(b) for b in args.hf_batch_sizes.split(",")])
    if "memory" in parts:
        memory(args.batch, args.length, args.device, args.hf_memory)
    if "matrix" in parts:
        matrix([m.strip() for m in args.matrix_models.split(",") if m.strip()], args.limit, args.plain_batch,
               args.repeats)
    if "steering" in parts:
        steering(args.prompts, args.new_tokens, args.repeats, args.positions)
    if "decoding" in parts:
        decoding("greedy QA (xqa, xmath)", ("xqa", "xmath"), args.qa_limit, args.gen_batch, args.repeats)
        decoding("sampled BOS-only lang_steer (unsteered)", ("lang_steer",), args.steer_limit, args.gen_batch,
                 args.repeats)


if __name__ == "__main__":
    main()
