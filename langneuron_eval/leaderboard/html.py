"""``index.html``: one self-contained static page (ranked views, figures, inline CSS and JS, no network).

The first screen is the detector ranking; each view is a section with a permalink (``#detectors``,
``#steering``, ``#models``, one anchor per table too), the figures follow, and the full
configuration table is a collapsed ``<details>`` at the end. The CSS keeps the page readable on a
phone: tables scroll sideways inside their own box, figures shrink to the width.

Every string that comes from an input file goes through :func:`esc` (text and attribute values);
figures are ``data:`` URIs. A Content-Security-Policy allows only the page's own script and style
(by hash) and ``data:`` images, so even a string that slipped past escaping could not run a script
or make the page fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html as _html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from langneuron_eval import __version__
from langneuron_eval.leaderboard import analysis, plots
from langneuron_eval.leaderboard.analysis import DetectorEvidence
from langneuron_eval.leaderboard.columns import FIELDS, fmt_md_score
from langneuron_eval.leaderboard.table import Block, Cell, Table, View, format_date, format_params
from langneuron_eval.lmeval.results import MetricKey

_ASSETS = Path(__file__).resolve().parent
NUMERIC_FIELDS = {"id", "samples"}


@dataclass(frozen=True)
class PageText:
    """What the publisher says about the page (``--title``, ``--description``)."""

    title: str
    description: str = ""


def esc(text: object) -> str:
    """Escape for HTML text and double-quoted attribute values alike."""
    return _html.escape(str(text), quote=True)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _img(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{esc(alt)}">'


# ------------------------------------------------------------------------------------------ table

def _header_cell(key: str, label: str, numeric: bool, title: str) -> str:
    kind = "num" if numeric else "text"
    return f'<th data-key="{esc(key)}" data-type="{kind}" aria-sort="none" title="{esc(title)}">{esc(label)}</th>'


def _metric_title(mk: MetricKey, hib: dict[tuple[str, str], bool]) -> str:
    better = hib.get((mk.task, mk.metric))
    direction = "" if better is None else (" (higher is better)" if better else " (lower is better)")
    return f"{mk.task}: {mk.metric}, filter {mk.filter}{direction}"


def _metric_label(mk: MetricKey, hib: dict[tuple[str, str], bool]) -> str:
    better = hib.get((mk.task, mk.metric))
    return mk.name + ("" if better is None else (" ↑" if better else " ↓"))


def _sort_value(value: float) -> str:
    """The number as JavaScript's ``parseFloat`` reads it (``inf`` would be NaN there, and sort as empty)."""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def render_table(table: Table) -> str:
    """The full configuration table (sortable); models by display name, the recorded name as a tooltip."""
    fields = [f for f in FIELDS if f.md_header is not None and (f.csv_name != "date" or table.has_dates)]
    head = [_header_cell(f.csv_name, f.md_header or f.csv_name, f.csv_name in NUMERIC_FIELDS, f.csv_name)
            for f in fields]
    head += [_header_cell(mk.name, _metric_label(mk, table.higher_is_better), True,
                          _metric_title(mk, table.higher_is_better)) for mk in table.columns]
    body = []
    for index, row in enumerate(table.rows, 1):
        cells = []
        for f in fields:
            text = (f.md_value or f.csv_value)(row)
            if f.csv_name == "id":
                cells.append(f'<td class="num" data-v="{index}">{esc(text)}</td>')
            elif f.csv_name == "samples":
                cells.append(f'<td class="num" data-v="{esc(text)}">{esc(text)}</td>')
            elif f.csv_name in ("date", "limit"):
                cells.append(f'<td class="nowrap">{esc(text)}</td>')
            elif f.csv_name == "model":
                cells.append(f'<td title="{esc(row.model)}">{esc(text)}</td>')
            elif f.csv_name == "neurons_sha256":
                cells.append(f'<td class="mono" title="{esc(row.neurons_sha256)}">{esc(text)}</td>')
            else:
                cells.append(f"<td>{esc(text)}</td>")
        for mk in table.columns:
            score = row.scores.get(mk)
            if score is None:
                cells.append('<td class="num"></td>')
            else:
                cells.append(f'<td class="num" data-v="{_sort_value(score.value)}">{esc(fmt_md_score(score))}</td>')
        body.append(f'<tr data-id="{esc(row.id)}">' + "".join(cells) + "</tr>")
    return ('<div class="scroll"><table id="leaderboard">\n<thead><tr>' + "".join(head) + "</tr></thead>\n<tbody>\n"
            + "\n".join(body) + "\n</tbody></table></div>")


