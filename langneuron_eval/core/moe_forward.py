"""Our eager computation of transformers' fused experts, with a call per expert where units are seen.

Why replace the forward: ``@use_experts_implementation`` lets a model run its experts with grouped or
batched kernels (``grouped_mm`` is transformers' default) that compute every expert in one call, so
no module hook sees one expert's activation. While :func:`observe_experts` is active, every experts
module of the layout runs :func:`experts_forward` instead (registered in transformers'
``ExpertsInterface`` under :data:`IMPLEMENTATION` and selected through the module's config), whatever
implementation the model was loaded with; leaving the context restores it.

:func:`experts_forward` reproduces the library's eager loop step by step: for each expert that was hit,
gather its routed tokens, apply the fused up projection (transposed or not, with bias or not), the gate
(:class:`~langneuron_eval.core.moe.GateSpec`), the down projection (and the post-expert norm where a
family has one), weight by the routing weight and ``index_add`` into the output. It therefore equals
the library's eager implementation bit for bit and the grouped kernels to float rounding. Because the
experts module receives the routing (``top_k_index``, ``top_k_weights``) as arguments from its MoE
block, routing is captured here too, identically for every family, with no knowledge of its router.

Between the gate and the down projection it calls, in registration order:

* ``act_out`` functions on the activation ``act(gate)`` [tokens routed, F];
* ``down_in`` functions on the down projection's input [tokens routed, F];

each as ``fn(moe_layer, expert, acts, tokens)``, where ``tokens`` [tokens routed] are the rows of the
flattened ``[batch * positions]`` hidden states routed to that expert. A function returns a
replacement tensor or None. Routing functions see ``fn(moe_layer, top_k_index, top_k_weights)`` before
any expert runs. Shared experts are dense MLPs and are observed with ordinary module hooks
(``fn(moe_layer, acts)`` on ``[tokens, Fs]`` or ``[batch, positions, Fs]``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from langneuron_eval.core.discovery import get_path
from langneuron_eval.core.moe import MoELayout
from langneuron_eval.errors import LangNeuronError

IMPLEMENTATION = "langneuron_eval"  # our name in transformers' ExpertsInterface
_STATE = "_langneuron_moe"  # attribute of an experts module while it is observed

# fn(moe_layer, expert, acts [tokens routed, F], tokens [tokens routed] long) -> replacement or None
ExpertFn = Callable[[int, int, torch.Tensor, torch.Tensor], "torch.Tensor | None"]
# fn(moe_layer, top_k_index [tokens, k] long, top_k_weights [tokens, k])
RoutingFn = Callable[[int, torch.Tensor, torch.Tensor], None]
# fn(moe_layer, acts [tokens, Fs] or [batch, positions, Fs]) -> replacement or None
SharedFn = Callable[[int, torch.Tensor], "torch.Tensor | None"]


@dataclass
class _ExpertsState:
    """What one experts module calls while observed; several observers may share it (they nest)."""

    layer: int
    gate: Any  # GateSpec | None
    act_fns: list[ExpertFn] = field(default_factory=list)
    down_fns: list[ExpertFn] = field(default_factory=list)
    routing_fns: list[RoutingFn] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.act_fns or self.down_fns or self.routing_fns)


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, transposed: bool) -> torch.Tensor:
    """One expert's projection as the eager loops write it: ``x @ w + b`` (transposed) or ``F.linear``."""
    if transposed:
        y = x @ w  # w: [in, out]
        return y if b is None else y + b
    y = F.linear(x, w)  # w: [out, in]
    return y if b is None else y + b


