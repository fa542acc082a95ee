"""The flat unit layout of a mixture-of-experts model in statistics and neuron files.

Statistics and neuron files index units as ``(layer, unit)`` over ``[K, L, N]`` tensors. For an MoE model
``layer`` is the decoder layer and the units of a layer are laid end to end:

* an MoE layer: expert ``e``'s unit ``j`` is ``e * F + j`` (E experts of width F), then the shared expert's
  unit ``j`` is ``E * F + j`` (width Fs, 0 without one);
* any other layer: its dense MLP's units ``0 .. W-1`` (W = 0 for a block without an MLP, e.g. a Mamba layer);
* N is the widest layer; units at or beyond a layer's width are padding: never counted, probability 0.

The denominator of a unit is what its statistics are counted over: the tokens routed to its expert for a
routed-expert unit, every token for shared-expert and dense units, none for padding. With fewer than
:data:`MIN_ROUTED_TOKENS` tokens of a language routed to an expert, the units of that expert get probability
0 for that language (a language that barely reaches an expert is not evidence that the expert's units serve
it, and a probability from a handful of tokens would swing LAPE's entropy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from langneuron_eval.errors import LangNeuronError

MIN_ROUTED_TOKENS = 10
EXPERT_KIND = "experts"  # NeuronFile.kind of whole-expert units: (decoder layer, expert) pairs


@dataclass(frozen=True)
class MoEUnits:
    """Where each flat unit of each decoder layer lives (the ``moe`` entry of a fingerprint)."""

    moe_layers: tuple[int, ...]  # decoder-layer index of each MoE layer
    num_experts: int
    expert_width: int
    shared_width: int
    layer_widths: tuple[int, ...]  # units of every decoder layer
    top_k: int

    @property
    def width(self) -> int:
        return max(self.layer_widths)

    def moe_index(self, layer: int) -> int | None:
        return self.moe_layers.index(layer) if layer in self.moe_layers else None

    def to_dict(self) -> dict[str, Any]:
        return {"moe_layers": list(self.moe_layers), "num_experts": self.num_experts,
                "expert_width": self.expert_width, "shared_width": self.shared_width,
                "layer_widths": list(self.layer_widths), "top_k": self.top_k}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MoEUnits:
        try:
            return cls(tuple(int(x) for x in d["moe_layers"]), int(d["num_experts"]), int(d["expert_width"]),
                       int(d["shared_width"]), tuple(int(x) for x in d["layer_widths"]), int(d["top_k"]))
        except (KeyError, TypeError, ValueError) as e:
            raise LangNeuronError(f"malformed mixture-of-experts fingerprint {d!r}: {e}") from None

    def describe_unit(self, layer: int, unit: int) -> tuple[str, int | None, int]:
        """(kind, expert, index): kind is ``expert``, ``shared``, ``dense`` or ``padding``."""
        E, F = self.num_experts, self.expert_width
        if unit >= self.layer_widths[layer]:
            return "padding", None, unit
        if self.moe_index(layer) is None:
            return "dense", None, unit
        if unit < E * F:
            return "expert", unit // F, unit % F
        return "shared", None, unit - E * F

    def real_units(self) -> torch.Tensor:
        """[L, N] bool: True for a unit that exists, False for the padding beyond its layer's width."""
        return torch.arange(self.width)[None, :] < torch.tensor(self.layer_widths)[:, None]

    def denominators(self, n_tokens: torch.Tensor, routed: torch.Tensor) -> torch.Tensor:
        """[K, L, N] float64 tokens each unit was counted over, from ``n_tokens`` [K] and ``routed`` [K, L_moe, E]."""
        K, L, N = n_tokens.shape[0], len(self.layer_widths), self.width
        E, F = self.num_experts, self.expert_width
        out = torch.zeros(K, L, N, dtype=torch.float64)
        for layer, w in enumerate(self.layer_widths):
            out[:, layer, :w] = n_tokens.double()[:, None]
            i = self.moe_index(layer)
            if i is not None:
                out[:, layer, : E * F] = routed[:, i].double().repeat_interleave(F, dim=-1)
        return out

    def supported(self, n_tokens: torch.Tensor, routed: torch.Tensor) -> torch.Tensor:
        """[K, L, N] denominators, 0 where fewer than :data:`MIN_ROUTED_TOKENS` tokens reached the expert."""
        den = self.denominators(n_tokens, routed)
        return torch.where(den >= MIN_ROUTED_TOKENS, den, torch.zeros_like(den))


def moe_units(fingerprint: Any) -> MoEUnits | None:
    """The MoE layout of a fingerprint (a ModelFingerprint or NeuronSites), None for a dense model."""
    d = getattr(fingerprint, "moe", None)
    return None if d is None else MoEUnits.from_dict(d)


ROUTING_TENSORS = {"expert_routed_tokens": torch.int64, "expert_routing_weight_sums": torch.float64}


def stats_denominators(stats: Any, min_support: bool = False) -> torch.Tensor:
    """What each unit of ``stats`` was counted over: [K, 1, 1] tokens for a dense model, [K, L, N] for an MoE model
    (``min_support``: 0 where fewer than :data:`MIN_ROUTED_TOKENS` tokens reached the expert)."""
    units = moe_units(stats.fingerprint)
    if units is None or stats.routing is None:
        return stats.n_tokens.to(torch.float64)[:, None, None]
    routed = stats.routing["expert_routed_tokens"]
    return units.supported(stats.n_tokens, routed) if min_support else units.denominators(stats.n_tokens, routed)


def check_moe_stats(stats: Any) -> None:
    """Shapes and sums of the routing tensors of MoE statistics, one line per problem."""
    units = moe_units(stats.fingerprint)
    if units is None and stats.routing is None:
        return
    if units is None or stats.routing is None:
        raise LangNeuronError("mixture-of-experts statistics need both the fingerprint's 'moe' entry and the "
                              "routing tensors")
    K = stats.num_languages
    want = (K, len(units.moe_layers), units.num_experts)
    for name in ROUTING_TENSORS:
        t = stats.routing.get(name)
        if t is None or tuple(t.shape) != want:
            raise LangNeuronError(f"{name} has shape {None if t is None else list(t.shape)}, expected {list(want)}")
    routed = stats.routing["expert_routed_tokens"]
    if (routed < 0).any() or not torch.equal(routed.sum(-1), units.top_k * stats.n_tokens[:, None].expand(want[:2])):
        raise LangNeuronError(f"expert_routed_tokens must sum to top-k ({units.top_k}) x n_tokens in every MoE layer")
