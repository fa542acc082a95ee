"""The recorder's counts equal a brute-force recomputation, for every adapter, padded or not."""

import pytest
import torch

from langneuron_eval.core.corpus import resolve_corpus
from langneuron_eval.core.hooks import hook_sites
from langneuron_eval.core.recorder import RecordConfig, record
from langneuron_eval.core.sites import resolve_sites
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.testing import TINY_CONFIGS, TINY_CORPUS, make_tiny_model


def brute_force(model, tok, corpus, site, count_special=False):
    """One sentence at a time, no padding, whole activation tensors kept: the obvious way.

    Positions the tokenizer marks as special (the BOS it adds) are dropped unless ``count_special``.
    """
    sites = resolve_sites(model, site)
    L, N = sites.num_layers, sites.intermediate_size
    out = {"pos": torch.zeros(len(corpus), L, N, dtype=torch.int64), "sum": torch.zeros(len(corpus), L, N, dtype=torch.float64),
           "sq": torch.zeros(len(corpus), L, N, dtype=torch.float64), "n": torch.zeros(len(corpus), dtype=torch.int64),
           "sent": []}
    for k, lang in enumerate(corpus):
        for text in corpus[lang]:
            enc = tok(text, return_tensors="pt", return_special_tokens_mask=True)
            ids = enc["input_ids"]
            keep_pos = torch.ones(ids.shape[1], dtype=torch.bool) if count_special else enc["special_tokens_mask"][0] == 0
            acts = {}

            def keep(layer, a, acts=acts, keep_pos=keep_pos):
                acts[layer] = a[0].double()[keep_pos]  # [counted pos, d_mlp]

            with hook_sites(sites, keep), torch.no_grad():
                model(input_ids=ids)
            out["n"][k] += int(keep_pos.sum())
            for layer in range(L):
                a = acts[layer]
                out["pos"][k, layer] += (a > 0).sum(0)
                out["sum"][k, layer] += a.sum(0)
                out["sq"][k, layer] += (a * a).sum(0)
            out["sent"].append(torch.stack([acts[layer].mean(0) for layer in range(L)]).float())
    return out


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_counts_match_brute_force_for_every_tiny_architecture(model_type, tiny_corpus_dir):
    model, tok = make_tiny_model(model_type)
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en", "de", "zh"])
    stats = record(model, tok, sources, RecordConfig(batch_size=3, sentence_means=True), progress=False)
    ref = brute_force(model, tok, {lang: TINY_CORPUS[lang] for lang in ["en", "de", "zh"]}, "act_out")
    assert stats.languages == ["en", "de", "zh"]
    assert torch.equal(stats.n_tokens, ref["n"])
    assert torch.equal(stats.positive_counts, ref["pos"])
    torch.testing.assert_close(stats.activation_sums, ref["sum"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats.activation_sq_sums, ref["sq"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats.sentence_means, torch.stack(ref["sent"]), rtol=1e-4, atol=1e-5)
    assert stats.sentence_lang.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert stats.fingerprint.model_type == model_type


def test_padding_is_never_counted(tiny_corpus_dir):
    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([str(tiny_corpus_dir)])
    unpadded = record(model, tok, sources, RecordConfig(batch_size=1), progress=False)
    padded = record(model, tok, sources, RecordConfig(batch_size=4), progress=False)
    assert torch.equal(unpadded.positive_counts, padded.positive_counts)
    assert torch.equal(unpadded.n_tokens, padded.n_tokens)
    # a batch of 4 sentences of different lengths really was padded
    lengths = [len(tok(s)["input_ids"]) for s in TINY_CORPUS["zh"]]
    assert len(set(lengths)) > 1
    torch.testing.assert_close(unpadded.activation_sums, padded.activation_sums, rtol=1e-5, atol=1e-5)


def test_down_in_site_and_bfloat16(tiny_corpus_dir):
    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([f"en={tiny_corpus_dir}/en.txt"])
    stats = record(model, tok, sources, RecordConfig(site="down_in"), progress=False)
    assert stats.fingerprint.site == "down_in"
    ref = brute_force(model, tok, {"en": TINY_CORPUS["en"]}, "down_in")
    assert torch.equal(stats.positive_counts, ref["pos"])
    model_bf16 = model.to(torch.bfloat16)
    low = record(model_bf16, tok, sources, RecordConfig(), progress=False)
    assert low.positive_counts.dtype == torch.int64 and low.activation_sums.dtype == torch.float64
    assert torch.equal(low.n_tokens, stats.n_tokens)


def test_max_sentences_and_truncation_are_recorded(tiny_corpus_dir):
    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en"])
    stats = record(model, tok, sources, RecordConfig(max_sentences=2, max_length=5), progress=False)
    assert stats.metadata["corpus"]["en"]["sentences"] == 2
    assert stats.metadata["corpus"]["en"]["truncated"] == 2
    assert int(stats.n_tokens[0]) == 8  # 5 positions each, of which the BOS is not counted


def _calls(module):
    calls = []
    return calls, module.register_forward_hook(lambda *_: calls.append(1))


@pytest.mark.parametrize("site", ["act_out", "down_in"])
def test_stopping_after_the_last_site_changes_nothing_and_skips_the_output_layer(tiny_corpus_dir, site):
    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en", "zh"])
    cfg = RecordConfig(batch_size=3, sentence_means=True, site=site)
    head_calls, h1 = _calls(model.lm_head)
    norm_calls, h2 = _calls(model.model.norm)
    try:
        early = record(model, tok, sources, cfg, progress=False)
        assert head_calls == [] and norm_calls == []  # no output layer, no final norm, hence no logits
        full = record(model, tok, sources, cfg, progress=False, full_forward=True)
        assert len(head_calls) > 0 and len(norm_calls) > 0
    finally:
        h1.remove()
        h2.remove()
    a, b = early.tensors(), full.tensors()
    assert a.keys() == b.keys()
    for name in a:  # bit for bit, not merely close
        assert torch.equal(a[name], b[name]), name
    # the stop hook is gone afterwards: a plain forward still produces logits
    assert model(**tok(["hello"], return_tensors="pt")).logits.shape[-1] == model.config.vocab_size


def test_special_tokens_are_counted_only_on_request(tiny_corpus_dir):
    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en", "zh"])
    corpus = {lang: TINY_CORPUS[lang] for lang in ["en", "zh"]}
    text_only = record(model, tok, sources, RecordConfig(batch_size=3, sentence_means=True), progress=False)
    every = record(model, tok, sources, RecordConfig(batch_size=3, sentence_means=True, count_special_tokens=True),
                   progress=False)
    for stats, count_special in ((text_only, False), (every, True)):
        ref = brute_force(model, tok, corpus, "act_out", count_special=count_special)
        assert torch.equal(stats.n_tokens, ref["n"])
        assert torch.equal(stats.positive_counts, ref["pos"])
        torch.testing.assert_close(stats.activation_sums, ref["sum"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stats.sentence_means, torch.stack(ref["sent"]), rtol=1e-4, atol=1e-5)
        assert stats.metadata["record_config"]["count_special_tokens"] is count_special
        assert stats.counts_special_tokens is count_special
    assert (every.n_tokens - text_only.n_tokens).tolist() == [4, 4]  # one BOS per sentence
    assert not torch.equal(every.sentence_means, text_only.sentence_means)


def test_files_without_the_choice_read_as_counting_every_position(tiny_corpus_dir, tmp_path):
    model, tok = make_tiny_model("llama")
    stats = record(model, tok, resolve_corpus([str(tiny_corpus_dir)], ["en"]), RecordConfig(), progress=False)
    del stats.metadata["record_config"]["count_special_tokens"]  # as written before the option existed
    stats.save(tmp_path / "old.safetensors")
    assert ActivationStats.load(tmp_path / "old.safetensors").counts_special_tokens is True


# ---------------------------------------------------------------------- non-finite activations (issue #28)
_ACT = "model.layers.{layer}.mlp.act_fn"  # the replaced activation is not a type discovery knows
class _InfAct(torch.nn.Module):
    """SiLU, but inf in units 0-2 where ``where(ids, attention)`` says so: an MLP that overflows on some inputs."""

    def __init__(self, where):
        super().__init__()
        self.where, self.ids, self.attention = where, None, None

    def forward(self, x):
        y = torch.nn.functional.silu(x)
        bad = self.where(self.ids, self.attention)  # [batch, pos] bool
        y[..., :3] = torch.where(bad[..., None], torch.tensor(float("inf")), y[..., :3])
        return y


def _poisoned(where, layer=1):
    """The tiny Llama with layer ``layer``'s activation replaced by :class:`_InfAct` (inputs seen by a pre-hook)."""
    model, tok = make_tiny_model("llama")
    act = _InfAct(where)
    model.model.layers[layer].mlp.act_fn = act

    def see(_module, _args, kwargs):
        ids = kwargs["input_ids"]  # site discovery probes with a one-token call and no mask
        act.ids, act.attention = ids, kwargs.get("attention_mask", torch.ones_like(ids))

    model.register_forward_pre_hook(see, with_kwargs=True)
    return model, tok


def test_non_finite_activations_at_counted_tokens_stop_with_layer_and_counts(tiny_corpus_dir):
    from langneuron_eval.errors import LangNeuronError

    model, tok = _poisoned(lambda ids, attention: (ids % 7 == 0) | (attention == 0))  # padding too: not counted
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en", "de"])
    # brute force: the counted tokens of the first chunk (all of en) whose id is a multiple of 7
    enc = tok(TINY_CORPUS["en"], return_special_tokens_mask=True)
    tokens = sum(int(t % 7 == 0 and not s) for ids, sp in zip(enc["input_ids"], enc["special_tokens_mask"])
                 for t, s in zip(ids, sp))
    assert tokens > 0
    with pytest.raises(LangNeuronError, match=rf"in en sentences 0-3: layer 1: {3 * tokens} values in {tokens} "
                                              r"tokens; nothing of these sentences was counted"):
        record(model, tok, sources, RecordConfig(batch_size=2, module_template=_ACT), progress=False)


def test_non_finite_activations_at_padding_only_warn_and_count_exactly(tiny_corpus_dir):
    clean_model, tok = make_tiny_model("llama")
    model, _ = _poisoned(lambda ids, attention: attention == 0)  # every padding position overflows
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en", "zh"])
    cfg = RecordConfig(batch_size=4, sentence_means=True, module_template=_ACT)
    with pytest.warns(UserWarning, match="not counted .* layers 1; re-counted"):
        got = record(model, tok, sources, cfg, progress=False)
    clean = record(clean_model, tok, sources, cfg, progress=False)
    for name in ("n_tokens", "positive_counts", "activation_sums", "activation_sq_sums", "sentence_means"):
        assert torch.equal(getattr(got, name), getattr(clean, name)), name
    assert [x["lang"] for x in got.metadata["nonfinite"]] == ["en", "zh"]
    assert "nonfinite" not in clean.metadata


# ---------------------------------------------------------------------- half precision (issue #28 item 4)
def _jaccard(a: list, b: list) -> float:
    a, b = set(map(tuple, a)), set(map(tuple, b))
    return len(a & b) / max(1, len(a | b))


def test_half_precision_recording_selects_the_float32_units_within_the_documented_tolerance():
    """Demo model, 60 sentences per language, on the CPU: float16/bfloat16 weights and activations, counters in
    float32/64. Documented tolerance (docs/file_formats.md): kojima_ap's sets (1,536 units per language) agree with
    float32's to Jaccard >= 0.98 per language; LAPE's small sets (3-11 units, chosen at a threshold) to >= 0.7 pooled."""
    import warnings

    from langneuron_eval.core.demo_assets import demo_corpus_dir
    from langneuron_eval.core.modeling import default_model_path, load_model
    from langneuron_eval.detectors.runner import run_detector

    sources = resolve_corpus([str(demo_corpus_dir("detect"))])
    sets = {}
    for dtype in ("float32", "bfloat16", "float16"):
        model, tok = load_model(str(default_model_path()), dtype=dtype)
        stats = record(model, tok, sources, RecordConfig(sentence_means=True, max_sentences=60), progress=False)
        assert stats.metadata["dtype"] == dtype and stats.activation_sums.dtype == torch.float64
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sets[dtype] = {m: run_detector(m, stats, {}).languages for m in ("lape", "kojima_ap")}
    for dtype in ("bfloat16", "float16"):
        ref, got = sets["float32"], sets[dtype]
        for lang in ref["kojima_ap"]:
            assert _jaccard(ref["kojima_ap"][lang], got["kojima_ap"][lang]) >= 0.98, (dtype, lang)
        pooled = _jaccard([(k, *u) for k, v in ref["lape"].items() for u in v],
                          [(k, *u) for k, v in got["lape"].items() for u in v])
        assert pooled >= 0.7, (dtype, pooled)
