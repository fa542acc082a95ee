"""Site linear_out (Kojima et al.'s unit scope): every linear output of a layer, recorded and edited."""

import pytest
import torch
import torch.nn as nn

from langneuron_eval.core.corpus import resolve_corpus
from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.interventions import Intervention, LanguageEdit
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.recorder import RecordConfig, record
from langneuron_eval.core.sites import resolve_sites
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.runner import run_detector
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.testing import TINY_CORPUS, make_tiny_model

LANGS = ["en", "de", "zh"]


def layer_linears(model):
    """(layer index, module) of every linear module of every decoder layer, found independently of sites.py."""
    layers = model.model.layers if hasattr(model, "model") else model.transformer.h
    out = []
    for i, layer in enumerate(layers):
        for _name, m in layer.named_modules():
            if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D":
                out.append((i, m))
    return out


def brute_force(model, tok):
    """Per language and layer: positive counts and sums of the concatenated linear outputs, one text at a time."""
    rows = {}
    for lang in LANGS:
        for text in TINY_CORPUS[lang]:
            enc = tok(text, return_tensors="pt", return_special_tokens_mask=True)
            keep = enc["special_tokens_mask"][0] == 0
            seen = []
            handles = [m.register_forward_hook(lambda _m, _a, out, i=i, seen=seen, keep=keep:
                                               seen.append((i, out[0][keep].double())))
                       for i, m in layer_linears(model)]
            with torch.no_grad():
                model(input_ids=enc["input_ids"])
            for h in handles:
                h.remove()
            per_layer = {}
            for i, a in seen:
                per_layer.setdefault(i, []).append(a)
            acts = torch.stack([torch.cat(per_layer[i], dim=-1) for i in sorted(per_layer)])  # [L, pos, N]
            pos, sums = rows.setdefault(lang, [0, 0])
            rows[lang] = [pos + (acts > 0).sum(1), sums + acts.sum(1)]
    return torch.stack([rows[x][0] for x in LANGS]), torch.stack([rows[x][1] for x in LANGS])


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_linear_out_counts_match_plain_forward_hooks(model_type, tiny_corpus_dir):
    model, tok = make_tiny_model(model_type)
    sources = resolve_corpus([str(tiny_corpus_dir)], LANGS)
    stats = record(model, tok, sources, RecordConfig(site="linear_out", batch_size=3), progress=False)
    pos, sums = brute_force(model, tok)
    widths = sum(m.weight.shape[0 if isinstance(m, nn.Linear) else 1] for i, m in layer_linears(model) if i == 0)
    assert stats.intermediate_size == widths and stats.positive_counts.shape[2] == widths
    assert torch.equal(stats.positive_counts, pos)
    torch.testing.assert_close(stats.activation_sums, sums, rtol=1e-5, atol=1e-5)
    assert stats.fingerprint.site == "linear_out" and stats.fingerprint.segments


def test_linear_out_stops_early_with_the_same_counts_and_sentence_means(tiny_corpus_dir):
    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([str(tiny_corpus_dir)], LANGS)
    cfg = RecordConfig(site="linear_out", batch_size=3, sentence_means=True)
    stopped = record(model, tok, sources, cfg, progress=False)
    full = record(model, tok, sources, cfg, progress=False, full_forward=True)
    assert torch.equal(stopped.positive_counts, full.positive_counts)
    assert torch.equal(stopped.sentence_means, full.sentence_means)
    # every unit of the last layer (the down projection's outputs included) has a sentence mean
    assert (stopped.sentence_means[:, -1].abs().sum(0) > 0).all()


@pytest.fixture(scope="module")
def kojima_file(tmp_path_factory):
    from langneuron_eval.testing import write_tiny_corpus

    model, tok = make_tiny_model("llama")
    folder = tmp_path_factory.mktemp("corpus")
    write_tiny_corpus(folder)
    stats = record(model, tok, resolve_corpus([str(folder)], LANGS),
                   RecordConfig(site="linear_out", sentence_means=True), progress=False)
    return model, tok, stats, run_detector("kojima_ap", stats, {"k_top": 3, "k_bottom": 2})


def test_kojima_ap_runs_on_linear_out_stats_and_names_modules(kojima_file, tmp_path):
    _model, _tok, stats, nf = kojima_file
    assert nf.fingerprint.segments == stats.fingerprint.segments
    assert all(len(u) == 5 for u in nf.languages.values())
    modules = {nf.fingerprint.unit_name(unit)[0] for units in nf.languages.values() for _, unit in units}
    assert modules <= {s.path for s in nf.fingerprint.segments}
    from langneuron_eval.detectors.report import render_summary, summarize

    summary = summarize(nf)
    per_module = summary["module_distribution"]
    assert {lang: sum(row.values()) for lang, row in per_module.items()} == nf.counts()
    assert "units per linear module" in render_summary(summary, "kojima")
    path = tmp_path / "stats.safetensors"
    stats.save(path)
    assert ActivationStats.load(path).fingerprint == stats.fingerprint  # the segment table survives a save


