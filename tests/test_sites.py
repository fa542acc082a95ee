"""The adapter table: every supported architecture exposes both sites with the right shapes."""

import pytest
import torch

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.hooks import hook_sites
from langneuron_eval.sites import ADAPTERS, SITES, resolve_sites
from langneuron_eval.testing import TINY_CONFIGS, make_tiny_model


def _keep(store, tag):
    def fn(layer, acts):
        store[(tag, layer)] = acts.clone()

    return fn


REQUIRED = {"llama", "mistral", "qwen2", "gemma", "gpt2", "bloom", "gpt_neox", "xglm"}


def test_required_architectures_have_adapters_and_tiny_configs():
    assert REQUIRED <= set(ADAPTERS)
    assert set(ADAPTERS) <= set(TINY_CONFIGS)


@pytest.mark.parametrize("model_type", sorted(ADAPTERS))
@pytest.mark.parametrize("site", SITES)
def test_site_hooks_see_every_layer(model_type, site):
    model, tok = make_tiny_model(model_type)
    sites = resolve_sites(model, site)
    assert sites.fingerprint.model_type == model_type
    seen = {}
    enc = tok(["hello world", "你好，世界"], return_tensors="pt", padding=True)
    def look(layer, acts):
        seen[layer] = acts.shape  # returning None leaves the activation unchanged

    with hook_sites(sites, look):
        model(**enc)
    assert sorted(seen) == list(range(model.config.num_hidden_layers))
    for shape in seen.values():
        assert tuple(shape) == (2, enc["input_ids"].shape[1], sites.intermediate_size)


@pytest.mark.parametrize("model_type", ["llama", "gemma"])
def test_gated_down_in_is_gate_activation_times_up(model_type):
    model, tok = make_tiny_model(model_type)
    enc = tok(["Guten Morgen"], return_tensors="pt")
    got = {}
    with hook_sites(resolve_sites(model, "act_out"), _keep(got, "act")), \
         hook_sites(resolve_sites(model, "down_in"), _keep(got, "down")):
        inputs = {}
        handle = model.model.layers[0].mlp.up_proj.register_forward_hook(lambda m, i, o: inputs.update(up=o))
        model(**enc)
        handle.remove()
    torch.testing.assert_close(got[("down", 0)], got[("act", 0)] * inputs["up"])


def test_ungated_sites_coincide():
    model, tok = make_tiny_model("gpt2")
    enc = tok(["hello"], return_tensors="pt")
    got = {}
    with hook_sites(resolve_sites(model, "act_out"), _keep(got, "act")), \
         hook_sites(resolve_sites(model, "down_in"), _keep(got, "down")):
        model(**enc)
    torch.testing.assert_close(got[("down", 1)], got[("act", 1)])


def test_unsupported_architecture_lists_supported_and_how_to_add():
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("opt", hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2,
                               word_embed_proj_dim=16, vocab_size=50)
    model = AutoModelForCausalLM.from_config(cfg)
    with pytest.raises(LangNeuronError) as e:
        resolve_sites(model)
    msg = str(e.value)
    assert "'opt'" in msg and "llama" in msg and "register_adapter" in msg and "\n" not in msg


def test_unknown_site_is_rejected():
    model, _ = make_tiny_model("llama")
    with pytest.raises(LangNeuronError, match="unknown neuron site"):
        resolve_sites(model, "mlp_out")
