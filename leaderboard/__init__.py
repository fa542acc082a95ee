"""Leaderboard of lm-eval results: ``leaderboard.md``, ``leaderboard.csv`` and a static ``index.html``.

Installed as ``langneuron_eval.leaderboard`` (pyproject maps the repo's top-level ``leaderboard/``
folder there), so modules here import each other relatively and the rest of the package absolutely.
Importing this package is cheap; matplotlib and torch are loaded only when a page is built.

    from langneuron_eval.leaderboard import build_leaderboard
    build_leaderboard(["results/"], "site/", ppl_matrices=["ppl_matrix.json"], neurons=["neurons.json"])
"""

from __future__ import annotations

from .build import OUTPUT_NAMES, build_leaderboard, build_table, read_results

__all__ = ["OUTPUT_NAMES", "build_leaderboard", "build_table", "read_results"]
