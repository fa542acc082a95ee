"""One place that attaches a per-layer function to the neuron site of every layer."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from .sites import NeuronSites

# fn(layer, acts) sees acts [batch, pos, d_mlp] and returns a replacement tensor or None (unchanged).
SiteFn = Callable[[int, torch.Tensor], "torch.Tensor | None"]


@contextlib.contextmanager
def hook_sites(sites: NeuronSites, fn: SiteFn) -> Iterator[None]:
    """Run ``fn`` on the site tensor of every layer while the block runs; remove every hook after.

    ``act_out`` is a module output (forward hook); ``down_in`` is the input of the down projection
    (forward pre-hook). Hooks are removed even if the block raises, which is what makes leaving an
    intervention restore the model exactly.
    """
    handles = []
    try:
        for layer, module in enumerate(sites.modules):
            if sites.is_pre_hook:
                def pre(_mod, args, layer=layer):
                    new = fn(layer, args[0])  # [batch, pos, d_mlp]
                    return None if new is None else (new, *args[1:])

                handles.append(module.register_forward_pre_hook(pre))
            else:
                def post(_mod, _args, out, layer=layer):
                    return fn(layer, out)  # [batch, pos, d_mlp]

                handles.append(module.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()
