"""Mixture-of-experts layers: our eager experts forward, per-expert counters, expert and routing interventions.

Tiny random MoE models of six families are built offline from their config classes. Expected values come
from the library itself (its eager and grouped experts implementations, the routing its MoE blocks pass
to the experts) and from a brute-force recount that runs every routed expert on every token by hand from
the weights, in float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers as tf

from langneuron_eval.core.discovery import get_path
from langneuron_eval.core.moe import SHARED, discover_moe
from langneuron_eval.core.moe_counts import ExpertCounters, expert_activation_probability, routing_probability
from langneuron_eval.core.moe_forward import IMPLEMENTATION, observe_experts
from langneuron_eval.core.moe_interventions import ExpertIntervention, ExpertUnitEdit, RoutingSteer
from langneuron_eval.errors import LangNeuronError

COMMON = dict(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
FAMILIES = {
    "mixtral": (tf.MixtralConfig, tf.MixtralForCausalLM,
                dict(intermediate_size=24, num_local_experts=4, num_experts_per_tok=2)),
    "qwen2_moe": (tf.Qwen2MoeConfig, tf.Qwen2MoeForCausalLM,  # dense layer 0, shared expert
                  dict(intermediate_size=40, moe_intermediate_size=24, shared_expert_intermediate_size=16,
                       num_experts=4, num_experts_per_tok=2, mlp_only_layers=[0])),
    "qwen3_moe": (tf.Qwen3MoeConfig, tf.Qwen3MoeForCausalLM,
                  dict(intermediate_size=40, moe_intermediate_size=24, num_experts=4, num_experts_per_tok=2,
                       head_dim=8, norm_topk_prob=True)),
    "deepseek_v3": (tf.DeepseekV3Config, tf.DeepseekV3ForCausalLM,  # dense layer 0, shared expert, groups
                    dict(intermediate_size=40, moe_intermediate_size=24, n_routed_experts=8, num_experts_per_tok=2,
                         n_group=2, topk_group=1, first_k_dense_replace=1, n_shared_experts=1, num_key_value_heads=4,
                         q_lora_rank=16, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    "gpt_oss": (tf.GptOssConfig, tf.GptOssForCausalLM,  # clamped SwiGLU with biases, top-k then softmax
                dict(intermediate_size=24, num_local_experts=4, num_experts_per_tok=2, head_dim=8, sliding_window=16)),
    "olmoe": (tf.OlmoeConfig, tf.OlmoeForCausalLM,
              dict(intermediate_size=24, num_experts=4, num_experts_per_tok=2)),
}


def build(family: str) -> torch.nn.Module:
    """A random tiny model whose routers and experts are spread enough that routing varies between tokens."""
    config_cls, model_cls, kw = FAMILIES[family]
    torch.manual_seed(0)
    model = model_cls(config_cls(**{**COMMON, **kw})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".mlp." in name:  # experts (GPT-OSS biases included), routers, shared experts
                p.normal_(0.0, 0.4)
    return model


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    return request.param, build(request.param)


def batch(seed: int, lengths: list[int], width: int | None = None):
    """Right-padded ids, attention mask and counted mask (position 0 is a BOS that is run but not counted)."""
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    attention = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(3, 64, (n,), generator=g)
        ids[row, 0] = 1
        attention[row, :n] = 1
    counted = attention.bool().clone()
    counted[:, 0] = False
    return ids, attention, counted


def run(model, ids, attention):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=attention, use_cache=False).logits


# ---------------------------------------------------------------------------------------------- discovery
def test_discovery_finds_experts_router_shared_expert_and_dense_layers(family):
    name, model = family
    layout = discover_moe(model)
    dense = {"qwen2_moe": (0,), "deepseek_v3": (0,)}.get(name, ())
    assert layout.other_layers == dense
    assert [m.layer for m in layout.moe_layers] == [i for i in range(3) if i not in dense]
    assert layout.num_experts == (8 if name == "deepseek_v3" else 4) and layout.expert_width == 24
    assert layout.shared_width == {"qwen2_moe": 16, "deepseek_v3": 24}.get(name, 0)
    first = layout.moe_layers[0]
    assert get_path(model, first.experts) is get_path(model, first.block).experts
    assert first.router.rsplit(".", 1)[1] == ("router" if name == "gpt_oss" else "gate")
    assert first.gate.name == ("gpt_oss_glu" if name == "gpt_oss" else "glu")
    last = layout.moe_layers[-1].layer
    assert layout.moe_index(last) == layout.num_moe_layers - 1
    assert layout.to_dict()["moe_layers"] == [m.layer for m in layout.moe_layers]
    if dense:
        with pytest.raises(LangNeuronError, match="not a mixture-of-experts layer"):
            layout.moe_index(dense[0])


def test_dense_model_and_bad_inputs_are_refused_in_one_line():
    from langneuron_eval.testing import make_tiny_model

    dense, _ = make_tiny_model("llama")
    with pytest.raises(LangNeuronError, match="no mixture-of-experts layer"):
        discover_moe(dense)
    layout = discover_moe(build("mixtral"))
    with pytest.raises(LangNeuronError, match="unknown expert site"):
        layout.check_site("linear_out")
    for edit, msg in ((ExpertUnitEdit(0, 4, 0, "set", 0.0), "expert 4 is out of range"),
                      (ExpertUnitEdit(0, 0, 24, "set", 0.0), "unit 24"),
                      (ExpertUnitEdit(3, 0, 0, "set", 0.0), "MoE layer 3"),
                      (ExpertUnitEdit(0, SHARED, 0, "set", 0.0), "no shared expert"),
                      (ExpertUnitEdit(0, 0, 0, "zero", 0.0), "unknown expert-unit mode")):
        with pytest.raises(LangNeuronError, match=msg):
            ExpertIntervention(build("mixtral"), layout, units=[edit])
    with pytest.raises(LangNeuronError, match="expert indices"):
        ExpertIntervention(build("mixtral"), layout, routing=[RoutingSteer(0, (), "ban")])
    with pytest.raises(LangNeuronError, match="unknown routing mode"):
        ExpertIntervention(build("mixtral"), layout, routing=[RoutingSteer(0, (1,), "avoid")])


def test_unrecognised_gate_allows_down_in_only():
    model = build("mixtral")
    for m in model.modules():
        if type(m).__name__ == "MixtralExperts":  # a gate formula none of our candidates computes
            m._apply_gate = lambda gu: torch.tanh(gu.chunk(2, dim=-1)[0]) * gu.chunk(2, dim=-1)[1]
    layout = discover_moe(model)
    assert all(m.gate is None for m in layout.moe_layers)
    with pytest.raises(LangNeuronError, match="use --site down_in"):
        layout.check_site("act_out")
    assert layout.check_site("down_in") == "down_in"


# ---------------------------------------------------------------------------------------------- (a) the forward
def test_observed_forward_equals_the_library(family):
    """Bit for bit the library's eager experts; to rounding its default grouped kernels; restored on exit."""
    name, model = family
    layout = discover_moe(model)
    ids, attention, _ = batch(1, [9, 6, 3])
    before = model.config._experts_implementation
    model.set_experts_implementation("eager")
    eager = run(model, ids, attention)
    model.set_experts_implementation("grouped_mm")
    grouped = run(model, ids, attention)
    seen = []
    with observe_experts(model, layout, expert_fn=lambda layer, e, acts, tok: seen.append((layer, e))):
        assert model.config._experts_implementation == IMPLEMENTATION
        ours = run(model, ids, attention)
    assert torch.equal(ours, eager)
    torch.testing.assert_close(ours, grouped, rtol=1e-5, atol=1e-5)
    assert {layer for layer, _ in seen} == set(range(layout.num_moe_layers))
    assert model.config._experts_implementation == "grouped_mm"
    assert not any("_langneuron_moe" in m.__dict__ for m in model.modules())
    model.set_experts_implementation(before)