# ------------------------------------------------------------------------------------------ views

def _cell(cell: Cell, numeric: bool) -> str:
    title = f' title="{esc(cell.title)}"' if cell.title else ""
    if numeric:
        value = "" if cell.value is None else f' data-v="{_sort_value(cell.value)}"'
        return f'<td class="num"{value}{title}>{esc(cell.text)}</td>'
    return f"<td{title}>{esc(cell.text)}</td>"


def render_block(block: Block) -> str:
    head = "".join(_header_cell(h, h, num, h) for h, num in zip(block.header, block.numeric))
    body = []
    for row, kind in zip(block.rows, block.row_kinds or [""] * len(block.rows)):
        cls = f' class="{kind}"' if kind else ""
        body.append(f"<tr{cls}>" + "".join(_cell(c, n) for c, n in zip(row, block.numeric)) + "</tr>")
    return (f'<h3 id="{esc(block.anchor)}"><a href="#{esc(block.anchor)}">{esc(block.caption)}</a></h3>\n'
            f'<div class="scroll"><table class="view sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table></div>")


def render_view(view: View, figures: str = "") -> str:
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in view.notes)
    blocks = "\n".join(render_block(b) for b in view.blocks)
    return (f'<section id="{esc(view.id)}">\n<h2><a href="#{esc(view.id)}">{esc(view.title)}</a></h2>\n'
            f'<p class="question">{esc(view.question)}</p>\n{blocks}\n{notes}\n{figures}</section>')


# ---------------------------------------------------------------------------------------- figures

def _figure(png: bytes, alt: str, caption: str) -> str:
    return f"<figure>{_img(png, alt)}<figcaption>{caption}</figcaption></figure>"


def _model_name(table: Table, model: str) -> str:
    return table.names.get(model, model) or "model not recorded"


def render_ppl(table: Table, dets: Sequence[DetectorEvidence]) -> str:
    with_matrix = [d for d in dets if d.matrix is not None]
    if not with_matrix:
        return ('<p class="note">No perplexity-change matrix (<code>--ppl-matrix ppl_matrix.json</code>, or '
                '<code>deactivate(&lt;lang&gt;)</code> results with <code>lang_ppl</code>).</p>')
    out = []
    for det in sorted(with_matrix, key=lambda d: (_model_name(table, d.model), d.control, d.detector, d.sha)):
        name = _model_name(table, det.model)
        source = "lm-eval results" if det.matrix.source == "results" else "/".join(Path(det.matrix.source).parts[-2:])
        caption = (f"{esc(name)} · {esc(det.detector)}: relative change of byte perplexity (row: neurons switched "
                   f"off, column: evaluated language); colours scaled to this matrix; from {esc(source)}")
        if det.matrix.baseline:
            caption += "<br>baseline byte perplexity: " + esc(", ".join(
                f"{lang} {v:.3f}" for lang, v in det.matrix.baseline.items()))
        caption += "<br>" + esc(_evidence_caption(det.matrix))
        png = plots.ppl_heatmap(det.matrix.languages, det.matrix.values, f"{name} · {det.detector}")
        out.append(_figure(png, f"perplexity change heatmap, {name}, {det.detector}", caption))
    return "\n".join(out)


def _evidence_caption(matrix: analysis.Matrix) -> str:
    """Dominance p-value and where the cells' intervals are (the Selectivity view has them per cell)."""
    sel = analysis.selectivity(matrix)
    p = "" if sel is None or math.isnan(sel.p_value) else f"diagonal dominance p = {sel.p_value:.3g} (permutation); "
    if not matrix.has_intervals:
        return p + "no intervals: the matrix has no per-document scores (older file or results rows)"
    conf = (matrix.interval or {}).get("confidence", 0.95)
    return p + f"{100 * conf:.3g}% paired-bootstrap intervals per cell in the Selectivity view"


