"""Streaming activation statistics: one forward pass per batch, counters updated in place by hooks.

Memory is flat in corpus length: texts are read in chunks, and the accumulators are fixed-size
``[K, N]`` tensors per layer. The optional per-sentence means (for Kojima et al.'s AP) are written to
disk row by row as batches produce them (core/sentence_store.py): memory stays flat and the bytes written
are linear in the corpus (``S x L x N`` x 4, 2 or 2 bytes in float32 / float16 / bfloat16). At site
``linear_out`` N is the sum of every linear module's output width in a layer, several times the FFN width.

Non-finite activations (fp16 overflow, a broken checkpoint) cannot slip into the statistics: each chunk's
float64 sums are finite exactly when every activation that entered them was, so one check per chunk costs
nothing per batch. A poisoned chunk is discarded and re-run once to count, per layer, the non-finite values
and the tokens holding them. The rule: at counted positions, the run stops with one line naming the
language, sentences, layers and counts (nothing of the chunk was counted; the last checkpoint is intact);
only at positions that are not counted (padding, special tokens), it warns and re-runs the chunk with those
positions zeroed -- the weighted sums alone would not ignore them (0 * NaN = NaN) -- and the statistics'
metadata lists the chunk under ``nonfinite``.

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
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from langneuron_eval.core.checkpoints import Checkpoint
from langneuron_eval.core.collectives import (
    all_reduce_to,
    barrier,
    comm_device,
    dist_rank_world,
    gather_objects,
    gather_round,
)
from langneuron_eval.core.corpus import CorpusSource
from langneuron_eval.core.counters import Accumulator
from langneuron_eval.core.fingerprint import NeuronSites
from langneuron_eval.core.hooks import StopForward, hook_sites, stop_after_last_site
from langneuron_eval.core.moe_record import (
    MoEAccumulator,
    check_moe_record,
    has_moe_layers,
    moe_sites,
    moe_statistics,
)
from langneuron_eval.core.sentence_store import (
    SentenceMeansFile,
    SentenceStoreWriter,
    StoreState,
    finalize_store,
    storage_dtype,
)
from langneuron_eval.core.sites import DEFAULT_SITE, resolve_sites
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.provenance import versions


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
    sentence_dtype: str = "float32"  # storage of the per-sentence means: float32, float16 or bfloat16

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise LangNeuronError(f"batch size must be >= 1, got {self.batch_size}")
        if self.max_length < 1:
            raise LangNeuronError(f"max length must be >= 1, got {self.max_length}")
        if self.max_sentences is not None and self.max_sentences < 1:
            raise LangNeuronError(f"max sentences must be >= 1, got {self.max_sentences}")
        storage_dtype(self.sentence_dtype)


# ---------------------------------------------------------------------- one recording run, step by step
@dataclass
class _Run:
    """What every step of one recording run needs."""

    model: Any
    tokenizer: Any
    config: RecordConfig
    acc: Accumulator
    device: torch.device  # where input ids go: the input embedding's device
    rank: int
    world: int
    ckpt: Checkpoint | None
    progress: bool
    store_path: str | None = None  # the finished per-sentence means file
    store_is_temporary: bool = False  # no path given: read back into memory at the end, file removed
    nonfinite: list[dict] | None = None  # chunks re-run with uncounted positions zeroed


@torch.inference_mode()
def record(model, tokenizer, sources: Sequence[CorpusSource], config: RecordConfig | None = None,
           progress: bool = True, checkpoint: str | None = None, checkpoint_every: int = 1,
           resume: bool = False, full_forward: bool = False, sentence_store: str | None = None) -> ActivationStats:
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
        sentence_store: with ``config.sentence_means``, the file the per-sentence means are written to (the
            statistics then refer to it; ``ActivationStats.save`` keeps it beside them). Without it they go to a
            temporary file (beside ``checkpoint`` if given, so that a resume finds them) and come back in memory.
    """
    config = config or RecordConfig()
    if has_moe_layers(model):
        return _record_moe(model, tokenizer, sources, config, progress, checkpoint, checkpoint_every, resume,
                           sentence_store)
    sites = resolve_sites(model, config.site, override=config.module_template)
    if tokenizer.pad_token_id is None:
        raise LangNeuronError("tokenizer has no pad token and no eos token to pad with")
    acc = Accumulator(len(sources), sites.num_layers, sites.intermediate_size, config.sentence_means)
    run, done = _start_run(model, tokenizer, sources, config, sites, acc, progress, checkpoint, checkpoint_every,
                           resume, sentence_store)
    was_training = model.training
    model.eval()  # dropout off: the counts must not depend on random numbers
    stop = contextlib.nullcontext() if full_forward else stop_after_last_site(sites)
    with hook_sites(sites, acc), stop, _restore_training(model, was_training):  # stop hook after the counters
        corpus_meta = _record_languages(run, sources, done)
    return _collect(run, sources, sites, corpus_meta)


