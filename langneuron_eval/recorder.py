"""Streaming activation statistics: one forward pass per batch, counters updated in place by hooks.

Memory is flat in corpus length: texts are read in chunks, and the accumulators are fixed-size
``[K, L, N]`` tensors. The optional per-sentence means (for Kojima et al.'s AP) grow with the number of
sentences, ``S x L x N`` float32 (4 bytes each), and with nothing else.

Padding is excluded explicitly: hooks on the activation cannot see the attention mask, so the recorder
hands the current batch's mask to the hook.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from .corpus import CorpusSource
from .errors import LangNeuronError
from .hooks import hook_sites
from .provenance import versions
from .sites import DEFAULT_SITE, resolve_sites
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

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise LangNeuronError(f"batch size must be >= 1, got {self.batch_size}")
        if self.max_length < 1:
            raise LangNeuronError(f"max length must be >= 1, got {self.max_length}")
        if self.max_sentences is not None and self.max_sentences < 1:
            raise LangNeuronError(f"max sentences must be >= 1, got {self.max_sentences}")


class _Accumulator:
    """Per-layer counters for the language being recorded; updated from the site hook."""

    def __init__(self, K: int, L: int, N: int, sentence_means: bool) -> None:
        self.positive = torch.zeros(K, L, N, dtype=torch.int64)
        self.sums = torch.zeros(K, L, N, dtype=torch.float64)
        self.sq_sums = torch.zeros(K, L, N, dtype=torch.float64)
        # Float sums of the current chunk; added to the totals chunk by chunk in corpus order, which makes
        # the floating-point result independent of how chunks are spread over processes.
        self.chunk = torch.zeros(2, L, N, dtype=torch.float64)
        self.n_tokens = torch.zeros(K, dtype=torch.int64)
        self.want_sentences = sentence_means
        self.sentence_rows: list[torch.Tensor] = []  # [B, L, N] per batch
        self.sentence_ids: list[torch.Tensor] = []
        self.lang = 0
        self.mask: torch.Tensor | None = None  # [B, T] bool, set per batch
        self.weights: torch.Tensor | None = None  # [1, B*T] float32, set per batch
        self._batch_sent: torch.Tensor | None = None

    def start_batch(self, mask: torch.Tensor, L: int, N: int) -> None:
        self.mask = mask.bool()
        self.weights = mask.reshape(1, -1).to(torch.float32)
        if self.want_sentences:
            self._batch_sent = torch.zeros(mask.shape[0], L, N, dtype=torch.float32)

    def __call__(self, layer: int, acts: torch.Tensor) -> None:
        # acts: [batch, pos, d_mlp]; mask: [batch, pos]
        a = acts.detach().reshape(-1, acts.shape[-1]).float()  # [batch*pos, d_mlp]
        # Masked sums as matrix-vector products: one fast BLAS pass each, no copy of the unmasked tokens,
        # padding weighted 0. Per-batch sums are float32 (counts exact below 2^24 tokens per batch) and are
        # accumulated in int64 / float64.
        w = self.weights  # [1, batch*pos] float32, 1 for real tokens
        self.positive[self.lang, layer] += (w @ (a > 0).float()).round().long()[0]
        self.chunk[0, layer] += (w @ a)[0].double()
        self.chunk[1, layer] += (w @ (a * a))[0].double()
        if self._batch_sent is not None:
            m = self.mask.unsqueeze(-1).to(torch.float32)  # [batch, pos, 1]
            per_sent = (acts.detach().float() * m).sum(1) / m.sum(1).clamp(min=1)  # [batch, d_mlp]
            self._batch_sent[:, layer] = per_sent

    def end_batch(self, n_tokens: int, ids: torch.Tensor) -> None:
        self.n_tokens[self.lang] += n_tokens
        if self._batch_sent is not None:
            self.sentence_rows.append(self._batch_sent)
            self.sentence_ids.append(ids)
            self._batch_sent = None


    def take_chunk(self) -> torch.Tensor:
        out, self.chunk = self.chunk, torch.zeros_like(self.chunk)
        return out  # [2, L, N]: sums, squared sums

    def add_round(self, partials: list[torch.Tensor | None]) -> None:
        """Add chunk partial sums to the totals, in chunk order."""
        for part in partials:
            if part is not None:
                self.sums[self.lang] += part[0]
                self.sq_sums[self.lang] += part[1]


def _gather_round(mine: torch.Tensor | None, like: torch.Tensor, world: int) -> list[torch.Tensor | None]:
    """Every rank's chunk partial of this round, in rank (= chunk) order; None where a rank had no chunk."""
    if world == 1:
        return [mine]
    import torch.distributed as dist

    flag = torch.tensor([0 if mine is None else 1], dtype=torch.int64)
    flags = [torch.zeros_like(flag) for _ in range(world)]
    dist.all_gather(flags, flag)
    parts = [torch.zeros_like(like) for _ in range(world)]
    dist.all_gather(parts, like if mine is None else mine)
    return [p if int(f) else None for p, f in zip(parts, flags)]


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