def test_linear_out_interventions_change_outputs_and_leaving_restores_logits(kojima_file):
    model, tok, _stats, nf = kojima_file
    enc = tok(["你好 hello"], return_tensors="pt")

    def logits():
        with torch.no_grad():
            return model(**enc).logits

    before = logits()
    for edit in (LanguageEdit("deactivate", "zh"), LanguageEdit("activate", "zh", "median", 8.0)):
        with Intervention(model, nf, [edit]) as iv:
            during = logits()
        assert iv.edit_calls > 0 and not torch.equal(before, during)
        assert torch.equal(before, logits())


def test_linear_out_edits_every_decoding_step_and_neuron_files_round_trip(kojima_file, tmp_path):
    model, tok, _stats, nf = kojima_file
    path = tmp_path / "neurons.json"
    nf.save(path)
    nf = NeuronFile.load(path)
    enc = tok(["hello"], return_tensors="pt")
    kw = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    plain = model.generate(**enc, **kw)
    iv = Intervention(model, nf, [LanguageEdit("activate", "zh", "median", 8.0)], positions="generated")
    with iv, iv.generating(), torch.no_grad():
        model.generate(**enc, **kw)
    edited_modules = len({(layer, nf.fingerprint.unit_name(u)[0]) for layer, u in nf.units("zh")})
    assert iv.edit_calls == 4 * edited_modules  # prefill + 3 decoding steps, once per edited module
    assert torch.equal(plain, model.generate(**enc, **kw))


def test_linear_out_edits_hit_the_right_module_and_index():
    model, tok = make_tiny_model("llama")
    sites = resolve_sites(model, "linear_out")
    k = next(s for s in sites.segments if s.path == "self_attn.k_proj")
    fp = sites.fingerprint
    nf = NeuronFile(fingerprint=fp, detector="handmade", languages={"zh": [[1, k.offset + 5]]})
    assert fp.unit_name(k.offset + 5) == ("self_attn.k_proj", 5)
    seen = {}
    with Intervention(model, nf, [LanguageEdit("activate", "zh", 7.0)]), torch.no_grad():
        # registered after the intervention's hooks, so it sees the edited output
        handle = model.model.layers[1].self_attn.k_proj.register_forward_hook(
            lambda _m, _a, out: seen.update(k=out.clone()))
        model(**tok(["hello"], return_tensors="pt"))
    handle.remove()
    assert (seen["k"][..., 5] == 7.0).all() and not (seen["k"][..., 4] == 7.0).all()


def test_linear_out_file_refuses_to_apply_at_act_out(kojima_file):
    model, _tok, _stats, nf = kojima_file
    with pytest.raises(LangNeuronError) as e:
        Intervention(model, nf, [LanguageEdit("deactivate", "zh")], sites=resolve_sites(model, "act_out"))
    assert "linear_out" in str(e.value) and "\n" not in str(e.value)


def test_act_out_fingerprint_has_no_segments_so_old_files_hash_the_same():
    model, _tok = make_tiny_model("llama")
    assert "segments" not in resolve_sites(model, "act_out").fingerprint.to_dict()
    d = resolve_sites(model, "linear_out").fingerprint.to_dict()
    assert ModelFingerprint.from_dict(d).to_dict() == d


def test_layers_with_different_linears_are_refused_with_one_line():
    model, _tok = make_tiny_model("llama")
    model.model.layers[1].mlp.extra = nn.Linear(4, 4)
    with pytest.raises(LangNeuronError, match="layer 1 has linear modules") as e:
        resolve_sites(model, "linear_out")
    assert "\n" not in str(e.value)


def test_a_linear_that_does_not_run_once_is_refused():
    model, _tok = make_tiny_model("llama")
    for layer in model.model.layers:
        layer.mlp.unused = nn.Linear(4, 4)  # registered in every layer, never called
    with pytest.raises(LangNeuronError, match="ran 0 times"):
        resolve_sites(model, "linear_out")


def test_cli_refuses_a_module_template_with_linear_out_before_loading(run_cli, tmp_path):
    rc, _out, err = run_cli("record", "--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "s.st"),
                            "--site", "linear_out", "--act-module", "model.layers.{layer}.mlp.act_fn")
    assert rc == 2 and "--site linear_out" in err and "no-such-model" not in err
