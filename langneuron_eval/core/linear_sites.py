"""Site ``linear_out``: every linear module of every decoder layer, laid end to end (Kojima et al.'s units)."""

from __future__ import annotations

import torch
import torch.nn as nn

from langneuron_eval.core.discovery import find_layer_list, is_linear, moe_block, out_width
from langneuron_eval.core.fingerprint import NeuronSites, Segment
from langneuron_eval.errors import LangNeuronError


def _layer_linears(layer: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every linear module of a decoder layer, in registration order, with its path in the layer."""
    return [(p, m) for p, m in layer.named_modules() if p and is_linear(m)]


def _same_linears_everywhere(layers: nn.ModuleList) -> list[list[tuple[str, nn.Module]]]:
    """Each layer's linears; one line unless every layer has the same module paths and output widths."""
    per_layer = []
    for i, layer in enumerate(layers):
        moe = moe_block(layer)
        if moe is not None:
            raise LangNeuronError(f"layer {i} ({type(layer).__name__}) is a mixture-of-experts layer "
                                  f"({type(moe).__name__}); site linear_out supports dense layers only")
        per_layer.append(_layer_linears(layer))
    first = [(p, out_width(m)) for p, m in per_layer[0]]
    if not first:
        raise LangNeuronError(f"layer 0 ({type(layers[0]).__name__}) has no linear module to hook at linear_out")
    for i, linears in enumerate(per_layer):
        mine = [(p, out_width(m)) for p, m in linears]
        if mine != first:
            raise LangNeuronError(
                f"layer {i} has linear modules {mine} but layer 0 has {first}; site linear_out needs the same "
                f"linear modules (and {sum(w for _, w in first)} units) in every layer")
    return per_layer


def _probe_calls(model: nn.Module, modules: list[nn.Module]) -> list[list[int]]:
    """The output widths each module produced in one two-token forward pass (one entry per call)."""
    seen: dict[int, list[int]] = {id(m): [] for m in modules}

    def look(mod, _args, out):  # out: [batch, pos, width]
        t = out[0] if isinstance(out, tuple) else out
        seen[id(mod)].append(int(t.shape[-1]))

    handles = [m.register_forward_hook(look) for m in modules]
    device = model.get_input_embeddings().weight.device
    try:
        with torch.no_grad():
            ids = torch.zeros(1, 2, dtype=torch.long, device=device)
            model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [seen[id(m)] for m in modules]


def resolve_linear_sites(model: nn.Module, model_type: str) -> NeuronSites:
    """Site ``linear_out``: every linear module of every decoder layer, laid end to end per layer."""
    layers_path, layers = find_layer_list(model)
    per_layer = _same_linears_everywhere(layers)
    names = [f"{layers_path}.{i}.{p}" for i, linears in enumerate(per_layer) for p, _ in linears]
    flat = [m for linears in per_layer for _, m in linears]
    for name, m, calls in zip(names, flat, _probe_calls(model, flat)):
        if calls != [out_width(m)]:
            raise LangNeuronError(
                f"{model_type!r}: {name} ran {len(calls)} times in one forward pass (widths {calls}); site "
                "linear_out needs every linear module of a layer to run once per forward pass")
    segments, offset = [], 0
    for path, m in per_layer[0]:
        segments.append(Segment(path, offset, out_width(m)))
        offset += segments[-1].width
    return NeuronSites(model_type, "linear_out", None, tuple(layers), offset,
                       tuple(f"{layers_path}.{i}" for i in range(len(layers))), None, tuple(segments),
                       tuple(tuple(m for _, m in linears) for linears in per_layer))