def _start_run(model, tokenizer, sources: Sequence[CorpusSource], config: RecordConfig, sites: NeuronSites,
               acc: Accumulator | MoEAccumulator, progress: bool, checkpoint: str | None, checkpoint_every: int,
               resume: bool, sentence_store: str | None) -> tuple[_Run, dict]:
    """The run's state: checkpoint (loaded into ``acc`` on a resume) and sentence store; and where to start."""
    rank, world = dist_rank_world()
    key = {"model": _model_name(model), "fingerprint": sites.fingerprint.to_dict(),
           "sources": [{"lang": s.lang, **s.fingerprint()} for s in sources], "config": vars(config),
           "world": world, "rank": rank}
    ckpt = Checkpoint(checkpoint, max(1, checkpoint_every), key) if checkpoint else None
    done = _resume_point(ckpt, acc, checkpoint) if resume else {"lang": 0, "chunks": 0, "corpus_meta": {},
                                                                 "n_trunc": 0}
    run = _Run(model, tokenizer, config, acc, _input_device(model), rank, world, ckpt, progress, nonfinite=[])
    if config.sentence_means:
        _open_store(run, sites, checkpoint, sentence_store, done.get("sentence_store") if resume else None)
    return run, done


def _record_moe(model, tokenizer, sources: Sequence[CorpusSource], config: RecordConfig, progress: bool,
                checkpoint: str | None, checkpoint_every: int, resume: bool, sentence_store: str | None
                ) -> ActivationStats:
    """A mixture-of-experts model: the same run loop, checkpoints, processes and sentence store with the expert
    counters (core/moe_record.py, docs/moe.md)."""
    check_moe_record(config)
    if tokenizer.pad_token_id is None:
        raise LangNeuronError("tokenizer has no pad token and no eos token to pad with")
    sites = moe_sites(model, config.site)
    acc = MoEAccumulator(model, len(sources), config.site, config.sentence_means)
    run, done = _start_run(model, tokenizer, sources, config, sites, acc, progress, checkpoint, checkpoint_every,
                           resume, sentence_store)
    was_training = model.training
    model.eval()
    with acc.attach(model), _restore_training(model, was_training):
        corpus_meta = _record_languages(run, sources, done)
    sentence_means = sentence_lang = None
    if config.sentence_means:
        sentence_means, sentence_lang = _finish_store(run, sources, corpus_meta)
    if run.world > 1:
        _sum_truncated(sources, corpus_meta, comm_device(run.world))
    fields = moe_statistics(model, acc, run.world)
    for k, s in enumerate(sources):
        corpus_meta[s.lang]["tokens"] = int(fields["n_tokens"][k])
    return ActivationStats(languages=[s.lang for s in sources], sentence_means=sentence_means,
                           sentence_lang=sentence_lang, metadata={
        "model": _model_name(model), "corpus": corpus_meta, "record_config": vars(config).copy(),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "versions": versions(), "seeds": {}},
        **fields)


