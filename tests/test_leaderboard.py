"""``langneuron leaderboard`` on hand-built lm-eval 0.4.13 results files.

The fixture files follow what lm-eval 0.4.13 writes for ``--output_path DIR --log_samples``
(``evaluator.simple_evaluate`` + ``EvaluationTracker.save_results_aggregated``): the same keys in
the same order, ``"N/A"`` stderrs where lm-eval cannot compute one, group entries, the tracker's
fields, ``DIR/<model_name_sanitized>/results_<date_id>.json`` and ``samples_<task>_<date_id>.jsonl``.
``make_results`` / ``write_results`` are imported by tests/test_browser.py too.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from langneuron_eval.fileio import sha256_file
from langneuron_eval.leaderboard import OUTPUT_NAMES

LAPE_SHA = "a" * 64
RANDOM_SHA = "b" * 64
XSS = "<script>alert(1)</script>"
T0 = 1767261600.0  # 2026-01-01 10:00:00 UTC

# task -> metric -> higher_is_better, as our task YAMLs declare them
HIGHER_IS_BETTER = {
    "lang_steer": {"lang_rate": True, "lang_rate_en": False, "lang_rate_de": False, "lang_rate_zh": False,
                   "lang_rate_other": False},
    "lang_ppl": {"word_perplexity": False, "byte_perplexity": False, "bits_per_byte": False},
    "xqa": {"exact_match": True, "f1": True, "f1_char": True},
}


def _family(task: str) -> str:
    return next(f for f in HIGHER_IS_BETTER if task.startswith(f))


def langneuron_info(mode: str = "activate", lang: tuple[str, ...] = ("zh",), *, value: Any = "mean",
                    strength: float = 1.0, positions: str = "all", deactivate: tuple[str, ...] = (),
                    sha: str = LAPE_SHA, detector: str = "lape") -> dict[str, Any]:
    """``results["config"]["langneuron"]`` exactly as ``LangNeuronLM.intervention_info`` writes it."""
    return {
        "mode": mode, "lang": list(lang), "value": value, "strength": strength, "positions": positions,
        "deactivate": list(deactivate), "deactivate_arg": "+".join(deactivate) or None,
        "neurons": f"/data/neurons_{detector}.json", "neurons_sha256": sha,
        "langneuron_eval_version": "0.1.0", "neurons_content_sha256": sha[::-1], "detector": detector,
        "site": "act_out", "neuron_counts": {"de": 10, "en": 10, "zh": 10},
    }


def make_results(scores: dict[str, dict[str, tuple[float, Any]]], *, model: str = "org/tiny-llama",
                 info: dict[str, Any] | None = None, date: float = T0, limit: float | None = None,
                 lm_eval_version: str = "0.4.13", groups: dict[str, list[str]] | None = None,
                 effective: int = 100) -> dict[str, Any]:
    """An lm-eval 0.4.13 results dict. ``scores``: task -> metric -> (value, stderr or "N/A")."""
    results: dict[str, Any] = {}
    for task, metrics in scores.items():
        entry: dict[str, Any] = {"alias": task if task not in (groups or {}) else task}
        if task not in (groups or {}):
            entry = {"name": task, "alias": task, "sample_len": effective}
        for metric, (value, stderr) in metrics.items():
            entry[f"{metric},none"] = value
            entry[f"{metric}_stderr,none"] = stderr
        results[task] = entry
    tasks = [t for t in scores if t not in (groups or {})]
    backend = "langneuron" if info is not None else "hf"
    model_args: dict[str, Any] = {"pretrained": model}
    if info is not None:
        model_args.update(neurons=info["neurons"], mode=info["mode"], lang="+".join(info["lang"]))
    config: dict[str, Any] = {"model": backend, "model_args": model_args, "model_num_parameters": 32160,
                              "model_dtype": "torch.float32", "model_revision": "main", "model_sha": ""}
    if info is not None:
        config["langneuron"] = info
    config.update({"batch_size": 1, "batch_sizes": [], "device": "cpu", "use_cache": None, "limit": limit,
                   "bootstrap_iters": 100000, "gen_kwargs": {}, "random_seed": 0, "numpy_seed": 1234,
                   "torch_seed": 1234, "fewshot_seed": 1234})
    doc: dict[str, Any] = {"results": results}
    if groups:
        doc["groups"] = {g: results[g] for g in groups}
    doc.update({
        "group_subtasks": dict(groups or {}),
        "configs": {t: {"task": t, "dataset_kwargs": {"corpus_lang": t.rsplit("_", 1)[-1]}, "test_split": "test",
                        "output_type": "generate_until", "num_fewshot": 0,
                        "metric_list": [{"metric": m, "aggregation": "mean",
                                         "higher_is_better": HIGHER_IS_BETTER[_family(t)].get(m, False)}
                                        for m in scores[t]],
                        "metadata": {"version": 1.0, "pretrained": model}} for t in sorted(tasks)},
        "versions": {t: 1.0 for t in sorted(scores)},
        "n-shot": {t: 0 for t in sorted(scores)},
        "higher_is_better": {t: {m: HIGHER_IS_BETTER[_family(t)].get(m, False) for m in scores[t]}
                             for t in sorted(scores)},
        "n-samples": {t: {"original": 100, "effective": effective} for t in tasks},
        "config": config,
        "git_hash": None,
        "date": date,
        "pretty_env_info": "PyTorch version: 2.13.0\nIs CUDA available: False",
        "transformers_version": "5.23.0",
        "lm_eval_version": lm_eval_version,
        "upper_git_hash": None,
        "tokenizer_pad_token": ["<pad>", "0"], "tokenizer_eos_token": ["</s>", "2"],
        "tokenizer_bos_token": ["<s>", "1"], "eot_token_id": 2, "max_length": 256,
        "task_hashes": {},
        "model_source": backend, "model_name": model, "model_name_sanitized": re.sub(r"[\"<>:/|\\?*\[\]]+", "__", model),
        "system_instruction": None, "system_instruction_sha": None, "fewshot_as_multiturn": None,
        "chat_template": None, "chat_template_sha": None, "total_evaluation_time_seconds": "12.5",
    })
    return doc


def write_results(root: Path, doc: dict[str, Any], samples: dict[str, int] | None = None, subdir: str = "") -> Path:
    """Write ``doc`` where ``lm_eval --output_path root`` would, plus ``samples`` lines per task."""
    date_id = dt.datetime.fromtimestamp(doc["date"]).isoformat(timespec="microseconds").replace(":", "-")
    folder = root / (subdir or doc["model_name_sanitized"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{date_id}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    for task, n in (samples or {}).items():
        lines = [json.dumps({"doc_id": i, "doc": {"id": i}, "target": "zh", "filter": "none"}) for i in range(n)]
        (folder / f"samples_{task}_{date_id}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def steer(rate: float, se: float, **others: float) -> dict[str, tuple[float, Any]]:
    return {"lang_rate": (rate, se), **{f"lang_rate_{k}": (v, 0.01) for k, v in others.items()}}


def ppl(byte: float) -> dict[str, tuple[float, Any]]:
    return {"word_perplexity": (byte * 3, "N/A"), "byte_perplexity": (byte, "N/A"),
            "bits_per_byte": (round(__import__("math").log2(byte), 6), "N/A")}


def write_suite(root: Path) -> dict[str, Path]:
    """Two models; baseline, LAPE activate/deactivate, random; two runs of one configuration; groups."""
    paths = {}
    paths["base_steer"] = write_results(root, make_results(
        {"lang_steer_zh": steer(0.02, 0.014, en=0.9), "lang_steer_de": steer(0.05, 0.0218, en=0.85)},
        date=T0, limit=None), samples={"lang_steer_zh": 100, "lang_steer_de": 100})
    paths["base_ppl"] = write_results(root, make_results(
        {"lang_ppl": {"byte_perplexity": (3.0, "N/A")}, "lang_ppl_en": ppl(2.5), "lang_ppl_zh": ppl(3.5)},
        date=T0 + 60, groups={"lang_ppl": ["lang_ppl_en", "lang_ppl_zh"]}))
    paths["lape_act_old"] = write_results(root, make_results(
        {"lang_steer_zh": steer(0.5, 0.05, en=0.4)}, info=langneuron_info(), date=T0 + 120))
    paths["lape_act"] = write_results(root, make_results(
        {"lang_steer_zh": steer(0.81, 0.0394, en=0.12), "lang_steer_de": steer(0.01, 0.01, en=0.8)},
        info=langneuron_info(), date=T0 + 3600), samples={"lang_steer_zh": 100})
    paths["lape_deact"] = write_results(root, make_results(
        {"lang_ppl_en": ppl(2.6), "lang_ppl_zh": ppl(9.25)},
        info=langneuron_info("deactivate", value="median", strength=2.0), date=T0 + 180))
    paths["random_act"] = write_results(root, make_results(
        {"lang_steer_zh": steer(0.03, 0.017)},
        info=langneuron_info(sha=RANDOM_SHA, detector="random"), date=T0 + 240))
    paths["xss"] = write_results(root, make_results(
        {"xqa_en": {"exact_match": (0.25, 0.0435), "f1": (0.4, 0.03), "f1_char": (0.5, 0.02)}},
        model=XSS, date=T0 + 300, limit=20.0), subdir="xss")
    (root / "notes.json").write_text("{}", encoding="utf-8")  # not results_*.json: never read
    return paths


# --------------------------------------------------------------------- a demo-like results folder

DEMO_LANGS = ("de", "en", "es", "fr", "ja", "zh")
VENV_ASSETS = "/opt/venv/lib/python3.11/site-packages/langneuron_eval/assets"
DEMO_BASE, DEMO_ALIGNED = f"{VENV_ASSETS}/demo-base", f"{VENV_ASSETS}/demo-aligned"
# (unsteered, steered) lang_rate per language: lape steers 5 of 6 by >= 50 points, kojima_ap 3 of 6
UNSTEERED = {"de": 0.25, "en": 0.19, "es": 0.15, "fr": 0.21, "ja": 0.08, "zh": 0.13}
STEERED = {"lape": {"de": 0.99, "en": 0.60, "es": 1.0, "fr": 0.98, "ja": 0.98, "zh": 0.69},
           "kojima_ap": {"de": 0.80, "en": 0.30, "es": 0.70, "fr": 0.40, "ja": 0.90, "zh": 0.50}}
XQA_F1 = {"base": {"de": (0.004, 0.003), "zh": (0.0, 0.0)}, "aligned": {"de": (0.077, 0.004), "zh": (0.075, 0.01)}}


def demo_neuron_files(folder: Path) -> dict[str, Path]:
    """lape, kojima_ap, zhang and random neuron files over the six languages, saved as `detect` would."""
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    fp = ModelFingerprint("llama", 4, 768, "act_out")
    sizes = {"lape": 4, "kojima_ap": 6, "zhang": 1, "random": 4}
    paths = {}
    for k, (method, n) in enumerate(sizes.items()):
        langs = {lang: [((i + j) % 4, 100 * k + 10 * i + j) for j in range(n)] for i, lang in enumerate(DEMO_LANGS)}
        nf = NeuronFile(fingerprint=fp, detector=method, languages=langs, params={"seed": k})
        paths[method] = nf.save(folder / f"{method}.json")
    return paths


def demo_doc(scores: dict[str, dict[str, tuple[float, Any]]], model: str, nf_path: Path | None = None,
             mode: str = "none", lang: str | None = None) -> dict[str, Any]:
    """A results file as `langneuron demo` saves it: a model object (config.model is its path), no date."""
    from langneuron_eval.core.neurons import NeuronFile

    info = None
    if nf_path is not None:
        nf = NeuronFile.load(nf_path)
        others = tuple(x for x in DEMO_LANGS if x != lang) if mode == "activate" else ()
        info = langneuron_info(mode, (lang,) if lang else (), strength=12.0, deactivate=others,
                               sha=sha256_file(nf_path), detector=nf.detector)
        info.update(neurons_content_sha256=nf.sha256(), detector_params=nf.params,
                    neuron_counts={x: len(u) for x, u in nf.languages.items()},
                    deactivate_arg="others" if others else None)
    doc = make_results(scores, model=model, info=info)
    doc["config"]["model"], doc["config"]["model_args"] = model, None
    del doc["date"]
    doc["langneuron_normalized"] = {"dropped": ["date", "total_evaluation_time_seconds"]}
    return doc


def write_ppl_matrix(path: Path, langs: tuple[str, ...] | list[str], effects: list[list[float]], noise: float,
                     provenance: dict[str, Any], n_docs: int = 40, seed: int = 0) -> Path:
    """A schema-2 ``ppl_matrix.json`` as the writers make it, from per-document scores with a known effect.

    Every document of column j gets, with row i's neurons off, NLL = baseline + bytes * (log(1 + effects[i][j])
    + noise * N(0, 1)): with ``noise=0`` every document changes by the same ratio, so the paired bootstrap's
    interval is exactly the point. ``attach_evidence`` fills the intervals and the dominance, as the writers do.
    """
    import numpy as np

    from langneuron_eval.core.ppl_matrix import PplMatrixFile
    from langneuron_eval.evidence import attach_evidence

    rng = np.random.default_rng(seed)
    units = {c: rng.integers(100, 300, n_docs).astype(float) for c in langs}
    base = {c: units[c] * (1.1 + 0.2 * rng.random(n_docs)) for c in langs}
    nll: dict[str, dict[str, list[float]]] = {"none": {c: base[c].tolist() for c in langs}}
    matrix = []
    for i, row in enumerate(langs):
        nll[row] = {}
        for j, col in enumerate(langs):
            shift = np.log1p(effects[i][j]) + noise * rng.standard_normal(n_docs)
            nll[row][col] = (base[col] + units[col] * shift).tolist()
        matrix.append([float(np.expm1((np.sum(nll[row][c]) - base[c].sum()) / units[c].sum())) for c in langs])
    per_document = {"units": {c: units[c].tolist() for c in langs}, "nll": nll}
    pm = PplMatrixFile(list(langs), matrix, {c: 3.0 for c in langs}, "byte_perplexity", provenance=provenance,
                       per_document=per_document)
    path.parent.mkdir(parents=True, exist_ok=True)
    return attach_evidence(pm).save(path)


def write_demo_like(root: Path, evidence: bool = True) -> dict[str, Any]:
    """What `langneuron demo --out root` leaves for the leaderboard: results/, neurons/, ppl_matrix/.

    ``evidence``: schema-2 matrices with per-document scores (what the demo writes now); else the schema-less
    files of older versions, with no intervals.
    """
    from langneuron_eval.core.neurons import NeuronFile

    nfs = demo_neuron_files(root / "neurons")

    def save(sub: str, doc: dict[str, Any]) -> None:
        folder = root / "results" / sub
        folder.mkdir(parents=True)
        (folder / "results_demo.json").write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")

    base_rates = {f"lang_steer_{x}": steer(UNSTEERED[x], 0.04) for x in DEMO_LANGS}
    save("base-none-steer", demo_doc(base_rates, DEMO_BASE, nfs["lape"]))
    for method, rates in STEERED.items():
        for x, rate in rates.items():
            save(f"base-{method}-activate-{x}", demo_doc({f"lang_steer_{x}": steer(rate, 0.03)}, DEMO_BASE,
                                                                nfs[method], "activate", x))
    for name, model in (("base", DEMO_BASE), ("aligned", DEMO_ALIGNED)):
        qa = {f"xqa_{x}": {"f1": XQA_F1[name][x]} for x in XQA_F1[name]}
        save(f"{name}-none-qa", demo_doc(qa, model))
    matrices = {}
    n = len(DEMO_LANGS)
    # lape: the diagonal (+5% ... +30%) is every column's maximum; off-diagonal 0, +0.04% or +0.08%.
    # random: +0.1% ... +0.6% with no column maximum on the diagonal.
    lape = [[0.05 * (1 + i) if i == j else 0.0004 * ((i * n + j) % 3) for j in range(n)] for i in range(n)]
    random = [[0.001 * ((i + 2 * j) % 6 + 1) for j in range(n)] for i in range(n)]
    for method, matrix in (("lape", lape), ("random", random)):
        path = root / "ppl_matrix" / method / "ppl_matrix.json"
        if evidence:  # document noise well below the structure: lape's diagonal and random's order are sure
            provenance = {"detector": method, "neurons_sha256": NeuronFile.load(nfs[method]).sha256()}
            matrices[method] = write_ppl_matrix(path, DEMO_LANGS, matrix, 0.002 if method == "lape" else 0.0002,
                                                provenance)
            continue
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"languages": list(DEMO_LANGS), "matrix": matrix, "metric": "byte_perplexity",
                                    "baseline": {x: 3.0 for x in DEMO_LANGS}, "detector": method,
                                    "neurons_sha256": NeuronFile.load(nfs[method]).sha256()}), encoding="utf-8")
        matrices[method] = path
    return {"results": root / "results", "neurons": nfs, "ppl_matrix": matrices}


def write_bad_files(root: Path) -> dict[str, Path]:
    bad = root / "bad"
    bad.mkdir(parents=True)
    good = make_results({"lang_steer_en": steer(0.9, 0.03)})
    files = {
        "json": ("results_badjson.json", '{"results": {'),
        "no_results": ("results_noresults.json", json.dumps({k: v for k, v in good.items() if k != "results"})),
        "types": ("results_types.json", json.dumps({**good, "results": {"lang_steer_en": {"lang_rate,none": "high"}}})),
        "list": ("results_list.json", json.dumps([1, 2])),
        "old": ("results_old.json", json.dumps({**good, "lm_eval_version": "0.3.0"})),
        "new": ("results_new.json", json.dumps({**good, "lm_eval_version": "0.5.1"})),
        "config": ("results_config.json", json.dumps({**good, "config": "hf"})),
    }
    out = {}
    for key, (name, text) in files.items():
        (bad / name).write_text(text, encoding="utf-8")
        out[key] = bad / name
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def md_rows(path: Path) -> list[list[str]]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]


def png_sizes(page: str) -> list[tuple[int, int]]:
    """Width and height of every embedded PNG, read from its IHDR chunk."""
    import base64

    sizes = []
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        raw = base64.b64decode(data)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
        sizes.append(struct.unpack(">II", raw[16:24]))
    return sizes


@pytest.fixture
def suite(tmp_path):
    root = tmp_path / "results"
    return root, write_suite(root)


# --------------------------------------------------------------------------------------- the tables

def test_rows_columns_and_values(run_cli, suite, tmp_path):
    root, paths = suite
    out = tmp_path / "site"
    rc, stdout, err = run_cli("leaderboard", root, "--out", out)
    assert rc == 0, err
    assert "wrote" in stdout and sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_NAMES)
    rows = read_csv(out / "leaderboard.csv")
    keys = [(r["model"], r["detector"], r["intervention"]) for r in rows]
    assert keys == [
        ("<script>alert(1)</script>", "none", "none"),
        ("org/tiny-llama", "none", "none"),
        ("org/tiny-llama", "lape", "activate(zh, value=mean, strength=1)"),
        ("org/tiny-llama", "lape", "deactivate(zh)"),  # value/strength are not used by deactivate
        ("org/tiny-llama", "random", "activate(zh, value=mean, strength=1)"),
    ]
    assert [r["id"] for r in rows] == ["R1", "R2", "R3", "R4", "R5"]
    base, act, deact, rnd = rows[1], rows[2], rows[3], rows[4]
    # the baseline's two files (steering and perplexity) are one row
    assert base["result_files"].count("results_") == 2
    assert base["lang_steer_zh/lang_rate"] == "0.02" and base["lang_steer_zh/lang_rate_stderr"] == "0.014"
    assert base["lang_ppl_zh/byte_perplexity"] == "3.5" and base["lang_ppl_zh/byte_perplexity_stderr"] == ""
    assert base["lang_ppl/byte_perplexity"] == "3.0"  # group aggregate is a column of its own
    assert base["limit"] == "all" and base["neurons_sha256"] == "" and base["langneuron_eval_version"] == ""
    # samples: counted in samples_*.jsonl where present (200), else n-samples "effective" (100 per task)
    assert base["samples"] == str(200 + 100 + 100)
    # newer run of the same configuration wins for lang_steer_zh
    assert act["lang_steer_zh/lang_rate"] == "0.81" and act["lang_steer_zh/lang_rate_stderr"] == "0.0394"
    assert act["result_files"].count("results_") == 2
    assert act["date"] == "2026-01-01T11:00:00Z"
    assert act["neurons_sha256"] == LAPE_SHA and act["langneuron_eval_version"] == "0.1.0"
    assert act["lm_eval_version"] == "0.4.13" and act["transformers_version"] == "5.23.0"
    assert deact["lang_ppl_zh/byte_perplexity"] == "9.25" and deact["lang_steer_zh/lang_rate"] == ""
    assert rnd["neurons_sha256"] == RANDOM_SHA and rnd["lang_steer_de/lang_rate"] == ""
    assert rows[0]["xqa_en/exact_match"] == "0.25" and rows[0]["limit"] == "20"
    # columns: provenance first, then metrics sorted by task and metric, each followed by its stderr
    header = next(csv.reader(io.StringIO((out / "leaderboard.csv").read_text())))
    metric_cols = header[header.index("result_files") + 1:]
    assert metric_cols[:4] == ["lang_ppl/byte_perplexity", "lang_ppl/byte_perplexity_stderr",
                               "lang_ppl_en/bits_per_byte", "lang_ppl_en/bits_per_byte_stderr"]
    names = metric_cols[::2]
    assert names == sorted(names, key=lambda n: tuple(n.split("/"))) and len(set(names)) == len(names)
    assert all(s == f"{n}_stderr" for n, s in zip(metric_cols[::2], metric_cols[1::2]))
    # the newer run's value replaced the older; the note names both files
    notes = [ln for ln in err.splitlines() if "note:" in ln]
    assert len(notes) == 1, notes  # one line per replaced file, not per metric
    assert notes[0].startswith("langneuron leaderboard: note: lang_steer_zh of org/tiny-llama [lape, activate(")
    assert paths["lape_act_old"].as_posix() in notes[0] and notes[0].endswith(f"using the newer {paths['lape_act'].as_posix()}")


def test_markdown_shows_ranked_views_not_the_configuration_dump(run_cli, suite, tmp_path):
    root, _ = suite
    out = tmp_path / "site"
    assert run_cli("leaderboard", root, "--out", out)[0] == 0
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    sections = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert sections == ["## Detectors", "## Steering", "## Models and alignment"]
    table = md_rows(out / "leaderboard.md")
    assert table[0] == ["Rank", "Detector", "Score", "vs leader", "Beats floor", "Diagonal max", "Diag / off-diag",
                        "Mean gain (pts)", "Gain ≥ 50 pts", "Settings", "Neurons", "Parameters"]
    assert "### org/tiny-llama · steering only" in md  # the kind of score is the table's caption
    ranking = dict((r[1], r) for r in table[1:3])
    # lape steers zh from 2% to 81% of 100 generations (+79 points, 1 of 1 language, clearly above 50 points:
    # the interval of the share is [1, 1]); the random control (one draw) gains 1 point
    assert ranking["lape"][:5] == ["1", "lape", "100.0 [100.0, 100.0]", "leader", "no verdict (1 draw)"]
    assert ranking["lape"][7:11] == ["+79.0", "1/1", "1", "30"]
    assert ranking["random (control)"][:3] == ["floor", "random (control)", "0.0 (1 draw)"]
    steering = next(i for i, r in enumerate(table) if r[:3] == ["Rank", "Detector", "Intervention"])
    assert table[steering + 1] == ["–", "none", "unsteered", "2.0 ± 1.4", ""]
    assert table[steering + 2][1:] == ["lape", "activate(&lt;lang&gt;, value=mean, strength=1)", "81.0 ± 3.9", "+79.0"]
    # the full table with every metric is leaderboard.csv, not a 40-column Markdown table
    assert max(len(r) for r in table) <= 12 and "lang_ppl_zh/byte_perplexity" not in md
    # a model name with markup is inert text in the Markdown too (rendered as HTML by most viewers)
    assert XSS not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_outputs_are_deterministic(run_cli, suite, tmp_path):
    root, _ = suite
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("leaderboard", root, "--out", a)[0] == 0
    assert run_cli("leaderboard", root, "--out", b)[0] == 0
    for name in OUTPUT_NAMES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # rebuilding in place with --force changes nothing either
    before = (a / "leaderboard.csv").read_bytes()
    assert run_cli("leaderboard", root, "--out", a, "--force")[0] == 0
    assert (a / "leaderboard.csv").read_bytes() == before


def test_row_order_does_not_depend_on_file_names(run_cli, tmp_path):
    """Same results under other file and folder names: same rows (newest wins by date, not by name)."""
    docs = [make_results({"lang_steer_zh": steer(0.5, 0.05)}, info=langneuron_info(), date=T0),
            make_results({"lang_steer_zh": steer(0.7, 0.04)}, info=langneuron_info(), date=T0 + 10),
            make_results({"lang_steer_zh": steer(0.1, 0.03)}, date=T0 + 5)]
    for root, subdirs in ((tmp_path / "x", ["c", "b", "a"]), (tmp_path / "y", ["a", "b", "c"])):
        for doc, sub in zip(docs, subdirs):
            write_results(root, doc, subdir=sub)
    assert run_cli("leaderboard", tmp_path / "x", "--out", tmp_path / "ox")[0] == 0
    assert run_cli("leaderboard", tmp_path / "y", "--out", tmp_path / "oy")[0] == 0
    md_x, md_y = (tmp_path / "ox" / "leaderboard.md").read_text(), (tmp_path / "oy" / "leaderboard.md").read_text()
    assert md_x == md_y and "| 70.0 ± 4.0 |" in md_x and "50.0 ± 5.0" not in md_x  # lang_rate in percent


# ------------------------------------------------------------------------------------- bad input

def test_malformed_and_unknown_version_files_are_skipped_with_one_line_each(run_cli, suite, tmp_path):
    root, _ = suite
    bad = write_bad_files(root)
    out = tmp_path / "site"
    rc, _, err = run_cli("leaderboard", root, "--out", out)
    assert rc == 0, err
    warnings = [ln for ln in err.splitlines() if "warning:" in ln]
    assert len(warnings) == len(bad)
    for path in bad.values():
        line = next(ln for ln in warnings if path.name in ln)
        assert line.startswith("langneuron leaderboard: warning: skipping ")
    by_name = {p.name: next(ln for ln in warnings if p.name in ln) for p in bad.values()}
    assert "not valid JSON (line 1" in by_name["results_badjson.json"]
    assert "missing 'results'" in by_name["results_noresults.json"]
    assert "'lang_rate,none'] is not a number" in by_name["results_types.json"]
    assert "not a JSON object" in by_name["results_list.json"]
    assert "'0.3.0' is not supported" in by_name["results_old.json"]
    assert "'0.5.1' is not supported" in by_name["results_new.json"]
    assert "'config' has the wrong type" in by_name["results_config.json"]
    # the good files still make the table; the skipped ones are listed on the page
    assert len(read_csv(out / "leaderboard.csv")) == 5
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Skipped results files" in page and "results_old.json" in page


def test_only_bad_files_is_an_error(run_cli, tmp_path):
    write_bad_files(tmp_path / "r")
    rc, _, err = run_cli("leaderboard", tmp_path / "r", "--out", tmp_path / "site")
    assert rc == 2
    assert err.strip().splitlines()[-1].startswith("langneuron leaderboard: error: no usable lm-eval results files")
    assert not (tmp_path / "site").exists() or not any((tmp_path / "site").iterdir())


def test_missing_results_dir_is_one_line_error(run_cli, tmp_path):
    rc, _, err = run_cli("leaderboard", tmp_path / "nope", "--out", tmp_path / "site")
    assert rc == 2 and err.strip() == f"langneuron leaderboard: error: results path not found: {tmp_path / 'nope'}"


def test_existing_outputs_need_force(run_cli, suite, tmp_path):
    root, _ = suite
    out = tmp_path / "site"
    out.mkdir()
    (out / "leaderboard.csv").write_text("precious\n")
    rc, _, err = run_cli("leaderboard", root, "--out", out)
    assert rc == 2 and "leaderboard.csv already exists; pass --force" in err and len(err.strip().splitlines()) == 1
    assert (out / "leaderboard.csv").read_text() == "precious\n"
    assert not (out / "leaderboard.md").exists() and not (out / "index.html").exists()  # refused before writing
    rc, _, err = run_cli("leaderboard", root, "--out", out, "--force")
    assert rc == 0, err
    assert (out / "leaderboard.csv").read_text().startswith("id,model,")
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp files left behind
    mask = os.umask(0)
    os.umask(mask)
    for name in OUTPUT_NAMES:  # publishable: not the temp file's 0600
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


# ---------------------------------------------------------------------------------------- the page

def test_page_escapes_strings_and_is_self_contained(run_cli, suite, tmp_path):
    root, _ = suite
    out = tmp_path / "site"
    assert run_cli("leaderboard", root, "--out", out)[0] == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the page's own, nothing injected
    # no network: no external URL anywhere, CSP forbids fetching anything but data: images
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1))
    assert csp.startswith("default-src 'none'; img-src data:;") and "unsafe-inline" not in csp
    # sortable table markup: one header per column, numeric columns typed, cells carry sort values
    assert 'data-key="lang_steer_zh/lang_rate" data-type="num"' in page
    assert 'data-key="model" data-type="text"' in page
    assert re.search(r'<td class="num" data-v="0\.81">0\.8100 ± 0\.0394</td>', page)
    assert [m for m in re.findall(r'<tr data-id="(R\d+)">', page)] == ["R1", "R2", "R3", "R4", "R5"]
    # steering chart from the lang_steer rows; no ppl matrix / neuron files given
    assert len(png_sizes(page)) == 1 and "No perplexity-change matrix" in page and "No neuron files given" in page


def test_page_figures_from_ppl_matrix_and_neuron_files(run_cli, suite, tmp_path):
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    root, _ = suite
    nf = NeuronFile(fingerprint=ModelFingerprint("llama", 4, 16, "act_out"), detector="lape",
                    languages={"en": [(0, 1), (0, 2), (3, 5)], "zh": [(2, 1), (3, 1), (3, 2), (3, 9)]},
                    params={"top_rate": 0.01, "filter_rate": 0.95, "per_language_quota": False})
    nf_path = nf.save(tmp_path / "neurons_lape.json")
    sha = sha256_file(nf_path)
    write_results(root, make_results({"lang_steer_en": steer(0.95, 0.02)},
                                     info=langneuron_info(lang=("en",), sha=sha), date=T0 + 400))
    pm_path = tmp_path / "ppl_matrix.json"
    pm_path.write_text(json.dumps({
        "schema": "langneuron-eval/ppl-matrix", "schema_version": 1, "languages": ["en", "zh"],
        "metric": "byte_perplexity", "matrix": [[0.8, 0.01], [0.02, 1.6]], "baseline": {"en": 2.5, "zh": 3.5},
        "provenance": {"model": "org/tiny-llama", "detector": "lape", "neurons_sha256": sha}}))
    out = tmp_path / "site"
    rc, _, err = run_cli("leaderboard", root, "--out", out, "--ppl-matrix", pm_path, "--neurons", nf_path)
    assert rc == 0, err
    page = (out / "index.html").read_text(encoding="utf-8")
    sizes = png_sizes(page)
    assert len(sizes) == 3 and all(w > 100 and h > 100 for w, h in sizes)  # heatmap, layers, steering
    assert "baseline byte perplexity: en 2.500, zh 3.500" in page
    assert f"sha256 {sha[:12]}, neurons: en 3, zh 4" in page
    # the row whose neuron sha256 matches the file gets the detector's parameters from it
    row = next(r for r in read_csv(out / "leaderboard.csv") if r["neurons_sha256"] == sha)
    assert row["detector_params"] == "filter_rate=0.95, per_language_quota=false, top_rate=0.01"
    assert row["intervention"] == "activate(en, value=mean, strength=1)"


@pytest.mark.parametrize("content, message", [
    ("{", "is not valid JSON"),
    (json.dumps({"languages": ["en", "zh"], "matrix": [[0.1]]}), "'matrix' must be a 2 x 2"),
    (json.dumps({"languages": [], "matrix": []}), "'languages' must be a non-empty list"),
    (json.dumps({"languages": ["en"], "matrix": [["x"]]}), "matrix[0][0] is not a number"),
])
def test_bad_ppl_matrix_is_an_error_and_writes_nothing(run_cli, suite, tmp_path, content, message):
    root, _ = suite
    bad = tmp_path / "ppl_matrix.json"
    bad.write_text(content)
    rc, _, err = run_cli("leaderboard", root, "--out", tmp_path / "site", "--ppl-matrix", bad)
    assert rc == 2 and message in err and str(bad) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "site" / "leaderboard.md").exists()


def test_bad_neuron_file_is_an_error(run_cli, suite, tmp_path):
    root, _ = suite
    bad = tmp_path / "neurons.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    rc, _, err = run_cli("leaderboard", root, "--out", tmp_path / "site", "--neurons", bad)
    assert rc == 2 and "unexpected schema" in err and not (tmp_path / "site" / "index.html").exists()


# ---------------------------------------------------------------------------------- reading details

@pytest.mark.parametrize("info, expected", [
    (None, "none"),
    ({}, "none"),
    (langneuron_info("none", ()), "none"),
    (langneuron_info("deactivate", ("zh", "ja"), value="median"), "deactivate(zh+ja)"),
    (langneuron_info("activate", ("zh",), value=2.5, strength=0.5), "activate(zh, value=2.5, strength=0.5)"),
    (langneuron_info("scale", ("de",), strength=3.0, positions="generated"), "scale(de, strength=3); positions=generated"),
    (langneuron_info("activate", ("zh",), deactivate=("de", "en")),
     "activate(zh, value=mean, strength=1) + deactivate(de+en)"),
    (langneuron_info("none", (), deactivate=("en",)), "deactivate(en)"),
    ({"mode": "activate", "lang": "zh+ja"}, "activate(zh+ja, value=mean, strength=1)"),  # keys missing: defaults
])
def test_describe_intervention(info, expected):
    from langneuron_eval.leaderboard.result_files import describe_intervention

    assert describe_intervention(info) == expected


@pytest.mark.parametrize("doc, config, expected", [
    ({"model_name": "x"}, {"model": "hf", "model_args": {"pretrained": "org/m", "dtype": "float32"}}, "org/m"),
    ({}, {"model": "hf", "model_args": "pretrained=org/m,dtype=float32"}, "org/m"),
    ({}, {"model": "hf", "model_args": {"pretrained": "base", "peft": "org/adapter"}}, "org/adapter"),
    ({"model_name": "k3j2h1g0"}, {"model": "/models/tiny", "model_args": None}, "/models/tiny"),  # LM instance
    ({"model_name": "only-this"}, {}, "only-this"),
    ({}, {}, "unknown"),
])
def test_model_name(doc, config, expected):
    from langneuron_eval.leaderboard.result_files import model_name

    assert model_name(doc, config) == expected


def test_a_results_file_can_be_given_directly(run_cli, tmp_path):
    path = write_results(tmp_path / "r", make_results({"lang_steer_zh": steer(0.5, 0.05)}))
    renamed = path.rename(tmp_path / "my_run.json")
    assert run_cli("leaderboard", renamed, "--out", tmp_path / "site")[0] == 0
    assert read_csv(tmp_path / "site" / "leaderboard.csv")[0]["result_files"] == renamed.as_posix()


def test_odd_numbers_and_strings_keep_every_format_intact(run_cli, tmp_path):
    """Infinite/NaN scores (a diverged perplexity) and a model name with a pipe, a newline and a formula."""
    doc = make_results({"lang_ppl_zh": {"byte_perplexity": (float("inf"), "N/A"), "bits_per_byte": (float("nan"), "N/A")}},
                       model="=cmd|' /C calc'!A0\nnext")
    write_results(tmp_path / "r", doc, subdir="odd")  # json.dumps writes Infinity / NaN, as lm-eval's does
    out = tmp_path / "site"
    rc, _, err = run_cli("leaderboard", tmp_path / "r", "--out", out)
    assert rc == 0, err
    table = md_rows(out / "leaderboard.md")
    assert len(table) == 2 and len(table[1]) == len(table[0])  # the pipe did not split the row
    row = dict(zip(table[0], table[1]))
    assert row["Model"] == "=cmd\\|' /C calc'!A0 next"
    assert row["zh"] == "inf" and row["Mean"] == "inf"
    models_csv = read_csv(out / "models.csv")[0]
    assert models_csv["Model"] == models_csv["model"] == "'=cmd|' /C calc'!A0\nnext" and models_csv["zh"] == "inf"
    csv_row = read_csv(out / "leaderboard.csv")[0]
    assert csv_row["model"] == "'=cmd|' /C calc'!A0\nnext"  # formula defused, text otherwise kept
    assert csv_row["lang_ppl_zh/byte_perplexity"] == "inf" and csv_row["lang_ppl_zh/bits_per_byte"] == "nan"
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'data-v="Infinity">inf</td>' in page and 'data-v="nan">nan</td>' in page
