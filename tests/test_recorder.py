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
