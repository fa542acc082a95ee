"""Streaming activation statistics: one forward pass per batch, counters updated in place by hooks.

Memory is flat in corpus length: texts are read in chunks, and the accumulators are fixed-size
``[K, N]`` tensors per layer. The optional per-sentence means (for Kojima et al.'s AP) grow with the
number of sentences, ``S x L x N`` float32 (4 bytes each), and with nothing else. At site ``linear_out``
N is the sum of every linear module's output width in a layer, several times the FFN width.

Cheaper than a forward pass: a hook on the last layer's site ends each forward pass as soon as that
tensor has been counted, so the rest of the last layer, the final norm and the output layer never run
and no logits are ever built (the output layer dominates small-vocabulary-heavy models such as Gemma 3).
The counts are those of a full forward pass: nothing before the last site changes.

Devices: the counters of a layer live on the device where that layer's activations appear (one GPU,
or several under ``device_map``), are updated there without host synchronisation, and move to the
CPU only to be saved. Collectives under torch.distributed run on the process group's device (the
current GPU under NCCL, the CPU under gloo). Activations of any dtype are summed in float32 per batch
and accumulated in int64 / float64.

Positions counted: padding never; special tokens the tokenizer added (BOS, ...) only with
``count_special_tokens`` (their activations are the same in every language). Hooks on the activation
cannot see the attention mask, so the recorder hands each batch's counted-position mask to the hook.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .corpus import CorpusSource
from .errors import LangNeuronError
from .hooks import StopForward, hook_sites, stop_after_last_site
from .provenance import versions
from .sites import DEFAULT_SITE, NeuronSites, resolve_sites
from .stats import ActivationStats


@dataclass
class RecordConfig:
    """Options of a recording run; all of them are stored in the stats file's metadata."""

    site: str = DEFAULT_SITE
    batch_size: int = 8
    max_length: int = 512
    sentence_means: bool = False
    max_sentences: int | None = None  # per language
    chunk_size: int = 1024  # texts read and length-sorted at a time
    add_special_tokens: bool = True
    # False: count only text tokens (BOS and other tokens the tokenizer added are run but not counted)
    count_special_tokens: bool = False
    # module path of the site in every layer, with {layer}; overrides discovery (stored in the fingerprint)
    module_template: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise LangNeuronError(f"batch size must be >= 1, got {self.batch_size}")
        if self.max_length < 1:
            raise LangNeuronError(f"max length must be >= 1, got {self.max_length}")
        if self.max_sentences is not None and self.max_sentences < 1:
            raise LangNeuronError(f"max sentences must be >= 1, got {self.max_sentences}")


def _counter_device(device: torch.device) -> torch.device:
    """Where a layer's float64 counters can live: the activations' device, unless it has no float64 (MPS)."""
    return torch.device("cpu") if device.type == "mps" else device


class _LayerCounters:
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


class _Accumulator:
    """Per-layer counters for the language being recorded; updated from the site hook."""

    def __init__(self, K: int, L: int, N: int, sentence_means: bool) -> None:
        self.K, self.L, self.N = K, L, N
        self.layers: list[_LayerCounters | None] = [None] * L  # created where the layer's activations appear
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

    def counters(self, layer: int, device: torch.device) -> _LayerCounters:
        c = self.layers[layer]
        if c is None:
            c = self.layers[layer] = _LayerCounters(self.K, self.N, _counter_device(device), self._start(layer))
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


# ---------------------------------------------------------------------- torch.distributed
def _dist() -> tuple[int, int]:
    """(rank, world size) when running under torch.distributed (torchrun / accelerate launch), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _comm_device(world: int) -> torch.device:
    """Where collectives run: the current GPU under NCCL, else the CPU (gloo, or a single process)."""
    if world > 1:
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _gather_round(mine: list[torch.Tensor | None] | None, acc: _Accumulator, world: int
                  ) -> list[list[torch.Tensor | None] | None]:
    """Every rank's chunk partial of this round, in rank (= chunk) order; None where a rank had no chunk."""
    if world == 1:
        return [mine]
    import torch.distributed as dist

    device = _comm_device(world)
    flag = torch.tensor([0 if mine is None else 1], dtype=torch.int64, device=device)
    flags = [torch.zeros_like(flag) for _ in range(world)]
    dist.all_gather(flags, flag)
    local = acc.stacked_chunk(mine, device)  # [L, 2, N]
    parts = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    return [list(p.unbind(0)) if int(f) else None for p, f in zip(parts, flags)]


