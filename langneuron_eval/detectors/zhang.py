"""Zhang et al. (NJUNLP, AAAI 2026): entropy minus lambda * max probability, and the ternary classes.

Rule (docs/methods.md §4; NJUNLP identify.py / autosweep.py):

* score = H(p')/ln K - lambda * max_k p_k / c_K with c_K = (1/K) sum_{k=1..K} 1/k (``formulation="code"``),
  or H(p') - lambda * max_k p_k (``formulation="paper"``, Eq. 5); p' = p/sum(p), uniform if the sum is 0,
  clamped at 1e-12 and renormalised; natural log. Both rank identically for
  lambda_paper = lambda_code * ln K / c_K.
* keep the round(L*N * top_rate) lowest scores (ties: lower flat index).
* tau = kthvalue(round(activation_bar_ratio * total)) of all probabilities; N = #languages with p > tau;
  a selected neuron joins every language with p > tau (N = 0: dropped).
* lambda, if not given: binary search on [0, 0.2] (code units), eps 1e-3, at most 64 probes, for the
  largest lambda with no selected neuron having N = K. Unlike the reference, which hard-codes
  ``appear[10]``, this works for any K; and when lambda = hi already qualifies it is returned (the
  reference keeps bisecting and returns its last qualifying midpoint).
* classes: specific (selected, N = 1), related (selected, 1 < N < K), general (N = K over **all**
  neurons: our reading, docs/methods.md §4.2; ``general_selected`` lists the selected ones, normally none).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import torch

from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.base import DetectionResult, Detector, check_rate
from langneuron_eval.detectors.registry import register_detector
from langneuron_eval.detectors.scoring import (
    clamped_entropy,
    kth_threshold,
    lowest_k,
    snap,
    to_units,
    unit_probs,
)
from langneuron_eval.errors import LangNeuronError

LAMBDA_HI_CODE = 0.2
LAMBDA_EPS_CODE = 1e-3
MAX_PROBES = 64


def harmonic_norm(K: int) -> float:
    """c_K = (1/K) * sum_{k=1..K} 1/k, the code's normaliser of max p (0.2929 for K = 10)."""
    return sum(1 / k for k in range(1, K + 1)) / K


