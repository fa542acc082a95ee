"""Interventions inside mixture-of-experts layers: expert units, and the router.

Expert units (:class:`ExpertUnitEdit`). ``set`` replaces unit ``j`` of expert ``e`` at MoE layer ``l``
with a value, ``scale`` multiplies it. The edit is made inside :func:`~langneuron_eval.core.moe_forward.
experts_forward`, on the activation of the tokens routed to that expert, so tokens routed elsewhere are
untouched (a dense-style hook could not tell them apart). ``expert=SHARED`` names the layer's shared
expert, whose units are edited for every token. Edits of one unit compose in the order given
(``x -> a*x + b``), as in :mod:`langneuron_eval.core.interventions`; a whole expert is silenced by setting
all its units to 0.

Routing (:class:`RoutingSteer`), applied to the router's logits before the family's own selection rule
(softmax/sigmoid, top-k, group limits, renormalisation, scaling) runs on them, so the steered routing
is one the model itself could produce:

``bias``  add ``bias`` to the logits of the given experts (> 0 attracts tokens, < 0 repels them);
``ban``   set their logits to -inf: the router chooses among the other experts;
``force`` set the logits of every *other* expert to -inf: the router chooses among the given ones
          (when fewer than top-k are given, the remaining slots get weight 0; DeepSeek's group-limited
          routing still picks groups first, so experts outside the chosen groups stay unreachable).

Several steers on one layer combine: biases add, bans unite, forces unite their allowed experts; the
bias is applied first, then bans, then forces. The logits are the output of the router's first linear
map with one output per expert (``F.linear``, ``matmul``); it is intercepted with a torch function mode
that is active only while the router's forward runs, because routers compute their logits inside
``forward`` and return only the selection. ``ban`` and ``force`` also mask the input of every top-k over
the experts in the router, because sigmoid routers (DeepSeek-V3, AFMoE) select on ``sigmoid(logit) +
correction bias``, where a -inf logit alone leaves a banned expert selectable through its bias. A router
whose logits have another width (Zaya's extra skip expert, Inkling's shared-expert logits) or that
has none (DeepSeek-V4's hash-routed layers) raises on its first call instead of steering nothing.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from langneuron_eval.core.discovery import get_path
from langneuron_eval.core.moe import SHARED, MoELayout, discover_moe
from langneuron_eval.core.moe_forward import observe_experts
from langneuron_eval.core.moe_record import dense_modules
from langneuron_eval.core.moe_units import EXPERT_KIND, MoEUnits
from langneuron_eval.errors import LangNeuronError

UNIT_MODES = ("set", "scale")
ROUTING_MODES = ("bias", "ban", "force")
_LINEAR_OPS = (F.linear, torch.matmul, torch.Tensor.__matmul__, torch.mm, torch.addmm)
_TOPK_OPS = (torch.topk, torch.Tensor.topk)


@dataclass(frozen=True)
class ExpertUnitEdit:
    """Set or scale unit ``unit`` of expert ``expert`` (or ``SHARED``) at MoE layer ``layer``."""

    layer: int
    expert: int
    unit: int
    mode: str
    value: float


@dataclass(frozen=True)
class RoutingSteer:
    """Steer MoE layer ``layer``'s router towards or away from ``experts`` (see the module docstring)."""

    layer: int
    experts: tuple[int, ...]
    mode: str
    bias: float = 0.0


@dataclass(frozen=True)
class _UnitOps:
    """One expert's fused edits: units set to values, units scaled by factors."""

    set_index: torch.Tensor  # [n_set] long
    set_values: torch.Tensor  # [n_set]
    scale_index: torch.Tensor  # [n_scale] long
    scale_factors: torch.Tensor  # [n_scale]

    def to(self, device: torch.device, dtype: torch.dtype) -> _UnitOps:
        return _UnitOps(self.set_index.to(device), self.set_values.to(device, dtype),
                        self.scale_index.to(device), self.scale_factors.to(device, dtype))