def _all_reduce(t: torch.Tensor, device: torch.device, slice_elems: int = 1 << 26) -> None:
    """Sum ``t`` over ranks in place; a tensor elsewhere than ``device`` travels there in slices."""
    import torch.distributed as dist

    if t.device == device:
        dist.all_reduce(t)
        return
    flat = t.view(-1)  # t is contiguous: every tensor passed here was built by this module
    for s in range(0, flat.numel(), slice_elems):
        part = flat[s: s + slice_elems].to(device)
        dist.all_reduce(part)
        flat[s: s + slice_elems].copy_(part)


# ---------------------------------------------------------------------- checkpoints
class _Checkpoint:
    """Periodic snapshot of a recording run, so an interrupted run can continue with --resume.

    Snapshots are taken at chunk boundaries and the resumed run re-reads the same chunks, so the batches,
    and hence the floating-point additions, are exactly those of an uninterrupted run.
    """

    def __init__(self, path: str | None, every: int, key: dict) -> None:
        self.path, self.every, self.key = path, every, key

    def save(self, acc: _Accumulator, progress: dict) -> None:
        from safetensors.torch import save_file

        from .fileio import atomic_path, canonical_json

        tensors = {**acc.totals("cpu"), "n_tokens": acc.n_tokens}
        if acc.want_sentences and acc.sentence_rows:
            tensors["sentence_rows"] = torch.cat(acc.sentence_rows)
            tensors["sentence_ids"] = torch.cat(acc.sentence_ids)
        with atomic_path(self.path, force=True) as tmp:
            save_file(tensors, str(tmp), metadata={"key": canonical_json(self.key),
                                                   "progress": canonical_json(progress)})

    def load(self, acc: _Accumulator) -> dict:
        import json

        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as f:
                meta = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise LangNeuronError(f"cannot read checkpoint {self.path} ({e}); delete it to start over") from None
        if json.loads(meta["key"]) != json.loads(json.dumps(self.key)):
            raise LangNeuronError(f"checkpoint {self.path} was made with another model, corpus or settings; "
                                  "delete it or drop --resume")
        acc.resumed = {name: tensors[name] for name in ("positive", "sums", "sq_sums")}
        acc.layers = [None] * acc.L  # rebuilt from `resumed` where each layer's activations appear
        acc.n_tokens.copy_(tensors["n_tokens"])
        if "sentence_rows" in tensors:
            acc.sentence_rows, acc.sentence_ids = [tensors["sentence_rows"]], [tensors["sentence_ids"]]
        return json.loads(meta["progress"])


# ---------------------------------------------------------------------- one recording run, step by step
@dataclass
class _Run:
    """What every step of one recording run needs."""

    model: Any
    tokenizer: Any
    config: RecordConfig
    acc: _Accumulator
    device: torch.device  # where input ids go: the input embedding's device
    rank: int
    world: int
    ckpt: _Checkpoint | None
    progress: bool


@torch.inference_mode()
def record(model, tokenizer, sources: Sequence[CorpusSource], config: RecordConfig | None = None,
           progress: bool = True, checkpoint: str | None = None, checkpoint_every: int = 1,
           resume: bool = False, full_forward: bool = False) -> ActivationStats:
    """Run every source's texts through ``model`` and return the accumulated statistics.

    Sentences longer than ``max_length`` tokens are truncated (the count is stored in the metadata).
    Within a chunk, texts are sorted by length to reduce padding; counts do not depend on it.

    Under torch.distributed, rank r processes chunks r, r + world, ... of every language and the
    counters are summed once at the end; every rank returns the full statistics.

    Args:
        checkpoint: file to snapshot progress into every ``checkpoint_every`` chunks (None: never).
        resume: continue from ``checkpoint`` instead of starting over.
        full_forward: run the whole model, output layer included, instead of stopping after the last site;
            the statistics are the same (tests use it to show that).
    """
    config = config or RecordConfig()
    sites = resolve_sites(model, config.site, override=config.module_template)
    if tokenizer.pad_token_id is None:
        raise LangNeuronError("tokenizer has no pad token and no eos token to pad with")
    rank, world = _dist()
    acc = _Accumulator(len(sources), sites.num_layers, sites.intermediate_size, config.sentence_means)
    key = {"model": _model_name(model), "fingerprint": sites.fingerprint.to_dict(),
           "sources": [{"lang": s.lang, **s.fingerprint()} for s in sources], "config": vars(config),
           "world": world, "rank": rank}
    ckpt = _Checkpoint(checkpoint, max(1, checkpoint_every), key) if checkpoint else None
    done = _resume_point(ckpt, acc, checkpoint) if resume else {"lang": 0, "chunks": 0, "corpus_meta": {},
                                                                 "n_trunc": 0}
    run = _Run(model, tokenizer, config, acc, _input_device(model), rank, world, ckpt, progress)
    was_training = model.training
    model.eval()  # dropout off: the counts must not depend on random numbers
    stop = contextlib.nullcontext() if full_forward else stop_after_last_site(sites)
    with hook_sites(sites, acc), stop, _restore_training(model, was_training):  # stop hook after the counters
        corpus_meta = _record_languages(run, sources, done)
    return _collect(run, sources, sites, corpus_meta)