@dataclass
class ZhangParams:
    """Zhang et al. parameters; defaults follow the paper (top_rate 0.01; the reference CLI's 0.10 is not used)."""

    top_rate: float = field(default=0.01, metadata={"help": "fraction of all L*N neurons to keep"})
    lambda_: float | None = field(default=None, metadata={
        "help": "weight of max probability (in the formulation's units); none = automatic search"})
    formulation: Literal["code", "paper"] = field(default="code", metadata={
        "help": "'code': H/ln K - lambda*max p/c_K (reproduces shipped masks); 'paper': H - lambda*max p (Eq. 5)"})
    activation_bar_ratio: float = field(default=0.95, metadata={"help": "quantile of pooled probabilities for N"})
    lambda_hi: float | None = field(default=None, metadata={
        "help": "upper end of the lambda search; none = 0.2 in code units (converted for 'paper')"})
    lambda_eps: float | None = field(default=None, metadata={
        "help": "search stops when the interval is narrower; none = 1e-3 in code units (converted for 'paper')"})

    def __post_init__(self) -> None:
        check_rate("top_rate", self.top_rate)
        check_rate("activation_bar_ratio", self.activation_bar_ratio)
        if self.formulation not in ("code", "paper"):
            raise LangNeuronError(f"formulation must be 'code' or 'paper', got {self.formulation!r}")
        for name in ("lambda_", "lambda_hi"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise LangNeuronError(f"{name.rstrip('_')} must be >= 0, got {v}")
        if self.lambda_eps is not None and self.lambda_eps <= 0:
            raise LangNeuronError(f"lambda_eps must be > 0, got {self.lambda_eps}")


@dataclass
class ZhangScorer:
    """Per-unit score parts: score(lambda) = base - lambda * slope, so a lambda probe is two vector ops."""

    probs: torch.Tensor  # [U, K] float32
    base: torch.Tensor  # [U] float64: H/ln K (code) or H (paper)
    slope: torch.Tensor  # [U] float64: max p / c_K (code) or max p (paper)
    n_langs: torch.Tensor  # [U] int64: N = #languages with p > tau
    tau: float
    n_select: int

    @classmethod
    def build(cls, stats: ActivationStats, params: ZhangParams) -> ZhangScorer:
        p = unit_probs(stats)  # [U, K]
        K = p.shape[1]
        H = clamped_entropy(p)  # [U] float64
        pmax = p.max(dim=1).values.double()  # [U]
        if params.formulation == "code":
            base, slope = H / math.log(K), pmax / harmonic_norm(K)
        else:
            base, slope = H, pmax
        tau = kth_threshold(p, params.activation_bar_ratio)
        n_langs = (p > tau).sum(dim=1)  # [U]
        return cls(p, base, slope, n_langs, tau, round(p.shape[0] * params.top_rate))

    def select(self, lam: float) -> torch.Tensor:
        """Flat indices of the selected units at this lambda, ascending."""
        return lowest_k(snap(self.base - lam * self.slope), self.n_select)

    def appear(self, lam: float) -> torch.Tensor:
        """N-histogram of the selected units, ``[K+1]``: appear[n] = #selected units in n languages."""
        K = self.probs.shape[1]
        return torch.bincount(self.n_langs[self.select(lam)], minlength=K + 1)


def search_lambda(scorer: ZhangScorer, lo: float, hi: float, eps: float) -> tuple[float, bool, list[list[float]]]:
    """Largest lambda in [lo, hi] (by bisection) whose selection has no unit shared by all K languages.

    Returns:
        ``(lambda, found, probes)``; probes are ``[lambda, appear[K]]`` pairs in evaluation order. When no
        probe qualifies, ``lo`` is returned with ``found=False`` (a warning says so).
    """
    K = scorer.probs.shape[1]
    probes: list[list[float]] = []

    def ok(lam: float) -> bool:
        shared = int(scorer.appear(lam)[K])
        probes.append([lam, shared])
        return shared == 0

    ok_lo, ok_hi = ok(lo), ok(hi)
    if ok_hi:
        return hi, True, probes
    best = lo if ok_lo else None
    a, b, it = lo, hi, 0
    while (b - a) > eps and it < MAX_PROBES:
        it += 1
        mid = (a + b) / 2.0
        if ok(mid):
            best, a = mid, mid
        else:
            b = mid
    if best is None:
        warnings.warn(f"zhang: no lambda in [{lo}, {hi}] avoids selecting neurons shared by all {K} languages; "
                      f"using lambda={lo}", stacklevel=2)
        return lo, False, probes
    return best, True, probes


@register_detector("zhang")
class ZhangDetector(Detector):
    """Zhang et al. 2025: entropy - lambda*max p with automatic lambda; specific/related/general classes."""

    name = "zhang"
    Params = ZhangParams

    def detect(self, stats: ActivationStats, params: ZhangParams) -> DetectionResult:
        K = stats.num_languages
        if K < 2:
            raise LangNeuronError("zhang needs statistics of at least 2 languages")
        scorer = ZhangScorer.build(stats, params)
        to_formulation = 1.0 if params.formulation == "code" else math.log(K) / harmonic_norm(K)
        search: dict[str, object] = {"auto": params.lambda_ is None}
        if params.lambda_ is None:
            hi = params.lambda_hi if params.lambda_hi is not None else LAMBDA_HI_CODE * to_formulation
            eps = params.lambda_eps if params.lambda_eps is not None else LAMBDA_EPS_CODE * to_formulation
            lam, found, probes = search_lambda(scorer, 0.0, hi, eps)
            search.update(found=found, interval=[0.0, hi], eps=eps, probes=probes)
        else:
            lam = params.lambda_
        sel = scorer.select(lam)  # [n]
        member = scorer.probs[sel] > scorer.tau  # [n, K]
        n_sel = scorer.n_langs[sel]  # [n]
        N = stats.intermediate_size
        langs = {lang: to_units(sel[member[:, k]], N) for k, lang in enumerate(stats.languages)}
        specific = {lang: int((member[:, k] & (n_sel == 1)).sum()) for k, lang in enumerate(stats.languages)}
        related = {lang: int((member[:, k] & (n_sel > 1) & (n_sel < K)).sum()) for k, lang in enumerate(stats.languages)}
        general_all = torch.nonzero(scorer.n_langs == K).flatten()
        extra = {
            "formulation": params.formulation,
            "lambda": lam,
            "lambda_code": lam / to_formulation,
            "lambda_search": search,
            "tau": scorer.tau,
            "n_selected": int(sel.numel()),
            "appear": torch.bincount(n_sel, minlength=K + 1).tolist(),
            "specific": specific,
            "related": related,
            "general": [list(u) for u in to_units(general_all, N)],
            "general_selected": [list(u) for u in to_units(sel[n_sel == K], N)],
        }
        return DetectionResult(langs, extra)
