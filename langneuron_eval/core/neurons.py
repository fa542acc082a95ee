"""Neuron files: which (layer, neuron) units belong to each language, as versioned JSON.

Schema ``langneuron-eval/neurons`` version 1 (documented in docs/file_formats.md)::

    {
      "schema": "langneuron-eval/neurons", "schema_version": 1,
      "fingerprint": {"model_type": "llama", "num_layers": 32, "intermediate_size": 11008, "site": "act_out"},
      "detector": "lape", "params": {"top_rate": 0.01, ...},
      "languages": {"zh": [[0, 17], [31, 4090], ...], ...},      # sorted, unique
      "values": {"zh": {"mean": [0.31, ...], "median": [...]}},  # optional, aligned with languages[lang]
      "extra": {...},                                            # detector-specific (e.g. Zhang's classes)
      "provenance": {"stats_sha256": "...", "package_version": "...", "lm_eval_version": "...",
                     "versions": {"langneuron_eval": "...", "torch": "...", ...}, "seed": 0},
      "content_sha256": "..."                                    # over every other field, checked on load
    }

Version 2 is written for mixture-of-experts models only (dense files stay version 1, byte for byte): the
fingerprint carries a ``moe`` entry (the flat unit layout of docs/moe.md: in an MoE layer, unit
``e * F + j`` is unit ``j`` of expert ``e``, then the shared expert's units), and ``"kind": "experts"``
marks a file of whole experts, whose pairs are ``[decoder layer, expert]`` (the expert detector's output).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.moe_units import EXPERT_KIND, moe_units
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import canonical_json, read_json, sha256_bytes, write_json

SCHEMA = "langneuron-eval/neurons"
SCHEMA_VERSION = 1
MOE_SCHEMA_VERSION = 2  # files whose fingerprint has a mixture-of-experts layout
KINDS = ("neurons", EXPERT_KIND)


def _percentile(stat: str) -> float | None:
    """``median`` -> 50, ``pNN`` -> NN, anything else -> None (so ``p50`` and ``median`` name the same values)."""
    if stat == "median":
        return 50.0
    if stat.startswith("p"):
        try:
            return float(stat[1:])
        except ValueError:
            return None
    return None


@dataclass
class NeuronFile:
    """A detector's output: per-language neuron sets plus what is needed to apply and trust them."""

    fingerprint: ModelFingerprint
    detector: str
    languages: dict[str, list[tuple[int, int]]]
    params: dict[str, Any] = field(default_factory=dict)
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    kind: str = "neurons"  # "experts": pairs are (decoder layer, expert), whole experts of an MoE model

    def __post_init__(self) -> None:
        self.languages = {lang: sorted({(int(a), int(b)) for a, b in units}) for lang, units in self.languages.items()}
        self.validate()

    def validate(self) -> None:
        L, N = self.fingerprint.num_layers, self.fingerprint.intermediate_size
        if self.kind not in KINDS:
            raise LangNeuronError(f"unknown neuron-file kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind == EXPERT_KIND:
            self._validate_experts()
            return
        for lang, units in self.languages.items():
            for layer, unit in units:
                if not (0 <= layer < L and 0 <= unit < N):
                    raise LangNeuronError(
                        f"neuron ({layer}, {unit}) of language {lang!r} is out of range for {L} layers x {N} units")
        for lang, stats in self.values.items():
            if lang not in self.languages:
                raise LangNeuronError(f"values given for language {lang!r} which has no neuron list")
            for name, vals in stats.items():
                if len(vals) != len(self.languages[lang]):
                    raise LangNeuronError(
                        f"values[{lang!r}][{name!r}] has {len(vals)} entries for {len(self.languages[lang])} neurons")

    def _validate_experts(self) -> None:
        """Whole-expert files: every pair is (an MoE decoder layer, an expert index)."""
        units = moe_units(self.fingerprint)
        if units is None:
            raise LangNeuronError("a neuron file of kind 'experts' needs a mixture-of-experts fingerprint")
        for lang, pairs in self.languages.items():
            for layer, expert in pairs:
                if layer not in units.moe_layers or not 0 <= expert < units.num_experts:
                    raise LangNeuronError(f"expert ({layer}, {expert}) of language {lang!r} is not an expert of "
                                          f"this model (MoE layers {list(units.moe_layers)}, {units.num_experts} "
                                          "experts each)")

    # ------------------------------------------------------------------ access
    def units(self, lang: str) -> list[tuple[int, int]]:
        if lang not in self.languages:
            raise LangNeuronError(
                f"language {lang!r} is not in the neuron file (have {', '.join(self.languages) or 'none'})")
        return self.languages[lang]

    def by_layer(self, lang: str) -> dict[int, torch.Tensor]:
        """Neuron indices of ``lang`` grouped by layer, as LongTensors (the form hooks index with)."""
        out: dict[int, list[int]] = {}
        for layer, unit in self.units(lang):
            out.setdefault(layer, []).append(unit)
        return {layer: torch.tensor(u, dtype=torch.long) for layer, u in out.items()}

    def value_table(self, lang: str, stat: str) -> list[float]:
        """Per-neuron values of statistic ``stat`` for ``lang``; ``p50`` is the ``median``, ``p90.0`` is ``p90``."""
        have = self.values.get(lang, {})
        stat = next((name for name in have if _percentile(name) is not None
                     and _percentile(name) == _percentile(stat)), stat)
        if stat not in have:
            raise LangNeuronError(
                f"neuron file has no {stat!r} activation values for {lang!r} (has: {', '.join(have) or 'none'}); "
                "re-run `langneuron detect` on statistics recorded with --sentence-means for medians/percentiles, "
                "or use value=mean or a number")
        return have[stat]

    def counts(self) -> dict[str, int]:
        return {lang: len(u) for lang, u in self.languages.items()}

    def check_model(self, model_fp: ModelFingerprint) -> None:
        """Refuse a neuron file made for another model shape, naming both shapes."""
        mine = self.fingerprint
        if (mine.model_type, mine.num_layers, mine.intermediate_size, mine.segments, _moe_shape(mine)) != (
            model_fp.model_type, model_fp.num_layers, model_fp.intermediate_size, model_fp.segments,
            _moe_shape(model_fp),
        ):  # segments: linear_out units are not FFN units, even where the counts happen to agree
            raise LangNeuronError(
                f"neuron file was made for {mine.describe()}, but the model is {model_fp.describe()}")

    # ------------------------------------------------------------------ (de)serialisation
    def body(self) -> dict[str, Any]:
        moe = self.fingerprint.moe is not None
        return {
            "schema": SCHEMA,
            "schema_version": MOE_SCHEMA_VERSION if moe else SCHEMA_VERSION,
            **({"kind": self.kind} if moe else {}),
            "fingerprint": self.fingerprint.to_dict(),
            "detector": self.detector,
            "params": self.params,
            "languages": {k: [list(u) for u in v] for k, v in self.languages.items()},
            "values": self.values,
            "extra": self.extra,
            "provenance": self.provenance,
        }

    def sha256(self) -> str:
        return sha256_bytes(canonical_json(self.body()).encode("utf-8"))

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        try:
            return write_json(path, {**self.body(), "content_sha256": self.sha256()}, force=force)
        except ValueError as e:  # allow_nan=False: NaN values would make the file unreadable elsewhere
            raise LangNeuronError(f"cannot write neuron file {path}: {e}") from None

    @classmethod
    def from_dict(cls, d: Any, source: str = "neuron file") -> NeuronFile:
        if not isinstance(d, dict):
            raise LangNeuronError(f"{source} must hold a JSON object")
        if d.get("schema") != SCHEMA:
            raise LangNeuronError(f"{source}: unexpected schema {d.get('schema')!r}, expected {SCHEMA!r}")
        if d.get("schema_version") not in (SCHEMA_VERSION, MOE_SCHEMA_VERSION):
            raise LangNeuronError(f"{source}: schema version {d.get('schema_version')} is not supported (this "
                                  f"version reads {SCHEMA_VERSION} and {MOE_SCHEMA_VERSION})")
        if "content_sha256" in d:
            raw = {k: v for k, v in d.items() if k != "content_sha256"}
            if sha256_bytes(canonical_json(raw).encode("utf-8")) != d["content_sha256"]:
                raise LangNeuronError(f"{source} failed its content hash check (edited by hand or corrupted); "
                                      "remove the 'content_sha256' field to accept the edit")
        for key in ("fingerprint", "detector", "languages"):
            if key not in d:
                raise LangNeuronError(f"{source} lacks the required field {key!r}")
        langs = d["languages"]
        if not isinstance(langs, dict):
            raise LangNeuronError(f"{source}: 'languages' must map language codes to [[layer, neuron], ...] lists")
        parsed: dict[str, list[tuple[int, int]]] = {}
        for lang, units in langs.items():
            try:
                parsed[lang] = [(int(a), int(b)) for a, b in units]
            except (TypeError, ValueError):
                raise LangNeuronError(f"{source}: languages[{lang!r}] must be a list of [layer, neuron] pairs") from None
        return cls(
            fingerprint=ModelFingerprint.from_dict(d["fingerprint"]),
            detector=str(d["detector"]),
            languages=parsed,
            params=d.get("params") or {},
            values=d.get("values") or {},
            extra=d.get("extra") or {},
            provenance=d.get("provenance") or {},
            kind=str(d.get("kind") or "neurons"),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> NeuronFile:
        return cls.from_dict(read_json(path, "neuron file"), source=f"neuron file {path}")


def _moe_shape(fp: ModelFingerprint) -> tuple | None:
    """The parts of an MoE layout a neuron file must share with the model (top-k may differ: it is a setting)."""
    units = moe_units(fp)
    if units is None:
        return None
    return units.moe_layers, units.num_experts, units.expert_width, units.shared_width, units.layer_widths
