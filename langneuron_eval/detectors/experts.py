"""Language-specific experts of a mixture-of-experts model: LAPE's rule applied to routing probabilities.

The unit is a whole routed expert ``(decoder layer, expert)``. Its statistic is the routing probability
r[k, l, e] = tokens of language k routed to expert e of MoE layer l / tokens of language k (from the
statistics' ``expert_routed_tokens``; each token goes to top-k experts, so r sums to k over experts). Then,
as in LAPE (docs/methods.md §2) with r in place of the activation probability:

1. r' = r / ||r||_1 over languages; entropy H = -sum_k r'_k ln r'_k;
2. tau_f = the ``filter_rate`` quantile of all K x L_moe x E routing probabilities; an expert no language
   reaches above tau_f is never selected;
3. the ``max(1, round(L_moe * E * top_rate))`` experts with the lowest entropy are kept (ties: lower index);
4. tau_b likewise with ``activation_bar_ratio``; a kept expert belongs to every language with r > tau_b.

``per_language_quota=true`` instead selects that many experts per language among those whose largest
routing probability is that language's. The neuron file is of kind ``experts``: interventions ban
(``deactivate``), force (``activate``) or bias (``scale``: ln(strength)) the router towards them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from langneuron_eval.core.moe_units import EXPERT_KIND, moe_units
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.base import DetectionResult, Detector, check_rate
from langneuron_eval.detectors.registry import register_detector
from langneuron_eval.detectors.scoring import kth_threshold, lape_entropy, lowest_k, snap
from langneuron_eval.errors import LangNeuronError


@dataclass
class ExpertLapeParams:
    """Parameters of the language-specific-expert detector."""

    top_rate: float = field(default=0.05, metadata={"help": "fraction of all L_moe*E experts to keep (at least 1)"})
    filter_rate: float = field(default=0.9, metadata={"help": "quantile of pooled routing probabilities an expert "
                                                              "must exceed in some language"})
    activation_bar_ratio: float = field(default=0.9, metadata={"help": "quantile a language's routing probability "
                                                                        "must exceed to get the expert"})
    per_language_quota: bool = field(default=False, metadata={
        "help": "select top_rate*L*E experts per language among experts whose largest probability is that language's"})

    def __post_init__(self) -> None:
        check_rate("top_rate", self.top_rate)
        check_rate("filter_rate", self.filter_rate)
        check_rate("activation_bar_ratio", self.activation_bar_ratio)


def routing_probabilities(stats: ActivationStats) -> torch.Tensor:
    """[U = L_moe * E, K] share of each language's tokens routed to each expert (row i*E + e)."""
    if stats.routing is None or moe_units(stats.fingerprint) is None:
        raise LangNeuronError("the expert detector needs statistics of a mixture-of-experts model (recorded with "
                              "this version: they hold expert_routed_tokens)")
    routed = stats.routing["expert_routed_tokens"].double()  # [K, L_moe, E]
    r = routed / stats.n_tokens.double().clamp(min=1)[:, None, None]
    return r.reshape(r.shape[0], -1).T.contiguous().float()  # [U, K]


@register_detector("lape_experts")
class ExpertLapeDetector(Detector):
    """Language-specific experts: lowest entropy of the routing probabilities over languages (LAPE's rule)."""

    name = "lape_experts"
    Params = ExpertLapeParams

    def detect(self, stats: ActivationStats, params: ExpertLapeParams) -> DetectionResult:
        r = routing_probabilities(stats)  # [U, K]
        units = moe_units(stats.fingerprint)
        E, U = units.num_experts, r.shape[0]
        tau_f, tau_b = kth_threshold(r, params.filter_rate), kth_threshold(r, params.activation_bar_ratio)
        ent = snap(lape_entropy(r))
        ent = torch.where((r > tau_f).any(dim=1), ent, torch.full_like(ent, float("inf")))
        n = max(1, round(U * params.top_rate))
        above = r > tau_b  # [U, K]
        langs: dict[str, list[tuple[int, int]]] = {}
        if not params.per_language_quota:
            sel = lowest_k(ent, n)
            for k, lang in enumerate(stats.languages):
                langs[lang] = self._pairs(sel[above[sel, k]], units.moe_layers, E)
        else:
            candidates = (r == r.max(dim=1, keepdim=True).values) & above
            for k, lang in enumerate(stats.languages):
                langs[lang] = self._pairs(lowest_k(ent, n, eligible=candidates[:, k]), units.moe_layers, E)
        share = {lang: {f"{layer}:{e}": round(float(r[units.moe_layers.index(layer) * E + e, k]), 6)
                        for layer, e in langs[lang]} for k, lang in enumerate(stats.languages)}
        extra = {"tau_filter": tau_f, "tau_bar": tau_b, "n_target": n,
                 "n_passing_filter": int(torch.isfinite(ent).sum()), "routing_probability": share}
        return DetectionResult(langs, extra, kind=EXPERT_KIND)

    @staticmethod
    def _pairs(flat: torch.Tensor, moe_layers: tuple[int, ...], E: int) -> list[tuple[int, int]]:
        """Flat expert rows (MoE layer index * E + expert) -> (decoder layer, expert)."""
        return [(moe_layers[u // E], u % E) for u in flat.tolist()]