def _model_name(model) -> str:
    return getattr(model.config, "_name_or_path", "") or ""


def _input_device(model) -> torch.device:
    """The device of the input embedding (with ``device_map`` the layers may sit elsewhere)."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(emb, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
        return weight.device
    return next(model.parameters()).device


def _resume_point(ckpt: _Checkpoint | None, acc: _Accumulator, checkpoint: str | None) -> dict:
    """Load the checkpoint into ``acc``; returns where the interrupted run stopped."""
    if ckpt is None or not os.path.exists(checkpoint):
        raise LangNeuronError(f"nothing to resume: no checkpoint at {checkpoint}")
    return ckpt.load(acc)


@contextlib.contextmanager
def _restore_training(model, was_training: bool) -> Iterator[None]:
    try:
        yield
    finally:
        model.train(was_training)


def _chunks(it: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(it)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _progress(desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(desc=f"record {desc}", unit="tok", unit_scale=True, disable=not enabled, dynamic_ncols=True)


def _record_languages(run: _Run, sources: Sequence[CorpusSource], done: dict) -> dict[str, dict]:
    """Record every language not finished before a resume; returns the per-language corpus metadata."""
    corpus_meta: dict[str, dict] = dict(done["corpus_meta"])
    sentence_index = sum(m["sentences"] for m in corpus_meta.values())
    for k, src in enumerate(sources):
        if k < done["lang"]:
            continue
        resumed = k == done["lang"]
        n_sent, n_trunc = _record_language(run, k, src, sentence_index, done["chunks"] if resumed else 0,
                                           done["n_trunc"] if resumed else 0, corpus_meta)
        if n_sent == 0:
            raise LangNeuronError(f"corpus for {src.lang} ({src.location}) has no text")
        sentence_index += n_sent
        corpus_meta[src.lang] = {**src.fingerprint(), "sentences": n_sent, "truncated": n_trunc}
        if run.ckpt:
            run.ckpt.save(run.acc, {"lang": k + 1, "chunks": 0, "corpus_meta": corpus_meta, "n_trunc": 0})
    return corpus_meta


def _record_language(run: _Run, k: int, src: CorpusSource, first_sentence: int, skip_chunks: int, n_trunc: int,
                     corpus_meta: dict) -> tuple[int, int]:
    """Record one language chunk by chunk (this rank's share); returns (sentences, truncated texts)."""
    acc, world, rank = run.acc, run.world, run.rank
    acc.lang = k
    texts = src.texts()
    if run.config.max_sentences:
        texts = itertools.islice(texts, run.config.max_sentences)
    bar = _progress(src.lang, run.progress and rank == 0)
    mine: list[torch.Tensor | None] | None = None
    n_sent, c = 0, -1
    for c, chunk in enumerate(_chunks(texts, run.config.chunk_size)):
        if c % world == rank and c >= skip_chunks:
            n_trunc += _run_chunk(run, chunk, first_sentence + n_sent, bar)
            mine = acc.take_chunk()
        n_sent += len(chunk)
        if c % world == world - 1:  # a round of `world` chunks is complete
            acc.add_round(_gather_round(mine, acc, world))
            mine = None
            if run.ckpt and (c + 1) % (run.ckpt.every * world) == 0:
                run.ckpt.save(acc, {"lang": k, "chunks": c + 1, "corpus_meta": corpus_meta, "n_trunc": n_trunc})
    if c % world != world - 1:  # the language ended inside a round
        acc.add_round(_gather_round(mine, acc, world))
    bar.close()
    return n_sent, n_trunc


def _tokenize(tokenizer, texts: list[str], config: RecordConfig) -> tuple[list[list[int]], list[list[int]], int]:
    """Token ids and counted-position flags (1: counted) per text, cut to ``max_length``; plus how many were cut."""
    want_mask = not config.count_special_tokens
    enc = tokenizer(texts, add_special_tokens=config.add_special_tokens, truncation=False,
                    **({"return_special_tokens_mask": True} if want_mask else {}))
    ids = enc["input_ids"]
    if not want_mask:
        counted = [[1] * len(x) for x in ids]
    elif "special_tokens_mask" in enc:
        counted = [[1 - s for s in m] for m in enc["special_tokens_mask"]]
    else:  # a tokenizer that cannot say which tokens it added: leave out every special token id
        special = set(getattr(tokenizer, "all_special_ids", ()) or ())
        counted = [[int(t not in special) for t in x] for x in ids]
    M = config.max_length
    n_trunc = sum(len(x) > M for x in ids)
    return [x[:M] for x in ids], [m[:M] for m in counted], n_trunc


def _pad(rows: list[list[int]], flags: list[list[int]], pad_id: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and counted mask, each [batch, width] (positions stay 0..len-1)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    counted = torch.zeros((len(rows), width), dtype=torch.bool)
    for row, (toks, flag) in enumerate(zip(rows, flags)):
        ids[row, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        attention[row, : len(toks)] = 1
        counted[row, : len(toks)] = torch.tensor(flag, dtype=torch.bool)
    return ids, attention, counted


def _forward_to_last_site(model, ids: torch.Tensor, attention: torch.Tensor) -> None:
    """One forward pass for the hooks' sake; the stop hook ends it after the last site (no logits)."""
    try:
        model(input_ids=ids, attention_mask=attention, use_cache=False)
    except StopForward:
        pass


def _run_chunk(run: _Run, chunk: list[str], sentence_index: int, bar) -> int:
    """Tokenise one chunk, run it in length-sorted batches; returns how many texts were truncated."""
    enc, flags, n_trunc = _tokenize(run.tokenizer, chunk, run.config)
    order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
    for start in range(0, len(order), run.config.batch_size):
        idx = order[start: start + run.config.batch_size]
        if max(len(enc[i]) for i in idx) == 0:
            continue
        ids, attention, counted = _pad([enc[i] for i in idx], [flags[i] for i in idx], run.tokenizer.pad_token_id)
        run.acc.start_batch(counted)
        _forward_to_last_site(run.model, ids.to(run.device), attention.to(run.device))
        n_tok = int(counted.sum())
        run.acc.end_batch(n_tok, torch.tensor(idx, dtype=torch.long) + sentence_index)
        bar.update(n_tok)
    return n_trunc


# ---------------------------------------------------------------------- from counters to statistics
def _sentence_tensors(acc: _Accumulator, sources: Sequence[CorpusSource], corpus_meta: dict
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sentence means [S, L, N] back in corpus order (rows of other ranks zero) and sentence languages [S]."""
    counts = torch.tensor([corpus_meta[s.lang]["sentences"] for s in sources])
    means = torch.zeros(int(counts.sum()), acc.L, acc.N, dtype=torch.float32)
    if acc.sentence_rows:
        means[torch.cat(acc.sentence_ids)] = torch.cat(acc.sentence_rows)
    return means, torch.repeat_interleave(torch.arange(len(sources)), counts)


def _sum_over_ranks(run: _Run, positive: torch.Tensor, sentence_means: torch.Tensor | None,
                    sources: Sequence[CorpusSource], corpus_meta: dict, device: torch.device) -> None:
    """Add up what each rank counted alone (float sums are already complete on every rank)."""
    trunc = torch.tensor([corpus_meta[s.lang]["truncated"] for s in sources], dtype=torch.int64)
    for t in (positive, run.acc.n_tokens, trunc):
        _all_reduce(t, device)
    if sentence_means is not None:
        _all_reduce(sentence_means, device)  # each row is filled on exactly one rank
    for s, t in zip(sources, trunc.tolist()):
        corpus_meta[s.lang]["truncated"] = t


def _collect(run: _Run, sources: Sequence[CorpusSource], sites: NeuronSites, corpus_meta: dict) -> ActivationStats:
    """Gather the counters (over ranks, onto the CPU) into the statistics object with its metadata."""
    acc, config = run.acc, run.config
    device = _comm_device(run.world)
    totals = acc.totals(device)  # [K, L, N] each
    sentence_means = sentence_lang = None
    if config.sentence_means:
        sentence_means, sentence_lang = _sentence_tensors(acc, sources, corpus_meta)
    if run.world > 1:
        _sum_over_ranks(run, totals["positive"], sentence_means, sources, corpus_meta, device)
    for k, s in enumerate(sources):
        corpus_meta[s.lang]["tokens"] = int(acc.n_tokens[k])
    return ActivationStats(
        languages=[s.lang for s in sources],
        n_tokens=acc.n_tokens,
        positive_counts=totals["positive"].cpu(),
        activation_sums=totals["sums"].cpu(),
        activation_sq_sums=totals["sq_sums"].cpu(),
        fingerprint=sites.fingerprint,
        sentence_means=sentence_means,
        sentence_lang=sentence_lang,
        metadata={
            "model": _model_name(run.model),
            "corpus": corpus_meta,
            "record_config": vars(config).copy(),
            "dtype": str(next(run.model.parameters()).dtype).replace("torch.", ""),
            "versions": versions(),
            "seeds": {},  # recording draws no random numbers: eval mode, texts in corpus order
        },
    )