@dataclass(frozen=True)
class _RouterOps:
    """One layer's steering: additive bias [E], experts banned [E] bool, experts allowed [E] bool or None."""

    bias: torch.Tensor
    banned: torch.Tensor
    allowed: torch.Tensor | None

    @property
    def masks(self) -> bool:
        return bool(self.banned.any()) or self.allowed is not None

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        """-inf for banned experts and for experts outside the forced set; scores: [tokens, E]."""
        out = scores.masked_fill(self.banned.to(scores.device), float("-inf"))
        if self.allowed is not None:
            out = out.masked_fill(~self.allowed.to(scores.device), float("-inf"))
        return out

    def apply(self, logits: torch.Tensor) -> torch.Tensor:  # logits: [tokens, E]
        return self.mask(logits + self.bias.to(logits.device, logits.dtype))

    def rank_below(self, scores: torch.Tensor) -> torch.Tensor:
        """A top-k input in which masked experts rank below every allowed one; scores: [tokens, E].

        A masked score that already does (the softmax probability of a -inf logit, 0) is kept rather than
        set to -inf: routers that use the top-k values as the routing weights (Mixtral, Qwen-MoE, OLMoE)
        then give a slot that a forced set smaller than k leaves over weight 0, not -inf (NaN outputs).
        """
        masked = self.mask(scores)
        off = torch.isneginf(masked) & ~torch.isneginf(scores)  # [tokens, E]
        lowest_allowed = scores.masked_fill(off, float("inf")).amin(-1, keepdim=True)  # [tokens, 1]
        return torch.where(off & (scores < lowest_allowed), scores, masked)


def _check_unit(layout: MoELayout, e: ExpertUnitEdit) -> None:
    if e.mode not in UNIT_MODES:
        raise LangNeuronError(f"unknown expert-unit mode {e.mode!r}; choose one of {', '.join(UNIT_MODES)}")
    if not 0 <= e.layer < layout.num_moe_layers:
        raise LangNeuronError(f"MoE layer {e.layer} is out of range (the model has {layout.num_moe_layers})")
    if e.expert == SHARED:
        if not layout.shared_width:
            raise LangNeuronError(f"{layout.model_type!r} has no shared expert to edit")
        width = layout.shared_width
    elif not 0 <= e.expert < layout.num_experts:
        raise LangNeuronError(f"expert {e.expert} is out of range (the model has {layout.num_experts} per layer)")
    else:
        width = layout.expert_width
    if not 0 <= e.unit < width:
        raise LangNeuronError(f"unit {e.unit} of expert {e.expert} is out of range ({width} units)")


def compile_unit_edits(layout: MoELayout, edits: Sequence[ExpertUnitEdit]) -> dict[tuple[int, int], _UnitOps]:
    """(MoE layer, expert) -> fused index/value tensors, built once outside the forward pass."""
    affine: dict[tuple[int, int], dict[int, tuple[float, float]]] = {}  # unit -> (a, b) of a*x + b
    for e in edits:
        _check_unit(layout, e)
        per_unit = affine.setdefault((e.layer, e.expert), {})
        if e.mode == "scale":
            a, b = per_unit.get(e.unit, (1.0, 0.0))
            per_unit[e.unit] = (a * e.value, b * e.value)
        else:
            per_unit[e.unit] = (0.0, float(e.value))
    out = {}
    for key, per_unit in affine.items():
        sets = [u for u in sorted(per_unit) if per_unit[u][0] == 0.0]
        scales = [u for u in sorted(per_unit) if per_unit[u][0] != 0.0]
        out[key] = _UnitOps(torch.tensor(sets, dtype=torch.long),
                            torch.tensor([per_unit[u][1] for u in sets], dtype=torch.float32),
                            torch.tensor(scales, dtype=torch.long),
                            torch.tensor([per_unit[u][0] for u in scales], dtype=torch.float32))
    return out


