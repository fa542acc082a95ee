"""Recording a mixture-of-experts model: expert, shared-expert and dense units in one statistics file.

The recorder's run loop (tokenising, length-sorted padded batches, counted-position masks, chunks, the
progress bar) is shared with dense models; what differs is the accumulator. :class:`MoEAccumulator` counts
the routed experts and shared experts through :class:`~langneuron_eval.core.moe_counts.ExpertCounters` and
the dense MLPs of the other layers (DeepSeek's first layers) with ordinary hooks, and
:func:`moe_statistics` lays everything out in the flat ``[K, L, N]`` form of
:mod:`langneuron_eval.core.moe_units`, with the routing tensors beside it.

Per-sentence means (``--sentence-means``) go through the streamed sentence store as for dense models, with
the per-expert denominator of :mod:`langneuron_eval.core.moe_sentences`. Several processes, checkpoints and
``--resume`` work as for dense models: chunk sums are exchanged and added in corpus order on every rank and
integer counts summed at the end, so the file is the single-process run's byte for byte. Module templates
are refused (the experts are found by discovery).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from langneuron_eval.core.collectives import all_reduce_to, comm_device
from langneuron_eval.core.discovery import find_layer_list, find_layer_mlp, get_path, join_path, moe_block
from langneuron_eval.core.fingerprint import ModelFingerprint, NeuronSites
from langneuron_eval.core.moe import MoELayout, discover_moe
from langneuron_eval.core.moe_counts import ExpertCounters, chunk_width, pack_chunk, unpack_chunk
from langneuron_eval.core.moe_forward import observe_experts
from langneuron_eval.core.moe_sentences import MoESentenceMeans
from langneuron_eval.core.moe_units import MoEUnits
from langneuron_eval.core.sentence_store import SentenceStoreWriter
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
    """One dense layer's counters (all tokens are its denominator), on the CPU."""

    def __init__(self, K: int, W: int) -> None:
        self.positive = torch.zeros(K, W, dtype=torch.int64)
        self.sums = torch.zeros(K, W, dtype=torch.float64)
        self.sq_sums = torch.zeros(K, W, dtype=torch.float64)
        self.chunk = torch.zeros(2, W, dtype=torch.float64)  # float sums of the current chunk, added in corpus order


