"""Streaming per-language counters of expert units and of routing, updated from the experts' forward.

Denominators. A routed expert only computes the tokens routed to it, so each of its units is counted
over those tokens: ``expert_positive_counts[k, l, e, j]`` counts the tokens of language ``k`` routed to
expert ``e`` of MoE layer ``l`` whose unit ``j`` is > 0, and ``expert_routed_tokens[k, l, e]`` (the
per-expert denominator) counts those tokens. Shared experts see every token: their denominator is the
language's token count ``n_tokens[k]``, as for dense units. Routing statistics per (layer, expert) are
the routed-token counts and the sums of the routing weights the library multiplies the expert's output
by (after renormalisation and scaling, e.g. DeepSeek's ``routed_scaling_factor``).

Exactness, as for the dense counters of :mod:`langneuron_eval.core.recorder`: positions not counted
(padding, and special tokens unless asked) are weighted 0 through the batch's counted mask, which the
caller hands over with :meth:`ExpertCounters.start_batch`; a token's row in the experts' flattened
``[batch * positions]`` input is its index in that mask. Counts are int64. Activation sums are formed
per batch in float32 (matrix-vector products over the routed tokens), added into float64 chunk sums,
and chunk sums into the float64 totals in corpus order (:meth:`take_chunk` / :meth:`add_chunk`), so a
run split over processes can add the same chunks in the same order. Routing-weight sums are float64
from the start. Counters of a layer live on the device where its experts run (the CPU for MPS).

Output tensors (:data:`MOE_TENSORS`) are what a statistics file stores next to the dense ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn

from langneuron_eval.core.moe import MoELayout
from langneuron_eval.core.moe_forward import observe_experts
from langneuron_eval.errors import LangNeuronError

# name -> (dtype, shape, meaning); K languages, L MoE layers, E experts, F expert width, Fs shared width
MOE_TENSORS: dict[str, tuple[torch.dtype, str, str]] = {
    "expert_positive_counts": (torch.int64, "[K, L, E, F]", "routed tokens whose unit activation is > 0"),
    "expert_activation_sums": (torch.float64, "[K, L, E, F]", "sum of the unit's activation over routed tokens"),
    "expert_activation_sq_sums": (torch.float64, "[K, L, E, F]", "sum of its square over routed tokens"),
    "expert_routed_tokens": (torch.int64, "[K, L, E]", "tokens routed to the expert (its denominator)"),
    "expert_routing_weight_sums": (torch.float64, "[K, L, E]", "sum of the routing weights of those tokens"),
    "shared_positive_counts": (torch.int64, "[K, L, Fs]", "tokens whose shared-expert unit is > 0"),
    "shared_activation_sums": (torch.float64, "[K, L, Fs]", "sum of the shared-expert unit over tokens"),
    "shared_activation_sq_sums": (torch.float64, "[K, L, Fs]", "sum of its square over tokens"),
}
_SHARED = tuple(n for n in MOE_TENSORS if n.startswith("shared_"))


def _counter_device(device: torch.device) -> torch.device:
    return torch.device("cpu") if device.type == "mps" else device


class _LayerCounters:
    """One MoE layer's totals and current-chunk float sums, on one device."""

    def __init__(self, K: int, E: int, F: int, Fs: int, device: torch.device,
                 start: dict[str, torch.Tensor] | None = None) -> None:
        self.device = device
        z = {"dtype": torch.int64, "device": device}
        d = {"dtype": torch.float64, "device": device}
        self.totals = {
            "expert_positive_counts": torch.zeros(K, E, F, **z),
            "expert_activation_sums": torch.zeros(K, E, F, **d),
            "expert_activation_sq_sums": torch.zeros(K, E, F, **d),
            "expert_routed_tokens": torch.zeros(K, E, **z),
            "expert_routing_weight_sums": torch.zeros(K, E, **d),
            "shared_positive_counts": torch.zeros(K, Fs, **z),
            "shared_activation_sums": torch.zeros(K, Fs, **d),
            "shared_activation_sq_sums": torch.zeros(K, Fs, **d),
        }
        if start is not None:  # resumed from a checkpoint: this layer's [K, ...] CPU totals
            for name, saved in start.items():
                self.totals[name].copy_(saved)
        # float sums of the current chunk, added to the totals in corpus order by add_chunk
        self.chunk = {"expert": torch.zeros(2, E, F, **d), "weights": torch.zeros(E, **d),
                      "shared": torch.zeros(2, Fs, **d)}


@dataclass
class _Batch:
    counted: torch.Tensor  # [batch, pos] bool on the CPU
    flat: dict[torch.device, torch.Tensor]  # [batch*pos] float32 weights (1 counted, 0 not) per device


