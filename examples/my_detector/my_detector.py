"""my_detector: units whose mean activation stands out most for one language (an example plugin).

For language k and unit u, with mu_k(u) the mean activation over k's tokens and sigma(u) the standard
deviation of the activation over all tokens of all languages::

    contrast_k(u) = (mu_k(u) - mean_{j != k} mu_j(u)) / sigma(u)

Each language gets the ``top_k`` units of highest contrast among those above ``min_contrast``. This is a
difference of means in units of the pooled spread (a per-unit z-score of "this language vs the others"),
which is cheap, needs only the streaming sums (no per-sentence means) and works with activations of
either sign (SiLU/GELU outputs are negative for part of their range, so a plain ratio of means is not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from langneuron_eval.detectors.base import DetectionResult, Detector

__all__ = ["MeanContrastDetector", "MeanContrastParams", "contrast_scores"]


@dataclass
class MeanContrastParams:
    top_k: int = field(default=100, metadata={"help": "units per language (at most)"})
    min_contrast: float = field(default=0.5, metadata={"help": "keep only units whose contrast exceeds this"})


def contrast_scores(stats) -> torch.Tensor:
    """[K, L, N] contrast of every language against the mean of the others (0 where a unit never varies)."""
    n = stats.n_tokens.to(torch.float64).clamp(min=1).view(-1, 1, 1)
    mu = stats.activation_sums / n  # [K, L, N]
    total = n.sum()
    mean_all = stats.activation_sums.sum(0) / total
    var_all = (stats.activation_sq_sums.sum(0) / total - mean_all**2).clamp(min=0)
    sigma = var_all.sqrt()
    K = mu.shape[0]
    others = (mu.sum(0, keepdim=True) - mu) / max(K - 1, 1)
    score = (mu - others) / sigma.clamp(min=1e-8)
    return torch.where(sigma > 1e-8, score, torch.zeros_like(score))


class MeanContrastDetector(Detector):
    """Mean-activation contrast: per language, the units whose mean activation exceeds the other languages' most."""

    Params = MeanContrastParams

    def detect(self, stats, params: MeanContrastParams) -> DetectionResult:
        if params.top_k < 1:
            raise ValueError("top_k must be at least 1")
        score = contrast_scores(stats)
        K, L, N = score.shape
        flat = score.reshape(K, L * N)
        k = min(params.top_k, L * N)
        languages, thresholds = {}, {}
        for i, lang in enumerate(stats.languages):
            values, idx = flat[i].topk(k)
            keep = idx[values > params.min_contrast].tolist()
            languages[lang] = [(j // N, j % N) for j in keep]
            thresholds[lang] = float(values[len(keep) - 1]) if keep else None
        return DetectionResult(languages, {"lowest_selected_contrast": thresholds})
