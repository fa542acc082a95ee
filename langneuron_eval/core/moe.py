"""Mixture-of-experts layers: where the routed experts, their router and the shared experts live.

In an MoE layer a unit is ``(MoE layer, expert, index)``: index ``j`` of the intermediate activation of
one routed expert. transformers 5.x keeps a layer's experts in one module with fused weights
(``gate_up_proj`` [experts, 2F, hidden] or its transpose, ``down_proj``), decorated with
``@use_experts_implementation`` so that its forward can be swapped for grouped kernels that run all
experts at once. A hook on the experts' ``act_fn`` therefore cannot tell which expert it serves, so
the units are observed inside our own eager computation of that module
(:mod:`langneuron_eval.core.moe_forward`), where the expert index and the routed tokens are known.

Discovery (:func:`discover_moe`) reads the module tree and the weights, never the config:

* the decoder layers (as for dense models) and, in each, the MoE block (discovery's
  :func:`~langneuron_eval.core.discovery.moe_block`); layers without one are the *other layers*: the
  dense layers of a mixed model (DeepSeek's ``first_k_dense_replace``, Qwen2-MoE's ``mlp_only_layers``),
  which keep the dense units of :mod:`langneuron_eval.core.sites`, or blocks without an MLP (Nemotron-H's
  Mamba layers);
* the fused experts module (``block.experts``): it must carry the attributes the decorator sets
  (``has_gate``, ``is_transposed``, ``has_bias``) and 3-D ``down_proj`` weights; the number of experts
  and their width come from ``down_proj``;
* the router: the child of the block whose weight maps the hidden size to one logit per expert
  (``gate`` in Mixtral/Qwen/DeepSeek/OLMoE, ``router`` in GPT-OSS); needed only to steer routing;
* the shared expert: a child of the block that is a dense MLP (Qwen-MoE ``shared_expert``, DeepSeek
  ``shared_experts``); it sees every token, so its units use the dense denominator;
* the gate: how an expert's fused up projection becomes its activation (:class:`GateSpec`), recognised
  by checking candidate formulas against the module's own ``_apply_gate`` on a probe tensor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from langneuron_eval.core.discovery import find_layer_list, find_layer_mlp, join_path, moe_block
from langneuron_eval.errors import LangNeuronError

EXPERT_SITES = ("act_out", "down_in")
SHARED = -1  # the expert index that names a layer's shared expert in edits
_LIMIT_ATTRS = ("limit", "swiglu_limit")


# ---------------------------------------------------------------------------------------------- gates
@dataclass(frozen=True)
class GateSpec:
    """How one expert turns its up projection ``proj`` into the down projection's input.

    ``act_out`` is the activation ``act(gate)`` and ``down_in`` is ``combine(act, up)``, as at the dense
    sites. ``gated=False``: ``act_fn(proj)`` is both. The fields describe the variants transformers uses:

    * ``interleaved``: gate and up alternate along the last dimension (GPT-OSS) instead of being halves;
    * ``limit``: gate clamped from above and up clamped to ``[-limit, limit]`` (GPT-OSS, DeepSeek-V4);
    * ``alpha``: the activation is ``gate * sigmoid(alpha * gate)`` (GPT-OSS) instead of ``act_fn``;
    * ``silu``: ``F.silu`` instead of the module's ``act_fn``;
    * ``up_offset``: ``down_in = (up + up_offset) * act`` (GPT-OSS adds 1).
    """

    name: str
    gated: bool = True
    interleaved: bool = False
    limit: float | None = None
    alpha: float | None = None
    silu: bool = False
    up_offset: float = 0.0

    def split(self, proj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``proj`` [n, 2F] (gated) or [n, F] -> (pre-activation gate [n, F], up [n, F] or None)."""
        if not self.gated:
            return proj, None
        if self.interleaved:
            gate, up = proj[..., ::2], proj[..., 1::2]
        else:
            gate, up = proj.chunk(2, dim=-1)
        if self.limit is not None:
            gate = gate.clamp(min=None, max=self.limit)
            up = up.clamp(min=-self.limit, max=self.limit)
        return gate, up

    def activate(self, experts: nn.Module, gate: torch.Tensor) -> torch.Tensor:
        """The activation of the pre-activation gate: the ``act_out`` tensor [n, F]."""
        if self.alpha is not None:
            return gate * torch.sigmoid(gate * self.alpha)
        return F.silu(gate) if self.silu else experts.act_fn(gate)

    def combine(self, act: torch.Tensor, up: torch.Tensor | None) -> torch.Tensor:
        """The down projection's input (``down_in``) from the activation and the up half."""
        if up is None:
            return act
        return (up + self.up_offset) * act if self.up_offset else act * up


