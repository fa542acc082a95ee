"""``langneuron ppl-matrix``: LAPE's perplexity matrix, computed with lm-eval's ``lang_ppl_*`` tasks.

Row i = language whose neurons are deactivated, column j = language whose held-out text is scored.
``matrix[i][j] = ppl(j | deactivate i) / ppl(j | no intervention) - 1`` (relative change of byte
perplexity by default). Byte perplexity is used because it is comparable across scripts; word
perplexity divides by whitespace words, of which a Chinese or Japanese line has about one.
Since ``log ppl_byte = NLL / bytes``, ``log(1 + matrix[i][j])`` is the change of the per-byte NLL.

One model is loaded and its intervention switched between rows, so the cost is
``(1 + #languages)`` passes over ``#languages`` held-out sets.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import LangNeuronError
from ..fileio import atomic_path, check_output_dir, check_writable, sha256_file, write_json
from ..provenance import versions

METRICS = ("byte_perplexity", "word_perplexity")
TASK_LANGUAGES = ("en", "de", "fr", "es", "zh", "ja")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="perplexity change matrix when each language's neurons are deactivated",
                       description="Evaluate lang_ppl_<lang> (lm-eval) without intervention and with each language's "
                                   "neurons deactivated; write ppl_matrix.json and a heatmap ppl_matrix.png.")
    p.add_argument("--model", default=None, help="model directory or hub id (default: the shipped demo model)")
    p.add_argument("--neurons", required=True, help="neuron file from `langneuron detect`")
    p.add_argument("--langs", default=None,
                   help="comma-separated languages, rows and columns in this order (default: the neuron file's "
                        f"languages that have a lang_ppl task: {', '.join(TASK_LANGUAGES)})")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--metric", default="byte_perplexity", choices=METRICS)
    p.add_argument("--limit", type=int, default=None, help="score only the first N lines per language")
    p.add_argument("--batch-size", default="1", help="lm-eval batch size (an integer or 'auto')")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    p.add_argument("--force", action="store_true", help="overwrite existing ppl_matrix.json / ppl_matrix.png")
    p.set_defaults(func=run)


def _batch_size(text: str) -> int | str:
    if text == "auto" or text.startswith("auto:"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise LangNeuronError(f"--batch-size must be an integer or 'auto', got {text!r}") from None
    if value < 1:
        raise LangNeuronError("--batch-size must be at least 1")
    return value


def _languages(arg: str | None, file_langs: list[str]) -> list[str]:
    if arg:
        langs = list(dict.fromkeys(x.strip() for x in arg.split(",") if x.strip()))
    else:
        langs = [lang for lang in file_langs if lang in TASK_LANGUAGES]
    if not langs:
        raise LangNeuronError(f"no languages to evaluate; the neuron file has {', '.join(file_langs) or 'none'} and "
                              f"lang_ppl tasks exist for {', '.join(TASK_LANGUAGES)}")
    for lang in langs:
        if lang not in TASK_LANGUAGES:
            raise LangNeuronError(f"no lang_ppl task for {lang!r}; available: {', '.join(TASK_LANGUAGES)}")
        if lang not in file_langs:
            raise LangNeuronError(f"language {lang!r} has no neurons in the neuron file (it has {', '.join(file_langs)})")
    return langs


def _log(msg: str) -> None:
    print(f"[ppl-matrix] {msg}", file=sys.stderr, flush=True)


def compute(lm: Any, langs: list[str], metric: str = "byte_perplexity", limit: int | None = None,
            task_manager: Any = None) -> dict[str, Any]:
    """Baseline and deactivation rows for a loaded ``LangNeuronLM`` whose neuron file covers ``langs``."""
    from .. import evaluation

    tm = task_manager or evaluation.make_task_manager()
    tasks = [f"lang_ppl_{lang}" for lang in langs]

    def scores() -> dict[str, float]:
        res = evaluation.evaluate(lm, tasks, limit=limit, task_manager=tm)
        return {lang: evaluation.metric(res, f"lang_ppl_{lang}", metric) for lang in langs}

    total = len(langs) + 1
    started = time.perf_counter()
    _log(f"[1/{total}] no intervention")
    lm.set_intervention(mode="none")
    baseline = scores()
    rows: dict[str, dict[str, float]] = {}
    for k, row in enumerate(langs, start=2):
        _log(f"[{k}/{total}] deactivating {row} neurons ({len(lm.neuron_file.units(row))} units); "
             f"{time.perf_counter() - started:.0f}s elapsed")
        lm.set_intervention(mode="deactivate", lang=row)
        rows[row] = scores()
    lm.set_intervention(mode="none")
    matrix = [[rows[r][c] / baseline[c] - 1.0 for c in langs] for r in langs]
    return {"baseline": baseline, "perplexity": [[rows[r][c] for c in langs] for r in langs], "matrix": matrix,
            "seconds": round(time.perf_counter() - started, 2)}


def _cell(v: float) -> str:
    """Two decimals, or scientific notation for changes too small to show that way."""
    return f"{v:+.2f}" if v == 0 or abs(v) >= 0.005 or not math.isfinite(v) else f"{v:+.0e}"


def plot(path: Path, langs: list[str], matrix: list[list[float]], metric: str, force: bool) -> None:
    """Heatmap of the relative changes (diverging colours centred at 0), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [abs(v) for row in matrix for v in row if math.isfinite(v)]
    vmax = max(finite, default=1.0) or 1.0
    size = 1.0 + 0.7 * len(langs)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("evaluated language")
    ax.set_ylabel("deactivated language")
    ax.set_title(f"relative change of {metric.replace('_', ' ')}")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, _cell(v), ha="center", va="center", fontsize=8,
                    color="white" if math.isfinite(v) and abs(v) > 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from .. import __version__, evaluation
    from ..modeling import default_model_path
    from ..neurons import NeuronFile

    out = check_output_dir(args.out)
    json_path, png_path = out / "ppl_matrix.json", out / "ppl_matrix.png"
    for path in (json_path, png_path):  # refuse before any slow work
        check_writable(path, args.force)
    if args.limit is not None and args.limit < 1:
        raise LangNeuronError("--limit must be at least 1")
    batch_size = _batch_size(str(args.batch_size))
    neurons = NeuronFile.load(args.neurons)
    langs = _languages(args.langs, list(neurons.languages))
    model_path = args.model or str(default_model_path())

    _log(f"loading {model_path} with neurons {args.neurons}")
    lm = evaluation.load_model(model_path, neurons=args.neurons, device=args.device, batch_size=batch_size,
                               dtype=args.dtype)
    result = compute(lm, langs, metric=args.metric, limit=args.limit)

    import lm_eval

    doc = {
        "schema": "langneuron-eval/ppl-matrix",
        "schema_version": 1,
        "languages": langs,
        "rows": "deactivated language",
        "columns": "evaluated language (lang_ppl_<lang>)",
        "metric": args.metric,
        "matrix_definition": f"{args.metric}(column | deactivate row) / {args.metric}(column | no intervention) - 1",
        "matrix": result["matrix"],
        "baseline": result["baseline"],
        "perplexity": result["perplexity"],
        "provenance": {
            "model": model_path,
            "neurons": str(Path(args.neurons).resolve()),
            "neurons_sha256": sha256_file(args.neurons),
            "neurons_content_sha256": neurons.sha256(),
            "detector": neurons.detector,
            "neuron_counts": {lang: len(neurons.units(lang)) for lang in langs},
            "limit": args.limit,
            "dtype": args.dtype,
            "device": args.device,
            "langneuron_eval_version": __version__,
            "lm_eval_version": lm_eval.__version__,
            "versions": versions(),
            "seeds": evaluation.seeds_record(),
        },
    }
    write_json(json_path, doc, force=args.force)
    plot(png_path, langs, result["matrix"], args.metric, args.force)
    _print_matrix(langs, result)
    print(f"wrote {json_path} and {png_path} ({result['seconds']:.0f} s)")
    return 0


def _print_matrix(langs: list[str], result: dict[str, Any]) -> None:
    width = max(7, *(len(x) for x in langs)) + 1
    print("baseline " + " ".join(f"{result['baseline'][c]:>{width}.4g}" for c in langs))
    print("deact\\eval" + "".join(f"{c:>{width + 1}}" for c in langs))
    for r, row in zip(langs, result["matrix"]):
        print(f"{r:<10}" + "".join(f"{_cell(v):>{width + 1}}" for v in row))
