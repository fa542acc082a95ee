"""Recording a mixture-of-experts model: expert, shared-expert and dense units in one statistics file.

The recorder's run loop (tokenising, length-sorted padded batches, counted-position masks, chunks, the
progress bar) is shared with dense models; what differs is the accumulator. :class:`MoEAccumulator` counts
the routed experts and shared experts through :class:`~langneuron_eval.core.moe_counts.ExpertCounters` and
the dense MLPs of the other layers (DeepSeek's first layers) with ordinary hooks, and
:func:`moe_statistics` lays everything out in the flat ``[K, L, N]`` form of
:mod:`langneuron_eval.core.moe_units`, with the routing tensors beside it.

Not supported for MoE models (each refused in one line before the model runs): per-sentence means
(``--sentence-means``: S x L x E x F values), several processes, resuming, module templates; no
checkpoints are written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from langneuron_eval.core.discovery import find_layer_list, find_layer_mlp, get_path, join_path, moe_block
from langneuron_eval.core.fingerprint import ModelFingerprint, NeuronSites
from langneuron_eval.core.moe import MoELayout, discover_moe
from langneuron_eval.core.moe_counts import ExpertCounters
from langneuron_eval.core.moe_units import MoEUnits
from langneuron_eval.errors import LangNeuronError


def has_moe_layers(model: nn.Module) -> bool:
    """Whether any decoder layer of ``model`` holds a mixture-of-experts block."""
    try:
        _path, layers = find_layer_list(model)
    except LangNeuronError:
        return False
    return any(moe_block(layer) is not None for layer in layers)


def dense_modules(model: nn.Module, layout: MoELayout, site: str) -> dict[int, tuple[str, int]]:
    """Decoder layer -> (module path of its ``site`` tensor, width) for every non-MoE layer with a dense MLP."""
    _path, layers = find_layer_list(model)
    out = {}
    for i in layout.other_layers:
        try:
            mlp = find_layer_mlp(layers[i], i)
        except LangNeuronError:
            continue  # a block without an MLP (Mamba, ...): no units
        rel = mlp.act if site == "act_out" else mlp.down
        if rel is None:
            raise LangNeuronError(f"{layout.model_type!r}: layer {i}'s MLP applies its activation as a function "
                                  "call; use --site down_in")
        out[i] = (join_path(layout.layers_path, str(i), rel), mlp.width)
    return out


def moe_sites(model: nn.Module, site: str) -> NeuronSites:
    """The sites of an MoE model: its decoder layers, with the flat unit layout in ``moe`` (top-k filled at record)."""
    layout = discover_moe(model)
    layout.check_site(site)
    units = moe_layout_units(model, layout, site, top_k=0)
    _path, layers = find_layer_list(model)
    return NeuronSites(layout.model_type, site, None, tuple(layers), units.width,
                       tuple(f"{layout.layers_path}.{i}" for i in range(len(layers))), moe=units.to_dict())


def moe_layout_units(model: nn.Module, layout: MoELayout, site: str, top_k: int) -> MoEUnits:
    dense = dense_modules(model, layout, site)
    moe_width = layout.num_experts * layout.expert_width + layout.shared_width
    widths = tuple(moe_width if i in {m.layer for m in layout.moe_layers} else dense.get(i, (None, 0))[1]
                   for i in range(layout.num_layers))
    return MoEUnits(tuple(m.layer for m in layout.moe_layers), layout.num_experts, layout.expert_width,
                    layout.shared_width, widths, top_k)


class _DenseCounts:
    """One dense layer's counters (all tokens are its denominator)."""

    def __init__(self, K: int, W: int) -> None:
        self.positive = torch.zeros(K, W, dtype=torch.int64)
        self.sums = torch.zeros(K, W, dtype=torch.float64)
        self.sq_sums = torch.zeros(K, W, dtype=torch.float64)


