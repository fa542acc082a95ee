"""Activation statistics per (language, layer, neuron): the one input every detector reads.

File format (safetensors, documented in docs/file_formats.md):

==================== ============ =======  ==================================================
tensor               shape        dtype    meaning
==================== ============ =======  ==================================================
n_tokens             [K]          int64    counted tokens per language (no padding; see below)
positive_counts      [K, L, N]    int64    tokens whose activation is > 0
activation_sums      [K, L, N]    float64  sum of activations (absent in imported count-only files)
activation_sq_sums   [K, L, N]    float64  sum of squared activations (present iff activation_sums is)
sentence_means       [S, L, N]    float32  optional: mean activation of each sentence (Kojima et al.)
sentence_lang        [S]          int64    optional: language index of each sentence
==================== ============ =======  ==================================================

The safetensors header carries one metadata entry, ``langneuron``, holding JSON with the schema
name and version, the languages in order, the model fingerprint and site, the corpus hashes,
versions and seeds, and ``content_sha256`` (a hash over every tensor's bytes) checked on load.
``metadata.record_config.count_special_tokens`` says whether the positions of tokens the tokenizer added
(BOS, ...) were counted; files written before that option existed lack it and counted every position.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import atomic_path, canonical_json, check_readable

SCHEMA = "langneuron-eval/activation-stats"
SCHEMA_VERSION = 1
_REQUIRED = ("n_tokens", "positive_counts", "activation_sums", "activation_sq_sums")
_SUMS = ("activation_sums", "activation_sq_sums")  # optional as a pair: reference files hold counts only
_DTYPES = {"n_tokens": torch.int64, "positive_counts": torch.int64, "activation_sums": torch.float64,
           "activation_sq_sums": torch.float64, "sentence_means": torch.float32, "sentence_lang": torch.int64}


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """Hash of the tensors' names, dtypes, shapes and bytes in a fixed order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class ActivationStats:
    """Streaming sufficient statistics of FFN activations, per language."""

    languages: list[str]
    n_tokens: torch.Tensor  # [K] int64
    positive_counts: torch.Tensor  # [K, L, N] int64
    activation_sums: torch.Tensor | None  # [K, L, N] float64; None: imported counts only
    activation_sq_sums: torch.Tensor | None  # [K, L, N] float64; None with activation_sums
    fingerprint: ModelFingerprint | None = None
    sentence_means: torch.Tensor | None = None  # [S, L, N] float32
    sentence_lang: torch.Tensor | None = None  # [S] int64
    metadata: dict[str, Any] = field(default_factory=dict)

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
        if (self.positive_counts > self.n_tokens[:, None, None]).any():
            raise LangNeuronError("positive_counts exceed n_tokens for some language")
        if (self.sentence_means is None) != (self.sentence_lang is None):
            raise LangNeuronError("sentence_means and sentence_lang must be given together")
        if self.sentence_means is not None:
            S = self.sentence_lang.shape[0]
            if tuple(self.sentence_means.shape) != (S, shape[1], shape[2]):
                raise LangNeuronError(
                    f"sentence_means has shape {list(self.sentence_means.shape)}, expected [{S}, {shape[1]}, {shape[2]}]")
            if S and ((self.sentence_lang < 0).any() or (self.sentence_lang >= K).any()):
                raise LangNeuronError("sentence_lang holds language indices outside the language list")
            if not torch.isfinite(self.sentence_means).all():
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
        n = self.n_tokens.to(torch.float64)[:, None, None]
        p = self.positive_counts.to(torch.float64) / n.clamp(min=1)
        return p.to(torch.float32)

    def _require_sums(self) -> None:
        if self.activation_sums is None:
            raise LangNeuronError("these statistics hold activation counts only (imported from reference files), "
                                  "not activation sums; mean and std need statistics from `langneuron record`")

    def activation_mean(self) -> torch.Tensor:
        """Mean activation per (language, layer, neuron) over tokens, 0 where a language has no tokens."""
        self._require_sums()
        n = self.n_tokens.to(torch.float64)[:, None, None].clamp(min=1)
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
            rows = self.sentence_means[self.sentence_lang == k][:, layer, unit].double()  # [S_k, n]
            out["median"] = torch.quantile(rows, 0.5, dim=0).tolist()
            for p in percentiles:
                out[f"p{p}"] = torch.quantile(rows, p / 100, dim=0).tolist()
        return out

    def subset_languages(self, langs: list[str]) -> ActivationStats:
        idx = [self.lang_index(x) for x in langs]
        sm = sl = None
        if self.sentence_means is not None:
            keep = torch.isin(self.sentence_lang, torch.tensor(idx))
            remap = torch.full((self.num_languages,), -1, dtype=torch.int64)
            remap[torch.tensor(idx)] = torch.arange(len(idx))
            sm, sl = self.sentence_means[keep], remap[self.sentence_lang[keep]]
        sums = (self.activation_sums[idx], self.activation_sq_sums[idx]) if self.has_activation_sums else (None, None)
        return ActivationStats(list(langs), self.n_tokens[idx], self.positive_counts[idx], *sums,
                               self.fingerprint, sm, sl, dict(self.metadata))

    # ------------------------------------------------------------------ (de)serialisation
    def tensors(self) -> dict[str, torch.Tensor]:
        out = {name: getattr(self, name).to(_DTYPES[name]).contiguous() for name in _REQUIRED
               if getattr(self, name) is not None}
        if self.sentence_means is not None:
            out["sentence_means"] = self.sentence_means.to(torch.float32).contiguous()
            out["sentence_lang"] = self.sentence_lang.to(torch.int64).contiguous()
        return out

    def header(self) -> dict[str, Any]:
        tensors = self.tensors()
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "languages": list(self.languages),
            "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
            "metadata": self.metadata,
            "content_sha256": content_hash(tensors),
        }

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        from safetensors.torch import save_file

        with atomic_path(path, force) as tmp:
            save_file(self.tensors(), str(tmp), metadata={"langneuron": canonical_json(self.header())})
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
        if header.get("schema_version") != SCHEMA_VERSION:
            raise LangNeuronError(
                f"{path}: statistics schema version {header.get('schema_version')} is not supported (this version reads {SCHEMA_VERSION})")
        missing = [k for k in _REQUIRED if k not in tensors and not (k in _SUMS and not any(s in tensors for s in _SUMS))]
        if missing:
            raise LangNeuronError(f"statistics file {path} lacks tensors: {', '.join(missing)}")
        if content_hash(tensors) != header.get("content_sha256"):
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
            sentence_means=tensors.get("sentence_means"),
            sentence_lang=tensors.get("sentence_lang"),
            metadata=header.get("metadata") or {},
        )

    def sha256(self) -> str:
        return self.header()["content_sha256"]