def _model_name(model) -> str:
    return getattr(model.config, "_name_or_path", "") or ""


def _input_device(model) -> torch.device:
    """The device of the input embedding (with ``device_map`` the layers may sit elsewhere)."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(emb, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
        return weight.device
    return next(model.parameters()).device


def _resume_point(ckpt: Checkpoint | None, acc: Accumulator | MoEAccumulator, checkpoint: str | None) -> dict:
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
    failure: LangNeuronError | None = None
    for c, chunk in enumerate(_chunks(texts, run.config.chunk_size)):
        if c % world == rank and c >= skip_chunks:
            if getattr(acc, "store", None) is not None:  # the MoE accumulator keeps no per-sentence means
                acc.store.reserve(first_sentence + n_sent, len(chunk))
            try:
                n_trunc += _run_checked_chunk(run, chunk, first_sentence + n_sent, bar, src.lang)
            except LangNeuronError as e:  # raised on every rank once the round is gathered
                failure = e
            mine = acc.take_chunk()
        n_sent += len(chunk)
        if c % world == world - 1:  # a round of `world` chunks is complete
            acc.add_round(gather_round(mine, acc, world, failure))
            mine = None
            if run.ckpt and (c + 1) % (run.ckpt.every * world) == 0:
                run.ckpt.save(acc, {"lang": k, "chunks": c + 1, "corpus_meta": corpus_meta, "n_trunc": n_trunc})
    if c % world != world - 1:  # the language ended inside a round
        acc.add_round(gather_round(mine, acc, world, failure))
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


def _run_checked_chunk(run: _Run, chunk: list[str], sentence_index: int, bar, lang: str) -> int:
    """:func:`_run_chunk`, then the non-finite rule of the module docstring; returns truncated texts."""
    acc = run.acc
    n_trunc = _run_chunk(run, chunk, sentence_index, bar)
    if not hasattr(acc, "nonfinite_layers") or not acc.nonfinite_layers():  # (MoE accumulator: no such check)
        return n_trunc
    quiet = _progress(lang, False)
    acc.discard_chunk()
    acc.diagnosis = {}
    try:
        _run_chunk(run, chunk, sentence_index, quiet)
    finally:
        found, acc.diagnosis = acc.diagnosis, None
    acc.discard_chunk()
    where = f"{lang} sentences {sentence_index}-{sentence_index + len(chunk) - 1}"
    counted = {layer: v for layer, v in sorted(found.items()) if v[0]}
    if counted:
        per_layer = "; ".join(f"layer {layer}: {v[0]} values in {v[1]} tokens" for layer, v in counted.items())
        raise LangNeuronError(f"non-finite activations (NaN/inf) in {where}: {per_layer}; nothing of these "
                              "sentences was counted and the last checkpoint is intact (half precision "
                              "overflowing? record with --dtype bfloat16 or float32)")
    uncounted = {layer: v[2] for layer, v in sorted(found.items()) if v[2]}
    if not uncounted:
        raise LangNeuronError(f"activations in {where} are too large to square in float32 (> 1.8e19): the "
                              "statistics' squared sums would overflow")
    warnings.warn(f"non-finite activations at positions that are not counted (padding, special tokens) in {where}, "
                  f"layers {', '.join(map(str, uncounted))}; re-counted with those positions zeroed", stacklevel=2)
    run.nonfinite.append({"lang": lang, "first_sentence": sentence_index, "sentences": len(chunk),
                          "uncounted_positions_by_layer": {str(k): v for k, v in uncounted.items()}})
    acc.mask_uncounted = True
    try:
        _run_chunk(run, chunk, sentence_index, quiet)
    finally:
        acc.mask_uncounted = False
    return n_trunc


# ---------------------------------------------------------------------- per-sentence means on disk
def _open_store(run: _Run, sites: NeuronSites, checkpoint: str | None, path: str | None, state: dict | None) -> None:
    """Start (or, with a checkpoint's ``state``, resume) this rank's shard of the per-sentence means."""
    if path is None:
        path = f"{checkpoint}.sentences.safetensors" if checkpoint else None
        run.store_is_temporary = True
    if path is None:  # one temporary directory for every rank (rank 0's)
        tmp = gather_objects(tempfile.mkdtemp(prefix="langneuron-sentences-") if run.rank == 0 else None)[0]
        path = os.path.join(tmp, "sentences.safetensors")
    run.store_path = path
    shard = f"{path}.partial" + (f".rank{run.rank}" if run.world > 1 else "")
    run.acc.store = SentenceStoreWriter(shard, sites.num_layers, sites.intermediate_size, run.config.sentence_dtype,
                                        resume=StoreState.from_dict(state) if state else None)


def _finish_store(run: _Run, sources: Sequence[CorpusSource], corpus_meta: dict
                  ) -> tuple[torch.Tensor | SentenceMeansFile, torch.Tensor]:
    """Merge the ranks' shards in corpus order; the per-sentence means (a file reader, or a tensor when they
    went to a temporary file) and the sentence languages [S]."""
    counts = torch.tensor([corpus_meta[s.lang]["sentences"] for s in sources])
    shards = gather_objects((str(run.acc.store.path), run.acc.store.close().to_dict()))
    run.acc.store = None
    info = None
    if run.rank == 0:
        meta = {"languages": [s.lang for s in sources], "sentences": counts.tolist()}
        info = finalize_store([p for p, _ in shards], [StoreState.from_dict(d) for _, d in shards],
                              run.store_path, int(counts.sum()), meta)
    barrier(run.world)
    reader = SentenceMeansFile(run.store_path)
    if info is not None:
        reader._known(info.sha256)
    means: torch.Tensor | SentenceMeansFile = reader
    if run.store_is_temporary:
        means = reader.to_tensor()
        barrier(run.world)
        if run.rank == 0:
            os.remove(run.store_path)
            parent = os.path.dirname(run.store_path)
            if os.path.basename(parent).startswith("langneuron-sentences-"):
                shutil.rmtree(parent, ignore_errors=True)
    return means, torch.repeat_interleave(torch.arange(len(sources)), counts)


# ---------------------------------------------------------------------- from counters to statistics
def _sum_over_ranks(run: _Run, positive: torch.Tensor, sources: Sequence[CorpusSource], corpus_meta: dict,
                    device: torch.device) -> None:
    """Add up what each rank counted alone (float sums are already complete on every rank)."""
    for t in (positive, run.acc.n_tokens):
        all_reduce_to(t, device)
    _sum_truncated(sources, corpus_meta, device)


def _sum_truncated(sources: Sequence[CorpusSource], corpus_meta: dict, device: torch.device) -> None:
    """Sum the ranks' counts of truncated texts into ``corpus_meta``."""
    trunc = torch.tensor([corpus_meta[s.lang]["truncated"] for s in sources], dtype=torch.int64)
    all_reduce_to(trunc, device)
    for s, t in zip(sources, trunc.tolist()):
        corpus_meta[s.lang]["truncated"] = t


def _collect(run: _Run, sources: Sequence[CorpusSource], sites: NeuronSites, corpus_meta: dict) -> ActivationStats:
    """Gather the counters (over ranks, onto the CPU) into the statistics object with its metadata."""
    acc, config = run.acc, run.config
    device = comm_device(run.world)
    totals = acc.totals(device)  # [K, L, N] each
    sentence_means = sentence_lang = None
    if config.sentence_means:
        sentence_means, sentence_lang = _finish_store(run, sources, corpus_meta)
    if run.world > 1:
        _sum_over_ranks(run, totals["positive"], sources, corpus_meta, device)
    nonfinite = [x for part in gather_objects(run.nonfinite) for x in part]
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
            **({"nonfinite": sorted(nonfinite, key=lambda x: x["first_sentence"])} if nonfinite else {}),
        },
    )
