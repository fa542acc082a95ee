"""Per-sentence mean activations of a mixture-of-experts model's units, one batch at a time.

Kojima et al.'s average precision ranks sentences by a unit's mean activation over the sentence. In an MoE
layer a routed expert only computes the tokens routed to it, so its units have a value only there:

* a routed-expert unit ``(l, e, j)``: the mean over the sentence's counted tokens **routed to expert e** (the
  per-expert denominator of the token-level statistics, applied per sentence);
* a shared-expert or dense unit: the mean over all the sentence's counted tokens, as for dense models;
* a sentence none of whose tokens reached expert ``e`` gets **0** for all of ``e``'s units: the expert added
  nothing to that sentence's residual stream, which is what a unit at 0 contributes, and it is the value
  the token-level mean (``activation_sums / routed``) takes with no routed tokens. For AP such a sentence
  ranks as "not activating" the unit; an expert that a language's sentences reach and others do not therefore
  gets a high AP for it (routing is part of what makes the unit language-specific);
* padding units (beyond a layer's width) are 0.

Rows are laid out as the statistics' ``[L, N]`` (core/moe_units.py) and written to the streamed sentence
store by the recorder. Per-batch sums are float32 matrix products (a sentence-selection matrix times the
routed tokens' activations: no atomics, so the same batch gives the same bits), as the dense recorder's
masked sums are.
"""

from __future__ import annotations

import torch

from langneuron_eval.core.moe_units import MoEUnits


class MoESentenceMeans:
    """Collects one batch's per-sentence means from the experts' observers and dense hooks.

    ``start_batch(counted)`` before the forward pass, the observer methods during it, ``rows()`` after it.
    """

    def __init__(self, units: MoEUnits) -> None:
        self.units = units
        self.E, self.F, self.Fs = units.num_experts, units.expert_width, units.shared_width
        self._counted: torch.Tensor | None = None  # [B, T] bool, CPU
        self._weights: dict[torch.device, torch.Tensor] = {}  # [B*T] float32 per device
        self._expert: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # MoE layer -> sums [B, E, F], hits [B, E]
        self._means: dict[int, torch.Tensor] = {}  # decoder layer -> [B, W] means of shared-expert / dense units

    def start_batch(self, counted: torch.Tensor) -> None:
        self._counted = counted.bool().cpu()
        self._weights, self._expert, self._means = {}, {}, {}

    def _w(self, device: torch.device) -> torch.Tensor:
        got = self._weights.get(device)
        if got is None:
            got = self._weights[device] = self._counted.reshape(-1).to(device, torch.float32)
        return got

    def expert(self, layer: int, expert: int, acts: torch.Tensor, tokens: torch.Tensor) -> None:
        """Expert ``expert`` of MoE layer ``layer``: acts [n, F] at flat rows ``tokens`` [n]."""
        B, T = self._counted.shape
        device = acts.device
        sel = (tokens // T)[None, :] == torch.arange(B, device=device)[:, None]  # [B, n]: the token's sentence
        sel = sel.to(torch.float32) * self._w(device)[tokens][None, :]  # counted tokens only
        got = self._expert.get(layer)
        if got is None:
            got = self._expert[layer] = (torch.zeros(B, self.E, self.F, device=device),
                                         torch.zeros(B, self.E, device=device))
        got[0][:, expert] = (sel @ acts.detach().float()).to(got[0].device)  # [B, F] sums over routed tokens
        got[1][:, expert] = sel.sum(1).to(got[1].device)  # [B] routed counted tokens per sentence

    def all_tokens(self, decoder_layer: int, acts: torch.Tensor) -> None:
        """A shared expert's or dense MLP's acts [B*T, W] or [B, T, W]: means over every counted token."""
        B, T = self._counted.shape
        x = acts.detach().float().reshape(B, T, -1)  # [B, T, W]
        m = self._w(acts.device).reshape(B, T, 1)  # [B, T, 1]
        self._means[decoder_layer] = (x * m).sum(1) / m.sum(1).clamp(min=1)  # [B, W]

    def shared(self, layer: int, acts: torch.Tensor) -> None:
        self.all_tokens(self.units.moe_layers[layer], acts)

    def rows(self) -> torch.Tensor:
        """This batch's rows [B, L, N] float32 on the CPU, in the statistics' unit layout."""
        B = self._counted.shape[0]
        EF = self.E * self.F
        out = torch.zeros(B, len(self.units.layer_widths), self.units.width)
        for i, (sums, hits) in self._expert.items():
            mean = sums / hits.clamp(min=1)[..., None]  # [B, E, F]; 0 where no token of the sentence was routed
            out[:, self.units.moe_layers[i], :EF] = mean.reshape(B, EF).cpu()
        for layer, mean in self._means.items():
            start = EF if layer in self.units.moe_layers else 0  # a shared expert follows the routed experts
            out[:, layer, start: start + mean.shape[1]] = mean.cpu()
        return out
