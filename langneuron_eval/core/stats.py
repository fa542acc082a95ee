"""Activation statistics per (language, layer, neuron): the one input every detector reads.

File format (safetensors, documented in docs/file_formats.md):

==================== ============ =======  ==================================================
tensor               shape        dtype    meaning
==================== ============ =======  ==================================================
n_tokens             [K]          int64    counted tokens per language (no padding; see below)
positive_counts      [K, L, N]    int64    tokens whose activation is > 0
activation_sums      [K, L, N]    float64  sum of activations (absent in imported count-only files)
activation_sq_sums   [K, L, N]    float64  sum of squared activations (present iff activation_sums is)
sentence_means       [S, L, N]    float32  optional, schema version 1: each sentence's mean activation
sentence_lang        [S]          int64    optional: language index of each sentence
==================== ============ =======  ==================================================

Schema version 2 (``record --sentence-means``) keeps the per-sentence means out of this file, in a sidecar
``<stem>.sentences.safetensors`` beside it (core/sentence_store.py: written row by row while recording,
memory-mapped when read, float32/float16/bfloat16); the header's ``sentence_means_file`` gives its sha256,
shape and dtype, and ``content_sha256`` covers that sha256. Its name follows the statistics file's, so a
renamed statistics file needs its sidecar renamed alike. Version 1 files (inline float32 means, or
none) still load; statistics without per-sentence means are still written as version 1.

The safetensors header carries one metadata entry, ``langneuron``, holding JSON with the schema
name and version, the languages in order, the model fingerprint and site, the corpus hashes,
versions and seeds, and ``content_sha256`` (a hash over every tensor's bytes) checked on load.
``metadata.record_config.count_special_tokens`` says whether the positions of tokens the tokenizer added
(BOS, ...) were counted; files written before that option existed lack it and counted every position.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.moe_units import ROUTING_TENSORS, check_moe_stats, stats_denominators
from langneuron_eval.core.sentence_store import (
    SentenceMeansFile,
    SentenceMeansReader,
    StoreInfo,
    TensorSentenceMeans,
    copy_store,
    unit_quantiles,
)
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import atomic_path, canonical_json, check_readable, check_writable

SCHEMA = "langneuron-eval/activation-stats"
SCHEMA_VERSION = 2  # written only when the per-sentence means live in a sidecar file; else version 1
MOE_SCHEMA_VERSION = 3  # written when the file holds mixture-of-experts routing statistics (docs/moe.md)
READABLE_VERSIONS = (1, 2, MOE_SCHEMA_VERSION)
SIDECAR_SUFFIX = ".sentences.safetensors"
_REQUIRED = ("n_tokens", "positive_counts", "activation_sums", "activation_sq_sums")
_SUMS = ("activation_sums", "activation_sq_sums")  # optional as a pair: reference files hold counts only
_DTYPES = {"n_tokens": torch.int64, "positive_counts": torch.int64, "activation_sums": torch.float64,
           "activation_sq_sums": torch.float64, "sentence_means": torch.float32, "sentence_lang": torch.int64,
           **ROUTING_TENSORS}


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """Hash of the tensors' names, dtypes, shapes and bytes in a fixed order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def sidecar_path(stats_path: str | os.PathLike) -> Path:
    """Where the per-sentence means of the statistics file ``stats_path`` live: ``<stem>.sentences.safetensors``."""
    p = Path(stats_path)
    return p.with_name(p.name[: -len(p.suffix)] + SIDECAR_SUFFIX if p.suffix else p.name + SIDECAR_SUFFIX)


def _with_sidecar(digest: str, info: StoreInfo) -> str:
    """The content hash of statistics whose per-sentence means are in a sidecar: covers the sidecar's sha256."""
    return hashlib.sha256(f"{digest}|sentence_means_file|{info.sha256}".encode()).hexdigest()


def _open_sidecar(path: Path, header: dict) -> SentenceMeansFile | None:
    """The sidecar a version-2 header names (next to ``path``), checked against the reference; None if none.

    Its content hash is checked before its first read (SentenceMeansFile.verify), not here: detectors that
    never read the per-sentence means do not pay for reading gigabytes."""
    ref = header.get("sentence_means_file")
    if ref is None:
        return None
    side = sidecar_path(path)
    info = StoreInfo.from_dict({**ref, "file": side.name})
    if not side.is_file():
        raise LangNeuronError(f"statistics {path} keep their per-sentence means in {side}, which is missing; "
                              "copy it next to the statistics file")
    reader = SentenceMeansFile(side, sha256=info.sha256)
    if list(reader.shape) != info.shape or reader.dtype.name != info.dtype:
        raise LangNeuronError(f"{side} holds {list(reader.shape)} {reader.dtype.name} sentence means, the "
                              f"statistics {path} expect {info.shape} {info.dtype}")
    return reader