class ExpertCounters:
    """Per-language counters of every MoE layer's expert units, shared-expert units and routing.

    Usage (one forward pass per batch; ``lang`` selects the language being counted)::

        counters = ExpertCounters(layout, num_languages=2)
        with counters.attach(model):
            counters.lang = 0
            counters.start_batch(counted)  # [batch, pos] bool
            model(input_ids=ids, attention_mask=attention)
        counters.add_chunk(counters.take_chunk())
        totals = counters.totals()  # MOE_TENSORS, [K, L_moe, ...] on the CPU
    """

    def __init__(self, layout: MoELayout, num_languages: int, site: str = "act_out") -> None:
        self.layout, self.site = layout, layout.check_site(site)
        self.K, self.L = num_languages, layout.num_moe_layers
        self.E, self.F, self.Fs = layout.num_experts, layout.expert_width, layout.shared_width
        self.layers: list[_LayerCounters | None] = [None] * self.L
        self.n_tokens = torch.zeros(self.K, dtype=torch.int64)
        self.top_k = 0  # experts per token, read from the routing
        self.lang = 0
        self.resumed: dict[str, torch.Tensor] | None = None  # [K, L_moe, ...] CPU totals from a checkpoint
        self._batch: _Batch | None = None

    # ------------------------------------------------------------------ batches
    @contextlib.contextmanager
    def attach(self, model: nn.Module) -> Iterator[ExpertCounters]:
        """Count while the block runs (the experts run our eager forward meanwhile)."""
        with observe_experts(model, self.layout, self.site, self.expert, self.routing,
                             self.shared if self.Fs else None):
            yield self

    def start_batch(self, counted: torch.Tensor) -> None:
        """``counted`` [batch, pos] bool: True where a position is counted (not padding, not special)."""
        self._batch = _Batch(counted.bool().cpu(), {})
        self.n_tokens[self.lang] += int(self._batch.counted.sum())

    def _flat(self, device: torch.device) -> torch.Tensor:
        """This batch's counted mask, flattened to the experts' rows, as float32 weights on ``device``."""
        if self._batch is None:
            raise LangNeuronError("ExpertCounters.start_batch must be called before each forward pass")
        got = self._batch.flat.get(device)
        if got is None:
            got = self._batch.flat[device] = self._batch.counted.reshape(-1).to(device, torch.float32)
        return got

    def _counters(self, layer: int, device: torch.device) -> _LayerCounters:
        c = self.layers[layer]
        if c is None:
            c = self.layers[layer] = _LayerCounters(self.K, self.E, self.F, self.Fs, _counter_device(device),
                                                    self._start(layer))
        return c

    def _start(self, layer: int) -> dict[str, torch.Tensor] | None:
        return None if self.resumed is None else {name: t[:, layer] for name, t in self.resumed.items()}

    def restore(self, totals: dict[str, torch.Tensor], n_tokens: torch.Tensor, top_k: int) -> None:
        """Continue from a checkpoint: ``totals`` as :meth:`totals` returned them (on the CPU); each layer's
        counters are rebuilt from them where its experts run."""
        self.resumed = {name: totals[name] for name in MOE_TENSORS if name in totals}
        self.layers = [None] * self.L
        self.n_tokens.copy_(n_tokens)
        self.top_k = top_k

    # ------------------------------------------------------------------ observers
    def routing(self, layer: int, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> None:
        """Routed tokens and routing-weight sums per expert; top_k_* [tokens, k]."""
        w = self._flat(top_k_index.device)  # [tokens]
        if top_k_index.shape[0] != w.numel():
            raise LangNeuronError(
                f"MoE layer {layer} routes {top_k_index.shape[0]} rows but the batch has {w.numel()} positions "
                f"({tuple(self._batch.counted.shape)}); its tokens cannot be matched to positions")
        c = self._counters(layer, top_k_index.device)
        k = self.top_k = top_k_index.shape[1]
        idx = top_k_index.reshape(-1)  # [tokens*k]
        rows = w.repeat_interleave(k)  # [tokens*k] counted weight of each (token, slot)
        hits = torch.zeros(self.E + 1, dtype=torch.float32, device=w.device)
        hits.index_add_(0, idx.clamp(max=self.E), rows)  # slot E collects expert-parallel sentinels
        c.totals["expert_routed_tokens"][self.lang] += hits[: self.E].round().long().to(c.device)
        ws = torch.zeros(self.E + 1, dtype=torch.float64, device=w.device)
        ws.index_add_(0, idx.clamp(max=self.E), top_k_weights.detach().reshape(-1).double() * rows.double())
        c.chunk["weights"] += ws[: self.E].to(c.device)

    def expert(self, layer: int, expert: int, acts: torch.Tensor, tokens: torch.Tensor) -> None:
        """One expert's activations [tokens routed, F] at rows ``tokens`` [tokens routed]."""
        w = self._flat(acts.device)[tokens][None]  # [1, n]
        a = acts.detach().float()  # [n, F]
        c = self._counters(layer, acts.device)
        c.totals["expert_positive_counts"][self.lang, expert] += (w @ (a > 0).float()).round().long()[0].to(c.device)
        c.chunk["expert"][0, expert] += (w @ a)[0].to(c.device, torch.float64)
        c.chunk["expert"][1, expert] += (w @ (a * a))[0].to(c.device, torch.float64)

    def shared(self, layer: int, acts: torch.Tensor) -> None:
        """The shared expert's activations [tokens, Fs] or [batch, pos, Fs]."""
        w = self._flat(acts.device)[None]  # [1, tokens]
        a = acts.detach().reshape(-1, acts.shape[-1]).float()  # [tokens, Fs]
        if a.shape[0] != w.shape[1]:
            raise LangNeuronError(f"the shared expert of MoE layer {layer} sees {a.shape[0]} rows but the batch has "
                                  f"{w.shape[1]} positions")
        c = self._counters(layer, acts.device)
        c.totals["shared_positive_counts"][self.lang] += (w @ (a > 0).float()).round().long()[0].to(c.device)
        c.chunk["shared"][0] += (w @ a)[0].to(c.device, torch.float64)
        c.chunk["shared"][1] += (w @ (a * a))[0].to(c.device, torch.float64)

    # ------------------------------------------------------------------ chunks and totals
    def take_chunk(self) -> list[dict[str, torch.Tensor] | None]:
        """Each layer's float chunk sums (None for a layer not seen yet), reset to zero."""
        out: list[dict[str, torch.Tensor] | None] = []
        for c in self.layers:
            out.append(None if c is None else c.chunk)
            if c is not None:
                c.chunk = {k: torch.zeros_like(v) for k, v in c.chunk.items()}
        return out

    def add_chunk(self, part: list[dict[str, torch.Tensor] | None]) -> None:
        """Add one chunk's float sums (from :meth:`take_chunk`, possibly of another process) to the totals."""
        for layer, p in enumerate(part):
            if p is None:
                continue
            c = self._counters(layer, p["expert"].device)
            t = c.totals
            t["expert_activation_sums"][self.lang] += p["expert"][0].to(c.device)
            t["expert_activation_sq_sums"][self.lang] += p["expert"][1].to(c.device)
            t["expert_routing_weight_sums"][self.lang] += p["weights"].to(c.device)
            t["shared_activation_sums"][self.lang] += p["shared"][0].to(c.device)
            t["shared_activation_sq_sums"][self.lang] += p["shared"][1].to(c.device)

    def totals(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Every :data:`MOE_TENSORS` entry stacked over MoE layers ([K, L_moe, ...]); shared ones only with
        shared experts."""
        device = torch.device(device)
        names = [n for n in MOE_TENSORS if self.Fs or n not in _SHARED]
        # layers no batch reached (yet): zeros, or what a checkpoint held for them
        seen = [c or _LayerCounters(self.K, self.E, self.F, self.Fs, device, self._start(i))
                for i, c in enumerate(self.layers)]
        return {name: torch.stack([c.totals[name].to(device) for c in seen], dim=1) for name in names}

    def integer_totals(self, device: torch.device) -> list[torch.Tensor]:
        """Every layer's integer counters (positives, routed tokens), in place, creating the layers this process
        never reached on ``device``: what each process counts alone and a multi-process run sums over ranks
        (float sums are complete on every rank: every rank adds every chunk)."""
        names = [n for n in MOE_TENSORS if MOE_TENSORS[n][0] == torch.int64 and (self.Fs or n not in _SHARED)]
        return [self._counters(i, device).totals[n] for i in range(self.L) for n in names]


def chunk_width(E: int, F: int, Fs: int) -> int:
    """Length of one MoE layer's chunk sums packed by :func:`pack_chunk`."""
    return 2 * E * F + E + 2 * Fs


def pack_chunk(part: dict[str, torch.Tensor]) -> torch.Tensor:
    """One layer's chunk sums (an entry of :meth:`ExpertCounters.take_chunk`) as one flat float64 tensor, so that
    processes can exchange them in one collective: expert sums and squares, routing weights, shared sums."""
    return torch.cat([part["expert"].reshape(-1), part["weights"], part["shared"].reshape(-1)])


def unpack_chunk(flat: torch.Tensor, E: int, F: int, Fs: int) -> dict[str, torch.Tensor]:
    """The inverse of :func:`pack_chunk` (``flat`` may be longer: zero padding of a stacked collective)."""
    a, b = 2 * E * F, 2 * E * F + E
    return {"expert": flat[:a].reshape(2, E, F), "weights": flat[a:b], "shared": flat[b: b + 2 * Fs].reshape(2, Fs)}


# ---------------------------------------------------------------------------------------------- derived
def expert_activation_probability(positive: torch.Tensor, routed: torch.Tensor) -> torch.Tensor:
    """P(unit > 0 | token of language k routed to the expert): [K, L, E, F] / [K, L, E]; 0 where none routed."""
    return positive.double() / routed.double().clamp(min=1)[..., None]


def routing_probability(routed: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """Share of language k's tokens routed to each expert, [K, L, E] (sums to top-k over experts)."""
    return routed.double() / n_tokens.double().clamp(min=1)[:, None, None]
