"""From results files to one table row per (model, detector, intervention), and the build that writes it all.

A configuration is usually evaluated in several lm-eval runs (one per task family, re-runs after a
crash), so rows merge every file with the same model, neuron file (by sha256, which pins the
detector and its parameters) and intervention. When two files score the same task, the newer one
(lm-eval's ``date``) wins and a note says so. Rows and columns are sorted and nothing about the
build itself (time, absolute output path) is written, so the same inputs give the same bytes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_output_dir, check_writable, write_bytes, write_text
from langneuron_eval.leaderboard import analysis, html, tables, views
from langneuron_eval.leaderboard.result_files import ResultFile, SkipFile, discover, read_result_file
from langneuron_eval.leaderboard.sources import NeuronLayers, PplMatrix, load_neuron_layers, load_ppl_matrix
from langneuron_eval.leaderboard.sweep_view import load_sweep, sweep_view
from langneuron_eval.leaderboard.table import Row, Table, Warn, display_names
from langneuron_eval.leaderboard.views import Pair

# the page, the readable tables, the full configuration table, then one CSV per view
OUTPUT_NAMES = ("leaderboard.md", "leaderboard.csv", "index.html", "detectors.csv", "selectivity.csv", "steering.csv",
                "models.csv", "sweep.csv")
DEFAULT_TITLE = "langneuron-eval leaderboard"


def _stderr_warn(message: str) -> None:
    print(f"langneuron leaderboard: {message}", file=sys.stderr)


def read_results(arguments: Sequence[str | os.PathLike], warn: Warn) -> tuple[list[ResultFile], list[tuple[str, str]]]:
    """Every usable results file under ``arguments``; the others are reported through ``warn``."""
    usable: list[ResultFile] = []
    skipped: list[tuple[str, str]] = []
    for path, display in discover(list(arguments)):
        try:
            usable.append(read_result_file(path, display))
        except SkipFile as e:
            skipped.append((display, str(e)))
            warn(f"warning: skipping {display}: {e}")
    return usable, skipped


def build_table(files: list[ResultFile], neurons: Sequence[NeuronLayers] = (), warn: Warn = _stderr_warn,
                skipped: list[tuple[str, str]] | None = None) -> Table:
    """Group files into rows, oldest first so that newer scores replace older ones."""
    by_sha: dict[str, NeuronLayers] = {}
    for nl in neurons:
        by_sha.setdefault(nl.sha256, nl)
        by_sha.setdefault(nl.content_sha256, nl)
    rows: dict[tuple[str, str, str, str], Row] = {}
    hib: dict[tuple[str, str], bool] = {}
    ordered = sorted(files, key=lambda f: (f.date if f.date is not None else float("-inf"), f.display))
    for f in ordered:
        row = rows.get(f.key)
        if row is None:
            row = rows[f.key] = Row(model=f.model, detector=f.detector, neurons_sha256=f.key[2],
                                    intervention=f.intervention)
        row.files.append(f)
        replaced: dict[str, set[str]] = {}  # older file -> tasks whose scores the newer file changes
        for mk, score in f.scores.items():
            if mk in row.scores and row.scores[mk] != score:
                replaced.setdefault(row.sources[mk].display, set()).add(mk.task)
            row.scores[mk] = score
            row.sources[mk] = f
        for older, tasks in sorted(replaced.items()):
            warn(f"note: {', '.join(sorted(tasks))} of {f.model} [{f.detector}, {f.intervention}] is in {older} "
                 f"and {f.display}; using the newer {f.display}")
        row.samples.update(f.samples)
        hib.update(f.higher_is_better)
        if f.detector_params is not None:
            row.detector_params = f.detector_params
    for row in rows.values():
        match = by_sha.get(row.neurons_sha256) or next(
            (by_sha[f.neurons_content_sha256] for f in row.files if f.neurons_content_sha256 in by_sha), None)
        if match is not None:
            row.detector_params = match.params  # the neuron file is the authority on its own parameters
            if row.detector in ("unknown", "none"):
                row.detector = match.detector
    ordered_rows = sorted(rows.values(), key=Row.sort_key)
    names = display_names(row.model for row in ordered_rows)
    for i, row in enumerate(ordered_rows, 1):
        row.id, row.name = f"R{i}", names[row.model]
    columns = sorted({mk for row in ordered_rows for mk in row.scores}, key=lambda m: (m.task, m.metric, m.filter))
    return Table(rows=ordered_rows, columns=columns, higher_is_better=hib, n_files=len(files),
                 skipped=list(skipped or []), names=names)


def _pairs(table: Table, pairs: Sequence[tuple[str, str]]) -> list[Pair]:
    """``--pair BASE ALIGNED`` by recorded or display name; an unknown name is an error."""
    by_name = {**{m: m for m in table.names}, **{n: m for m, n in table.names.items()}}
    out = []
    for base, aligned in pairs:
        for name in (base, aligned):
            if name not in by_name:
                raise LangNeuronError(f"--pair: no results for model {name!r} (known: {', '.join(sorted(table.names.values()))})")
        out.append(Pair(by_name[base], by_name[aligned]))
    return out


def build_leaderboard(results: Sequence[str | os.PathLike], out: str | os.PathLike,
                      ppl_matrices: Sequence[str | os.PathLike] = (), neurons: Sequence[str | os.PathLike] = (),
                      force: bool = False, warn: Warn = _stderr_warn, title: str = DEFAULT_TITLE,
                      description: str = "", pairs: Sequence[tuple[str, str]] = (),
                      sweeps: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Read everything, then write the outputs (:data:`OUTPUT_NAMES`) atomically.

    Existing outputs are refused (before any reading) unless ``force``; figure inputs are read
    before anything is written, so a bad ``--ppl-matrix`` or ``--neurons`` file leaves no output.
    ``pairs`` names (base, aligned) models for the alignment table; without it, ``x-base`` is
    paired with every other ``x-...`` model. ``sweeps``: ``sweep.json`` files of ``langneuron sweep``, shown
    as the "Steering sweep" view (read with the other figure inputs, before anything is written).

    Returns:
        The written paths, in :data:`OUTPUT_NAMES` order.
    """
    out_dir = check_output_dir(out)
    targets = [out_dir / name for name in OUTPUT_NAMES]
    for target in targets:
        check_writable(target, force)
    matrices: list[PplMatrix] = [load_ppl_matrix(p) for p in ppl_matrices]
    layers: list[NeuronLayers] = [load_neuron_layers(p) for p in neurons]
    sweep_docs = [(Path(p).as_posix(), load_sweep(p)) for p in sweeps]
    files, skipped = read_results(results, warn)
    if not files:
        raise LangNeuronError(
            f"no usable lm-eval results files (results_*.json) under {', '.join(str(r) for r in results)}"
            + (f"; {len(skipped)} skipped" if skipped else ""))
    table = build_table(files, layers, warn, skipped)
    dets = analysis.detectors(table, matrices, layers)
    made = {v.id: v for v in views.all_views(table, dets, _pairs(table, pairs))}
    sweep = sweep_view(sweep_docs)
    if sweep is not None:
        made[sweep.id] = sweep
    page = html.render_page(table, list(made.values()), dets, html.PageText(title, description))
    texts = [tables.to_markdown(table, list(made.values()), title, description), tables.to_csv(table)]
    texts += [tables.view_csv(made.get(name.removesuffix(".csv"))) for name in OUTPUT_NAMES[3:]]
    for target, text in zip(targets[:2], texts[:2]):
        write_text(target, text, force=force)
    write_bytes(targets[2], page.encode("utf-8"), force=force)
    for target, text in zip(targets[3:], texts[2:]):
        write_text(target, text, force=force)
    return targets
