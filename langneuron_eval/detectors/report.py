"""Summaries of neuron files, and the comparison of two (Zhang et al. Table 4 / Fig. 5 style).

All quantities are plain dicts (written by ``neurons-report --json``) plus a text rendering.

Definitions:

* overlap(A, B) = |A ∩ B| / |A| (docs/methods.md §6.4; row language A, column language B; 0 for an empty A).
* N of a unit = number of languages whose set contains it. A file from ``zhang`` carries the
  method's own N (over the selected units, in ``extra['appear']``) and general neurons (N = K over all
  units, ``extra['general']``); these are used when present, otherwise N is computed from the sets.
* specific: N = 1; related: 1 < N < K; general: N = K (K = number of languages in the file).
  In a comparison's N-histogram change, the N = K entry is the change of the general count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.errors import LangNeuronError

Unit = tuple[int, int]


def membership(nf: NeuronFile) -> Counter:
    """unit -> number of languages containing it."""
    c: Counter = Counter()
    for units in nf.languages.values():
        c.update(set(units))
    return c


def unit_classes(nf: NeuronFile) -> dict[str, dict[str, set[Unit]]]:
    """Per language: its specific, related and general units (by N from the sets)."""
    K = len(nf.languages)
    n_of = membership(nf)
    out: dict[str, dict[str, set[Unit]]] = {}
    for lang, units in nf.languages.items():
        s = set(units)
        out[lang] = {
            "specific": {u for u in s if n_of[u] == 1},
            "related": {u for u in s if 1 < n_of[u] < K},
            "general": {u for u in s if n_of[u] == K and K > 1},
        }
    return out


def general_units(nf: NeuronFile) -> tuple[set[Unit], str]:
    """General neurons: the detector's own list (zhang) if present, else units in every language's set."""
    if isinstance(nf.extra.get("general"), list):
        return {(int(a), int(b)) for a, b in nf.extra["general"]}, "extra"
    K = len(nf.languages)
    return ({u for u, n in membership(nf).items() if n == K} if K > 1 else set()), "sets"


def overlap_ratio(a: set, b: set) -> float:
    return len(a & b) / len(a) if a else 0.0


def summarize(nf: NeuronFile) -> dict[str, Any]:
    """Counts, layer distribution, pairwise overlap, N-histogram and classes of one neuron file."""
    L = nf.fingerprint.num_layers
    K = len(nf.languages)
    sets = {lang: set(u) for lang, u in nf.languages.items()}
    n_of = membership(nf)
    layer_dist = {}
    for lang, units in nf.languages.items():
        row = [0] * L
        for layer, _ in units:
            row[layer] += 1
        layer_dist[lang] = row
    hist = [0] * (K + 1)
    for n in n_of.values():
        hist[n] += 1
    classes = unit_classes(nf)
    general, general_source = general_units(nf)
    out: dict[str, Any] = {
        "detector": nf.detector,
        "params": nf.params,
        "fingerprint": nf.fingerprint.to_dict(),
        "counts": nf.counts(),
        "unique_units": len(n_of),
        "layer_distribution": layer_dist,
        "overlap": {a: {b: overlap_ratio(sets[a], sets[b]) for b in sets} for a in sets},
        "n_histogram": hist,
        "classes": {lang: {c: len(s) for c, s in cl.items()} for lang, cl in classes.items()},
        "general": len(general),
        "general_source": general_source,
    }
    if isinstance(nf.extra.get("appear"), list):
        out["detector_n_histogram"] = nf.extra["appear"]
    if nf.fingerprint.segments:  # site linear_out: which linear module each unit is an output of
        out["module_distribution"] = module_distribution(nf)
    return out


def module_distribution(nf: NeuronFile) -> dict[str, dict[str, int]]:
    """Per language, units per linear module (site ``linear_out``), modules in the file's segment order."""
    paths = [seg.path for seg in nf.fingerprint.segments or ()]
    out = {}
    for lang, units in nf.languages.items():
        row = dict.fromkeys(paths, 0)
        for _, unit in units:
            row[nf.fingerprint.unit_name(unit)[0]] += 1
        out[lang] = row
    return out


