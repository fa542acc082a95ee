"""Numerical building blocks shared by the detectors: quantile thresholds, entropies, stable top-k.

Two choices here make detectors reproducible rather than dependent on summation order:

* Per-neuron sums over languages are taken over the probabilities **sorted ascending**, left to right.
  Entropy and the L1 norm are symmetric in the languages, so this changes nothing mathematically, but
  it makes the result bit-identical when the language order of the statistics is permuted.
* Scores are computed in float64 and then **rounded to float32** before ranking. Mathematically equal
  scores reached along different arithmetic paths (e.g. counts ``(1, 3)`` and ``(3, 9)`` of the same
  token count) then compare as exact ties and are broken by the lower index, instead of by a 1-ulp
  rounding accident. float32 is also the precision of the reference implementations.

Units are addressed by their flat index ``layer * N + neuron`` (layer-major), which is also the
tie-breaking order.
"""

from __future__ import annotations

import torch

from langneuron_eval.core.stats import ActivationStats


def unit_probs(stats: ActivationStats) -> torch.Tensor:
    """Activation probabilities as one row per unit: ``[U = L*N, K]`` float32 (p[k, l, n] -> row l*N+n)."""
    p = stats.activation_probability()  # [K, L, N] float32
    return p.reshape(p.shape[0], -1).T.contiguous()  # [U, K]


def kth_threshold(values: torch.Tensor, ratio: float) -> float:
    """``kthvalue`` of all values pooled, ``k = round(numel * ratio)`` (Python round), as the references do.

    ``k`` is clamped to ``[1, numel]`` so that tiny populations or rates cannot ask for the 0th value.
    """
    flat = values.flatten()
    k = min(max(round(flat.numel() * ratio), 1), flat.numel())
    return float(flat.kthvalue(k).values.item())


def seq_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension strictly left to right (``[U, K] -> [U]``), independent of the row's position."""
    out = x[..., 0].clone()
    for k in range(1, x.shape[-1]):
        out += x[..., k]
    return out


def lape_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of the L1-normalised probabilities, natural log, 0/0 -> 0 and 0*log 0 = 0.

    Args:
        p: ``[U, K]`` activation probabilities.

    Returns:
        ``[U]`` float64 entropies (0 for a unit that never fires in any language).
    """
    q = torch.sort(p.double(), dim=1).values  # [U, K] ascending: canonical summation order
    s = seq_sum(q)  # [U]
    pn = torch.where(s[:, None] > 0, q / s.clamp(min=torch.finfo(torch.float64).tiny)[:, None], torch.zeros_like(q))
    terms = torch.where(pn > 0, pn * torch.log(torch.where(pn > 0, pn, torch.ones_like(pn))), torch.zeros_like(pn))
    return -seq_sum(terms)


def clamped_entropy(p: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Entropy as in Zhang et al.'s code: p' = p/sum(p) (uniform if the sum is 0), clamped at ``eps``, renormalised.

    Args:
        p: ``[U, K]`` activation probabilities.

    Returns:
        ``[U]`` float64 entropies (natural log).
    """
    K = p.shape[1]
    q = torch.sort(p.double(), dim=1).values  # [U, K]
    s = seq_sum(q)  # [U]
    pn = torch.where(s[:, None] > 0, q / s.clamp(min=torch.finfo(torch.float64).tiny)[:, None],
                     torch.full_like(q, 1.0 / K))
    pn = pn.clamp(min=eps)
    pn = pn / seq_sum(pn)[:, None]
    return -seq_sum(pn * torch.log(pn))


def snap(x: torch.Tensor) -> torch.Tensor:
    """Round scores to float32 for ranking (see the module docstring for why)."""
    return x.to(torch.float32)


def lowest_k(scores: torch.Tensor, k: int, eligible: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the ``k`` lowest finite scores, ties broken by the lower index; sorted ascending.

    ``+inf`` scores (and units outside ``eligible``) are never selected, even when fewer than ``k``
    units remain: a unit excluded by a filter must not come back because the quota was not filled.

    Args:
        scores: ``[U]`` float scores.
        k: how many to select at most.
        eligible: optional ``[U]`` bool mask of candidate units.

    Returns:
        ``[min(k, #candidates)]`` int64 unit indices in ascending order.
    """
    ok = torch.isfinite(scores)
    if eligible is not None:
        ok &= eligible
    idx = torch.nonzero(ok).flatten()  # ascending
    k = min(int(k), idx.numel())
    if k <= 0:
        return torch.empty(0, dtype=torch.long)
    vals = scores[idx]
    t = vals.kthvalue(k).values
    below = vals < t
    need = k - int(below.sum())
    ties = torch.nonzero(vals == t).flatten()[:need]  # the lowest-index ties
    chosen = torch.cat([idx[below], idx[ties]])
    return torch.sort(chosen).values


def highest_k(scores: torch.Tensor, k: int, eligible: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the ``k`` highest finite scores, ties broken by the lower index; sorted ascending."""
    return lowest_k(-scores, k, eligible)


def to_units(flat: torch.Tensor, num_neurons: int) -> list[tuple[int, int]]:
    """Flat unit indices -> ``[(layer, neuron)]`` in the same order."""
    layers = (flat // num_neurons).tolist()
    neurons = (flat % num_neurons).tolist()
    return list(zip(layers, neurons))