def compile_routing(layout: MoELayout, steers: Sequence[RoutingSteer]) -> dict[int, _RouterOps]:
    """MoE layer -> its combined steering; one line for a bad mode, layer, expert, or a layer without router."""
    E = layout.num_experts
    parts: dict[int, dict[str, Any]] = {}
    for s in steers:
        if s.mode not in ROUTING_MODES:
            raise LangNeuronError(f"unknown routing mode {s.mode!r}; choose one of {', '.join(ROUTING_MODES)}")
        if not 0 <= s.layer < layout.num_moe_layers:
            raise LangNeuronError(f"MoE layer {s.layer} is out of range (the model has {layout.num_moe_layers})")
        if layout.moe_layers[s.layer].router is None:
            raise LangNeuronError(f"MoE layer {s.layer} has no router langneuron-eval recognises; its routing "
                                  "cannot be steered")
        if not s.experts or any(not 0 <= x < E for x in s.experts):
            raise LangNeuronError(f"routing steer of MoE layer {s.layer} needs expert indices in 0..{E - 1}, "
                                  f"got {list(s.experts)}")
        p = parts.setdefault(s.layer, {"bias": torch.zeros(E, dtype=torch.float64),
                                       "banned": torch.zeros(E, dtype=torch.bool), "allowed": None})
        idx = torch.tensor(sorted(set(s.experts)), dtype=torch.long)
        if s.mode == "bias":
            p["bias"][idx] += s.bias
        elif s.mode == "ban":
            p["banned"][idx] = True
        else:
            if p["allowed"] is None:
                p["allowed"] = torch.zeros(E, dtype=torch.bool)
            p["allowed"][idx] = True
    return {layer: _RouterOps(p["bias"], p["banned"], p["allowed"]) for layer, p in parts.items()}


class _SteerLogits(TorchFunctionMode):
    """Edit the first linear output with one column per expert computed while the mode is active, and mask
    the input of every top-k over experts (so a score correction bias cannot select a banned expert)."""

    def __init__(self, ops: _RouterOps, num_experts: int) -> None:
        super().__init__()
        self.ops, self.num_experts, self.done = ops, num_experts, False

    def _over_experts(self, args: tuple, kwargs: dict) -> bool:
        """A top-k along the last dimension of a [tokens, E] tensor."""
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[-1] != self.num_experts:
            return False
        dim = kwargs.get("dim", args[2] if len(args) > 2 else -1)
        return dim in (-1, x.dim() - 1)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _TOPK_OPS and self.ops.masks and self._over_experts(args, kwargs):
            args = (self.ops.rank_below(args[0]), *args[1:])
        out = func(*args, **kwargs)
        if (not self.done and func in _LINEAR_OPS and isinstance(out, torch.Tensor)
                and out.shape[-1] == self.num_experts):
            self.done = True
            out = self.ops.apply(out)  # [tokens, E]
        return out


@contextlib.contextmanager
def _steer_router(router: nn.Module, ops: _RouterOps, num_experts: int, where: str):
    """Run ``router``'s forward inside :class:`_SteerLogits`; restores the module's ``forward`` after.

    A router call in which no linear map produced one logit per expert (hash routing, logits that also
    score shared experts) raises, so a steer never silently does nothing.
    """
    before = router.__dict__.get("forward")  # an instance-level forward (e.g. accelerate's) stays in the chain
    inner = router.forward

    def forward(*args, **kwargs):
        mode = _SteerLogits(ops, num_experts)
        with mode:
            out = inner(*args, **kwargs)
        if not mode.done:
            raise LangNeuronError(f"{where}: the router computed no linear map with one output per expert "
                                  f"({num_experts}), so its routing cannot be steered")
        return out

    router.__dict__["forward"] = forward
    try:
        yield
    finally:
        if before is None:
            router.__dict__.pop("forward", None)
        else:
            router.__dict__["forward"] = before


