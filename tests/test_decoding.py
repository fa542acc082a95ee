"""Decoding that drops finished rows gives ``generate``'s own tokens, greedy and sampled, on several cache layouts.

The reference is ``generate`` without ``custom_generate``. Rows end at different steps (an EOS picked from the
model's own output, or lm-eval's stop strings), so the batch really shrinks; ``stats`` shows it did. Sampled runs
must also leave torch's random stream where ``generate`` leaves it.
"""

from __future__ import annotations

import pytest
import torch

from langneuron_eval.core import demo_assets
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.decoding import CompactDecoding
from langneuron_eval.lmeval.model import LangNeuronLM
from langneuron_eval.testing import make_tiny_model

PROMPTS = ["Hello there, friend", "Guten", "早上好 und so weiter", "abc", "x"]


def _inputs(tok):
    enc = tok(PROMPTS, return_tensors="pt", padding=True, padding_side="left")
    return enc["input_ids"], {"attention_mask": enc["attention_mask"], "do_sample": False,
                              "pad_token_id": tok.pad_token_id}


SAMPLE = {"do_sample": True, "temperature": 0.9, "top_k": 0, "top_p": 1.0}


def _early_eos(model, ids, kw, seed=None) -> int:
    """A token the first prompt's continuation produces at its third step: that row ends early."""
    if seed is not None:
        torch.manual_seed(seed)
    first = model.generate(ids, max_new_tokens=4, eos_token_id=None, **kw)
    return int(first[0, ids.shape[1] + 2])


def _generate(model, ids, kw, seed, **extra):
    """Seeded ``generate``; also returns the next number torch's random stream gives after it."""
    if seed is not None:
        torch.manual_seed(seed)
    out = model.generate(ids, **kw, **extra)
    return out, torch.rand(1).item()


# llama: plain attention; gemma3_text: sliding-window layers; gpt2: absolute positions (position ids follow the
# rows); qwen3_moe: experts; qwen3_next: linear-attention layers, a cache that cannot drop rows
@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gpt2", "qwen3_moe", "qwen3_next"])
def test_tokens_equal_generate_while_rows_leave(model_type, sampled):
    model, tok = make_tiny_model(model_type, seed=1)
    ids, kw = _inputs(tok)
    seed = 7
    kw = {**kw, **SAMPLE} if sampled else kw
    kw["eos_token_id"] = _early_eos(model, ids, kw, seed)
    plain, after_plain = _generate(model, ids, kw, seed, max_new_tokens=12)
    loop = CompactDecoding()
    fast, after_fast = _generate(model, ids, kw, seed, max_new_tokens=12, custom_generate=loop)
    assert torch.equal(fast, plain)
    assert after_fast == after_plain  # the random stream is where generate leaves it
    assert (plain[0, ids.shape[1]:] == kw["eos_token_id"]).any()  # the first row did stop early
    assert loop.stats["fallbacks"] == []
    if model_type == "qwen3_next":  # finished rows stay in the batch, with pad tokens, as in generate's loop
        assert loop.stats["row_steps"] == loop.stats["row_steps_unshrunk"]
    else:
        assert loop.stats["row_steps"] < loop.stats["row_steps_unshrunk"]


def test_sampling_is_multinomials_draw():
    """The loop samples as ``argmax(probs / Exp(1) noise)``; this is what ``torch.multinomial`` draws, seed for seed."""
    probs = torch.softmax(torch.randn(6, 50) * 3, dim=-1)
    torch.manual_seed(3)
    expected = torch.multinomial(probs, 1).squeeze(1)
    torch.manual_seed(3)
    assert torch.equal(CompactDecoding._choose(torch.log(probs), True, 6, torch.arange(6)), expected)


def test_unknown_logits_processor_falls_back_to_generate():
    model, tok = make_tiny_model("llama", seed=1)
    ids, kw = _inputs(tok)
    penalty = {"exponential_decay_length_penalty": (2, 1.5), "eos_token_id": _early_eos(model, ids, kw)}
    loop = CompactDecoding()
    fast = model.generate(ids, max_new_tokens=8, custom_generate=loop, **penalty, **kw)
    assert torch.equal(fast, model.generate(ids, max_new_tokens=8, **penalty, **kw))
    assert loop.stats["fallbacks"] == ["logits processor ExponentialDecayLengthPenalty"]
    assert loop.stats["row_steps"] == 0


def _demo_texts(tasks, limit):
    """lm-eval's generations on the demo model with rows dropped and with generate's own loop, and the loop's stats."""
    tm = evaluation.make_task_manager()
    texts, stats = {}, {}
    for compact in (False, True):
        lm = LangNeuronLM(pretrained=str(demo_assets.base_model_path()), device="cpu", batch_size=8,
                          compact_generation=compact)
        res = evaluation.evaluate(lm, tasks, limit=limit, task_manager=tm, log_samples=True, bootstrap_iters=0,
                                  environment=False)
        texts[compact] = {t: [s["resps"][0][0] for s in sorted(res["samples"][t], key=lambda s: s["doc_id"])]
                          for t in tasks}
        stats[compact] = lm.decoding_stats
    return texts, stats


def test_demo_qa_answers_identical_with_and_without_dropping_rows():
    """lm-eval's stop strings end rows: the QA answers lm-eval scores are the same, with fewer rows computed."""
    tasks = ["xqa_en", "xmath_de"]
    answers, stats = _demo_texts(tasks, 24)
    assert answers[True] == answers[False]
    assert len({a for t in tasks for a in answers[True][t]}) > 5  # real, varied answers
    assert stats[False]["row_steps"] == 0  # off: generate's own loop
    assert 0 < stats[True]["row_steps"] < stats[True]["row_steps_unshrunk"]


def test_demo_sampled_steering_texts_identical_with_and_without_dropping_rows():
    """Sampled lang_steer generations end with EOS at different steps: same texts under lm-eval's seeds."""
    tasks = ["lang_steer_en", "lang_steer_ja"]
    texts, stats = _demo_texts(tasks, 16)
    assert texts[True] == texts[False]
    assert len({x for t in tasks for x in texts[True][t]}) == 32  # 32 different samples
    assert 0 < stats[True]["row_steps"] < stats[True]["row_steps_unshrunk"]


def test_static_cache_keeps_generates_own_loop():
    """A cache the loop cannot shrink by design (static, which generate may compile) is left to generate."""
    model, tok = make_tiny_model("llama", seed=1)
    ids, kw = _inputs(tok)
    loop = CompactDecoding()
    fast = model.generate(ids, max_new_tokens=6, cache_implementation="static", custom_generate=loop, **kw)
    assert torch.equal(fast, model.generate(ids, max_new_tokens=6, cache_implementation="static", **kw))
    assert loop.stats["fallbacks"] == ["a StaticCache"]