def test_nested_observers_and_an_exception_restore_the_implementation():
    model = build("olmoe")
    layout = discover_moe(model)
    ids, attention, _ = batch(8, [5])
    order = []
    with pytest.raises(RuntimeError, match="stop"):
        with observe_experts(model, layout, expert_fn=lambda *a: order.append("outer")):
            with observe_experts(model, layout, expert_fn=lambda *a: order.append("inner")):
                run(model, ids, attention)
                raise RuntimeError("stop")
    assert order[:2] == ["outer", "inner"]  # an inner observer sees what the outer one produced
    assert model.config._experts_implementation == "grouped_mm"
    assert not any("_langneuron_moe" in m.__dict__ for m in model.modules())


# ---------------------------------------------------------------------------------------------- (b) counts
def _capture_experts_inputs(model, layout, ids, attention):
    """What each MoE layer's experts and shared expert receive in a plain run of the library's eager code."""
    got, handles = {}, []
    model.set_experts_implementation("eager")
    for i, ml in enumerate(layout.moe_layers):
        def keep(_m, args, i=i):
            got[i] = tuple(a.detach().clone() for a in args[:3])  # hidden [T, H], index [T, k], weights [T, k]

        handles.append(get_path(model, ml.experts).register_forward_pre_hook(keep))
        if ml.shared is not None:
            def keep_shared(_m, args, i=i):
                got[("shared", i)] = args[0].detach().reshape(-1, args[0].shape[-1]).clone()

            handles.append(get_path(model, ml.shared.path).register_forward_pre_hook(keep_shared))
    try:
        run(model, ids, attention)
    finally:
        for h in handles:
            h.remove()
        model.set_experts_implementation("grouped_mm")
    return got


