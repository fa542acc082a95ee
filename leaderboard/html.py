"""``index.html``: one self-contained static page (table, figures, inline CSS and JS, no network).

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
import re
from collections.abc import Sequence
from pathlib import Path

from .build import Row, Table, format_date, format_params
from .results import MetricKey
from .sources import NeuronLayers, PplMatrix
from .tables import FIELDS, fmt_md_number, fmt_md_score

_ASSETS = Path(__file__).resolve().parent
_STEER = re.compile(r"^lang_steer_(?P<prompted>prompted_)?(?P<lang>[a-z]{2,3}(?:[_-][A-Za-z0-9]+)*)$")
NUMERIC_FIELDS = {"id", "samples"}


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
    fields = [f for f in FIELDS if f.md_header is not None]
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


# ---------------------------------------------------------------------------------------- figures

def row_label(row: Row, with_model: bool) -> str:
    parts = [row.model] if with_model else []
    parts += [row.detector, row.intervention]
    return f"{row.id}: " + " · ".join(parts)


def steering_series(table: Table) -> dict[str, dict[str, dict[str, tuple[float, float | None]]]]:
    """family (``lang_steer`` / ``lang_steer_prompted``) -> row label -> {lang: (lang_rate, stderr)}."""
    found: dict[str, dict[str, tuple[Row, dict[str, tuple[float, float | None]]]]] = {}
    for row in table.rows:
        for mk, score in row.scores.items():
            match = _STEER.match(mk.task)
            if not match or mk.metric != "lang_rate" or mk.filter != "none":
                continue
            family = "lang_steer_prompted" if match.group("prompted") else "lang_steer"
            _, rates = found.setdefault(family, {}).setdefault(row.id, (row, {}))
            rates[match.group("lang")] = (score.value, score.stderr)
    out: dict[str, dict[str, dict[str, tuple[float, float | None]]]] = {}
    for family, by_row in sorted(found.items()):  # rows were visited in table order, so labels are too
        with_model = len({row.model for row, _ in by_row.values()}) > 1  # name models only when they differ
        out[family] = {row_label(row, with_model): rates for row, rates in by_row.values()}
    return out


def _figure(png: bytes, alt: str, caption: str) -> str:
    return f"<figure>{_img(png, alt)}<figcaption>{caption}</figcaption></figure>"


def render_ppl(matrices: Sequence[PplMatrix]) -> str:
    from . import plots

    if not matrices:
        return '<p class="note">No perplexity matrices given (<code>--ppl-matrix ppl_matrix.json</code>).</p>'
    out = []
    for pm in matrices:
        prov = pm.provenance
        facts = [f"{k} {prov[k][:12] if k == 'neurons_sha256' else prov[k]}" for k in ("model", "detector",
                                                                                       "neurons_sha256") if k in prov]
        baseline = ", ".join(f"{lang} {fmt_md_number(v)}" for lang, v in pm.baseline.items())
        caption = esc(pm.display) + (": " + esc("; ".join(facts)) if facts else "")
        if baseline:
            caption += f"<br>baseline {esc(pm.metric)}: {esc(baseline)}"
        out.append(_figure(plots.ppl_heatmap(pm), f"perplexity change heatmap from {pm.display}", caption))
    return "\n".join(out)


def render_layers(layers: Sequence[NeuronLayers]) -> str:
    from . import plots

    if not layers:
        return '<p class="note">No neuron files given (<code>--neurons neurons.json</code>).</p>'
    out = []
    for nl in layers:
        params = format_params(nl.params)
        totals = ", ".join(f"{lang} {sum(c)}" for lang, c in nl.counts.items())
        caption = (f"{esc(nl.display)}: {esc(nl.detector)}" + (f" ({esc(params)})" if params else "")
                   + f"<br>sha256 {esc(nl.sha256[:12])}; neurons: {esc(totals or 'none')}")
        out.append(_figure(plots.layer_distribution(nl), f"neurons per layer of {nl.display}", caption))
    return "\n".join(out)


def render_steering(table: Table) -> str:
    from . import plots

    families = steering_series(table)
    if not families:
        return '<p class="note">No <code>lang_steer_&lt;lang&gt;</code> results.</p>'
    out = []
    for family, series in families.items():
        title = f"{family}_<lang>: lang_rate"
        labels = "".join(f"<li>{esc(label)}</li>" for label in series)
        caption = f"{esc(family)}_&lt;lang&gt; lang_rate ± stderr per configuration:<ul class=\"labels\">{labels}</ul>"
        out.append(_figure(plots.steering_rates(series, title), f"{family} steering rates", caption))
    return "\n".join(out)


def render_skipped(skipped: Sequence[tuple[str, str]]) -> str:
    if not skipped:
        return ""
    items = "".join(f"<li><code>{esc(path)}</code>: {esc(reason)}</li>" for path, reason in skipped)
    return f'<h2 id="skipped">Skipped results files</h2>\n<ul>{items}</ul>'


# ------------------------------------------------------------------------------------------- page

def render_page(table: Table, matrices: Sequence[PplMatrix] = (), layers: Sequence[NeuronLayers] = ()) -> str:
    from langneuron_eval import __version__

    css = (_ASSETS / "page.css").read_text(encoding="utf-8")
    js = (_ASSETS / "page.js").read_text(encoding="utf-8")
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
           "base-uri 'none'; form-action 'none'")
    newest = format_date(max((r.date for r in table.rows if r.date is not None), default=None))
    summary = (f"{len(table.rows)} configuration(s) from {table.n_files} lm-eval results file(s)"
               + (f", newest run {newest} UTC" if newest else "")
               + (f"; {len(table.skipped)} file(s) skipped (see below)" if table.skipped else "")
               + ". Click a column header to sort; scores are mean ± standard error.")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>langneuron-eval leaderboard</title>
<style>{css}</style>
</head>
<body>
<h1>langneuron-eval leaderboard</h1>
<p class="summary">{esc(summary)}</p>
<h2 id="results">Results</h2>
{render_table(table)}
<h2 id="ppl-matrix">Perplexity change when each language's neurons are deactivated</h2>
{render_ppl(matrices)}
<h2 id="layers">Layer distribution of detected neurons</h2>
{render_layers(layers)}
<h2 id="steering">Steering: share of generations in the target language</h2>
{render_steering(table)}
{render_skipped(table.skipped)}
<footer>Built with langneuron-eval {esc(__version__)}. Full provenance (hashes, versions, result files) is in
leaderboard.csv.</footer>
<pre id="selftest-result" hidden></pre>
<script>{js}</script>
</body>
</html>
"""
