"""Interventions edit exactly the chosen neurons, at the chosen positions, and leave no trace."""

import pytest
import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.hooks import hook_sites
from langneuron_eval.core.interventions import Intervention, LanguageEdit, edits_from_args
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.sites import resolve_sites
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.testing import make_tiny_model


@pytest.fixture(scope="module")
def model_tok():
    return make_tiny_model("llama", seed=1)


def nf(site="act_out"):
    return NeuronFile(
        fingerprint=ModelFingerprint("llama", 2, 48, site), detector="handmade",
        languages={"zh": [[0, 3], [1, 10], [1, 11]], "en": [[0, 3], [0, 4]]},
        values={"zh": {"mean": [0.5, -1.0, 2.0], "median": [0.1, 0.2, 0.3]}, "en": {"mean": [0.7, 0.8]}})


def capture(model, tok, site="act_out"):
    """Site tensors as the *next* module sees them (hooks registered after the intervention's)."""
    got = {}

    def keep(layer, acts):
        got[layer] = acts.detach().clone()

    return got, hook_sites(resolve_sites(model, site), keep)


def run(model, tok, text="你好 hello"):
    enc = tok([text], return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits


def test_leaving_the_context_restores_bit_identical_logits(model_tok):
    model, tok = model_tok
    before = run(model, tok)
    with Intervention(model, nf(), [LanguageEdit("activate", "zh", "mean", 8.0)]):
        during = run(model, tok)
    after = run(model, tok)
    assert not torch.equal(before, during)
    assert torch.equal(before, after)


@pytest.mark.parametrize("site", ["act_out", "down_in"])
def test_deactivate_activate_scale_values(model_tok, site):
    model, tok = model_tok
    plain, cm = capture(model, tok, site)
    with cm:
        run(model, tok)
    for mode, value, strength in [("deactivate", "mean", 1.0), ("activate", "mean", 4.0),
                                  ("activate", "median", 1.0), ("activate", 1.5, 2.0), ("scale", "mean", 3.0)]:
        got, cm = capture(model, tok, site)
        with Intervention(model, nf(site), [LanguageEdit(mode, "zh", value, strength)]), cm:
            run(model, tok)
        expect = {"deactivate": [0.0] * 3, "scale": None}.get(mode)
        if mode == "activate":
            base = {"mean": [0.5, -1.0, 2.0], "median": [0.1, 0.2, 0.3]}.get(value, [1.5] * 3)
            expect = [v * strength for v in base]
        for (layer, unit), i in zip([(0, 3), (1, 10), (1, 11)], range(3)):
            if mode == "scale":
                if layer > 0:  # layer 0's edit changed layer 1's input, so plain[1] is no reference
                    continue
                target = plain[layer][..., unit] * strength
            else:
                target = torch.full_like(got[layer][..., unit], expect[i])
            torch.testing.assert_close(got[layer][..., unit], target)
        untouched = [u for u in range(48) if u not in (3,)]
        # layer 0 units other than 3 see the unmodified layer-0 input, so they are exactly the plain values
        assert torch.equal(got[0][..., untouched], plain[0][..., untouched])


def test_several_languages_apply_in_order(model_tok):
    model, tok = model_tok
    edits = edits_from_args("activate", ["zh"], "mean", 2.0, deactivate=["en"])
    got, cm = capture(model, tok)
    with Intervention(model, nf(), edits), cm:
        run(model, tok)
    assert torch.all(got[0][..., 4] == 0)  # en only -> zeroed
    assert torch.all(got[0][..., 3] == 1.0)  # shared by en and zh -> activation wins (0.5 x 2)


def test_positions_generated_leaves_prompt_and_fires_every_step(model_tok):
    model, tok = model_tok
    enc = tok(["hello"], return_tensors="pt")
    prompt_len = enc["input_ids"].shape[1]
    iv = Intervention(model, nf(), [LanguageEdit("deactivate", "zh")], positions="generated")
    got, cm = capture(model, tok)
    with iv, cm, torch.no_grad():
        model(**enc)  # not generating: positions=generated edits nothing
    assert iv.edit_calls == 0 and not torch.all(got[0][..., 3] == 0)

    seen = []

    def keep(layer, acts):
        if layer == 0:
            seen.append(acts[0, :, 3].clone())

    with iv, iv.generating(), hook_sites(resolve_sites(model, "act_out"), keep), torch.no_grad():
        out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id,
                             min_new_tokens=5)
    n_new = out.shape[1] - prompt_len
    assert n_new == 5
    assert len(seen) == n_new  # one forward per new token (prefill + 4 cached steps)
    assert iv.edit_calls == 2 * n_new  # both layers hold zh neurons, every step edited
    assert seen[0].shape[0] == prompt_len
    assert seen[0][-1] == 0 and not torch.all(seen[0][:-1] == 0)  # prompt untouched but the predicting position
    assert all(s.shape[0] == 1 and s[0] == 0 for s in seen[1:])


