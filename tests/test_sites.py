"""Neuron sites: discovery rules, refusals, module-path templates, adapters from entry points."""

import sys

import pytest
import torch

from langneuron_eval.core import adapters as adapters_mod
from langneuron_eval.core import templates as templates_mod
from langneuron_eval.core.adapters import Adapter
from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.hooks import hook_sites
from langneuron_eval.core.interventions import Intervention, LanguageEdit
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.sites import SITES, resolve_for_file, resolve_sites
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.testing import TINY_CONFIGS, make_tiny_model


def _keep(store, tag):
    def fn(layer, acts):
        store[(tag, layer)] = acts.clone()

    return fn


@pytest.fixture(scope="module")
def models():
    """Tiny models built once per module (a few hundred ms each)."""
    cache = {}

    def get(model_type):
        if model_type not in cache:
            cache[model_type] = make_tiny_model(model_type)
        return cache[model_type]

    return get


# ------------------------------------------------------------------------------------------ discovery
# (model type, act_out path of layer 1, down_in path of layer 1): one per layout discovery must see
LAYOUTS = [
    ("llama", "model.layers.1.mlp.act_fn", "model.layers.1.mlp.down_proj"),  # gated gate/up/down
    ("gemma3_text", "model.layers.1.mlp.act_fn", "model.layers.1.mlp.down_proj"),
    ("gemma3", "model.language_model.layers.1.mlp.act_fn",  # multimodal wrapper: the vision tower is skipped
     "model.language_model.layers.1.mlp.down_proj"),
    ("llava", "model.language_model.layers.1.mlp.act_fn", "model.language_model.layers.1.mlp.down_proj"),
    ("gpt2", "transformer.h.1.mlp.act", "transformer.h.1.mlp.c_proj"),  # c_fc/act/c_proj (Conv1D)
    ("gpt_neox", "gpt_neox.layers.1.mlp.act", "gpt_neox.layers.1.mlp.dense_4h_to_h"),
    ("opt", "model.decoder.layers.1.activation_fn", "model.decoder.layers.1.fc2"),  # fc1/act/fc2 in the layer
    ("bert", "bert.encoder.layer.1.intermediate.intermediate_act_fn", "bert.encoder.layer.1.output.dense"),
    ("ctrl", "transformer.h.1.ffn.1", "transformer.h.1.ffn.2"),  # nn.Sequential(up, act, down)
]


@pytest.mark.parametrize("model_type,act,down", LAYOUTS)
def test_discovery_finds_activation_and_down_projection(models, model_type, act, down):
    model, _ = models(model_type)
    a, d = resolve_sites(model, "act_out"), resolve_sites(model, "down_in")
    assert a.paths[1] == act and d.paths[1] == down
    assert a.modules[1] is model.get_submodule(act) and d.modules[1] is model.get_submodule(down)
    assert a.num_layers == d.num_layers == 2
    assert a.intermediate_size == d.intermediate_size  # one width per model, from the weights


def test_width_comes_from_the_weights_not_the_config(models):
    model, _ = models("gpt2")  # n_inner unset: the config says None, the MLP has 4 * n_embd units
    assert model.config.n_inner is None
    assert resolve_sites(model).intermediate_size == 4 * model.config.n_embd


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS) + ["gemma3_text", "gemma3"])
@pytest.mark.parametrize("site", SITES)
def test_site_hooks_see_every_layer(models, model_type, site):
    model, tok = models(model_type)
    sites = resolve_sites(model, site)
    assert sites.fingerprint.model_type == model_type
    seen = {}
    enc = tok(["hello world", "你好，世界"], return_tensors="pt", padding=True)

    def look(layer, acts, offset=0):  # linear_out passes each module's offset in the layer's units
        seen.setdefault(layer, []).append((offset, tuple(acts.shape)))  # returning None changes nothing

    with hook_sites(sites, look), torch.no_grad():
        model(**enc)
    assert sorted(seen) == list(range(sites.num_layers))
    for parts in seen.values():  # the tensors of a layer tile its units exactly once
        assert all(shape[:-1] == (2, enc["input_ids"].shape[1]) for _, shape in parts)
        ends = [(offset, offset + shape[-1]) for offset, shape in sorted(parts)]
        assert ends[0][0] == 0 and ends[-1][1] == sites.intermediate_size
        assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text"])
def test_gated_down_in_is_gate_activation_times_up(models, model_type):
    model, tok = models(model_type)
    enc = tok(["Guten Morgen"], return_tensors="pt")
    got, inputs = {}, {}
    handle = model.model.layers[0].mlp.up_proj.register_forward_hook(lambda m, i, o: inputs.update(up=o))
    with hook_sites(resolve_sites(model, "act_out"), _keep(got, "act")), \
         hook_sites(resolve_sites(model, "down_in"), _keep(got, "down")), torch.no_grad():
        model(**enc)
    handle.remove()
    torch.testing.assert_close(got[("down", 0)], got[("act", 0)] * inputs["up"])


