"""The recorder's counters: per-layer totals updated in place by the site hooks, padding-exact.

Per-batch sums are taken as masked matrix-vector products in float32 and accumulated in int64 / float64 on
the device where each layer's activations appear; float sums enter the totals chunk by chunk in corpus
order, so the result does not depend on how chunks are spread over processes.
"""

from __future__ import annotations

import torch

from langneuron_eval.core.sentence_store import SentenceStoreWriter
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
        self.chunk_pos = torch.zeros(N, dtype=torch.int64, device=device)  # positives of the current chunk
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
        self.store: SentenceStoreWriter | None = None  # where per-sentence means go, row by row
        self.chunk_tokens = 0  # counted tokens of the current chunk (added to n_tokens when it is taken)
        self.lang = 0
        # non-finite activations (issue #28): a diagnosis re-run counts them per layer; a masked re-run zeroes
        # positions that are not counted, which the weighted sums below would not (0 * NaN = NaN)
        self.diagnosis: dict[int, list[int]] | None = None  # layer -> [values, tokens, uncounted positions]
        self.mask_uncounted = False
        self._counted: torch.Tensor | None = None  # [B, T] bool on the CPU, set per batch
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._batch_sent: list[torch.Tensor | None] | None = None  # [B, N] per layer

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        """Continue from a checkpoint's tensors (``totals("cpu")`` and ``n_tokens``, see core/checkpoints.py)."""
        self.resumed = {name: tensors[name] for name in ("positive", "sums", "sq_sums")}
        self.layers = [None] * self.L  # rebuilt from `resumed` where each layer's activations appear
        self.n_tokens.copy_(tensors["n_tokens"])

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
        if self.diagnosis is not None:
            self._diagnose(layer, a, w)
        if self.mask_uncounted:
            a = torch.where(w.reshape(-1, 1) > 0, a, torch.zeros((), device=a.device))
        c = self.counters(layer, acts.device)
        # Masked sums as matrix-vector products: one fast BLAS pass each, no copy of the counted tokens,
        # other positions weighted 0. Per-batch sums are float32 (counts exact below 2^24 tokens per batch)
        # and are accumulated in int64 / float64.
        units = slice(offset, offset + a.shape[-1])  # all N units, except at linear_out
        c.chunk_pos[units] += (w @ (a > 0).float()).round().long()[0].to(c.device)
        c.chunk[0, units] += (w @ a)[0].to(c.device, torch.float64)
        c.chunk[1, units] += (w @ (a * a))[0].to(c.device, torch.float64)
        if self._batch_sent is not None:
            m = mask.unsqueeze(-1).to(torch.float32)  # [batch, pos, 1]
            x = a.reshape(*mask.shape, -1) if self.mask_uncounted else acts.detach().float()  # [batch, pos, width]
            mean = (x * m).sum(1) / m.sum(1).clamp(min=1)  # [batch, width]
            self._sentence_slice(layer, units, mean)

    def _diagnose(self, layer: int, a: torch.Tensor, w: torch.Tensor) -> None:
        """Count this batch's non-finite values at counted positions, the tokens holding them, and uncounted
        positions holding any (a re-run of a chunk whose sums came out non-finite; host syncs are fine here)."""
        bad = ~torch.isfinite(a)  # [batch*pos, width]
        counted = w[0] > 0  # [batch*pos]
        per_token = bad.any(-1)
        got = self.diagnosis.setdefault(layer, [0, 0, 0])
        got[0] += int(bad[counted].sum())
        got[1] += int((per_token & counted).sum())
        got[2] += int((per_token & ~counted).sum())

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
        self.chunk_tokens += n_tokens
        if self._batch_sent is not None:
            B = len(ids)
            rows = [torch.zeros(B, self.N) if r is None else r.cpu() for r in self._batch_sent]
            if self.store is not None:
                self.store.write(ids, torch.stack(rows, dim=1))  # [batch, L, d_mlp], at the sentences' rows
            self._batch_sent = None

    def nonfinite_layers(self) -> list[int]:
        """Layers whose current-chunk sums are not finite: some activation that entered them was NaN or inf.

        Exact and free per batch: a float64 sum of finite float32 values (or of their squares) cannot overflow.
        One host synchronisation per chunk."""
        flags = [(i, torch.isfinite(c.chunk).all()) for i, c in enumerate(self.layers) if c is not None]
        if not flags:
            return []
        ok = torch.stack([f.to("cpu") for _, f in flags]).tolist()
        return [i for (i, _), good in zip(flags, ok) if not good]

    def discard_chunk(self) -> None:
        """Forget everything the current chunk added (before a re-run of it)."""
        self.chunk_tokens = 0
        for c in self.layers:
            if c is not None:
                c.chunk.zero_()
                c.chunk_pos.zero_()

    def take_chunk(self) -> list[torch.Tensor | None]:
        """Each layer's [2, N] chunk sums (sums, squared sums), reset to zero; None for a layer not seen yet.

        The chunk's positive counts and tokens (integers: their order does not matter) go to the totals here."""
        self.n_tokens[self.lang] += self.chunk_tokens
        self.chunk_tokens = 0
        out: list[torch.Tensor | None] = []
        for c in self.layers:
            out.append(None if c is None else c.chunk)
            if c is not None:
                c.chunk = torch.zeros_like(c.chunk)
                c.positive[self.lang] += c.chunk_pos
                c.chunk_pos.zero_()
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
