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

from .sources import NeuronLayers, PplMatrix

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


def ppl_heatmap(pm: PplMatrix) -> bytes:
    """Relative perplexity change, diverging colours centred at 0 (red: deactivation hurt)."""
    with _figure_context() as plt:
        langs = pm.languages
        finite = [abs(v) for row in pm.matrix for v in row if math.isfinite(v)]
        vmax = max(finite, default=1.0) or 1.0
        size = 1.2 + 0.7 * len(langs)
        fig, ax = plt.subplots(figsize=(size + 1.6, size))
        im = ax.imshow(pm.matrix, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(langs)), langs)
        ax.set_xlabel("evaluated language")
        ax.set_ylabel("deactivated language")
        title = f"relative change of {pm.metric.replace('_', ' ')}"
        if pm.provenance.get("detector"):
            title += f"\n{shorten(pm.provenance['detector'], 40)}"
        ax.set_title(title)
        for i, row in enumerate(pm.matrix):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:+.2f}" if math.isfinite(v) else "n/a", ha="center", va="center", fontsize=8,
                        color="white" if math.isfinite(v) and abs(v) > 0.6 * vmax else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        return _png(fig)


def layer_distribution(nl: NeuronLayers) -> bytes:
    """Neurons per layer, one bar series per language: where in depth a detector finds each language."""
    with _figure_context() as plt:
        from matplotlib.ticker import MaxNLocator

        langs = list(nl.counts)
        layers = list(range(nl.num_layers))
        width = 0.8 / max(1, len(langs))
        fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + 0.3 * nl.num_layers * max(1, len(langs)) ** 0.5), 3.4))
        for k, lang in enumerate(langs):
            offsets = [x - 0.4 + width * (k + 0.5) for x in layers]
            ax.bar(offsets, nl.counts[lang], width=width, label=lang)
        ax.set_xlabel("layer")
        ax.set_ylabel("neurons")
        step = max(1, nl.num_layers // 16)
        ax.set_xticks(layers[::step])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(shorten(f"{nl.detector} ({nl.sha256[:12]})", 70))
        if langs:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        fig.tight_layout()
        return _png(fig)


def steering_rates(series: Mapping[str, Mapping[str, tuple[float, float | None]]], title: str) -> bytes:
    """Grouped bars: per target language, the share of generations in that language, per configuration.

    Args:
        series: label -> {language: (rate, stderr or None)}; labels are drawn in the given order.
        title: the figure's title (which task family).
    """
    with _figure_context() as plt:
        langs = sorted({lang for rates in series.values() for lang in rates})
        labels = list(series)
        width = 0.8 / max(1, len(labels))
        fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + 0.5 * len(langs) * max(1, len(labels)) ** 0.5),
                                        3.2 + 0.22 * len(labels)))
        for k, label in enumerate(labels):
            rates = series[label]
            xs = [i - 0.4 + width * (k + 0.5) for i, lang in enumerate(langs) if lang in rates]
            ys = [rates[lang][0] for lang in langs if lang in rates]
            errs = [rates[lang][1] or 0.0 for lang in langs if lang in rates]
            ax.bar(xs, ys, width=width, yerr=errs, capsize=2, label=shorten(label))
        ax.set_xticks(range(len(langs)), langs)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("target language")
        ax.set_ylabel("lang_rate")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=7, frameon=False, ncol=1)
        fig.tight_layout()
        return _png(fig)