def _dist() -> tuple[int, int]:
    """(rank, world size) when running under torch.distributed (torchrun / accelerate launch), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(*tensors: torch.Tensor) -> None:
    import torch.distributed as dist

    for t in tensors:
        dist.all_reduce(t)


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

        tensors = {"positive": acc.positive, "sums": acc.sums, "sq_sums": acc.sq_sums, "n_tokens": acc.n_tokens}
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
        acc.positive.copy_(tensors["positive"])
        acc.sums.copy_(tensors["sums"])
        acc.sq_sums.copy_(tensors["sq_sums"])
        acc.n_tokens.copy_(tensors["n_tokens"])
        if "sentence_rows" in tensors:
            acc.sentence_rows, acc.sentence_ids = [tensors["sentence_rows"]], [tensors["sentence_ids"]]
        return json.loads(meta["progress"])


@torch.inference_mode()
def record(model, tokenizer, sources: Sequence[CorpusSource], config: RecordConfig | None = None,
           progress: bool = True, checkpoint: str | None = None, checkpoint_every: int = 1,
           resume: bool = False) -> ActivationStats:
    """Run every source's texts through ``model`` and return the accumulated statistics.

    Sentences longer than ``max_length`` tokens are truncated (the count is stored in the metadata).
    Within a chunk, texts are sorted by length to reduce padding; counts do not depend on it.

    Under torch.distributed, rank r processes chunks r, r + world, ... of every language and the
    counters are summed once at the end; every rank returns the full statistics.

    Args:
        checkpoint: file to snapshot progress into every ``checkpoint_every`` chunks (None: never).
        resume: continue from ``checkpoint`` instead of starting over.
    """
    config = config or RecordConfig()
    sites = resolve_sites(model, config.site)
    K, L, N = len(sources), sites.num_layers, sites.intermediate_size
    acc = _Accumulator(K, L, N, config.sentence_means)
    device = next(model.parameters()).device
    if tokenizer.pad_token_id is None:
        raise LangNeuronError("tokenizer has no pad token and no eos token to pad with")
    rank, world = _dist()
    key = {"model": getattr(model.config, "_name_or_path", "") or "", "fingerprint": sites.fingerprint.to_dict(),
           "sources": [{"lang": s.lang, **s.fingerprint()} for s in sources], "config": vars(config),
           "world": world, "rank": rank}
    ckpt = _Checkpoint(checkpoint, max(1, checkpoint_every), key) if checkpoint else None
    done: dict = {"lang": 0, "chunks": 0, "corpus_meta": {}, "n_trunc": 0}
    if resume:
        if ckpt is None or not os.path.exists(checkpoint):
            raise LangNeuronError(f"nothing to resume: no checkpoint at {checkpoint}")
        done = ckpt.load(acc)
    corpus_meta: dict[str, dict] = dict(done["corpus_meta"])
    sentence_index = sum(m["sentences"] for m in corpus_meta.values())
    was_training = model.training
    model.eval()  # dropout off: the counts must not depend on random numbers
    with hook_sites(sites, acc), _restore_training(model, was_training):
        for k, src in enumerate(sources):
            if k < done["lang"]:
                continue
            acc.lang = k
            n_sent = 0
            n_trunc = done["n_trunc"] if k == done["lang"] else 0
            texts = src.texts()
            if config.max_sentences:
                texts = itertools.islice(texts, config.max_sentences)
            bar = _progress(src.lang, progress and rank == 0)
            mine: torch.Tensor | None = None
            c = -1
            for c, chunk in enumerate(_chunks(texts, config.chunk_size)):
                if c % world == rank and not (k == done["lang"] and c < done["chunks"]):
                    n_trunc += _run_chunk(model, tokenizer, chunk, config, acc, device, L, N, sentence_index, bar)
                    mine = acc.take_chunk()
                sentence_index += len(chunk)
                n_sent += len(chunk)
                if c % world == world - 1:  # a round of `world` chunks is complete
                    acc.add_round(_gather_round(mine, acc.chunk, world))
                    mine = None
                    if ckpt and (c + 1) % (ckpt.every * world) == 0:
                        ckpt.save(acc, {"lang": k, "chunks": c + 1, "corpus_meta": corpus_meta, "n_trunc": n_trunc})
            if c % world != world - 1:  # the language ended inside a round
                acc.add_round(_gather_round(mine, acc.chunk, world))
            bar.close()
            if n_sent == 0:
                raise LangNeuronError(f"corpus for {src.lang} ({src.location}) has no text")
            corpus_meta[src.lang] = {**src.fingerprint(), "sentences": n_sent, "truncated": n_trunc}
            if ckpt:
                ckpt.save(acc, {"lang": k + 1, "chunks": 0, "corpus_meta": corpus_meta, "n_trunc": 0})

    S = sentence_index
    sentence_means = sentence_lang = None
    if config.sentence_means:
        sentence_means = torch.zeros(S, L, N, dtype=torch.float32)
        if acc.sentence_rows:
            sentence_means[torch.cat(acc.sentence_ids)] = torch.cat(acc.sentence_rows)  # back to corpus order
        counts = torch.tensor([corpus_meta[s.lang]["sentences"] for s in sources])
        sentence_lang = torch.repeat_interleave(torch.arange(K), counts)
    if world > 1:
        trunc = torch.tensor([corpus_meta[s.lang]["truncated"] for s in sources], dtype=torch.int64)
        _all_reduce(acc.positive, acc.n_tokens, trunc)  # float sums are complete on every rank already
        if sentence_means is not None:
            _all_reduce(sentence_means)  # each row is filled on exactly one rank
        for s, t in zip(sources, trunc.tolist()):
            corpus_meta[s.lang]["truncated"] = t
    for k, s in enumerate(sources):
        corpus_meta[s.lang]["tokens"] = int(acc.n_tokens[k])
    return ActivationStats(
        languages=[s.lang for s in sources],
        n_tokens=acc.n_tokens,
        positive_counts=acc.positive,
        activation_sums=acc.sums,
        activation_sq_sums=acc.sq_sums,
        fingerprint=sites.fingerprint,
        sentence_means=sentence_means,
        sentence_lang=sentence_lang,
        metadata={
            "model": getattr(model.config, "_name_or_path", "") or "",
            "corpus": corpus_meta,
            "record_config": vars(config).copy(),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "versions": versions(),
            "seeds": {},  # recording draws no random numbers: eval mode, texts in corpus order
        },
    )


def _run_chunk(model, tokenizer, chunk: list[str], config: RecordConfig, acc: _Accumulator, device,
                 L: int, N: int, sentence_index: int, bar) -> int:
    """Tokenise one chunk, run it in length-sorted batches; returns how many texts were truncated."""
    enc = tokenizer(chunk, add_special_tokens=config.add_special_tokens, truncation=False)["input_ids"]
    n_trunc = sum(len(ids) > config.max_length for ids in enc)
    enc = [ids[: config.max_length] for ids in enc]
    order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
    for start in range(0, len(order), config.batch_size):
        idx = order[start: start + config.batch_size]
        batch = [enc[i] for i in idx]
        width = max(len(b) for b in batch)
        if width == 0:
            continue
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, toks in enumerate(batch):  # right padding: positions stay 0..len-1
            ids[row, : len(toks)] = torch.tensor(toks, dtype=torch.long)
            mask[row, : len(toks)] = 1
        acc.start_batch(mask.to(device), L, N)
        model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
        n_tok = int(mask.sum())
        acc.end_batch(n_tok, torch.tensor(idx, dtype=torch.long) + sentence_index)
        bar.update(n_tok)
    return n_trunc