class MoEAccumulator:
    """The recorder's accumulator for an MoE model (the interface of ``core.counters.Accumulator`` that the
    single-process run loop uses: ``lang``, ``start_batch``, ``end_batch``, ``take_chunk``, ``add_round``)."""

    def __init__(self, model: nn.Module, num_languages: int, site: str) -> None:
        self.layout = discover_moe(model)
        self.site = self.layout.check_site(site)
        self.experts = ExpertCounters(self.layout, num_languages, site)
        self.dense = {i: (path, _DenseCounts(num_languages, w))
                      for i, (path, w) in dense_modules(model, self.layout, site).items()}
        self.K = num_languages
        self._lang = 0
        self.want_sentences = False
        # run-loop attributes of the dense accumulator that MoE recording does not use: no per-sentence store;
        # non-finite activations are not re-counted chunk by chunk (they surface when the statistics are built)
        self.store = None
        self.diagnosis = None
        self.mask_uncounted = False

    def nonfinite_layers(self) -> list[int]:
        return []

    def discard_chunk(self) -> None:
        self.experts.take_chunk()

    @property
    def lang(self) -> int:
        return self._lang

    @lang.setter
    def lang(self, k: int) -> None:
        self._lang = self.experts.lang = k

    @property
    def n_tokens(self) -> torch.Tensor:
        return self.experts.n_tokens

    def start_batch(self, counted: torch.Tensor) -> None:
        self.experts.start_batch(counted)

    def end_batch(self, n_tokens: int, ids: torch.Tensor) -> None:
        pass  # tokens are counted in start_batch

    def take_chunk(self) -> list[Any]:
        return self.experts.take_chunk()

    def add_round(self, partials: list[Any]) -> None:
        for part in partials:
            if part is not None:
                self.experts.add_chunk(part)

    def _dense(self, layer: int, acts: torch.Tensor) -> None:
        """A dense layer's [batch, pos, W] (or [batch*pos, W]) activations, float64 sums per batch."""
        w = self.experts._flat(acts.device)[None]  # [1, tokens]
        a = acts.detach().reshape(-1, acts.shape[-1]).float()  # [tokens, W]
        c = self.dense[layer][1]
        c.positive[self._lang] += (w @ (a > 0).float()).round().long()[0].cpu()
        c.sums[self._lang] += (w @ a)[0].double().cpu()
        c.sq_sums[self._lang] += (w @ (a * a))[0].double().cpu()

    @contextlib.contextmanager
    def attach(self, model: nn.Module) -> Iterator[None]:
        handles = []
        for i, (path, _c) in self.dense.items():
            module = get_path(model, path)
            if self.site == "down_in":
                handles.append(module.register_forward_pre_hook(lambda _m, args, i=i: self._dense(i, args[0])))
            else:
                handles.append(module.register_forward_hook(lambda _m, _a, out, i=i: self._dense(i, out)))
        try:
            with self.experts.attach(model):
                yield
        finally:
            for h in handles:
                h.remove()


def check_moe_record(config: Any, world: int, resume: bool) -> None:
    """Refuse what MoE recording does not support, before any forward pass."""
    if config.sentence_means:
        raise LangNeuronError("--sentence-means is not supported for mixture-of-experts models (per-sentence means "
                              "would be sentences x layers x experts x units)")
    if world > 1:
        raise LangNeuronError("recording a mixture-of-experts model runs in one process; drop torchrun/accelerate")
    if resume:
        raise LangNeuronError("--resume is not supported for mixture-of-experts models (they write no checkpoints)")
    if config.module_template:
        raise LangNeuronError("module templates (--act-module/--down-module) are not used for mixture-of-experts "
                              "models; their experts are found by discovery")


def moe_statistics(model: nn.Module, acc: MoEAccumulator) -> dict[str, Any]:
    """The ActivationStats fields (tensors, fingerprint, routing) from a finished MoE recording."""
    units = moe_layout_units(model, acc.layout, acc.site, acc.experts.top_k)
    totals = acc.experts.totals()
    K, L, N = acc.K, len(units.layer_widths), units.width
    E, F = units.num_experts, units.expert_width
    out = {"positive_counts": torch.zeros(K, L, N, dtype=torch.int64),
           "activation_sums": torch.zeros(K, L, N, dtype=torch.float64),
           "activation_sq_sums": torch.zeros(K, L, N, dtype=torch.float64)}
    names = {"positive_counts": "positive_counts", "activation_sums": "activation_sums",
             "activation_sq_sums": "activation_sq_sums"}
    for name in names:
        for i, layer in enumerate(units.moe_layers):
            out[name][:, layer, : E * F] = totals[f"expert_{name}"][:, i].reshape(K, E * F)
            if units.shared_width:
                out[name][:, layer, E * F: E * F + units.shared_width] = totals[f"shared_{name}"][:, i]
        for layer, (_path, c) in acc.dense.items():
            t = {"positive_counts": c.positive, "activation_sums": c.sums, "activation_sq_sums": c.sq_sums}[name]
            out[name][:, layer, : t.shape[1]] = t
    fingerprint = ModelFingerprint(acc.layout.model_type, L, N, acc.site, moe=units.to_dict())
    routing = {"expert_routed_tokens": totals["expert_routed_tokens"],
               "expert_routing_weight_sums": totals["expert_routing_weight_sums"]}
    return {**out, "n_tokens": acc.n_tokens.clone(), "fingerprint": fingerprint, "routing": routing}