class ExpertIntervention:
    """Edits expert units and steers routing while active; leaving restores the model exactly.

    Usage::

        with ExpertIntervention(model, layout, units=[ExpertUnitEdit(0, 3, 17, "set", 0.0)],
                                routing=[RoutingSteer(1, (2, 5), "ban")]):
            model(**batch)
    """

    def __init__(self, model: nn.Module, layout: MoELayout, units: Sequence[ExpertUnitEdit] = (),
                 routing: Sequence[RoutingSteer] = (), site: str = "act_out") -> None:
        self.model, self.layout, self.site = model, layout, layout.check_site(site) if units else site
        self._units = compile_unit_edits(layout, units)
        self._routing = compile_routing(layout, routing)
        self._device_ops: dict[tuple[int, int, torch.device, torch.dtype], _UnitOps] = {}
        self._stack: contextlib.ExitStack | None = None
        self.edit_calls = 0  # how many expert tensors were edited (tests read it)

    def _ops_for(self, layer: int, expert: int, like: torch.Tensor) -> _UnitOps | None:
        ops = self._units.get((layer, expert))
        if ops is None:
            return None
        key = (layer, expert, like.device, like.dtype)
        if key not in self._device_ops:
            self._device_ops[key] = ops.to(like.device, like.dtype)
        return self._device_ops[key]

    def _apply(self, ops: _UnitOps, acts: torch.Tensor) -> torch.Tensor:
        out = acts if not torch.is_grad_enabled() else acts.clone()  # [tokens, F] or [batch, pos, F]
        if ops.set_index.numel():
            out[..., ops.set_index] = ops.set_values
        if ops.scale_index.numel():
            out[..., ops.scale_index] *= ops.scale_factors
        self.edit_calls += 1
        return out

    def _edit_expert(self, layer: int, expert: int, acts: torch.Tensor, _tokens: torch.Tensor) -> torch.Tensor | None:
        ops = self._ops_for(layer, expert, acts)  # acts: [tokens routed to the expert, F]
        return None if ops is None else self._apply(ops, acts)

    def _edit_shared(self, layer: int, acts: torch.Tensor) -> torch.Tensor | None:
        ops = self._ops_for(layer, SHARED, acts)
        return None if ops is None else self._apply(ops, acts)

    def __enter__(self) -> ExpertIntervention:
        if self._stack is not None:
            raise LangNeuronError("this ExpertIntervention is already active; nest a second one instead")
        self._stack = contextlib.ExitStack()
        try:
            if self._units:
                shared = any(expert == SHARED for _, expert in self._units)
                self._stack.enter_context(observe_experts(self.model, self.layout, self.site, self._edit_expert,
                                                          shared_fn=self._edit_shared if shared else None))
            for layer, ops in self._routing.items():
                path = self.layout.moe_layers[layer].router
                where = f"MoE layer {layer} ({path})"
                self._stack.enter_context(_steer_router(get_path(self.model, path), ops, self.layout.num_experts,
                                                        where))
        except BaseException:
            self._stack.close()
            self._stack = None
            raise
        return self

    def __exit__(self, *exc) -> None:
        assert self._stack is not None
        self._stack.close()
        self._stack = None


# ---------------------------------------------------------------------------------------------- neuron files
def _unit_edits(units: MoEUnits, ops: dict[int, Any]) -> tuple[list[ExpertUnitEdit], dict[int, Any]]:
    """Fused per-layer ops over flat units -> expert-unit edits of MoE layers, and the dense layers' ops."""
    edits, dense = [], {}
    for layer, op in ops.items():
        i = units.moe_index(layer)
        if i is None:
            dense[layer] = op
            continue
        for index, values, mode in ((op.set_index, op.set_values, "set"), (op.scale_index, op.scale_factors, "scale")):
            for unit, v in zip(index.tolist(), values.tolist()):
                kind, expert, j = units.describe_unit(layer, unit)
                if kind in ("expert", "shared"):
                    edits.append(ExpertUnitEdit(i, SHARED if kind == "shared" else expert, j, mode, v))
    return edits, dense