def _candidates(experts: nn.Module) -> list[GateSpec]:
    """Gate formulas transformers' experts classes use, parameterised from the module's attributes."""
    if not experts.has_gate:
        return [GateSpec("ungated", gated=False)] if hasattr(experts, "act_fn") else []
    limit = next((float(getattr(experts, a)) for a in _LIMIT_ATTRS if isinstance(getattr(experts, a, None),
                                                                              (int, float))), None)
    alpha = getattr(experts, "alpha", None)
    interleaved = not getattr(experts, "is_concatenated", True)
    has_act = callable(getattr(experts, "act_fn", None))
    out = [GateSpec("glu", interleaved=interleaved)] if has_act else []
    if limit is not None:
        out += [GateSpec("clamped_glu", interleaved=interleaved, limit=limit)] if has_act else []
        out.append(GateSpec("clamped_silu_glu", interleaved=interleaved, limit=limit, silu=True))
        if isinstance(alpha, (int, float)):
            out.append(GateSpec("gpt_oss_glu", interleaved=interleaved, limit=limit, alpha=float(alpha),
                                up_offset=1.0))
    return out


def recognise_gate(experts: nn.Module) -> GateSpec | None:
    """The :class:`GateSpec` whose formula gives exactly what the module's ``_apply_gate`` gives, or None.

    Checked on a probe with values up to +-12 (beyond GPT-OSS's clamp limit of 7) in the module's dtype
    and device, so a gate recognised here is one we compute bit for bit. None: only ``down_in`` (the
    module's own ``_apply_gate`` output) can be observed.
    """
    weight = experts.down_proj
    device = weight.device if weight.device.type != "meta" else torch.device("cpu")  # offloaded weights
    width = _widths(experts)[1]
    g = torch.Generator().manual_seed(0)
    n_in = 2 * width if experts.has_gate else width
    probe = ((torch.rand(5, n_in, generator=g) - 0.5) * 24).to(device, weight.dtype)  # [5, 2F]
    with torch.no_grad():
        try:
            want = experts._apply_gate(probe) if experts.has_gate else experts.act_fn(probe)
        except (TypeError, RuntimeError, AttributeError):
            return None
        for spec in _candidates(experts):
            try:
                gate, up = spec.split(probe)
                got = spec.combine(spec.activate(experts, gate), up)
            except (TypeError, RuntimeError):  # e.g. an act_fn that takes (gate, up): not this formula
                continue
            if got.shape == want.shape and torch.equal(got, want):
                return spec
    return None


# ---------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class SharedExpert:
    """A layer's shared expert: a dense MLP every token goes through. Paths are from the model root."""

    path: str
    act: str | None  # None: the activation is a function call (act_out cannot be hooked)
    down: str
    width: int


@dataclass(frozen=True)
class MoELayer:
    """One decoder layer's MoE block. Paths are from the model root."""

    layer: int  # index of the decoder layer
    block: str
    experts: str
    router: str | None  # None: no router found; routing cannot be steered
    num_experts: int
    width: int  # units per routed expert
    gate: GateSpec | None  # None: the gate is not recognised; only site down_in
    shared: SharedExpert | None


@dataclass(frozen=True)
class MoELayout:
    """Every MoE layer of a model (in layer order) and the decoder layers without experts (``other_layers``).

    ``moe_layers[i]`` is MoE layer ``i``: the index used by the expert counters ([L_moe, E, F]) and by
    edits. All MoE layers share one number of experts, one expert width and one shared-expert width.
    """

    model_type: str
    layers_path: str
    num_layers: int
    moe_layers: tuple[MoELayer, ...]
    other_layers: tuple[int, ...]

    @property
    def num_moe_layers(self) -> int:
        return len(self.moe_layers)

    @property
    def num_experts(self) -> int:
        return self.moe_layers[0].num_experts

    @property
    def expert_width(self) -> int:
        return self.moe_layers[0].width

    @property
    def shared_width(self) -> int:
        """Units per shared expert; 0 without shared experts."""
        shared = self.moe_layers[0].shared
        return shared.width if shared else 0

    def moe_index(self, layer: int) -> int:
        """Decoder layer index -> MoE layer index, one line if that layer has no experts."""
        for i, m in enumerate(self.moe_layers):
            if m.layer == layer:
                return i
        raise LangNeuronError(f"decoder layer {layer} is not a mixture-of-experts layer "
                              f"(MoE layers: {[m.layer for m in self.moe_layers]})")

    def check_site(self, site: str) -> str:
        """Refuse a site the experts cannot be observed at, before any forward pass."""
        if site not in EXPERT_SITES:
            raise LangNeuronError(f"unknown expert site {site!r}; choose one of {', '.join(EXPERT_SITES)}")
        if site == "act_out":
            bad = next((m for m in self.moe_layers if m.gate is None), None)
            if bad is not None:
                raise LangNeuronError(
                    f"{self.model_type!r}: the experts' gate of layer {bad.layer} ({bad.experts}) is not one "
                    "langneuron-eval recognises, so its activation cannot be told apart from the up "
                    "projection; use --site down_in")
            shared = next((m.shared for m in self.moe_layers if m.shared and m.shared.act is None), None)
            if shared is not None:
                raise LangNeuronError(f"{self.model_type!r}: the shared expert {shared.path} applies its "
                                      "activation as a function call; use --site down_in")
        return site

    def to_dict(self) -> dict[str, Any]:
        """What a statistics or neuron file must share with the model (for its fingerprint)."""
        return {"moe_layers": [m.layer for m in self.moe_layers], "num_experts": self.num_experts,
                "expert_width": self.expert_width, "shared_width": self.shared_width,
                "other_layers": list(self.other_layers)}


