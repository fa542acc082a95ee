"""Baselines from the LAPE paper's comparison: random selection (RS) and activation probability (LAP).

``random``
    For each language, as many units as a reference method assigns to it (default: ``lape`` with its
    defaults; or the sets of an existing neuron file, ``reference_neurons``), drawn uniformly without
    replacement from all L*N units -- or, with ``per_layer``, as many units in each layer as the
    reference has there, drawn uniformly within that layer (the control of bench-detector's random
    floor: a random set of the same shape as the tested one). Each language has its own
    ``torch.Generator`` seeded from ``(seed, language code)``, so a language's draw does not depend
    on which other languages are in the statistics or on their order.
``lap``
    Per language, the ``round(L*N * top_rate)`` units with the highest activation probability for that
    language, among units with p > 0 (a language without tokens gets none); ties: lower flat index.
    This is "lowest entropy" replaced by "highest probability" and applied per language, so the sets
    are dominated by units that fire often for every language -- which is what the baseline is meant
    to show. The paper's exact LAP rule is not in its released code (docs/methods.md §5).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import torch

from langneuron_eval.core.moe_units import moe_units
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.base import DetectionResult, Detector, check_rate, normalize_result
from langneuron_eval.detectors.registry import get_detector, register_detector
from langneuron_eval.detectors.scoring import highest_k, to_units, unit_probs
from langneuron_eval.errors import LangNeuronError


def _parse_reference_params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LangNeuronError(f"reference_params item {item!r} is not NAME=VALUE (use 'a=1,b=2')")
        out[name.strip()] = value.strip()
    return out


@dataclass
class RandomParams:
    """Random-selection baseline parameters."""

    reference: str = field(default="lape", metadata={"help": "method whose per-language counts are matched"})
    reference_params: str = field(default="", metadata={"help": "its parameters as 'name=value,name=value'"})
    seed: int = field(default=0, metadata={"help": "random seed (combined with each language code)"})
    per_layer: bool = field(default=False, metadata={
        "help": "match the reference's counts in every layer, not only per language"})
    reference_neurons: str = field(default="", metadata={
        "help": "a neuron file whose sets give the counts (instead of running the reference method)"})

    def __post_init__(self) -> None:
        _parse_reference_params(self.reference_params)
        if self.reference == "random" and not self.reference_neurons:
            raise LangNeuronError("the random baseline cannot use itself as reference")


def language_generator(seed: int, lang: str) -> torch.Generator:
    """A generator seeded from the seed and the language code (stable across runs and platforms)."""
    digest = hashlib.sha256(f"{seed}\0{lang}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _real_units(stats: ActivationStats) -> torch.Tensor:
    """Flat indices of the units a draw may pick: all of them, except the padding of an MoE model's layers."""
    units = moe_units(stats.fingerprint)
    N = stats.intermediate_size
    if units is None:
        return torch.arange(stats.num_layers * N)
    return torch.cat([layer * N + torch.arange(w) for layer, w in enumerate(units.layer_widths)])


@register_detector("random")
class RandomDetector(Detector):
    """Random selection: per-language counts of a reference method, units drawn uniformly (seeded)."""

    name = "random"
    Params = RandomParams

    def detect(self, stats: ActivationStats, params: RandomParams) -> DetectionResult:
        ref_sets = _reference_sets(stats, params)
        U, N = stats.num_layers * stats.intermediate_size, stats.intermediate_size
        real = _real_units(stats)  # [U'] flat indices of units that exist (MoE layers are padded to one width)
        langs = {}
        counts = {}
        for lang in stats.languages:
            ref = ref_sets.get(lang, [])
            counts[lang] = len(ref)
            g = language_generator(params.seed, lang)
            if params.per_layer:
                langs[lang] = _draw_per_layer(Counter(layer for layer, _ in ref), real, N, g)
                continue
            flat = torch.randperm(U, generator=g)
            flat = flat[torch.isin(flat, real)][:len(ref)] if real.numel() < U else flat[:len(ref)]
            langs[lang] = to_units(flat, N)
        return DetectionResult(langs, {"reference": params.reference_neurons or params.reference,
                                       "reference_counts": counts, "per_layer": params.per_layer})


def _reference_sets(stats: ActivationStats, params: RandomParams) -> dict[str, list[tuple[int, int]]]:
    """The sets whose counts a draw matches: the neuron file ``reference_neurons``, or the reference method's."""
    if not params.reference_neurons:
        ref = get_detector(params.reference)
        result = ref.detect(stats, ref.make_params(_parse_reference_params(params.reference_params)))
        return normalize_result(result, params.reference).languages
    nf = NeuronFile.load(params.reference_neurons)
    if nf.kind != "neurons":
        raise LangNeuronError(f"{params.reference_neurons} holds whole experts; the random baseline draws neurons")
    fp = stats.fingerprint
    if fp is not None and (nf.fingerprint.num_layers, nf.fingerprint.intermediate_size) != (
            fp.num_layers, fp.intermediate_size):
        raise LangNeuronError(f"{params.reference_neurons} was made for another model shape "
                              f"({nf.fingerprint.num_layers} layers x {nf.fingerprint.intermediate_size} units; the "
                              f"statistics have {fp.num_layers} x {fp.intermediate_size})")
    return nf.languages


def _draw_per_layer(per_layer: Counter, real: torch.Tensor, N: int, g: torch.Generator) -> list[tuple[int, int]]:
    """``per_layer[l]`` units drawn uniformly among layer l's real units, layer after layer from one generator."""
    out: list[tuple[int, int]] = []
    for layer in sorted(per_layer):
        pool = real[(real >= layer * N) & (real < (layer + 1) * N)] - layer * N  # [units of this layer]
        pick = pool[torch.randperm(pool.numel(), generator=g)[:per_layer[layer]]]
        out += [(layer, int(u)) for u in pick.sort().values]
    return out


@dataclass
class LapParams:
    """LAP baseline parameters."""

    top_rate: float = field(default=0.01, metadata={"help": "fraction of all L*N units per language"})

    def __post_init__(self) -> None:
        check_rate("top_rate", self.top_rate)


@register_detector("lap")
class LapDetector(Detector):
    """LAP: per language, the units with the highest activation probability (baseline)."""

    name = "lap"
    Params = LapParams

    def detect(self, stats: ActivationStats, params: LapParams) -> DetectionResult:
        p = unit_probs(stats)  # [U, K]
        n = round(p.shape[0] * params.top_rate)
        langs = {}
        for k, lang in enumerate(stats.languages):
            sel = highest_k(p[:, k], n, eligible=p[:, k] > 0)
            langs[lang] = to_units(sel, stats.intermediate_size)
        return DetectionResult(langs, {"n_per_language": n})