def _routing_edits(units: MoEUnits, neurons: Any, edits: Sequence[Any]) -> list[RoutingSteer]:
    """Language edits of a whole-expert file: deactivate bans, activate forces, scale adds ln(strength)."""
    out = []
    for edit in edits:
        per_layer: dict[int, list[int]] = {}
        for layer, expert in neurons.units(edit.lang):
            per_layer.setdefault(units.moe_layers.index(layer), []).append(expert)
        if edit.mode == "scale" and edit.strength <= 0:
            raise LangNeuronError(f"mode=scale on experts adds ln(strength) to their router logits; strength must be "
                                  f"> 0, got {edit.strength}")
        mode = {"deactivate": "ban", "activate": "force", "scale": "bias"}[edit.mode]
        bias = math.log(edit.strength) if edit.mode == "scale" else 0.0
        out += [RoutingSteer(i, tuple(sorted(e)), mode, bias) for i, e in sorted(per_layer.items())]
    return out


class MoEEdits:
    """A neuron file's language edits on a mixture-of-experts model, for :class:`core.interventions.Intervention`.

    Expert units are edited inside the experts' forward (only routed tokens), shared-expert units for every
    token, dense units of the other layers with hooks on their MLP; whole-expert files steer the router
    (``deactivate`` = ban, ``activate`` = force, ``scale`` = add ``ln(strength)`` to the logits). Only
    ``positions=all``: the experts see flattened tokens, not positions.
    """

    def __init__(self, model: nn.Module, sites: Any, neurons: Any, edits: Sequence[Any], compile_edits: Any) -> None:
        self.model, self.site = model, sites.site
        units = MoEUnits.from_dict(sites.moe)
        layout = discover_moe(model)
        if neurons.kind == EXPERT_KIND:
            unit_edits, self._dense, routing = [], {}, _routing_edits(units, neurons, edits)
        else:
            unit_edits, self._dense = _unit_edits(units, compile_edits(neurons, edits))
            routing = []
        self._experts = ExpertIntervention(model, layout, unit_edits, routing, site=sites.site)
        self._paths = {i: path for i, (path, _w) in dense_modules(model, layout, sites.site).items()}

    @classmethod
    def for_sites(cls, model: nn.Module, sites: Any, neurons: Any, edits: Sequence[Any], positions: str,
                  compile_edits: Any) -> MoEEdits | None:
        """The MoE edits when ``sites`` are an MoE model's (None for a dense model or no edits)."""
        if getattr(sites, "moe", None) is None or neurons is None or not edits:
            return None
        if positions != "all":
            raise LangNeuronError("positions=generated is not supported for mixture-of-experts neuron files (the "
                                  "experts see flattened tokens); use positions=all")
        return cls(model, sites, neurons, edits, compile_edits)

    @property
    def edit_calls(self) -> int:
        return self._experts.edit_calls

    def _edit_dense(self, layer: int, acts: torch.Tensor) -> torch.Tensor:
        op = self._dense[layer]  # acts: [batch, pos, W]
        out = acts if not torch.is_grad_enabled() else acts.clone()
        if op.set_index.numel():
            out[..., op.set_index.to(out.device)] = op.set_values.to(out.device, out.dtype)
        if op.scale_index.numel():
            out[..., op.scale_index.to(out.device)] *= op.scale_factors.to(out.device, out.dtype)
        return out

    @contextlib.contextmanager
    def hooks(self):
        handles = []
        for layer in self._dense:
            module = get_path(self.model, self._paths[layer])
            if self.site == "down_in":
                handles.append(module.register_forward_pre_hook(
                    lambda _m, args, layer=layer: (self._edit_dense(layer, args[0]), *args[1:])))
            else:
                handles.append(module.register_forward_hook(lambda _m, _a, out, layer=layer: self._edit_dense(layer, out)))
        try:
            with self._experts:
                yield
        finally:
            for h in handles:
                h.remove()