@dataclass
class ActivationStats:
    """Streaming sufficient statistics of FFN activations, per language."""

    languages: list[str]
    n_tokens: torch.Tensor  # [K] int64
    positive_counts: torch.Tensor  # [K, L, N] int64
    activation_sums: torch.Tensor | None  # [K, L, N] float64; None: imported counts only
    activation_sq_sums: torch.Tensor | None  # [K, L, N] float64; None with activation_sums
    fingerprint: ModelFingerprint | None = None
    sentence_means: torch.Tensor | SentenceMeansReader | None = None  # [S, L, N]: in memory, or a file reader
    sentence_lang: torch.Tensor | None = None  # [S] int64
    metadata: dict[str, Any] = field(default_factory=dict)
    # mixture-of-experts models: expert_routed_tokens [K, L_moe, E] int64, expert_routing_weight_sums float64
    routing: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ shape and sanity
    @property
    def num_languages(self) -> int:
        return len(self.languages)

    @property
    def num_layers(self) -> int:
        return int(self.positive_counts.shape[1])

    @property
    def intermediate_size(self) -> int:
        return int(self.positive_counts.shape[2])

    @property
    def has_sentences(self) -> bool:
        return self.sentence_means is not None

    @property
    def counts_special_tokens(self) -> bool:
        """Whether tokens the tokenizer added (BOS, ...) were counted; files from before the option did count them."""
        return bool((self.metadata.get("record_config") or {}).get("count_special_tokens", True))

    @property
    def has_activation_sums(self) -> bool:
        """False for statistics imported from count-only reference files (``langneuron import-stats``)."""
        return self.activation_sums is not None

    def validate(self) -> None:
        """Reject inconsistent or impossible statistics with a message naming the problem."""
        K = len(self.languages)
        if K == 0:
            raise LangNeuronError("activation statistics have no languages")
        if len(set(self.languages)) != K:
            raise LangNeuronError(f"duplicate languages in statistics: {self.languages}")
        if self.positive_counts.dim() != 3 or self.positive_counts.shape[0] != K:
            raise LangNeuronError(
                f"positive_counts must have shape [K={K}, layers, neurons], got {list(self.positive_counts.shape)}")
        shape = tuple(self.positive_counts.shape)
        if (self.activation_sums is None) != (self.activation_sq_sums is None):
            raise LangNeuronError("activation_sums and activation_sq_sums must be given together")
        for name in _SUMS if self.activation_sums is not None else ():
            t = getattr(self, name)
            if tuple(t.shape) != shape:
                raise LangNeuronError(f"{name} has shape {list(t.shape)}, expected {list(shape)}")
        if tuple(self.n_tokens.shape) != (K,):
            raise LangNeuronError(f"n_tokens has shape {list(self.n_tokens.shape)}, expected [{K}]")
        for name in _REQUIRED:
            t = getattr(self, name)
            if t is not None and t.is_floating_point() and not torch.isfinite(t).all():
                raise LangNeuronError(f"{name} contains NaN or infinite values")
        if (self.n_tokens < 0).any() or (self.positive_counts < 0).any():
            raise LangNeuronError("negative token or activation counts in statistics")
        check_moe_stats(self)
        if (self.positive_counts > stats_denominators(self)).any():
            raise LangNeuronError("positive_counts exceed n_tokens (or, in an expert, its routed tokens) for some "
                                  "language")
        if (self.sentence_means is None) != (self.sentence_lang is None):
            raise LangNeuronError("sentence_means and sentence_lang must be given together")
        if self.sentence_means is not None:
            S = self.sentence_lang.shape[0]
            if tuple(self.sentence_means.shape) != (S, shape[1], shape[2]):
                raise LangNeuronError(
                    f"sentence_means has shape {list(self.sentence_means.shape)}, expected [{S}, {shape[1]}, {shape[2]}]")
            if S and ((self.sentence_lang < 0).any() or (self.sentence_lang >= K).any()):
                raise LangNeuronError("sentence_lang holds language indices outside the language list")
            # a file is checked block by block as it is read (check_finite): a full pass here would read it twice
            if isinstance(self.sentence_means, torch.Tensor) and not torch.isfinite(self.sentence_means).all():
                raise LangNeuronError("sentence_means contains NaN or infinite values")
        if self.fingerprint is not None and (
            self.fingerprint.num_layers != shape[1] or self.fingerprint.intermediate_size != shape[2]
        ):
            raise LangNeuronError(
                f"statistics shape [layers={shape[1]}, neurons={shape[2]}] does not match their fingerprint "
                f"({self.fingerprint.describe()})")

    def lang_index(self, lang: str) -> int:
        try:
            return self.languages.index(lang)
        except ValueError:
            raise LangNeuronError(f"language {lang!r} is not in the statistics (have {', '.join(self.languages)})") from None

    # ------------------------------------------------------------------ derived quantities
    def activation_probability(self) -> torch.Tensor:
        """p[k, l, n] = P(activation > 0 | language k); 0 for a language with no tokens.

        The reference code divides by the token count; a language with no tokens would give 0/0, which we define as 0.
        """
        n = stats_denominators(self, min_support=True)  # MoE: tokens routed to the unit's expert (docs/moe.md)
        p = self.positive_counts.to(torch.float64) / n.clamp(min=1)
        return torch.where(n > 0, p, torch.zeros_like(p)).to(torch.float32)

    def _require_sums(self) -> None:
        if self.activation_sums is None:
            raise LangNeuronError("these statistics hold activation counts only (imported from reference files), "
                                  "not activation sums; mean and std need statistics from `langneuron record`")

    def activation_mean(self) -> torch.Tensor:
        """Mean activation per (language, layer, neuron) over tokens, 0 where a language has no tokens."""
        self._require_sums()
        n = stats_denominators(self).clamp(min=1)
        return self.activation_sums / n

    def unit_values(self, lang: str, units: list[tuple[int, int]], percentiles: tuple[int, ...] = (10, 25, 75, 90, 95, 99)
                    ) -> dict[str, list[float]]:
        """Per-neuron activation statistics of ``lang`` for the units of a neuron set (used by ``activate``).

        ``mean`` is the token-level mean (LAPE's "average activation value"); with per-sentence means also
        ``median`` (Kojima et al.'s forcing value: median over the language's sentences) and ``pNN``.
        """
        if not units:
            return {}
        k = self.lang_index(lang)
        layer = torch.tensor([u[0] for u in units])
        unit = torch.tensor([u[1] for u in units])
        out = {"mean": self.activation_mean()[k, layer, unit].tolist()} if self.has_activation_sums else {}
        if self.sentence_means is not None and bool((self.sentence_lang == k).any()):
            rows = np.nonzero((self.sentence_lang == k).numpy())[0]
            flat = (layer * self.intermediate_size + unit).numpy()
            # torch.quantile over the language's sentences, a block of units at a time (memory budget)
            q = unit_quantiles(self.sentence_reader(), rows, flat, (0.5, *(p / 100 for p in percentiles)))
            out["median"] = q[0].tolist()
            for i, p in enumerate(percentiles):
                out[f"p{p}"] = q[i + 1].tolist()
        return out

    def sentence_reader(self) -> SentenceMeansReader:
        """The per-sentence means as a block reader, whether they are in memory or in a sidecar file."""
        if self.sentence_means is None:
            raise LangNeuronError("these statistics hold no per-sentence means (record them with --sentence-means)")
        if isinstance(self.sentence_means, torch.Tensor):
            return TensorSentenceMeans(self.sentence_means)
        return self.sentence_means

    def sentence_tensor(self) -> torch.Tensor | None:
        """The per-sentence means ``[S, L, N]`` as one float32 tensor in memory (small statistics only)."""
        if self.sentence_means is None or isinstance(self.sentence_means, torch.Tensor):
            return self.sentence_means
        return self.sentence_means.to_tensor()

    def subset_languages(self, langs: list[str]) -> ActivationStats:
        idx = [self.lang_index(x) for x in langs]
        sm = sl = None
        if self.sentence_means is not None:
            keep = torch.isin(self.sentence_lang, torch.tensor(idx))
            remap = torch.full((self.num_languages,), -1, dtype=torch.int64)
            remap[torch.tensor(idx)] = torch.arange(len(idx))
            sl = remap[self.sentence_lang[keep]]
            sm = (self.sentence_means[keep] if isinstance(self.sentence_means, torch.Tensor)
                  else self.sentence_means.subset(np.nonzero(keep.numpy())[0]))
        sums = (self.activation_sums[idx], self.activation_sq_sums[idx]) if self.has_activation_sums else (None, None)
        routing = None if self.routing is None else {k: v[idx] for k, v in self.routing.items()}
        return ActivationStats(list(langs), self.n_tokens[idx], self.positive_counts[idx], *sums,
                               self.fingerprint, sm, sl, dict(self.metadata), routing)

    # ------------------------------------------------------------------ (de)serialisation
    def tensors(self) -> dict[str, torch.Tensor]:
        out = {name: getattr(self, name).to(_DTYPES[name]).contiguous() for name in _REQUIRED
               if getattr(self, name) is not None}
        if self.sentence_means is not None:
            if isinstance(self.sentence_means, torch.Tensor):
                out["sentence_means"] = self.sentence_means.to(torch.float32).contiguous()
            out["sentence_lang"] = self.sentence_lang.to(torch.int64).contiguous()
        for name, t in (self.routing or {}).items():
            out[name] = t.to(_DTYPES[name]).contiguous()
        return out

    def _sidecar_info(self) -> StoreInfo | None:
        """The sidecar reference of file-backed per-sentence means (None when they are in memory or absent)."""
        m = self.sentence_means
        if m is None or isinstance(m, torch.Tensor):
            return None
        if not isinstance(m, SentenceMeansFile):
            raise LangNeuronError("per-sentence means selected from a file must be saved to a file of their own "
                                  "first (ActivationStats.save does this)")
        return StoreInfo(m.path.name, m.sha256(), list(m.shape), m.dtype.name)

    def header(self) -> dict[str, Any]:
        tensors = self.tensors()
        sidecar = self._sidecar_info()
        digest = content_hash(tensors)
        out = {
            "schema": SCHEMA,
            "schema_version": (MOE_SCHEMA_VERSION if self.routing is not None else
                               1 if sidecar is None else SCHEMA_VERSION),
            "languages": list(self.languages),
            "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
            "metadata": self.metadata,
            "content_sha256": digest if sidecar is None else _with_sidecar(digest, sidecar),
        }
        if sidecar is not None:  # no file name: it is always sidecar_path(stats file), so names do not change bytes
            out["sentence_means_file"] = {k: v for k, v in sidecar.to_dict().items() if k != "file"}
        return out

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write the statistics; file-backed per-sentence means go to ``<stem>.sentences.safetensors`` beside them
        (already there when ``record`` wrote them for this path; otherwise copied, row block by row block)."""
        from safetensors.torch import save_file

        stats = self
        if self.sentence_means is not None and not isinstance(self.sentence_means, torch.Tensor):
            side = sidecar_path(path)
            m = self.sentence_means
            if not (isinstance(m, SentenceMeansFile) and m.path.resolve() == side.resolve()):
                check_writable(side, force)
                stats = dataclasses.replace(self, sentence_means=copy_store(m, side))
        with atomic_path(path, force) as tmp:
            save_file(stats.tensors(), str(tmp), metadata={"langneuron": canonical_json(stats.header())})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ActivationStats:
        from safetensors import safe_open

        path = check_readable(path, "statistics file")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types for truncated or foreign files
            raise LangNeuronError(f"statistics file {path} is not a readable safetensors file ({e})") from None
        if "langneuron" not in meta:
            raise LangNeuronError(f"{path} is a safetensors file but not langneuron-eval statistics (no 'langneuron' metadata)")
        try:
            header = json.loads(meta["langneuron"])
        except json.JSONDecodeError:
            raise LangNeuronError(f"statistics file {path} has malformed metadata JSON") from None
        if header.get("schema") != SCHEMA:
            raise LangNeuronError(f"{path}: unexpected schema {header.get('schema')!r}, expected {SCHEMA!r}")
        if header.get("schema_version") not in READABLE_VERSIONS:
            raise LangNeuronError(
                f"{path}: statistics schema version {header.get('schema_version')} is not supported (this version "
                f"reads {', '.join(map(str, READABLE_VERSIONS))})")
        missing = [k for k in _REQUIRED if k not in tensors and not (k in _SUMS and not any(s in tensors for s in _SUMS))]
        if missing:
            raise LangNeuronError(f"statistics file {path} lacks tensors: {', '.join(missing)}")
        sidecar = _open_sidecar(path, header)
        digest = content_hash(tensors)
        if sidecar is not None:
            digest = _with_sidecar(digest, StoreInfo.from_dict({**header["sentence_means_file"], "file": ""}))
        if digest != header.get("content_sha256"):
            raise LangNeuronError(f"statistics file {path} failed its content hash check (modified or corrupted)")
        for name, t in tensors.items():
            if name in _DTYPES and t.dtype != _DTYPES[name]:
                raise LangNeuronError(f"{path}: tensor {name} has dtype {t.dtype}, expected {_DTYPES[name]}")
        fp = header.get("fingerprint")
        return cls(
            languages=list(header.get("languages") or []),
            n_tokens=tensors["n_tokens"],
            positive_counts=tensors["positive_counts"],
            activation_sums=tensors.get("activation_sums"),
            activation_sq_sums=tensors.get("activation_sq_sums"),
            fingerprint=ModelFingerprint.from_dict(fp) if fp else None,
            sentence_means=tensors.get("sentence_means") if sidecar is None else sidecar,
            sentence_lang=tensors.get("sentence_lang"),
            metadata=header.get("metadata") or {},
            routing={k: tensors[k] for k in ROUTING_TENSORS if k in tensors} or None,
        )

    def sha256(self) -> str:
        return self.header()["content_sha256"]