def _by_hand(model, experts, e: int, x: torch.Tensor, site: str) -> torch.Tensor:
    """Expert ``e`` on one token ``x`` [H] from its weights, float64: the unit tensor at ``site`` [F]."""
    cfg = model.config
    if getattr(cfg, "swiglu_limit", None) is not None:  # GPT-OSS: interleaved, clamped, alpha, (up + 1)
        gu = x.double() @ experts.gate_up_proj[e].double() + experts.gate_up_proj_bias[e].double()
        gate, up = gu[::2].clamp(max=cfg.swiglu_limit), gu[1::2].clamp(-cfg.swiglu_limit, cfg.swiglu_limit)
        act = gate * torch.sigmoid(cfg.swiglu_alpha * gate)
        return act if site == "act_out" else (up + 1) * act
    gu = experts.gate_up_proj[e].double() @ x.double()  # [2F]
    gate, up = gu.chunk(2)
    act = F.silu(gate)
    return act if site == "act_out" else act * up


def _brute_force(model, layout, languages, site) -> dict[str, torch.Tensor]:
    """Expected counter totals from the experts' captured inputs, one token and one expert at a time."""
    K, L, E, Fw = len(languages), layout.num_moe_layers, layout.num_experts, layout.expert_width
    Fs = layout.shared_width
    want = {"expert_positive_counts": torch.zeros(K, L, E, Fw, dtype=torch.int64),
            "expert_activation_sums": torch.zeros(K, L, E, Fw, dtype=torch.float64),
            "expert_activation_sq_sums": torch.zeros(K, L, E, Fw, dtype=torch.float64),
            "expert_routed_tokens": torch.zeros(K, L, E, dtype=torch.int64),
            "expert_routing_weight_sums": torch.zeros(K, L, E, dtype=torch.float64)}
    if Fs:
        want |= {"shared_positive_counts": torch.zeros(K, L, Fs, dtype=torch.int64),
                 "shared_activation_sums": torch.zeros(K, L, Fs, dtype=torch.float64),
                 "shared_activation_sq_sums": torch.zeros(K, L, Fs, dtype=torch.float64)}

    def add(prefix, where, a):
        want[f"{prefix}_positive_counts"][where] += (a > 0).long()
        want[f"{prefix}_activation_sums"][where] += a
        want[f"{prefix}_activation_sq_sums"][where] += a * a

    for k, (ids, attention, counted) in enumerate(languages):
        got = _capture_experts_inputs(model, layout, ids, attention)
        for i, ml in enumerate(layout.moe_layers):
            hidden, index, weights = got[i]
            for t in counted.reshape(-1).nonzero()[:, 0].tolist():
                for slot in range(index.shape[1]):
                    e = int(index[t, slot])
                    add("expert", (k, i, e), _by_hand(model, get_path(model, ml.experts), e, hidden[t], site))
                    want["expert_routed_tokens"][k, i, e] += 1
                    want["expert_routing_weight_sums"][k, i, e] += float(weights[t, slot])
                if ml.shared is not None:
                    sh, x = get_path(model, ml.shared.path), got[("shared", i)][t].double()
                    a = F.silu(sh.gate_proj.weight.double() @ x)
                    add("shared", (k, i), a if site == "act_out" else a * (sh.up_proj.weight.double() @ x))
    return want


def _record(model, layout, languages, site="act_out"):
    counters = ExpertCounters(layout, len(languages), site)
    with counters.attach(model):
        for k, (ids, attention, counted) in enumerate(languages):
            counters.lang = k
            counters.start_batch(counted)
            run(model, ids, attention)
            counters.add_chunk(counters.take_chunk())
    return counters


def _check_counts(model, site: str) -> None:
    layout = discover_moe(model)
    languages = [batch(2, [8, 5, 2]), batch(3, [7, 7, 4, 1])]
    counters = _record(model, layout, languages, site)
    got = counters.totals()
    want = _brute_force(model, layout, languages, site)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        if value.dtype == torch.int64:
            assert torch.equal(got[name], value), name
        else:
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-5)
    k = model.config.num_experts_per_tok
    n_tokens = torch.tensor([int(c.sum()) for _, _, c in languages])
    assert torch.equal(counters.n_tokens, n_tokens)
    routed = got["expert_routed_tokens"]
    assert torch.equal(routed.sum(-1), k * n_tokens[:, None].expand(-1, layout.num_moe_layers))
    p = expert_activation_probability(got["expert_positive_counts"], got["expert_routed_tokens"])
    assert bool((p <= 1).all()) and bool((p >= 0).all())
    torch.testing.assert_close(routing_probability(got["expert_routed_tokens"], n_tokens).sum(-1),
                               torch.full((2, layout.num_moe_layers), float(k), dtype=torch.float64))


def test_counts_equal_brute_force_recount(family):
    _check_counts(family[1], "act_out")


@pytest.mark.parametrize("name", ["gpt_oss", "qwen2_moe"])  # GPT-OSS's (up + 1) * glu; SwiGLU with a shared expert
def test_counts_at_down_in_equal_brute_force_recount(name):
    _check_counts(build(name), "down_in")


