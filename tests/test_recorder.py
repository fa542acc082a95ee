"""The recorder's counts equal a brute-force recomputation, for every adapter, padded or not."""

import pytest
import torch

from langneuron_eval.corpus import resolve_corpus
from langneuron_eval.hooks import hook_sites
from langneuron_eval.recorder import RecordConfig, record
from langneuron_eval.sites import ADAPTERS, resolve_sites
from langneuron_eval.testing import TINY_CORPUS, make_tiny_model


def brute_force(model, tok, corpus, site):
    """One sentence at a time, no padding, whole activation tensors kept: the obvious way."""
    sites = resolve_sites(model, site)
    L, N = sites.num_layers, sites.intermediate_size
    out = {"pos": torch.zeros(len(corpus), L, N, dtype=torch.int64), "sum": torch.zeros(len(corpus), L, N, dtype=torch.float64),
           "sq": torch.zeros(len(corpus), L, N, dtype=torch.float64), "n": torch.zeros(len(corpus), dtype=torch.int64),
           "sent": []}
    for k, lang in enumerate(corpus):
        for text in corpus[lang]:
            ids = tok(text, return_tensors="pt")["input_ids"]
            acts = {}

            def keep(layer, a, acts=acts):
                acts[layer] = a[0].double()  # [pos, d_mlp]

            with hook_sites(sites, keep), torch.no_grad():
                model(input_ids=ids)
            out["n"][k] += ids.shape[1]
            for layer in range(L):
                a = acts[layer]
                out["pos"][k, layer] += (a > 0).sum(0)
                out["sum"][k, layer] += a.sum(0)
                out["sq"][k, layer] += (a * a).sum(0)
            out["sent"].append(torch.stack([acts[layer].mean(0) for layer in range(L)]).float())
    return out


@pytest.mark.parametrize("model_type", sorted(ADAPTERS))
def test_counts_match_brute_force_for_every_adapter(model_type, tiny_corpus_dir):
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
    assert int(stats.n_tokens[0]) == 10