def _apply(fns: list[ExpertFn], layer: int, expert: int, acts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    for fn in fns:
        new = fn(layer, expert, acts, tokens)
        if new is not None:
            acts = new
    return acts


def _hidden(m: nn.Module, state: _ExpertsState | None, e: int, proj: torch.Tensor, tokens: torch.Tensor
            ) -> torch.Tensor:
    """The down projection's input [n, F] from the up projection [n, 2F] (or [n, F] ungated)."""
    if state is None or not (state.act_fns or state.down_fns) or state.gate is None:
        h = m._apply_gate(proj) if m.has_gate else m.act_fn(proj)
    else:
        gate, up = state.gate.split(proj)
        act = _apply(state.act_fns, state.layer, e, state.gate.activate(m, gate), tokens)  # [n, F]
        h = state.gate.combine(act, up)
    return h if state is None else _apply(state.down_fns, state.layer, e, h, tokens)


def _run_expert(m: nn.Module, state: _ExpertsState | None, e: int, x: torch.Tensor, tokens: torch.Tensor
                ) -> torch.Tensor:
    """Expert ``e`` on its routed tokens ``x`` [n, hidden] -> [n, hidden], before the routing weight."""
    up_w = m.gate_up_proj if m.has_gate else m.up_proj
    up_b = (m.gate_up_proj_bias if m.has_gate else m.up_proj_bias) if m.has_bias else None
    proj = _linear(x, up_w[e], None if up_b is None else up_b[e], m.is_transposed)  # [n, 2F] or [n, F]
    h = _hidden(m, state, e, proj, tokens)  # [n, F]
    out = _linear(h, m.down_proj[e], m.down_proj_bias[e] if m.has_bias else None, m.is_transposed)
    if getattr(m, "has_post_expert_norm", False):
        out = m.post_expert_norm(out)
    return out


def experts_forward(self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor | None = None,
                    top_k_weights: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
    """Eager forward of a fused experts module, calling the observers of :func:`observe_experts`.

    ``hidden_states`` [tokens, hidden]; ``top_k_index``/``top_k_weights`` [tokens, k] (GPT-OSS passes
    them as ``router_indices``/``routing_weights``). Indices >= the number of experts (expert-parallel
    sentinels) are skipped, as the library does.
    """
    top_k_index = kwargs.pop("router_indices", top_k_index)
    top_k_weights = kwargs.pop("routing_weights", top_k_weights)
    state: _ExpertsState | None = self.__dict__.get(_STATE)
    n_experts = int(self.down_proj.shape[0])
    if state is not None:
        for fn in state.routing_fns:
            fn(state.layer, top_k_index, top_k_weights)
    final = torch.zeros_like(hidden_states)  # [tokens, hidden]
    with torch.no_grad():
        mask = F.one_hot(top_k_index, num_classes=n_experts + 1).permute(2, 1, 0)  # [E+1, k, tokens]
        hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()[:, 0].tolist()
    for e in hit:
        if e >= n_experts:
            continue
        pos, tokens = torch.where(mask[e])  # [n] top-k slot and row of each routed token
        out = _run_expert(self, state, e, hidden_states[tokens], tokens)  # [n, hidden]
        out = out * top_k_weights[tokens, pos, None]
        final.index_add_(0, tokens, out.to(final.dtype))
    return final


# ---------------------------------------------------------------------------------------------- switching
_SWITCHED: dict[int, list[Any]] = {}  # id(config) -> [observed experts modules, implementation before, config]


def _register() -> None:
    from transformers.integrations.moe import ExpertsInterface

    if IMPLEMENTATION not in ExpertsInterface._global_mapping:
        ExpertsInterface.register(IMPLEMENTATION, experts_forward)


def _set_implementation(config: Any, value: str | None) -> None:
    # the internal attribute: the public setter would also overwrite every sub-config's choice
    if hasattr(config, "_experts_implementation_internal"):
        config._experts_implementation_internal = value
    else:
        config._experts_implementation = value


def _switch(config: Any) -> None:
    """Make every experts module using ``config`` run :func:`experts_forward` (reference-counted)."""
    entry = _SWITCHED.get(id(config))
    if entry is None:
        entry = _SWITCHED[id(config)] = [0, getattr(config, "_experts_implementation", None), config]
        _set_implementation(config, IMPLEMENTATION)
    entry[0] += 1


def _unswitch(config: Any) -> None:
    entry = _SWITCHED[id(config)]
    entry[0] -= 1
    if entry[0] == 0:
        _set_implementation(config, entry[1])
        del _SWITCHED[id(config)]


def _attach(m: nn.Module, layer: int, gate: Any) -> _ExpertsState:
    state = m.__dict__.get(_STATE)
    if state is None:
        if getattr(m, "config", None) is None:
            raise LangNeuronError(f"experts module {type(m).__name__} has no config to select its implementation")
        state = _ExpertsState(layer, gate)
        m.__dict__[_STATE] = state
        _switch(m.config)
    return state


def _detach(m: nn.Module, state: _ExpertsState) -> None:
    if state.empty() and m.__dict__.get(_STATE) is state:
        del m.__dict__[_STATE]
        _unswitch(m.config)


def _shared_hook(module: nn.Module, layer: int, fn: SharedFn, pre: bool) -> Any:
    if pre:
        def hook_pre(_mod, args):
            new = fn(layer, args[0])  # [tokens, Fs] or [batch, pos, Fs]
            return None if new is None else (new, *args[1:])

        return module.register_forward_pre_hook(hook_pre)

    def hook_post(_mod, _args, out):
        return fn(layer, out)  # [tokens, Fs] or [batch, pos, Fs]

    return module.register_forward_hook(hook_post)


@contextlib.contextmanager
def observe_experts(model: nn.Module, layout: MoELayout, site: str = "act_out", expert_fn: ExpertFn | None = None,
                    routing_fn: RoutingFn | None = None, shared_fn: SharedFn | None = None) -> Iterator[None]:
    """Call ``expert_fn`` on every routed expert's ``site`` tensor, ``routing_fn`` on every MoE layer's routing
    and ``shared_fn`` on every shared expert's ``site`` tensor while the block runs.

    Nests: an inner context's functions run after the outer's (an edit sees what the outer produced).
    The experts implementation is switched to ours on entry and restored when the last context leaves,
    even if the block raises.
    """
    if expert_fn is not None or shared_fn is not None:
        layout.check_site(site)
    _register()
    attached: list[tuple[nn.Module, _ExpertsState]] = []
    added: list[tuple[list[Any], Any]] = []  # (list, function) exactly as appended, removed by identity
    handles = []
    try:
        for i, ml in enumerate(layout.moe_layers):
            m = get_path(model, ml.experts)
            state = _attach(m, i, ml.gate)
            attached.append((m, state))
            if expert_fn is not None:
                added.append((state.act_fns if site == "act_out" else state.down_fns, expert_fn))
            if routing_fn is not None:
                added.append((state.routing_fns, routing_fn))
            if shared_fn is not None and ml.shared is not None:
                path = ml.shared.act if site == "act_out" else ml.shared.down
                handles.append(_shared_hook(get_path(model, path), i, shared_fn, site == "down_in"))
        for fns, fn in added:
            fns.append(fn)
        yield
    finally:
        for h in handles:
            h.remove()
        for fns, fn in reversed(added):
            at = next((j for j in range(len(fns) - 1, -1, -1) if fns[j] is fn), None)
            if at is not None:
                del fns[at]
        for m, state in attached:
            _detach(m, state)
