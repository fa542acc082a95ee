"""The recorder's counters: per-layer totals updated in place by the site hooks, padding-exact.

Per-batch sums are taken as masked matrix-vector products in float32 and accumulated in int64 / float64 on
the device where each layer's activations appear; float sums enter the totals chunk by chunk in corpus
order, so the result does not depend on how chunks are spread over processes.
"""

from __future__ import annotations

import torch

from langneuron_eval.errors import LangNeuronError


def counter_device(device: torch.device) -> torch.device:
    """Where a layer's float64 counters can live: the activations' device, unless it has no float64 (MPS)."""
    return torch.device("cpu") if device.type == "mps" else device


class LayerCounters:
    """One layer's totals and current-chunk sums, on one device."""

    def __init__(self, K: int, N: int, device: torch.device, start: tuple[torch.Tensor, ...] | None) -> None:
        self.device = device
        self.positive = torch.zeros(K, N, dtype=torch.int64, device=device)
        self.sums = torch.zeros(K, N, dtype=torch.float64, device=device)
        self.sq_sums = torch.zeros(K, N, dtype=torch.float64, device=device)
        # Float sums of the current chunk; added to the totals chunk by chunk in corpus order, which makes
        # the floating-point result independent of how chunks are spread over processes.
        self.chunk = torch.zeros(2, N, dtype=torch.float64, device=device)
        if start is not None:  # resumed from a checkpoint (CPU tensors)
            for mine, saved in zip((self.positive, self.sums, self.sq_sums), start):
                mine.copy_(saved)