# ---------------------------------------------------------------------------------------------- (d) padding
def test_padding_does_not_change_counts(family):
    """Three texts padded into one batch (and to a wider width) count exactly what they count one by one."""
    _, model = family
    layout = discover_moe(model)
    ids, attention, counted = batch(4, [9, 5, 3])
    padded = _record(model, layout, [(ids, attention, counted)]).totals()
    wide_ids, wide_attention, wide_counted = batch(4, [9, 5, 3], width=14)
    wide = _record(model, layout, [(wide_ids, wide_attention, wide_counted)]).totals()
    counters = ExpertCounters(layout, 1)
    with counters.attach(model):
        for row in range(3):
            n = int(attention[row].sum())
            counters.start_batch(counted[row: row + 1, :n])
            run(model, ids[row: row + 1, :n], attention[row: row + 1, :n])
    counters.add_chunk(counters.take_chunk())
    alone = counters.totals()
    for name in alone:
        if alone[name].dtype == torch.int64:
            assert torch.equal(padded[name], alone[name]), name
            assert torch.equal(wide[name], alone[name]), name
        else:
            torch.testing.assert_close(padded[name], alone[name], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(wide[name], alone[name], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- (c) interventions
def _block_output_and_routing(model, layout, layer, ids, attention):
    """The MoE block's output [T, H] and its routing [T, k] at one MoE layer, in one forward pass."""
    got = {}
    block = get_path(model, layout.moe_layers[layer].block)

    def keep_out(_m, _args, out):
        out = out[0] if isinstance(out, tuple) else out
        got["out"] = out.detach().reshape(-1, out.shape[-1]).clone()

    def keep_routing(moe_layer, index, _weights):
        if moe_layer == layer:
            got["index"] = index.clone()

    handle = block.register_forward_hook(keep_out)
    try:
        with observe_experts(model, layout, routing_fn=keep_routing):
            run(model, ids, attention)
    finally:
        handle.remove()
    return got["out"], got["index"]


def test_expert_unit_edit_changes_only_tokens_routed_to_that_expert(family):
    _, model = family
    layout = discover_moe(model)
    ids, attention, _ = batch(5, [10, 8, 6])
    layer = layout.num_moe_layers - 1
    ref, index = _block_output_and_routing(model, layout, layer, ids, attention)
    hits = torch.bincount(index.reshape(-1), minlength=layout.num_experts)
    expert = int(torch.where((hits > 0) & (hits < index.shape[0]))[0][0])  # some tokens go there, not all
    routed = (index == expert).any(-1)  # [T]
    edit = ExpertUnitEdit(layer, expert, 5, "set", 3.0)
    inside = {}

    def look(moe_layer, e, acts, _tokens):  # registered inside the intervention: sees the edited tensor
        if (moe_layer, e) == (layer, expert):
            inside["acts"] = acts.clone()

    with ExpertIntervention(model, layout, units=[edit]) as iv, observe_experts(model, layout, expert_fn=look):
        out, _ = _block_output_and_routing(model, layout, layer, ids, attention)
    assert iv.edit_calls == 1
    assert bool((inside["acts"][:, 5] == 3.0).all()) and inside["acts"].shape[0] == int(routed.sum())
    assert torch.equal(out[~routed], ref[~routed])  # bit for bit: other tokens never saw the edit
    assert bool((out[routed] != ref[routed]).any(-1).all())  # every routed token changed
    after, _ = _block_output_and_routing(model, layout, layer, ids, attention)
    assert torch.equal(after, ref)  # leaving restores the model


def test_shared_expert_edit_changes_every_token():
    model = build("qwen2_moe")
    layout = discover_moe(model)
    ids, attention, _ = batch(6, [7, 5])
    ref, _ = _block_output_and_routing(model, layout, 0, ids, attention)
    with ExpertIntervention(model, layout, units=[ExpertUnitEdit(0, SHARED, 3, "scale", 4.0)]):
        out, _ = _block_output_and_routing(model, layout, 0, ids, attention)
    assert bool((out != ref).any(-1).all())


def _router_logits(model, layout, layer, ids, attention):
    got = {}
    router = get_path(model, layout.moe_layers[layer].router)

    def keep(_m, _args, out):
        got["logits"] = out[0].detach().clone()  # [T, E]

    handle = router.register_forward_hook(keep)
    try:
        run(model, ids, attention)
    finally:
        handle.remove()
    return got["logits"]


def test_routing_steering_ban_force_and_bias(family):
    name, model = family
    layout = discover_moe(model)
    ids, attention, _ = batch(7, [10, 9, 7])
    chosen = (0, 1)  # within one DeepSeek group, so its group-limited routing can reach both
    _, index = _block_output_and_routing(model, layout, 0, ids, attention)
    assert bool(torch.isin(index, torch.tensor(chosen)).any())
    assert not bool(torch.isin(index, torch.tensor(chosen)).all(-1).all())
    router = get_path(model, layout.moe_layers[0].router)
    correction = getattr(router, "e_score_correction_bias", None)  # DeepSeek selects on sigmoid + this bias
    if correction is not None:
        correction[list(chosen)] = 10.0  # the chosen experts win every token unless the top-k is masked too
    with ExpertIntervention(model, layout, routing=[RoutingSteer(0, chosen, "ban")]):
        _, banned = _block_output_and_routing(model, layout, 0, ids, attention)
    if correction is not None:
        correction.zero_()
    assert not bool(torch.isin(banned, torch.tensor(chosen)).any())
    with ExpertIntervention(model, layout, routing=[RoutingSteer(0, chosen, "force")]):
        _, forced = _block_output_and_routing(model, layout, 0, ids, attention)
    assert bool(torch.isin(forced, torch.tensor(chosen)).all())
    ref = _router_logits(model, layout, 0, ids, attention)
    with ExpertIntervention(model, layout, routing=[RoutingSteer(0, (2,), "bias", 1.5),
                                                    RoutingSteer(0, (2, 3), "bias", -0.25)]):
        steered = _router_logits(model, layout, 0, ids, attention)
    bias = torch.tensor([0.0, 0.0, 1.25, -0.25] + [0.0] * (layout.num_experts - 4), dtype=ref.dtype)
    assert torch.equal(steered, ref + bias)
    assert torch.equal(_router_logits(model, layout, 0, ids, attention), ref)
    assert "forward" not in get_path(model, layout.moe_layers[0].router).__dict__


def test_forcing_fewer_experts_than_top_k_gives_the_rest_weight_zero(family):
    """Routers that use the top-k values as weights (softmax, then top-k) must not see -inf in the spare slot."""
    name, model = family
    layout = discover_moe(model)
    ids, attention, _ = batch(8, [9, 6])
    got = {}

    def keep(moe_layer, index, weights):
        if moe_layer == 0:
            got["index"], got["weights"] = index.clone(), weights.clone()

    with ExpertIntervention(model, layout, routing=[RoutingSteer(0, (1,), "force")]):
        with observe_experts(model, layout, routing_fn=keep):
            logits = run(model, ids, attention)
    assert bool(torch.isfinite(logits).all()) and bool(torch.isfinite(got["weights"]).all())
    if name == "deepseek_v3":  # group-limited: the forced expert's group need not be chosen (docs/moe.md)
        return
    forced = got["index"] == 1  # [T, k]
    assert bool((forced.sum(-1) == 1).all())  # every token reaches expert 1, once
    assert torch.allclose(got["weights"][forced], torch.ones(forced.shape[0]))
    assert bool((got["weights"][~forced] == 0).all())


# ---------------------------------------------------------------------------------------------- command line
CLI_FAMILIES = ["mixtral", "qwen2_moe", "deepseek_v3", "gpt_oss", "olmoe"]


def _saved(name: str, out_dir):
    """A tiny model of ``name`` sized for the byte tokenizer, saved with it (a ``--model`` directory)."""
    from langneuron_eval.testing import make_tokenizer

    tok = make_tokenizer()
    config_cls, model_cls, kw = FAMILIES[name]
    ids = dict(vocab_size=len(tok) + 8, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
               eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = model_cls(config_cls(**{**COMMON, **kw, **ids})).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if ".mlp." in pname:
                p.normal_(0.0, 0.4)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return model, tok


def _dense_by_hand(model, layout, languages) -> dict[int, torch.Tensor]:
    """Positive counts [K, W] of each dense layer's MLP activation, from its captured input."""
    out = {}
    layers = get_path(model, layout.layers_path)
    for i in layout.other_layers:
        mlp, got = layers[i].mlp, []
        handle = mlp.register_forward_pre_hook(lambda _m, args, got=got: got.append(args[0].detach()))
        counts = []
        for ids, attention, counted in languages:
            got.clear()
            run(model, ids, attention)
            x = got[0].reshape(-1, got[0].shape[-1])[counted.reshape(-1)].double()  # [counted tokens, H]
            counts.append((F.silu(x @ mlp.gate_proj.weight.double().T) > 0).sum(0))
        handle.remove()
        out[i] = torch.stack(counts)
    return out


@pytest.mark.parametrize("name", CLI_FAMILIES)
def test_record_cli_counts_equal_brute_force_recount(name, run_cli, tiny_corpus_dir, tmp_path):
    from langneuron_eval.core.stats import ActivationStats

    model, tok = _saved(name, tmp_path / "m")
    rc, _out, err = run_cli("record", "--model", tmp_path / "m", "--corpus", tiny_corpus_dir, "--batch-size", "64",
                            "--out", tmp_path / "s.safetensors")
    assert rc == 0, err
    stats = ActivationStats.load(tmp_path / "s.safetensors")
    layout = discover_moe(model)
    languages = []
    for lang in stats.languages:
        texts = (tiny_corpus_dir / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
        enc = tok(texts, padding=True, return_special_tokens_mask=True, return_tensors="pt")
        languages.append((enc["input_ids"], enc["attention_mask"],
                          enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()))
    want = _brute_force(model, layout, languages, "act_out")
    K, E, Fw, Fs = len(languages), layout.num_experts, layout.expert_width, layout.shared_width
    for i, ml in enumerate(layout.moe_layers):
        row = stats.positive_counts[:, ml.layer]
        assert torch.equal(row[:, : E * Fw], want["expert_positive_counts"][:, i].reshape(K, E * Fw))
        if Fs:
            assert torch.equal(row[:, E * Fw: E * Fw + Fs], want["shared_positive_counts"][:, i])
        assert not bool(row[:, E * Fw + Fs:].any())  # padding is never counted
    for layer, counts in _dense_by_hand(model, layout, languages).items():
        assert torch.equal(stats.positive_counts[:, layer, : counts.shape[1]], counts)
    assert torch.equal(stats.routing["expert_routed_tokens"], want["expert_routed_tokens"])
    torch.testing.assert_close(stats.routing["expert_routing_weight_sums"], want["expert_routing_weight_sums"],
                               rtol=1e-5, atol=1e-5)
    p = stats.activation_probability()
    assert bool((p <= 1).all()) and stats.fingerprint.moe["moe_layers"] == [m.layer for m in layout.moe_layers]


def test_detect_cli_on_experts_and_deactivate_edits_only_routed_tokens(run_cli, tiny_corpus_dir, tmp_path):
    """A neuron detector and the expert detector on MoE statistics; their files drive Intervention."""
    from langneuron_eval.core.interventions import Intervention, edits_from_args
    from langneuron_eval.core.neurons import NeuronFile

    model, tok = _saved("deepseek_v3", tmp_path / "m")
    assert run_cli("record", "--model", tmp_path / "m", "--corpus", tiny_corpus_dir, "--out",
                   tmp_path / "s.safetensors")[0] == 0
    for method, extra in (("lape", ["--param", "top_rate=0.05"]), ("zhang", []), ("lap", []),
                          ("lape_experts", ["--param", "filter_rate=0.5", "--param", "activation_bar_ratio=0.5"])):
        rc, _out, err = run_cli("detect", "--stats", tmp_path / "s.safetensors", "--method", method, *extra,
                                "--out", tmp_path / f"{method}.json")
        assert rc == 0, (method, err)
    assert run_cli("detect", "--stats", tmp_path / "s.safetensors", "--method", "random", "--param",
                   "reference=lap", "--out", tmp_path / "random.json")[0] == 0
    for method in ("lape", "zhang", "lap", "random"):  # padding units (beyond a dense layer's width) never chosen
        nf = NeuronFile.load(tmp_path / f"{method}.json")
        widths = nf.fingerprint.moe["layer_widths"]
        assert all(unit < widths[layer] for units in nf.languages.values() for layer, unit in units), method
    neurons = NeuronFile.load(tmp_path / "lape.json")
    experts = NeuronFile.load(tmp_path / "lape_experts.json")
    assert neurons.kind == "neurons" and experts.kind == "experts" and experts.fingerprint.moe is not None
    lang = next(k for k, v in neurons.languages.items() if v)
    enc = tok(["Das Wetter ist heute schön.", "今天天气很好。"], padding=True, return_tensors="pt")
    ref = run(model, enc["input_ids"], enc["attention_mask"])
    with Intervention(model, neurons, edits_from_args("deactivate", [lang])) as iv:
        edited = run(model, enc["input_ids"], enc["attention_mask"])
    assert iv.active and not torch.equal(edited, ref)
    assert torch.equal(run(model, enc["input_ids"], enc["attention_mask"]), ref)
    layout = discover_moe(model)
    elang = next(k for k, v in experts.languages.items() if v)
    banned = {(layout.moe_index(layer), e) for layer, e in experts.languages[elang]}
    seen = []
    with Intervention(model, experts, edits_from_args("deactivate", [elang])):
        with observe_experts(model, layout, routing_fn=lambda i, index, _w: seen.append((i, index.clone()))):
            run(model, enc["input_ids"], enc["attention_mask"])
    assert seen and not any(bool((index == e).any()) for i, index in seen for (j, e) in banned if j == i)


@pytest.mark.slow
def test_lm_eval_deactivates_expert_units_and_experts(run_cli, tiny_corpus_dir, tmp_path):
    """``lm_eval --model langneuron ... mode=deactivate`` with both kinds of MoE neuron files, as a user types it."""
    import json
    import subprocess
    import sys

    _saved("mixtral", tmp_path / "m")
    assert run_cli("record", "--model", tmp_path / "m", "--corpus", tiny_corpus_dir, "--out",
                   tmp_path / "s.safetensors")[0] == 0
    for method in ("lape", "lape_experts"):
        assert run_cli("detect", "--stats", tmp_path / "s.safetensors", "--method", method, "--out",
                       tmp_path / f"{method}.json")[0] == 0
    runs = [(name, f"pretrained={tmp_path / 'm'},neurons={tmp_path / f'{name}.json'},mode=deactivate,lang=zh")
            for name in ("lape", "lape_experts")]
    code = "from lm_eval.__main__ import cli_evaluate\nimport sys\n" + "".join(
        f"sys.argv = ['lm_eval', '--model', 'langneuron', '--model_args', {args!r}, '--tasks', 'lang_ppl_zh', "
        f"'--limit', '2', '--output_path', {str(tmp_path / name)!r}]\ncli_evaluate()\n" for name, args in runs)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    for name, _args in runs:
        results = json.loads(next((tmp_path / name).rglob("results_*.json")).read_text())
        assert results["config"]["langneuron"]["mode"] == "deactivate"
        assert "bits_per_byte,none" in results["results"]["lang_ppl_zh"]


# ---------------------------------------------------------------------------------------------- sentence means
@torch.no_grad()
def _sentence_means_by_hand(model, layout, tok, texts: list[str], units) -> torch.Tensor:
    """[S, L, N] float64: each sentence run alone, every routed expert run by hand on each counted token; a
    routed-expert unit's mean over the sentence's tokens routed to its expert (0 if none), a shared-expert or
    dense unit's mean over all its counted tokens."""
    E, Fw = layout.num_experts, layout.expert_width
    layers = get_path(model, layout.layers_path)
    out = torch.zeros(len(texts), len(units.layer_widths), units.width, dtype=torch.float64)
    for s, text in enumerate(texts):
        enc = tok([text], return_special_tokens_mask=True, return_tensors="pt")
        ids, attention = enc["input_ids"], enc["attention_mask"]
        counted = (attention.bool() & ~enc["special_tokens_mask"].bool()).reshape(-1)
        toks = counted.nonzero()[:, 0].tolist()
        got = _capture_experts_inputs(model, layout, ids, attention)
        for i, ml in enumerate(layout.moe_layers):
            hidden, index, _w = got[i]
            experts = get_path(model, ml.experts)
            for e in range(E):
                routed = [t for t in toks if bool((index[t] == e).any())]
                if routed:
                    acts = torch.stack([_by_hand(model, experts, e, hidden[t], "act_out") for t in routed])
                    out[s, ml.layer, e * Fw: (e + 1) * Fw] = acts.mean(0)
            if ml.shared is not None:
                sh = get_path(model, ml.shared.path)
                x = got[("shared", i)][toks].double()  # [counted, H]
                out[s, ml.layer, E * Fw: E * Fw + layout.shared_width] = F.silu(x @ sh.gate_proj.weight.double().T
                                                                                 ).mean(0)
        for layer in layout.other_layers:
            mlp, seen = layers[layer].mlp, []
            handle = mlp.register_forward_pre_hook(lambda _m, args, seen=seen: seen.append(args[0].detach()))
            run(model, ids, attention)
            handle.remove()
            x = seen[0].reshape(-1, seen[0].shape[-1])[toks].double()
            out[s, layer, : mlp.gate_proj.weight.shape[0]] = F.silu(x @ mlp.gate_proj.weight.double().T).mean(0)
    return out


def _ap_by_hand(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Average precision as sklearn defines it: sum over distinct thresholds of (recall step) x precision."""
    ap, prev_recall, P = 0.0, 0.0, int(positive.sum())
    for t in sorted(set(scores.tolist()), reverse=True):
        pred = scores >= t
        tp = int((pred & positive).sum())
        ap += (tp / P - prev_recall) * tp / int(pred.sum())
        prev_recall = tp / P
    return ap


@pytest.mark.parametrize("name", ["mixtral", "qwen2_moe"])  # routed experts only; shared expert and a dense layer
def test_sentence_means_and_kojima_ap_equal_brute_force(name, run_cli, tiny_corpus_dir, tmp_path):
    """``record --sentence-means`` on an MoE model (padded batches of 3): every sentence's row equals a recount
    with hand-run experts; kojima_ap's AP equals AP computed from those rows; ``detect`` runs on the file."""
    from langneuron_eval.core.moe_units import moe_units
    from langneuron_eval.core.stats import ActivationStats, sidecar_path
    from langneuron_eval.detectors.kojima import KojimaAPDetector, KojimaParams

    model, tok = _saved(name, tmp_path / "m")
    corpus = tmp_path / "c"  # the tiny corpus plus texts of 1-2 tokens, which miss most experts
    corpus.mkdir()
    for f, short in zip(sorted(tiny_corpus_dir.glob("*.txt")), (["a", "ok"], ["x", "no"], ["y", "si"])):
        (corpus / f.name).write_text(f.read_text(encoding="utf-8") + "\n".join(short) + "\n", encoding="utf-8")
    out = tmp_path / "s.safetensors"
    rc, _o, err = run_cli("record", "--model", tmp_path / "m", "--corpus", corpus, "--sentence-means",
                          "--batch-size", "3", "--out", out)
    assert rc == 0, err
    assert sidecar_path(out).is_file()
    stats = ActivationStats.load(out)
    units = moe_units(stats.fingerprint)
    layout = discover_moe(model)
    texts = [line for lang in stats.languages
             for line in (corpus / f"{lang}.txt").read_text(encoding="utf-8").splitlines()]
    want = _sentence_means_by_hand(model, layout, tok, texts, units)
    got = stats.sentence_tensor()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    expert_part = want[:, list(units.moe_layers), : units.num_experts * units.expert_width]
    assert bool((expert_part == 0).any()), "some sentence should miss some expert"
    assert torch.equal(got[want == 0], torch.zeros(int((want == 0).sum())))  # not routed (and padding): exactly 0

    result = KojimaAPDetector().detect(stats, KojimaParams(k_top=5, k_bottom=5))
    real = units.real_units().reshape(-1)
    flat = want.reshape(len(texts), -1).float()
    N = stats.intermediate_size
    for k, lang in enumerate(stats.languages):
        positive = stats.sentence_lang == k
        detail = result.extra["units"][lang]
        chosen = [layer * N + unit for layer, unit in detail["top"] + detail["bottom"]]
        assert all(bool(real[u]) for u in chosen)  # padding is never a unit
        ap = {u: _ap_by_hand(flat[:, u], positive) for u in real.nonzero()[:, 0].tolist()}
        for u, value in zip(chosen, detail["top_ap"] + detail["bottom_ap"]):
            assert value == pytest.approx(ap[u], abs=1e-6)
        assert min(detail["top_ap"]) >= sorted(ap.values())[-5] - 1e-6  # the five highest
    rc, _o, err = run_cli("detect", "--stats", out, "--method", "kojima_ap", "--param", "k_top=4", "--param",
                          "k_bottom=4", "--out", tmp_path / "k.json")
    assert rc == 0, err


# ---------------------------------------------------------------------------------------------- processes, resume
@pytest.fixture(scope="module")
def moe_run(tmp_path_factory):
    """A saved tiny Qwen2-MoE (shared expert, dense layer 0) and a two-language corpus of 60 texts each."""
    d = tmp_path_factory.mktemp("moe-run")
    _saved("qwen2_moe", d / "m")
    (d / "c").mkdir()
    (d / "c" / "en.txt").write_text("\n".join(f"the {i}th cat sat on {'the ' * (i % 4)}mat {i * 7}"
                                              for i in range(60)) + "\n")
    (d / "c" / "de.txt").write_text("\n".join(f"die {i}. Katze sitzt auf {'der ' * (i % 3)}Matte {i * 3}"
                                              for i in range(60)) + "\n")
    return d


def _record_cmd(moe_run, out, *extra):
    import sys

    return [sys.executable, "-m", "langneuron_eval.cli.main", "record", "--no-progress", "--model",
            str(moe_run / "m"), "--corpus", str(moe_run / "c"), "--langs", "en,de", "--chunk-size", "7",
            "--batch-size", "4", "--sentence-means", "--out", str(out), *map(str, extra)]


@pytest.fixture(scope="module")
def moe_single(moe_run):
    import subprocess

    out = moe_run / "single.safetensors"
    subprocess.run(_record_cmd(moe_run, out), check=True, capture_output=True)
    return out


def test_two_gloo_processes_match_one_on_moe(moe_run, tmp_path):
    """torchrun with two gloo processes: counts summed over ranks, float sums and per-sentence means in corpus
    order, so the statistics and their sidecar are the single-process run's byte for byte."""
    import os
    import subprocess
    import sys

    from langneuron_eval.core.stats import ActivationStats, sidecar_path

    # torchrun gives each process one thread; the single-process reference runs with one thread too, since a
    # multi-threaded reduction may split a float sum differently (that is about threads, not processes)
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.safetensors"
    subprocess.run(_record_cmd(moe_run, single), check=True, capture_output=True, env=one_thread)
    multi = tmp_path / "multi.safetensors"
    cmd = _record_cmd(moe_run, multi)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        *cmd[1:]], capture_output=True, text=True, env=one_thread)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "2 processes)" in p.stderr
    moe_single = single
    a, b = ActivationStats.load(moe_single), ActivationStats.load(multi)
    assert torch.equal(a.n_tokens, b.n_tokens) and int(a.n_tokens.sum()) > 0
    assert torch.equal(a.positive_counts, b.positive_counts)
    assert torch.equal(a.routing["expert_routed_tokens"], b.routing["expert_routed_tokens"])
    assert multi.read_bytes() == moe_single.read_bytes()
    assert sidecar_path(multi).read_bytes() == sidecar_path(moe_single).read_bytes()
    assert not list(tmp_path.glob("*.partial*"))


def test_resume_after_kill_gives_identical_file_on_moe(moe_run, moe_single, tmp_path,
                                                       record_killed_after_checkpoint):
    """Killed after its third checkpoint (of 18 chunks), the MoE run resumes to the uninterrupted run's bytes."""
    import subprocess

    from langneuron_eval.core.stats import sidecar_path

    out = tmp_path / "resumed.safetensors"
    args = _record_cmd(moe_run, out, "--checkpoint-every", "1")[4:]
    killed = record_killed_after_checkpoint(3, *args)
    assert killed.returncode == 137, killed.stderr
    assert (tmp_path / "resumed.safetensors.partial").exists() and not out.exists()
    p = subprocess.run(_record_cmd(moe_run, out, "--checkpoint-every", "1", "--resume"), capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.read_bytes() == moe_single.read_bytes()
    assert sidecar_path(out).read_bytes() == sidecar_path(moe_single).read_bytes()
