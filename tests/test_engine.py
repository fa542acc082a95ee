"""The rolling-log-likelihood engine against lm-eval's own ``hf`` model, on the demo model and sliding-window models."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from transformers import AutoModelForCausalLM, AutoTokenizer

from langneuron_eval.core import demo_assets
from langneuron_eval.demo_corpus import LANGUAGES, sentences
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval.engine import (
    Budget,
    RollingEngine,
    RollingSpec,
    Window,
    encode_once,
    perplexity,
    plan_batches,
)
from langneuron_eval.testing import TINY_CORPUS, make_tiny_model

REL = 1e-6  # issue: the engine reproduces hf's rolling log-likelihood to 1e-6 relative


def _hf(model, tok, max_length=None, batch_size=4) -> HFLM:
    return HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, max_length=max_length)


def _reference(lm: HFLM, texts: list[str]) -> list[float]:
    reqs = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    return lm.loglikelihood_rolling(reqs, disable_tqdm=True)


def _engine(lm: HFLM, **budget) -> RollingEngine:
    return RollingEngine(lm.model, RollingSpec(lm.prefix_token_id, lm.max_length), Budget(**budget))


def _assert_close(ref: list[float], got: list[float]) -> None:
    for i, (a, b) in enumerate(zip(ref, got)):
        assert abs(a - b) <= REL * abs(a), f"document {i}: hf {a!r}, engine {b!r}"


@pytest.fixture(scope="module")
def demo():
    path = demo_assets.base_model_path()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def demo_texts() -> list[str]:
    short = [s for lang in LANGUAGES for s in sentences(lang, "eval", 4)]
    return short + [" ".join(short[i:i + 8]) for i in range(0, len(short), 8)]  # long ones span several windows


@pytest.mark.parametrize("max_length", [None, 40])
def test_demo_model_matches_hf(demo, demo_texts, max_length):
    lm = _hf(*demo, max_length=max_length)
    engine = _engine(lm)
    scores = engine.score([lm.tok_encode(t) for t in demo_texts])
    _assert_close(_reference(lm, demo_texts), [s.loglikelihood for s in scores])
    if max_length:
        assert max(s.windows for s in scores) > 2
    assert [s.tokens for s in scores] == [len(lm.tok_encode(t)) for t in demo_texts]
    assert engine.stats.forward_passes < engine.stats.windows  # batched across documents
    assert engine.stats.fallback is None


SLIDING = [("mistral", {"sliding_window": 8}),
           ("gemma2", {"sliding_window": 8, "final_logit_softcapping": 0.5}),
           ("gemma3_text", {"sliding_window": 8, "final_logit_softcapping": 0.5})]
LONG_TEXTS = [" ".join(v) for v in TINY_CORPUS.values()] + [t for v in TINY_CORPUS.values() for t in v[:2]]


@pytest.mark.parametrize("model_type,overrides", SLIDING, ids=[s[0] for s in SLIDING])
def test_sliding_window_models_match_hf(model_type, overrides):
    model, tok = make_tiny_model(model_type, **overrides)
    lm = _hf(model, tok, max_length=48)
    ref = _reference(lm, LONG_TEXTS)
    engine = _engine(lm)
    _assert_close(ref, [s.loglikelihood for s in engine.score([lm.tok_encode(t) for t in LONG_TEXTS])])
    assert engine.stats.fallback is None
    if "final_logit_softcapping" in overrides:
        assert engine.stats.transform == "softcap(0.5)"
    # the documents are long enough for the window (and the softcap) to matter: without them hf scores differ
    wide, _ = make_tiny_model(model_type, **{**overrides, "sliding_window": 4096, "final_logit_softcapping": None})
    ref_wide = _reference(_hf(wide, tok, max_length=48), LONG_TEXTS)
    assert max(abs(a - b) / abs(a) for a, b in zip(ref, ref_wide)) > 1e-3


def test_unknown_logit_postprocessing_falls_back_and_still_agrees():
    model, tok = make_tiny_model("llama")

    def double(_mod, _args, out):
        out.logits = out.logits * 2.0  # a post-processing no configuration field names
        return out

    handle = model.register_forward_hook(double)
    try:
        lm = _hf(model, tok, max_length=32)
        engine = _engine(lm)
        got = engine.score([lm.tok_encode(t) for t in LONG_TEXTS])
        _assert_close(_reference(lm, LONG_TEXTS), [s.loglikelihood for s in got])
    finally:
        handle.remove()
    assert engine.stats.fallback and "post-processes" in engine.stats.fallback


@contextlib.contextmanager
def _row_offsets(module: torch.nn.Module, offsets: list[float]):
    """Add offsets[row] to every output of ``module``: a stand-in for a per-row intervention."""
    shift = torch.tensor(offsets)[:, None, None]  # [batch, 1, 1]
    handle = module.register_forward_hook(lambda _m, _a, out: out + shift)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.parametrize("mixed_rows", [True, False])
def test_rows_of_one_batch_carry_their_own_condition(demo, demo_texts, mixed_rows):
    """Each condition's scores equal hf's under that condition applied to the whole model."""
    model, tok = demo
    lm = _hf(model, tok, max_length=40)
    mlp = model.model.layers[0].mlp
    conditions = [0.0, 0.3, -0.2]
    texts = demo_texts[:6] + demo_texts[-2:]
    seen: list[tuple] = []

    def row_context(row_conds):
        seen.append(row_conds)
        return _row_offsets(mlp, list(row_conds))

    tokens = encode_once([t for _ in conditions for t in texts], lm.tok_encode)
    conds = [c for c in conditions for _ in texts]
    got = _engine(lm).score(tokens, conds, row_context, mixed_rows=mixed_rows)
    for k, c in enumerate(conditions):
        with _row_offsets(mlp, [c]):  # every row of every hf batch
            ref = _reference(lm, texts)
        _assert_close(ref, [s.loglikelihood for s in got[k * len(texts):(k + 1) * len(texts)]])
    assert any(len(set(rc)) > 1 for rc in seen) is mixed_rows


def test_budget_bounds_batches_and_logit_chunks(demo, demo_texts):
    model, tok = demo
    lm = _hf(model, tok, max_length=40)
    tokens = [lm.tok_encode(t) for t in demo_texts]
    shapes, head_rows = [], []
    h1 = model.register_forward_pre_hook(lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                         with_kwargs=True)
    h2 = model.lm_head.register_forward_pre_hook(lambda _m, a: head_rows.append(a[0].shape[0])
                                                 if a[0].dim() == 2 else None)
    try:
        vocab = model.config.vocab_size
        engine = _engine(lm, batch_size=5, max_batch_tokens=120, logit_chunk_bytes=vocab * 8 * 7)
        small = engine.score(tokens)
    finally:
        h1.remove()
        h2.remove()
    assert engine.chunk_rows(vocab, torch.float32) == 7
    assert max(head_rows) == 7
    assert all(rows <= 5 and (rows == 1 or rows * width <= 120) for rows, width in shapes)
    big = _engine(lm).score(tokens)
    _assert_close([s.loglikelihood for s in big], [s.loglikelihood for s in small])


def test_plan_batches_covers_every_window_once():
    lengths = [30, 5, 29, 8, 30, 7, 22, 23, 6, 1]
    windows = [Window(i, tuple(range(n)), (0,)) for i, n in enumerate(lengths)]
    group = [i % 2 for i in range(len(lengths))]
    for grp in (None, group):
        batches = plan_batches(windows, max_rows=3, max_tokens=70, group=grp)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for b in batches:
            longest = max(lengths[i] for i in b)
            assert lengths[b[0]] == longest and len(b) <= 3 and len(b) * longest <= 70
            assert all(lengths[i] >= 0.75 * longest for i in b)
            if grp is not None:
                assert len({grp[i] for i in b}) == 1


def test_empty_document_and_bad_input(demo):
    model, tok = demo
    lm = _hf(model, tok)
    scores = _engine(lm).score([[], lm.tok_encode("Hallo")])
    assert (scores[0].loglikelihood, scores[0].tokens, scores[0].windows) == (0.0, 0, 0)
    assert scores[1].tokens > 0 and scores[1].loglikelihood < 0
    with pytest.raises(LangNeuronError, match="batch_size"):
        Budget(batch_size=0)
    with pytest.raises(LangNeuronError, match="conditions"):
        _engine(lm).score([[5, 6]], conditions=["a", "b"])


def test_perplexity_never_raises():
    assert perplexity(-2.0, 2) == pytest.approx(math.e)
    assert perplexity(-1e6, 1) == math.inf  # math.exp would raise OverflowError
    assert math.isnan(perplexity(0.0, 0))