class MoEAccumulator:
    """The recorder's accumulator for an MoE model: the interface of ``core.counters.Accumulator`` that the run
    loop, the collectives and the checkpoints use (``lang``, ``start_batch``, ``end_batch``, ``take_chunk``,
    ``stacked_chunk``, ``add_round``, ``totals``, ``restore``, ``store``).

    A chunk is a list of flat float64 tensors: one per MoE layer (:func:`~langneuron_eval.core.moe_counts.pack_chunk`,
    None for a layer not reached yet), then one ``[2 W]`` per dense layer; processes exchange them stacked.
    """

    def __init__(self, model: nn.Module, num_languages: int, site: str, sentence_means: bool = False) -> None:
        self.layout = discover_moe(model)
        self.site = self.layout.check_site(site)
        self.experts = ExpertCounters(self.layout, num_languages, site)
        self.dense = {i: (path, _DenseCounts(num_languages, w))
                      for i, (path, w) in dense_modules(model, self.layout, site).items()}
        self.K = num_languages
        self._lang = 0
        self.want_sentences = sentence_means
        self.sentences = MoESentenceMeans(moe_layout_units(model, self.layout, site, 0)) if sentence_means else None
        self.store: SentenceStoreWriter | None = None  # set by the recorder with --sentence-means
        # non-finite activations are not re-counted chunk by chunk as for dense models (they surface when the
        # statistics are built); the run loop reads these two attributes
        self.diagnosis = None
        self.mask_uncounted = False
        E, F, Fs = self.layout.num_experts, self.layout.expert_width, self.layout.shared_width
        self._widths = [chunk_width(E, F, Fs)] * self.layout.num_moe_layers + [2 * c.positive.shape[1]
                                                                                for _p, c in self.dense.values()]

    def nonfinite_layers(self) -> list[int]:
        return []

    def discard_chunk(self) -> None:
        self.take_chunk()

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
        if self.sentences is not None:
            self.sentences.start_batch(counted)

    def end_batch(self, n_tokens: int, ids: torch.Tensor) -> None:
        """Tokens were counted in start_batch; the batch's per-sentence rows go to the store (``ids``: corpus
        indices of its sentences)."""
        if self.sentences is not None and self.store is not None:
            self.store.write(ids, self.sentences.rows())  # [batch, L, N]

    # ------------------------------------------------------------------ chunks, ranks, checkpoints
    def take_chunk(self) -> list[torch.Tensor | None]:
        out: list[torch.Tensor | None] = [None if p is None else pack_chunk(p) for p in self.experts.take_chunk()]
        for _path, c in self.dense.values():
            out.append(c.chunk.reshape(-1))
            c.chunk = torch.zeros_like(c.chunk)
        return out

    def stacked_chunk(self, chunk: list[torch.Tensor | None] | None, device: torch.device) -> torch.Tensor:
        """A chunk as one [slots, widest] float64 tensor on ``device`` (zeros where absent), for all_gather."""
        out = torch.zeros(len(self._widths), max(self._widths, default=0), dtype=torch.float64, device=device)
        for i, p in enumerate(chunk or []):
            if p is not None:
                out[i, : p.numel()] = p.to(device)
        return out

    def add_round(self, partials: list[list[torch.Tensor | None] | None]) -> None:
        """Add chunk sums (this process's, or every rank's of a round, in chunk order) to the totals."""
        L, (E, F, Fs) = self.layout.num_moe_layers, (self.layout.num_experts, self.layout.expert_width,
                                                     self.layout.shared_width)
        for part in partials:
            if part is None:
                continue
            self.experts.add_chunk([None if p is None else unpack_chunk(p, E, F, Fs) for p in part[:L]])
            for (_path, c), p in zip(self.dense.values(), part[L:]):
                W = c.positive.shape[1]
                p = p.to("cpu")
                c.sums[self._lang] += p[:W]
                c.sq_sums[self._lang] += p[W: 2 * W]

    def sum_over_ranks(self, device: torch.device) -> None:
        """Sum what each process counted alone (integer counts, tokens) over ranks, in place; the experts per
        token is every rank's largest (a rank that ran no batch has not seen the routing)."""
        for t in [*self.experts.integer_totals(device), *(c.positive for _p, c in self.dense.values()),
                  self.experts.n_tokens]:
            all_reduce_to(t, device)
        top_k = torch.tensor([self.experts.top_k], device=device)
        dist.all_reduce(top_k, op=dist.ReduceOp.MAX)
        self.experts.top_k = int(top_k)

    def totals(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Everything a checkpoint keeps: the expert counters' totals, each dense layer's, the experts per token."""
        out = self.experts.totals(device)
        for i, (_path, c) in self.dense.items():
            for name, t in (("positive", c.positive), ("sums", c.sums), ("sq_sums", c.sq_sums)):
                out[f"dense_{name}_{i}"] = t.to(device)
        out["top_k"] = torch.tensor([self.experts.top_k], dtype=torch.int64, device=device)
        return out

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        """Continue from a checkpoint's tensors (:meth:`totals` plus ``n_tokens``)."""
        self.experts.restore(tensors, tensors["n_tokens"], int(tensors["top_k"]))
        for i, (_path, c) in self.dense.items():
            for name, t in (("positive", c.positive), ("sums", c.sums), ("sq_sums", c.sq_sums)):
                t.copy_(tensors[f"dense_{name}_{i}"])

    # ------------------------------------------------------------------ observers
    def _dense(self, layer: int, acts: torch.Tensor) -> None:
        """A dense layer's [batch, pos, W] (or [batch*pos, W]) activations, float64 sums per chunk."""
        w = self.experts._flat(acts.device)[None]  # [1, tokens]
        a = acts.detach().reshape(-1, acts.shape[-1]).float()  # [tokens, W]
        c = self.dense[layer][1]
        c.positive[self._lang] += (w @ (a > 0).float()).round().long()[0].cpu()
        c.chunk[0] += (w @ a)[0].double().cpu()
        c.chunk[1] += (w @ (a * a))[0].double().cpu()
        if self.sentences is not None:
            self.sentences.all_tokens(layer, acts)

    @contextlib.contextmanager
    def attach(self, model: nn.Module) -> Iterator[None]:
        handles = []
        for i, (path, _c) in self.dense.items():
            module = get_path(model, path)
            if self.site == "down_in":
                handles.append(module.register_forward_pre_hook(lambda _m, args, i=i: self._dense(i, args[0])))
            else:
                handles.append(module.register_forward_hook(lambda _m, _a, out, i=i: self._dense(i, out)))
        s = self.sentences
        per_sentence = (contextlib.nullcontext() if s is None else
                        observe_experts(model, self.layout, self.site, s.expert, None,
                                        s.shared if self.layout.shared_width else None))
        try:
            with self.experts.attach(model), per_sentence:
                yield
        finally:
            for h in handles:
                h.remove()


def check_moe_record(config: Any) -> None:
    """Refuse what MoE recording does not support, before any forward pass."""
    if config.module_template:
        raise LangNeuronError("module templates (--act-module/--down-module) are not used for mixture-of-experts "
                              "models; their experts are found by discovery")


def moe_statistics(model: nn.Module, acc: MoEAccumulator, world: int = 1) -> dict[str, Any]:
    """The ActivationStats fields (tensors, fingerprint, routing) from a finished MoE recording (summed over
    ranks first when ``world`` > 1)."""
    if world > 1:
        acc.sum_over_ranks(comm_device(world))
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
