"""The perplexity-change matrix's point summary: how often the diagonal dominates, and by how much."""

from __future__ import annotations


def diagonal_dominance(matrix: list[list[float]]) -> dict[str, float]:
    """Share of columns whose largest increase is on the diagonal, and mean diagonal / off-diagonal ratio."""
    n = len(matrix)
    wins = sum(1 for j in range(n) if max(range(n), key=lambda i: matrix[i][j]) == j)
    ratios = []
    for j in range(n):
        off = [matrix[i][j] for i in range(n) if i != j]
        mean_off = sum(off) / len(off) if off else 0.0
        if mean_off > 0:
            ratios.append(matrix[j][j] / mean_off)
    return {"columns_diagonal_max": wins, "share": wins / n if n else 0.0,
            "mean_diag_offdiag_ratio": sum(ratios) / len(ratios) if ratios else float("nan")}