def test_positions_all_edits_prompt_during_generation(model_tok):
    model, tok = model_tok
    enc = tok(["hello"], return_tensors="pt")
    iv = Intervention(model, nf(), [LanguageEdit("deactivate", "zh")])
    seen = []
    with iv, iv.generating(), hook_sites(resolve_sites(model, "act_out"),
                                         lambda layer, a: seen.append(a[0, :, 3].clone()) if layer == 0 else None):
        model.generate(**enc, max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert all(torch.all(s == 0) for s in seen)


def test_bad_arguments_are_one_line_errors(model_tok):
    model, _ = model_tok
    with pytest.raises(LangNeuronError, match="needs lang"):
        edits_from_args("activate", [])
    with pytest.raises(LangNeuronError, match="unknown intervention mode"):
        edits_from_args("boost", ["zh"])
    with pytest.raises(LangNeuronError, match="not in the neuron file"):
        Intervention(model, nf(), [LanguageEdit("deactivate", "fr")])
    with pytest.raises(LangNeuronError, match="no 'p90' activation values"):
        Intervention(model, nf(), [LanguageEdit("activate", "zh", "p90")])
    with pytest.raises(LangNeuronError, match="invalid activation value"):
        Intervention(model, nf(), [LanguageEdit("activate", "zh", "biggest")])
    with pytest.raises(LangNeuronError, match="unknown positions"):
        Intervention(model, nf(), [], positions="prompt")
    other = NeuronFile(ModelFingerprint("llama", 3, 48, "act_out"), "x", {"zh": [[2, 0]]})
    with pytest.raises(LangNeuronError, match="3 layers"):
        Intervention(model, other, [LanguageEdit("deactivate", "zh")])


def overlapping_nf(site="act_out"):
    """Three languages sharing layer-0 units, so fused edits have to compose in order."""
    langs = {"a": [[0, 1], [0, 2], [0, 3]], "b": [[0, 2], [0, 3], [0, 4]], "c": [[0, 3], [0, 4], [0, 5]]}
    values = {lang: {"mean": [0.5 + i + 10 * k for i in range(3)]} for k, lang in enumerate(langs)}
    return NeuronFile(ModelFingerprint("llama", 2, 48, site), "handmade", langs, values=values)


def naive(acts, neurons, edits):
    """Reference: apply each edit to layer 0 one after another, unit by unit."""
    out = acts.clone()
    for e in edits:
        for i, (_, unit) in enumerate(neurons.units(e.lang)):
            if e.mode == "deactivate":
                out[..., unit] = 0.0
            elif e.mode == "scale":
                out[..., unit] = out[..., unit] * e.strength
            else:
                v = float(e.value) if not isinstance(e.value, str) else neurons.value_table(e.lang, e.value)[i]
                out[..., unit] = v * e.strength
    return out


@pytest.mark.parametrize("site", ["act_out", "down_in"])
@pytest.mark.parametrize("seed", range(6))
def test_fused_edits_equal_sequential_application(model_tok, site, seed):
    model, tok = model_tok
    gen = torch.Generator().manual_seed(seed)
    neurons = overlapping_nf(site)
    edits = []
    for _ in range(int(torch.randint(2, 6, (1,), generator=gen))):
        mode = ["deactivate", "activate", "scale"][int(torch.randint(3, (1,), generator=gen))]
        lang = "abc"[int(torch.randint(3, (1,), generator=gen))]
        value = "mean" if torch.rand(1, generator=gen) < 0.5 else 1.25
        edits.append(LanguageEdit(mode, lang, value, float(torch.randint(-3, 4, (1,), generator=gen)) or 0.5))
    plain, cm = capture(model, tok, site)
    with cm:
        run(model, tok)
    got, cm = capture(model, tok, site)
    with Intervention(model, neurons, edits), cm:
        run(model, tok)
    torch.testing.assert_close(got[0], naive(plain[0], neurons, edits))


def test_edits_keep_autograd_correct(model_tok):
    """With gradients on, the site tensor is copied, not edited in place, so backward still works."""
    model, tok = model_tok
    enc = tok(["你好 hello"], return_tensors="pt")
    iv = Intervention(model, nf(), [LanguageEdit("activate", "zh", "mean", 3.0)])
    with iv:
        with torch.no_grad():
            ref = model(**enc).logits
        logits = model(**enc).logits
        logits.sum().backward()
    torch.testing.assert_close(logits.detach(), ref)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad(set_to_none=True)


def test_reentering_the_same_intervention_is_refused_and_leaves_no_hooks(model_tok):
    model, tok = model_tok
    before = run(model, tok)
    iv = Intervention(model, nf(), [LanguageEdit("scale", "zh", strength=3.0)])
    with iv:
        once = run(model, tok)
        with pytest.raises(LangNeuronError, match="already active") as err:
            with iv:
                pass
        assert len(str(err.value).splitlines()) == 1
        assert torch.equal(run(model, tok), once)  # the refused entry changed nothing (no squared scale)
    assert torch.equal(run(model, tok), before)
    with iv:  # and it can be entered again afterwards
        assert torch.equal(run(model, tok), once)
    assert torch.equal(run(model, tok), before)


def test_two_interventions_nest_inner_last_and_unwind_in_order(model_tok):
    model, tok = model_tok
    before = run(model, tok)
    outer = Intervention(model, nf(), [LanguageEdit("activate", "zh", "mean", 1.0)])  # unit (0, 3) := 0.5
    inner = Intervention(model, nf(), [LanguageEdit("scale", "zh", strength=4.0)])  # then x 4
    with outer:
        outer_only = run(model, tok)
    got, cm = capture(model, tok)
    with outer:
        with inner, cm:
            both = run(model, tok)
        assert torch.all(got[0][..., 3] == 2.0)  # 0.5 set by the outer, then scaled by the inner
        assert torch.equal(run(model, tok), outer_only)  # the inner's exit removed only its own hooks
    assert not torch.equal(both, outer_only)
    assert torch.equal(run(model, tok), before)  # bit for bit


def test_value_p50_is_the_median_and_unknown_percentiles_name_the_available_ones(model_tok):
    model, tok = model_tok
    outs = {}
    for value in ("median", "p50", "p50.0"):
        got, cm = capture(model, tok)
        with Intervention(model, nf(), [LanguageEdit("activate", "zh", value, 2.0)]), cm:
            outs[value] = run(model, tok)
        assert torch.all(got[0][..., 3] == 0.2)  # median 0.1 x 2
    assert torch.equal(outs["median"], outs["p50"]) and torch.equal(outs["p50"], outs["p50.0"])
    with pytest.raises(LangNeuronError, match=r"no 'p80' activation values for 'zh' \(has: mean, median\)"):
        Intervention(model, nf(), [LanguageEdit("activate", "zh", "p80")])


def test_value_pnn_end_to_end_from_recorded_statistics(model_tok, tiny_corpus_dir):
    """record --sentence-means -> detect -> activate with value=p50 / p90: the values the neuron file holds."""
    from langneuron_eval.core.corpus import resolve_corpus
    from langneuron_eval.core.recorder import RecordConfig, record
    from langneuron_eval.detectors.runner import run_detector

    model, tok = model_tok
    stats = record(model, tok, resolve_corpus([str(tiny_corpus_dir)]), RecordConfig(sentence_means=True),
                   progress=False)
    neurons = run_detector("lape", stats, {"top_rate": "0.1", "filter_rate": "0.5", "activation_bar_ratio": "0.5"})
    lang = next(lang for lang, units in neurons.languages.items() if units)
    layer, unit = neurons.units(lang)[0]
    for value, key in (("p50", "median"), ("p90", "p90")):
        got, cm = capture(model, tok)
        with Intervention(model, neurons, [LanguageEdit("activate", lang, value, 1.0)]), cm:
            run(model, tok)
        expect = torch.tensor(neurons.values[lang][key][0], dtype=torch.float32)
        assert torch.all(got[layer][..., unit] == expect), value