def compare_neuron_files(a: NeuronFile, b: NeuronFile) -> dict[str, Any]:
    """How file ``b`` differs from ``a``: per-language overlap |A∩B|/|A| and changes of the class counts."""
    fa, fb = a.fingerprint, b.fingerprint
    if (fa.num_layers, fa.intermediate_size, fa.segments) != (fb.num_layers, fb.intermediate_size, fb.segments):
        raise LangNeuronError(f"cannot compare neuron files of different models: {fa.describe()} vs {fb.describe()}")
    common = [lang for lang in a.languages if lang in b.languages]
    if not common:
        raise LangNeuronError("the two neuron files have no language in common")
    ca, cb = unit_classes(a), unit_classes(b)
    per_lang = {}
    pooled = {c: [0, 0] for c in ("all", "specific", "related")}
    for lang in common:
        sa, sb = set(a.languages[lang]), set(b.languages[lang])
        row: dict[str, Any] = {"count_a": len(sa), "count_b": len(sb), "overlap": overlap_ratio(sa, sb)}
        pooled["all"][0] += len(sa & sb)
        pooled["all"][1] += len(sa)
        for c in ("specific", "related"):
            xa, xb = ca[lang][c], cb[lang][c]
            row[f"{c}_a"], row[f"{c}_b"] = len(xa), len(xb)
            row[f"{c}_change"] = len(xb) - len(xa)
            row[f"{c}_overlap"] = overlap_ratio(xa, xb)
            pooled[c][0] += len(xa & xb)
            pooled[c][1] += len(xa)
        per_lang[lang] = row
    ga, _ = general_units(a)
    gb, _ = general_units(b)
    # N = 1..K-1 from the sets; N = K is the general count (zhang: over all units, as in its Fig. 5)
    ha, hb = summarize(a)["n_histogram"], summarize(b)["n_histogram"]
    ha[-1], hb[-1] = len(ga), len(gb)
    width = max(len(ha), len(hb))
    ha, hb = ha + [0] * (width - len(ha)), hb + [0] * (width - len(hb))
    return {
        "languages": common,
        "only_in_a": [x for x in a.languages if x not in b.languages],
        "only_in_b": [x for x in b.languages if x not in a.languages],
        "per_language": per_lang,
        "pooled_overlap": {c: (v[0] / v[1] if v[1] else 0.0) for c, v in pooled.items()},
        "n_histogram_change": [y - x for x, y in zip(ha, hb)],
        "general_a": len(ga),
        "general_b": len(gb),
        "general_change": len(gb) - len(ga),
        "general_overlap": overlap_ratio(ga, gb),
    }


# ---------------------------------------------------------------------------------------------- text
def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned first column, right-aligned numbers, floats with 3 decimals."""

    def fmt(x: Any) -> str:
        return f"{x:.3f}" if isinstance(x, float) else str(x)

    cells = [[fmt(x) for x in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def render_summary(s: dict[str, Any], title: str) -> str:
    langs = list(s["counts"])
    parts = [f"== {title}: detector {s['detector']}, {s['unique_units']} unique units, "
             f"{len(langs)} languages ==", ""]
    parts.append(table(["language", "units", "specific", "related", "general"],
                       [[lang, s["counts"][lang], *s["classes"][lang].values()] for lang in langs]))
    parts += ["", "units per layer:"]
    L = len(next(iter(s["layer_distribution"].values()), []))
    parts.append(table(["layer", *langs], [[i, *(s["layer_distribution"][x][i] for x in langs)] for i in range(L)]))
    if "module_distribution" in s:
        mods = s["module_distribution"]
        paths = list(next(iter(mods.values()), {}))
        parts += ["", "units per linear module (site linear_out):"]
        parts.append(table(["module", *langs], [[p, *(mods[x][p] for x in langs)] for p in paths]))
    parts += ["", "overlap |row ∩ col| / |row|:"]
    parts.append(table(["", *langs], [[a, *(s["overlap"][a][b] for b in langs)] for a in langs]))
    parts += ["", "units by number of languages N:"]
    hist_rows = [[n, s["n_histogram"][n]] for n in range(1, len(s["n_histogram"]))]
    headers = ["N", "units"]
    if "detector_n_histogram" in s:
        det = s["detector_n_histogram"]
        headers.append("selected (detector)")
        hist_rows = [[n, s["n_histogram"][n] if n < len(s["n_histogram"]) else 0, det[n]] for n in range(len(det))]
    parts.append(table(headers, hist_rows))
    parts.append(f"general units (N = K): {s['general']} (from {s['general_source']})")
    return "\n".join(parts)


def render_comparison(c: dict[str, Any], name_a: str, name_b: str) -> str:
    parts = [f"== comparison: A = {name_a}, B = {name_b} ==", ""]
    rows = [[lang, r["count_a"], r["count_b"], r["overlap"], r["specific_a"], r["specific_b"], r["specific_change"],
             r["specific_overlap"], r["related_a"], r["related_b"], r["related_change"], r["related_overlap"]]
            for lang, r in c["per_language"].items()]
    parts.append(table(["language", "A", "B", "|A∩B|/|A|", "spec A", "spec B", "Δspec", "spec ovl",
                        "rel A", "rel B", "Δrel", "rel ovl"], rows))
    po = c["pooled_overlap"]
    parts += ["", f"pooled overlap: all {po['all']:.3f}, specific {po['specific']:.3f}, related {po['related']:.3f}",
              f"general units: A {c['general_a']}, B {c['general_b']}, change {c['general_change']:+d}, "
              f"overlap {c['general_overlap']:.3f}", "", "change in units by number of languages N (B - A):"]
    parts.append(table(["N", "change"], [[n, d] for n, d in enumerate(c["n_histogram_change"]) if n > 0]))
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        if c[key]:
            parts.append(f"languages {label}: {', '.join(c[key])}")
    return "\n".join(parts)
