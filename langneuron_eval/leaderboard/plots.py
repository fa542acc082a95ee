"""The page's figures as PNG bytes (matplotlib, Agg), to be embedded as ``data:`` URIs.

Embedding keeps ``index.html`` a single self-contained file that works from disk, from any static
host and offline. Labels come from results files, so math-text parsing is switched off (a ``$`` in
a model name must not be read as TeX, nor make matplotlib raise) and PNG metadata is fixed so the
same data gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator, Mapping

from langneuron_eval.leaderboard.sources import NeuronLayers

MAX_LABEL = 60


@contextlib.contextmanager
def _figure_context() -> Iterator[object]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9}), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs in labels are drawn as boxes, not errors
        yield plt


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def shorten(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def percent(value: float) -> str:
    """A relative change in percent, one decimal, with as many more as it takes to stay non-zero.

    ``0.022`` -> ``+2.2%``, ``0.0003`` -> ``+0.03%``; ``0`` -> ``0.0%``: a cell that changed never reads as
    unchanged. Tiny values (under 0.0001%) switch to scientific notation.
    """
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0.0%"
    pct = 100 * value
    for digits in (1, 2, 3, 4):
        if round(pct, digits) != 0:
            return f"{pct:+.{digits}f}%"
    return f"{pct:+.1e}%"


def ppl_heatmap(langs: list[str], matrix: list[list[float]], title: str) -> bytes:
    """The heatmap of :func:`heatmap_figure` as PNG bytes."""
    with _figure_context() as plt:
        return _png(heatmap_figure(plt, langs, matrix, title))


def heatmap_figure(plt, langs: list[str], matrix: list[list[float]], title: str):
    """Relative perplexity change in percent; diverging colours centred at 0, scaled to this matrix's range.

    Every cell is annotated with :func:`percent`, so a changed cell never reads ``0.0%``. Call inside
    :func:`_figure_context` (``plt`` is what it yields); the caller closes the figure.
    """
    from matplotlib.colors import TwoSlopeNorm

    finite = [v for row in matrix for v in row if math.isfinite(v)]
    vmax = max((abs(v) for v in finite), default=0.0) or 1e-9
    size = 1.4 + 0.75 * len(langs)
    fig, ax = plt.subplots(figsize=(size + 1.8, size))
    pcts = [[100 * v for v in row] for row in matrix]
    im = ax.imshow(pcts, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -100 * vmax, 100 * vmax))
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("evaluated language")
    ax.set_ylabel("neurons switched off")
    ax.set_title(shorten(title, 50) + "\nbyte perplexity change", fontsize=9)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, percent(v), ha="center", va="center", fontsize=7.5,
                    color="white" if math.isfinite(v) and abs(v) > 0.6 * vmax else "black")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("% change (scale of this matrix)")
    fig.tight_layout()
    return fig


def layer_distribution(model: str, panels: list[tuple[str, NeuronLayers]]) -> bytes:
    """One model's detectors side by side: neurons per layer, stacked by language.

    Each panel has its own y scale (titled with its total), so a detector with 40 neurons shows its
    distribution next to one with 1,800; the counts themselves are in the detector table.
    """
    with _figure_context() as plt:
        from matplotlib.ticker import MaxNLocator

        langs = sorted({lang for _, nl in panels for lang in nl.counts})
        colours = {lang: plt.get_cmap("tab10")(i % 10) for i, lang in enumerate(langs)}
        fig, axes = plt.subplots(1, len(panels), figsize=(1.0 + 2.6 * len(panels), 3.4), squeeze=False)
        for ax, (label, nl) in zip(axes[0], panels):
            bottom = [0] * nl.num_layers
            for lang in langs:
                counts = nl.counts.get(lang, [0] * nl.num_layers)
                ax.bar(range(nl.num_layers), counts, bottom=bottom, color=colours[lang], label=lang, width=0.8)
                bottom = [b + c for b, c in zip(bottom, counts)]
            ax.set_title(f"{shorten(label, 24)} ({sum(bottom)})", fontsize=9)
            ax.set_xlabel("layer")
            step = max(1, nl.num_layers // 8)
            ax.set_xticks(range(0, nl.num_layers, step))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].set_ylabel("neurons")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.suptitle(shorten(model, 60), fontsize=10)
        fig.tight_layout(rect=(0, 0.09, 1, 1))
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=8, frameon=False,
                       bbox_to_anchor=(0.5, 0.0))
        return _png(fig)


def steering_rates(series: Mapping[str, Mapping[str, tuple[float, float | None]]], title: str) -> bytes:
    """Grouped bars: per target language, the share of generations in that language, one bar per detector.

    Args:
        series: legend label (detector name, or ``unsteered``) -> {language: (rate, stderr or None)};
            labels are drawn in the given order.
        title: the figure's title (model and task family).
    """
    with _figure_context() as plt:
        langs = sorted({lang for rates in series.values() for lang in rates})
        labels = list(series)
        width = 0.8 / max(1, len(labels))
        fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + 0.45 * len(langs) * max(1, len(labels)) ** 0.5), 3.6))
        for k, label in enumerate(labels):
            rates = series[label]
            xs = [i - 0.4 + width * (k + 0.5) for i, lang in enumerate(langs) if lang in rates]
            ys = [100 * rates[lang][0] for lang in langs if lang in rates]
            errs = [100 * (rates[lang][1] or 0.0) for lang in langs if lang in rates]
            colour = "0.65" if label == "unsteered" else None
            ax.bar(xs, ys, width=width, yerr=errs, capsize=2, label=shorten(label, 40), color=colour)
        ax.set_xticks(range(len(langs)), langs)
        ax.set_ylim(0, 105)
        ax.set_xlabel("target language")
        ax.set_ylabel("lang_rate (%)")
        ax.set_title(shorten(title, 70), fontsize=9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, frameon=False,
                  ncol=min(len(labels), 4))
        fig.tight_layout()
        return _png(fig)