def test_ungated_sites_coincide(models):
    model, tok = models("gpt2")
    enc = tok(["hello"], return_tensors="pt")
    got = {}
    with hook_sites(resolve_sites(model, "act_out"), _keep(got, "act")), \
         hook_sites(resolve_sites(model, "down_in"), _keep(got, "down")), torch.no_grad():
        model(**enc)
    torch.testing.assert_close(got[("down", 1)], got[("act", 1)])


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("model_type,site,words", [
    ("mixtral", "act_out", ["layer 0", "mixture-of-experts", "MixtralSparseMoeBlock"]),
    ("qwen2_moe", "down_in", ["mixture-of-experts", "Qwen2MoeSparseMoeBlock"]),
    ("mamba", "act_out", ["layer 0", "MambaBlock", "state-space"]),
    ("lfm2", "act_out", ["function call", "--site down_in"]),  # F.silu inside the MLP: nothing to hook
    ("openai-gpt", "act_out", ["shared", "--site down_in"]),  # one activation module for all layers
])
def test_refusals_are_one_line_naming_the_layer_type(models, model_type, site, words):
    model, _ = models(model_type)
    with pytest.raises(LangNeuronError) as e:
        resolve_sites(model, site)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_function_activation_still_has_down_in(models):
    model, _ = models("lfm2")
    assert resolve_sites(model, "down_in").paths[0] == "model.layers.0.feed_forward.w2"


def test_unknown_site_is_rejected(models):
    model, _ = models("llama")
    with pytest.raises(LangNeuronError, match="unknown neuron site"):
        resolve_sites(model, "mlp_out")


# ------------------------------------------------------------------------------------------ templates
def test_template_overrides_discovery_and_is_recorded(models):
    model, _ = models("llama")
    s = resolve_sites(model, "act_out", override="model.layers.{layer}.mlp.up_proj")
    assert s.paths == ("model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj")
    assert s.intermediate_size == 48  # measured from a probe forward pass: up_proj's output width
    assert s.fingerprint.module == "model.layers.{layer}.mlp.up_proj"
    assert s.fingerprint.to_dict()["module"] == "model.layers.{layer}.mlp.up_proj"


def test_star_stands_for_the_layer_where_braces_cannot_go(models):
    model, _ = models("llama")  # lm-eval's --model_args refuses '{' outside JSON
    s = resolve_sites(model, "act_out", override="model.layers.*.mlp.up_proj")
    assert s.paths[1] == "model.layers.1.mlp.up_proj" and s.fingerprint.module == "model.layers.{layer}.mlp.up_proj"
    assert templates_mod.check_template("model.layers.*.mlp.act_fn") == "model.layers.{layer}.mlp.act_fn"


def test_template_down_in_width_from_the_projection(models):
    model, _ = models("gpt2")
    s = resolve_sites(model, "down_in", override={"down_in": "transformer.h.{layer}.mlp.c_proj"})
    assert s.intermediate_size == 128 and s.modules[0] is model.transformer.h[0].mlp.c_proj


def test_bad_template_is_one_line_with_a_suggestion(models):
    model, _ = models("llama")
    with pytest.raises(LangNeuronError) as e:
        resolve_sites(model, "act_out", override="model.layers.{layer}.mlp.act")
    msg = str(e.value)
    assert "\n" not in msg and "matches no module" in msg and "'model.layers.{layer}.mlp.act_fn'" in msg
    assert "--act-module" in msg


@pytest.mark.parametrize("template", ["model.layers.0.mlp.act_fn", "model.{layer}.{layer}"])
def test_template_needs_exactly_one_layer_placeholder(template):
    with pytest.raises(LangNeuronError, match="exactly once"):
        templates_mod.check_template(template)


def test_fingerprint_without_module_keeps_the_old_format():
    old = {"model_type": "llama", "num_layers": 2, "intermediate_size": 48, "site": "act_out"}
    fp = ModelFingerprint.from_dict(old)
    assert fp.module is None and fp.to_dict() == old  # same keys, so old files hash the same
    new = ModelFingerprint.from_dict({**old, "module": "model.layers.{layer}.mlp.up_proj"})
    assert ModelFingerprint.from_dict(new.to_dict()) == new


def test_intervention_hooks_the_module_its_neuron_file_names(models):
    model, tok = models("llama")
    fp = ModelFingerprint("llama", 2, 48, "act_out", "model.layers.{layer}.mlp.up_proj")
    nf = NeuronFile(fingerprint=fp, detector="handmade", languages={"zh": [(0, 3), (1, 5)]})
    iv = Intervention(model, nf, [LanguageEdit("deactivate", "zh")])
    assert iv.sites.paths[0] == "model.layers.0.mlp.up_proj"
    seen = {}
    enc = tok(["hello"], return_tensors="pt")
    with iv, torch.no_grad():  # hooks run in registration order: this one sees the edited output
        handle = model.model.layers[1].mlp.up_proj.register_forward_hook(lambda m, i, o: seen.update(up=o.clone()))
        model(**enc)
        handle.remove()
    assert torch.all(seen["up"][..., 5] == 0)
    # an explicit template wins over the file's
    assert resolve_for_file(model, fp, {"act_out": "model.layers.{layer}.mlp.act_fn"}).paths[0] == \
        "model.layers.0.mlp.act_fn"