def render_layers(table: Table, dets: Sequence[DetectorEvidence]) -> str:
    with_layers = [d for d in dets if d.layers is not None]
    if not with_layers:
        return '<p class="note">No neuron files given (<code>--neurons neurons.json</code>).</p>'
    out = []
    for model in sorted({d.model for d in with_layers}, key=lambda m: _model_name(table, m)):
        group = sorted((d for d in with_layers if d.model == model), key=lambda d: (d.control, d.detector, d.sha))
        name = _model_name(table, model)
        label = analysis.labels(group)
        panels = [(label[id(d)], d.layers) for d in group]
        facts = "; ".join(f"{esc(d.detector)}" + (f" ({esc(format_params(d.params))})" if d.params else "")
                          + f", sha256 {esc(d.layers.sha256[:12])}, neurons: "
                          + esc(", ".join(f"{lang} {sum(c)}" for lang, c in d.layers.counts.items()) or "none")
                          for d in group)
        out.append(_figure(plots.layer_distribution(name, panels), f"neurons per layer, {name}",
                           f"{esc(name)}: {facts}"))
    return "\n".join(out)


def steering_series(block: Block) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Legend label (detector name) -> {language: (lang_rate, stderr)} from a steering table."""
    langs = block.header[3:-1]
    detectors = [row[1].text for row in block.rows]
    series: dict[str, dict[str, tuple[float, float | None]]] = {}
    for row in block.rows:
        label = "unsteered" if row[2].text == "unsteered" else row[1].text
        if detectors.count(row[1].text) > 1:
            label += f": {plots.shorten(row[2].text, 40)}"
        series[label] = {lang: (c.value / 100, None if c.stderr is None else c.stderr / 100)
                         for lang, c in zip(langs, row[3:-1]) if c.value is not None}
    return series


def render_steering(view: View | None) -> str:
    if view is None:
        return ""
    out = []
    for block in (b for b in view.blocks if b.kind == ""):  # the lang_rate tables, not success and damage
        png = plots.steering_rates(steering_series(block), block.caption)
        out.append(_figure(png, f"steering rates, {block.caption}",
                           f"{esc(block.caption)}: lang_rate per target language (± stderr), one bar per detector"))
    return "\n".join(out)


def render_skipped(skipped: Sequence[tuple[str, str]]) -> str:
    if not skipped:
        return ""
    items = "".join(f"<li><code>{esc(path)}</code>: {esc(reason)}</li>" for path, reason in skipped)
    return f'<h2 id="skipped">Skipped results files</h2>\n<ul>{items}</ul>'


# ------------------------------------------------------------------------------------------- page

def _summary(table: Table) -> str:
    newest = format_date(max((r.date for r in table.rows if r.date is not None), default=None))
    return (f"{len(table.rows)} configuration(s) of {len(table.names)} model(s) from {table.n_files} lm-eval results "
            "file(s)" + (f", newest run {newest} UTC" if newest else "")
            + (f"; {len(table.skipped)} file(s) skipped (see the end)" if table.skipped else "")
            + ". Click a column header to sort.")


def _nav(views: Sequence[View]) -> str:
    links = [(v.id, v.title) for v in views] + [("figures", "Figures"), ("configurations", "All configurations")]
    return '<nav>' + " · ".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in links) + "</nav>"


def render_page(table: Table, views: Sequence[View] = (), dets: Sequence[DetectorEvidence] = (),
                text: PageText = PageText("langneuron-eval leaderboard")) -> str:
    css = (_ASSETS / "page.css").read_text(encoding="utf-8")
    js = (_ASSETS / "page.js").read_text(encoding="utf-8")
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
           "base-uri 'none'; form-action 'none'")
    steering = next((v for v in views if v.id == "steering"), None)
    sections = "\n".join(render_view(v, render_steering(steering) if v is steering else "") for v in views)
    description = f'<p class="description">{esc(text.description)}</p>\n' if text.description else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(text.title)}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{esc(text.title)}</h1>
{description}<p class="summary">{esc(_summary(table))}</p>
{_nav(views)}
</header>
<main>
{sections}
<section id="figures">
<h2><a href="#figures">Figures</a></h2>
<h3 id="ppl-matrix"><a href="#ppl-matrix">Perplexity change when each language's neurons are switched off</a></h3>
{render_ppl(table, dets)}
<h3 id="layers"><a href="#layers">Where the neurons are: count per layer</a></h3>
{render_layers(table, dets)}
</section>
<details id="configurations">
<summary>All configurations ({len(table.rows)} rows, every metric; full provenance in leaderboard.csv)</summary>
{render_table(table)}
</details>
{render_skipped(table.skipped)}
</main>
<footer>Built with langneuron-eval {esc(__version__)}. Views as CSV: detectors.csv, selectivity.csv, steering.csv,
models.csv, sweep.csv;
every configuration with paths, hashes and versions: leaderboard.csv.</footer>
<pre id="selftest-result" hidden></pre>
<script>{js}</script>
</body>
</html>
"""
