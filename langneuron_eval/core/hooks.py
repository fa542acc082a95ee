"""One place that attaches a per-layer function to the neuron site of every layer."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from langneuron_eval.core.fingerprint import NeuronSites

# fn(layer, acts) sees acts [batch, pos, d_mlp] and returns a replacement tensor or None (unchanged). At a
# segmented site (linear_out) it is called fn(layer, acts, offset) once per linear module of the layer, with
# acts [batch, pos, width] holding the layer's units offset .. offset+width-1.
SiteFn = Callable[..., "torch.Tensor | None"]


@contextlib.contextmanager
def hook_sites(sites: NeuronSites, fn: SiteFn) -> Iterator[None]:
    """Run ``fn`` on the site tensor of every layer while the block runs; remove every hook after.

    ``act_out`` and ``linear_out`` are module outputs (forward hooks); ``down_in`` is the input of the
    down projection (forward pre-hook). Hooks are removed even if the block raises, which is what makes
    leaving an intervention restore the model exactly. The offset is passed only at segmented sites, so
    two-argument functions keep working at the FFN sites.
    """
    handles = []
    segmented = bool(sites.segments)
    try:
        for layer, points in enumerate(sites.hook_points()):
            for module, offset in points:
                if sites.is_pre_hook:
                    def pre(_mod, args, layer=layer):
                        new = fn(layer, args[0])  # [batch, pos, d_mlp]
                        return None if new is None else (new, *args[1:])

                    handles.append(module.register_forward_pre_hook(pre))
                elif segmented:
                    def seg(_mod, _args, out, layer=layer, offset=offset):
                        return fn(layer, out, offset)  # [batch, pos, width]

                    handles.append(module.register_forward_hook(seg))
                else:
                    def post(_mod, _args, out, layer=layer):
                        return fn(layer, out)  # [batch, pos, d_mlp]

                    handles.append(module.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()


class StopForward(Exception):
    """Raised by the hook of :func:`stop_after_last_site`; whoever runs the forward pass catches it."""


@contextlib.contextmanager
def stop_after_last_site(sites: NeuronSites) -> Iterator[None]:
    """End every forward pass as soon as the last layer's site tensor has been seen, by raising StopForward.

    Enter it *after* :func:`hook_sites`: hooks on one module run in registration order, so the site
    function has seen the tensor by the time this hook raises. Nothing after the last site runs: not the
    rest of that layer, nor the final norm, nor the output layer, so no logits are ever built. At
    ``linear_out`` the hook goes on the last decoder layer itself (its linears' execution order need not be
    their registration order), so the forward pass ends when that layer returns.
    """
    def stop(*_args) -> None:
        raise StopForward

    last = sites.modules[-1]
    handle = last.register_forward_pre_hook(stop) if sites.is_pre_hook else last.register_forward_hook(stop)
    try:
        yield
    finally:
        handle.remove()