class Accumulator:
    """Per-layer counters for the language being recorded; updated from the site hook."""

    def __init__(self, K: int, L: int, N: int, sentence_means: bool) -> None:
        self.K, self.L, self.N = K, L, N
        self.layers: list[LayerCounters | None] = [None] * L  # created where the layer's activations appear
        self.resumed: dict[str, torch.Tensor] | None = None  # [K, L, N] CPU totals from a checkpoint
        self.n_tokens = torch.zeros(K, dtype=torch.int64)
        self.want_sentences = sentence_means
        self.sentence_rows: list[torch.Tensor] = []  # [B, L, N] float32 CPU per batch
        self.sentence_ids: list[torch.Tensor] = []
        self.lang = 0
        self._counted: torch.Tensor | None = None  # [B, T] bool on the CPU, set per batch
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._batch_sent: list[torch.Tensor | None] | None = None  # [B, N] per layer

    def _start(self, layer: int) -> tuple[torch.Tensor, ...] | None:
        if self.resumed is None:
            return None
        return tuple(self.resumed[name][:, layer] for name in ("positive", "sums", "sq_sums"))

    def counters(self, layer: int, device: torch.device) -> LayerCounters:
        c = self.layers[layer]
        if c is None:
            c = self.layers[layer] = LayerCounters(self.K, self.N, counter_device(device), self._start(layer))
        return c

    def start_batch(self, counted: torch.Tensor) -> None:
        """``counted``: [batch, pos] bool, True where a position is counted (not padding, not special)."""
        self._counted = counted
        self._on_device = {}
        if self.want_sentences:
            self._batch_sent = [None] * self.L

    def _batch_masks(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """This batch's mask [batch, pos] bool and weights [1, batch*pos] float32 on ``device``, copied once."""
        got = self._on_device.get(device)
        if got is None:
            mask = self._counted.to(device)
            got = self._on_device[device] = (mask, mask.reshape(1, -1).to(torch.float32))
        return got

    def __call__(self, layer: int, acts: torch.Tensor, offset: int = 0) -> None:
        # acts: [batch, pos, d_mlp] (at linear_out one module's [batch, pos, width]: the layer's units
        # offset .. offset+width-1), any dtype, on the layer's device
        mask, w = self._batch_masks(acts.device)  # [batch, pos] bool, [1, batch*pos] float32
        # [batch, pos, d_mlp], or [batch*pos, d_mlp] as OPT hands it; anything else cannot be matched to tokens
        if (acts.shape[:-1] != mask.shape) if acts.dim() == 3 else (acts.numel() != mask.numel() * acts.shape[-1]):
            raise LangNeuronError(f"layer {layer}'s site tensor has shape {tuple(acts.shape)} but the batch has "
                                  f"{tuple(mask.shape)} [batch, positions]: the model adds positions inside its "
                                  "layers (CPM-Ant's prompt) or puts positions first (XLNet), so its units cannot "
                                  "be counted per token")
        a = acts.detach().reshape(-1, acts.shape[-1]).float()  # [batch*pos, d_mlp]
        c = self.counters(layer, acts.device)
        # Masked sums as matrix-vector products: one fast BLAS pass each, no copy of the counted tokens,
        # other positions weighted 0. Per-batch sums are float32 (counts exact below 2^24 tokens per batch)
        # and are accumulated in int64 / float64.
        units = slice(offset, offset + a.shape[-1])  # all N units, except at linear_out
        c.positive[self.lang, units] += (w @ (a > 0).float()).round().long()[0].to(c.device)
        c.chunk[0, units] += (w @ a)[0].to(c.device, torch.float64)
        c.chunk[1, units] += (w @ (a * a))[0].to(c.device, torch.float64)
        if self._batch_sent is not None:
            m = mask.unsqueeze(-1).to(torch.float32)  # [batch, pos, 1]
            mean = (acts.detach().float() * m).sum(1) / m.sum(1).clamp(min=1)  # [batch, width]
            self._sentence_slice(layer, units, mean)

    def _sentence_slice(self, layer: int, units: slice, mean: torch.Tensor) -> None:
        """Store one module's per-sentence means [batch, width] into the layer's [batch, N] row."""
        if mean.shape[-1] == self.N:
            self._batch_sent[layer] = mean
            return
        row = self._batch_sent[layer]
        if row is None:
            row = self._batch_sent[layer] = torch.zeros(mean.shape[0], self.N, device=mean.device)
        row[:, units] = mean.to(row.device)

    def end_batch(self, n_tokens: int, ids: torch.Tensor) -> None:
        self.n_tokens[self.lang] += n_tokens
        if self._batch_sent is not None:
            B = len(ids)
            rows = [torch.zeros(B, self.N) if r is None else r.cpu() for r in self._batch_sent]
            self.sentence_rows.append(torch.stack(rows, dim=1))  # [batch, L, d_mlp]
            self.sentence_ids.append(ids)
            self._batch_sent = None

    def take_chunk(self) -> list[torch.Tensor | None]:
        """Each layer's [2, N] chunk sums (sums, squared sums), reset to zero; None for a layer not seen yet."""
        out: list[torch.Tensor | None] = []
        for c in self.layers:
            out.append(None if c is None else c.chunk)
            if c is not None:
                c.chunk = torch.zeros_like(c.chunk)
        return out

    def add_round(self, partials: list[list[torch.Tensor | None] | None]) -> None:
        """Add chunk partial sums (one per-layer list per chunk) to the totals, in chunk order."""
        for part in partials:
            if part is None:
                continue
            for layer, p in enumerate(part):
                if p is not None:
                    c = self.counters(layer, p.device)
                    p = p.to(c.device)
                    c.sums[self.lang] += p[0]
                    c.sq_sums[self.lang] += p[1]

    def stacked_chunk(self, chunk: list[torch.Tensor | None] | None, device: torch.device) -> torch.Tensor:
        """A chunk's per-layer sums as one [L, 2, N] tensor on ``device`` (zeros where absent), for all_gather."""
        out = torch.zeros(self.L, 2, self.N, dtype=torch.float64, device=device)
        for layer, p in enumerate(chunk or []):
            if p is not None:
                out[layer] = p.to(device)
        return out

    def totals(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Totals as [K, L, N] tensors on ``device`` (checkpoints and the final statistics)."""
        out = {}
        for i, (name, dtype) in enumerate((("positive", torch.int64), ("sums", torch.float64),
                                           ("sq_sums", torch.float64))):
            per_layer = []
            for layer, c in enumerate(self.layers):
                if c is not None:
                    per_layer.append((c.positive, c.sums, c.sq_sums)[i].to(device))
                else:
                    start = self._start(layer)
                    per_layer.append(start[i].to(device) if start else torch.zeros(self.K, self.N, dtype=dtype,
                                                                                   device=device))
            out[name] = torch.stack(per_layer, dim=1)
        return out