def _widths(experts: nn.Module) -> tuple[int, int]:
    """(number of experts, units per expert) from ``down_proj``: [E, hidden, F], or [E, F, hidden] transposed."""
    down = experts.down_proj
    return int(down.shape[0]), int(down.shape[1] if experts.is_transposed else down.shape[2])


def is_fused_experts(m: nn.Module) -> bool:
    """A transformers experts module whose forward we can reproduce (decorated, 3-D weights)."""
    up = getattr(m, "gate_up_proj", None) if getattr(m, "has_gate", False) else getattr(m, "up_proj", None)
    down = getattr(m, "down_proj", None)
    return (all(hasattr(m, a) for a in ("has_gate", "has_bias", "is_transposed", "_apply_gate"))
            and isinstance(up, torch.Tensor) and up.dim() == 3
            and isinstance(down, torch.Tensor) and down.dim() == 3)


def _find_router(block: nn.Module, num_experts: int, hidden: int) -> str | None:
    """The child of the block that routes: named ``gate``/``router`` (not a shared expert's gate), or else the
    one holding a [experts, hidden] weight."""
    children = [(n, c) for n, c in block.named_children() if n != "experts"]
    for name, _child in children:
        if "shared" not in name and re.fullmatch(r"gate|router|\w*_router|router_\w*|\w*_gate", name):
            return name
    for name, child in children:
        if any(tuple(p.shape) == (num_experts, hidden) for p in child.parameters()):
            return name
    return None


def _find_shared(block: nn.Module, block_path: str, skip: set[str], layer: int) -> SharedExpert | None:
    """The block's shared expert, if one of its other children is a dense MLP."""
    found = []
    for name, child in block.named_children():
        if name in skip or not any(True for _ in child.children()):
            continue
        try:
            mlp = find_layer_mlp(child, layer)
        except LangNeuronError:
            continue
        base = join_path(block_path, name)
        found.append(SharedExpert(base, join_path(base, mlp.act) if mlp.act else None,
                                  join_path(base, mlp.down), mlp.width))
    if len(found) > 1:
        raise LangNeuronError(f"layer {layer}: the MoE block {block_path} has several dense MLPs besides its "
                              f"experts ({', '.join(s.path for s in found)}); one shared expert is supported")
    return found[0] if found else None


def _moe_layer(model: nn.Module, layers_path: str, i: int, layer: nn.Module, block: nn.Module) -> MoELayer:
    """Describe one MoE block, or refuse it with one line naming why."""
    names = {id(m): n for n, m in layer.named_modules()}
    block_path = join_path(layers_path, str(i), names[id(block)])
    experts = getattr(block, "experts", None)
    if not isinstance(experts, nn.Module) or not is_fused_experts(experts):
        kind = f"in {type(experts).__name__}" if isinstance(experts, nn.Module) else "without an `experts` module"
        raise LangNeuronError(
            f"layer {i}: the MoE block {type(block).__name__} keeps its experts {kind}, not in one of "
            "transformers' fused experts modules (@use_experts_implementation), so langneuron-eval cannot "
            "observe its experts one by one")
    num_experts, width = _widths(experts)
    hidden = int(experts.down_proj.shape[2] if experts.is_transposed else experts.down_proj.shape[1])
    router = _find_router(block, num_experts, hidden)
    shared = _find_shared(block, block_path, {"experts", router or ""}, i)
    return MoELayer(i, block_path, join_path(block_path, "experts"),
                    join_path(block_path, router) if router else None, num_experts, width,
                    recognise_gate(experts), shared)


def _check_uniform(model_type: str, moe: list[MoELayer]) -> None:
    """One expert count and width per model, so the counters are [L_moe, E, F] tensors."""
    shapes = sorted({(m.num_experts, m.width, m.shared.width if m.shared else 0) for m in moe})
    if len(shapes) > 1:
        raise LangNeuronError(f"{model_type!r}: the MoE layers differ in (experts, expert width, shared width) "
                              f"{shapes}; one shape for every MoE layer is supported")


def discover_moe(model: nn.Module) -> MoELayout:
    """Find every MoE layer of a Hugging Face causal LM; one line if it has none or one we cannot observe."""
    model_type = getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__
    layers_path, layers = find_layer_list(model)
    moe, other = [], []
    for i, layer in enumerate(layers):
        block = moe_block(layer)
        if block is None:
            other.append(i)
        else:
            moe.append(_moe_layer(model, layers_path, i, layer, block))
    if not moe:
        raise LangNeuronError(f"{model_type!r} has no mixture-of-experts layer")
    _check_uniform(model_type, moe)
    return MoELayout(model_type, layers_path, len(layers), tuple(moe), tuple(other))