# ------------------------------------------------------------------------------------------ adapters
@pytest.fixture
def clean_adapters(monkeypatch):
    monkeypatch.setattr(adapters_mod, "REGISTRY", adapters_mod.REGISTRY.copy())


def test_register_adapter_wins_over_discovery(models, clean_adapters):
    model, _ = models("llama")
    adapters_mod.register_adapter("llama", Adapter("model.layers", "mlp.up_proj", "mlp.down_proj"))
    assert resolve_sites(model, "act_out").paths[0] == "model.layers.0.mlp.up_proj"


ADAPTER_PLUGIN = '''
from langneuron_eval.core.adapters import Adapter

LLAMA_UP = Adapter("model.layers", "mlp.up_proj", "mlp.down_proj")
NOT_AN_ADAPTER = 42
'''


@pytest.fixture
def adapter_plugin(tmp_path, monkeypatch, clean_adapters):
    """A package 'installed' with entry points in the group langneuron_eval.adapters."""
    site = tmp_path / "site"
    dist = site / "toy_langneuron_adapters-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-langneuron-adapters\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[langneuron_eval.adapters]\nllama = toy_langneuron_adapters:LLAMA_UP\n"
                                           "gpt2 = toy_langneuron_adapters:NOT_AN_ADAPTER\n")
    (site / "toy_langneuron_adapters.py").write_text(ADAPTER_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("toy_langneuron_adapters", None)


def test_entry_point_adapter_is_used(models, adapter_plugin):
    model, _ = models("llama")
    assert adapters_mod.entry_point_adapters()["llama"] == "toy_langneuron_adapters:LLAMA_UP"
    s = resolve_sites(model, "act_out")
    assert s.paths[0] == "model.layers.0.mlp.up_proj" and s.adapter.act == "mlp.up_proj"


def test_entry_point_that_is_not_an_adapter_is_one_line(models, adapter_plugin):
    model, _ = models("gpt2")
    with pytest.raises(LangNeuronError, match="expected a langneuron_eval.core.adapters.Adapter"):
        resolve_sites(model)


# ------------------------------------------------------------------------------------------ lm-eval model_args
def test_lm_eval_model_args_name_the_module(tiny_model_dir, tmp_path):
    from langneuron_eval.lmeval.model import LangNeuronLM

    nf = NeuronFile(fingerprint=ModelFingerprint("llama", 2, 48, "act_out"), detector="handmade",
                    languages={"zh": [(0, 3)]})
    nf.save(tmp_path / "n.json")
    lm = LangNeuronLM(pretrained=str(tiny_model_dir), neurons=str(tmp_path / "n.json"), mode="deactivate",
                      lang="zh", device="cpu", dtype="float32", act_module="model.layers.{layer}.mlp.up_proj")
    assert lm.intervention.sites.paths[1] == "model.layers.1.mlp.up_proj"


def test_lm_eval_bad_template_fails_before_loading_the_model():
    from langneuron_eval.lmeval.model import LangNeuronLM

    with pytest.raises(LangNeuronError, match="exactly once"):  # the model path does not even exist
        LangNeuronLM(pretrained="/nonexistent/model", act_module="model.layers.mlp.act_fn")


# ------------------------------------------------------------------------------------------ CLI
def test_record_template_travels_to_the_neuron_file(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path):
    from langneuron_eval.core.stats import ActivationStats

    template = "model.layers.{layer}.mlp.up_proj"
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--act-module", template,
                         "--out", tmp_path / "s.safetensors", "--no-progress")
    assert rc == 0, err
    assert ActivationStats.load(tmp_path / "s.safetensors").fingerprint.module == template
    rc, _, err = run_cli("detect", "--stats", tmp_path / "s.safetensors", "--method", "lape",
                         "--out", tmp_path / "n.json")
    assert rc == 0, err
    assert NeuronFile.load(tmp_path / "n.json").fingerprint.module == template


def test_record_template_matching_nothing_is_one_line(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path):
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir,
                         "--act-module", "model.layer.{layer}.mlp.act_fn", "--out", tmp_path / "s.safetensors",
                         "--no-progress")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "--act-module" in err and "matches no module" in err and "did you mean" in err
    assert not (tmp_path / "s.safetensors").exists()


def test_config_only_width_for_tools_that_read_no_weights(models):
    for model_type in ("llama", "gpt2", "bloom", "opt"):
        model, _ = models(model_type)
        assert adapters_mod.config_intermediate_size(model.config) == resolve_sites(model).intermediate_size
