"""Leaderboard of lm-eval results: ranked views (``leaderboard.md``, one CSV each), the full
configuration table (``leaderboard.csv``) and a static ``index.html``.

Modules, each depending only on those above it: :mod:`.result_files` and :mod:`.sources` (reading inputs),
:mod:`.table` (rows, tables, views), :mod:`.analysis` (what the views rank, with intervals), :mod:`.plots`
(figures, and the percent format the views share), :mod:`.views` and :mod:`.sweep_view`, :mod:`.columns`, the
renderers :mod:`.tables` and :mod:`.html`, and :mod:`.build`. Importing this package is cheap; matplotlib and torch are loaded only when a page is built.

    from langneuron_eval.leaderboard import build_leaderboard
    build_leaderboard(["results/"], "site/", ppl_matrices=["ppl_matrix.json"], neurons=["neurons.json"],
                      sweeps=["sweep.json"])
"""

from __future__ import annotations

from langneuron_eval.leaderboard.build import OUTPUT_NAMES, build_leaderboard, build_table, read_results

__all__ = ["OUTPUT_NAMES", "build_leaderboard", "build_table", "read_results"]
