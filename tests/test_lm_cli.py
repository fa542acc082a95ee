"""``langneuron ppl-matrix`` and ``langneuron compare``."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time

import pytest

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile


@pytest.fixture(scope="module")
def neurons(tmp_path_factory):
    path = tmp_path_factory.mktemp("ppl") / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"zh": [(layer, u) for layer in range(2) for u in range(48)], "de": [(0, 1), (1, 2)],
                "ko": [(0, 5)]}).save(path)
    return path


def test_ppl_matrix(run_cli, tiny_model_dir, neurons, tmp_path):
    out = tmp_path / "pm"
    rc, stdout, stderr = run_cli("ppl-matrix", "--model", tiny_model_dir, "--neurons", neurons, "--langs", "zh,de",
                                 "--out", out, "--limit", "3", "--batch-size", "4")
    assert rc == 0, stderr
    assert "[1/3] no intervention" in stderr and "[3/3] deactivating de" in stderr  # progress is visible
    doc = json.loads((out / "ppl_matrix.json").read_text())
    assert doc["languages"] == ["zh", "de"] and doc["metric"] == "byte_perplexity"
    assert set(doc["baseline"]) == {"zh", "de"} and all(v > 1 for v in doc["baseline"].values())
    m = doc["matrix"]
    assert len(m) == 2 and all(len(row) == 2 for row in m)
    for i, row in enumerate(doc["perplexity"]):  # matrix = ppl(deactivated) / ppl(baseline) - 1
        for j, value in enumerate(row):
            assert m[i][j] == pytest.approx(value / doc["baseline"][doc["languages"][j]] - 1)
    assert m[0][0] != 0.0  # every unit of the model belongs to zh: deactivating it changes zh perplexity
    prov = doc["provenance"]
    assert prov["neurons_content_sha256"] == NeuronFile.load(neurons).sha256() and len(prov["neurons_sha256"]) == 64
    assert (out / "ppl_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert prov["seeds"] == {"python": 0, "numpy": 1234, "torch": 1234, "fewshot": 1234}
    assert {"langneuron_eval", "torch", "transformers", "lm_eval"} <= set(prov["versions"])

    again = tmp_path / "pm-again"  # same inputs and seeds -> the same bytes, figure included
    rc, _, stderr = run_cli("ppl-matrix", "--model", tiny_model_dir, "--neurons", neurons, "--langs", "zh,de",
                            "--out", again, "--limit", "3", "--batch-size", "4")
    assert rc == 0, stderr
    for name in ("ppl_matrix.json", "ppl_matrix.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name

    rc, _, stderr = run_cli("ppl-matrix", "--model", tiny_model_dir, "--neurons", neurons, "--langs", "zh",
                            "--out", out, "--limit", "1")
    assert rc == 2 and "already exists; pass --force" in stderr


@pytest.mark.parametrize("langs, message", [("zh,xx", "no lang_ppl task for 'xx'"),
                                            ("fr", "'fr' has no neurons in the neuron file")])
def test_ppl_matrix_rejects_bad_languages_before_loading(run_cli, neurons, tmp_path, langs, message):
    rc, _, stderr = run_cli("ppl-matrix", "--model", "/nonexistent", "--neurons", neurons, "--langs", langs,
                            "--out", tmp_path / "x")
    assert rc == 2 and message in stderr and "Traceback" not in stderr


def _results(path, values, stderrs, groups=None):
    """A results file in lm-eval's layout (stderr "N/A" where lm-eval has none)."""
    res = {task: {"alias": task, "name": task, "sample_len": 100,
                  **{f"{m},none": v for m, v in metrics.items()},
                  **{f"{m}_stderr,none": stderrs.get(task, {}).get(m, "N/A") for m in metrics}}
           for task, metrics in values.items()}
    doc = {"results": res, "groups": groups or {},
           "higher_is_better": {t: {m: m != "byte_perplexity" for m in ms} for t, ms in values.items()},
           "config": {"model": "langneuron"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_compare_files(run_cli, tmp_path):
    base = _results(tmp_path / "base.json", {"lang_steer_zh": {"lang_rate": 0.10}, "lang_ppl_zh": {"byte_perplexity": 3.0},
                                               "only_base": {"acc": 0.5}},
                    {"lang_steer_zh": {"lang_rate": 0.03}})
    aligned = _results(tmp_path / "aligned.json", {"lang_steer_zh": {"lang_rate": 0.60}, "lang_ppl_zh": {"byte_perplexity": 3.3}},
                       {"lang_steer_zh": {"lang_rate": 0.04}})
    out = tmp_path / "cmp.json"
    rc, stdout, stderr = run_cli("compare", base, aligned, "--json", out)
    assert rc == 0, stderr
    doc = json.loads(out.read_text())
    assert doc["base_sha256"] == hashlib.sha256(base.read_bytes()).hexdigest() and doc["versions"]["lm_eval"]
    rows = {r["task"]: r for r in doc["rows"]}
    steer = rows["lang_steer_zh"]
    assert steer["delta"] == pytest.approx(0.5) and steer["stderr"] == pytest.approx(0.05)
    assert steer["z"] == pytest.approx(10.0)
    assert rows["lang_ppl_zh"]["stderr"] is None and rows["lang_ppl_zh"]["delta"] == pytest.approx(0.3)
    assert "only_base" not in rows and "only in base: only_base" in stdout
    line = next(line for line in stdout.splitlines() if line.startswith("lang_steer_zh"))
    assert "0.1000" in line and "0.6000" in line and "+0.5000" in line and "0.0500" in line and "+10.00" in line
    assert "N/A" in next(line for line in stdout.splitlines() if line.startswith("lang_ppl_zh"))


def test_compare_directories_pick_the_newest_results(run_cli, tmp_path):
    old = _results(tmp_path / "base" / "model" / "results_2024-01-01T00-00-00.json",
                   {"xqa_de": {"f1": 0.9}}, {})
    new = _results(tmp_path / "base" / "model" / "results_2025-01-01T00-00-00.json",
                   {"xqa_de": {"f1": 0.2}}, {})
    os.utime(old, (time.time() - 100, time.time() - 100))
    _results(tmp_path / "aligned" / "m" / "results_2025-02-02T00-00-00.json", {"xqa_de": {"f1": 0.3}}, {})
    rc, stdout, stderr = run_cli("compare", tmp_path / "base", tmp_path / "aligned", "--metrics", "f1")
    assert rc == 0, stderr
    assert str(new) in stdout
    row = next(line for line in stdout.splitlines() if line.startswith("xqa_de"))
    assert "+0.1000" in row


def test_compare_errors(run_cli, tmp_path):
    rc, _, stderr = run_cli("compare", tmp_path / "missing.json", tmp_path / "also.json")
    assert rc == 2 and "results path not found" in stderr
    (tmp_path / "empty").mkdir()
    rc, _, stderr = run_cli("compare", tmp_path / "empty", tmp_path / "empty")
    assert rc == 2 and "no results_*.json below" in stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"foo": 1}))
    rc, _, stderr = run_cli("compare", bad, bad)
    assert rc == 2 and "not an lm-eval results file" in stderr


def test_compare_real_lm_eval_results(run_cli, tiny_model_dir, neurons, tmp_path, save_like_output_path):
    """Results written by lm-eval itself (via the EvaluationTracker) parse, including 'N/A' stderrs."""
    from langneuron_eval.lmeval import evaluation

    paths = []
    for name, mode in (("base", "none"), ("steered", "deactivate")):
        args = {"pretrained": str(tiny_model_dir), "neurons": str(neurons), "mode": mode}
        if mode != "none":
            args["lang"] = "zh"
        res = evaluation.evaluate("langneuron", ["lang_ppl_de"], model_args=args, limit=2, batch_size=2)
        paths.append(save_like_output_path(res, args, tmp_path / name))
    rc, stdout, stderr = run_cli("compare", *paths)
    assert rc == 0, stderr
    row = next(line for line in stdout.splitlines() if line.startswith("lang_ppl_de") and "byte_perplexity" in line)
    delta = float(row.split()[5])
    assert math.isfinite(delta) and delta != 0.0
