"""lm-eval results files: byte-identical after ``langneuron normalize-results`` for the same inputs and seeds."""

from __future__ import annotations

import json

import pytest

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.results import VOLATILE_KEYS, normalize


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, save_like_output_path):
    """The same lm-eval run twice, saved by lm-eval's own EvaluationTracker (as ``--output_path`` does)."""
    root = tmp_path_factory.mktemp("runs")
    neurons = root / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade", {"de": [(0, 1), (1, 2), (1, 9)]},
               values={"de": {"mean": [0.4, 0.5, 0.6]}}).save(neurons)
    args = {"pretrained": str(tiny_model_dir), "neurons": str(neurons), "mode": "activate", "lang": "de",
            "strength": 3}
    dirs = []
    for name in ("first", "second"):
        # lang_steer samples tokens, so equal outputs also show that the seeds are applied
        res = evaluation.evaluate("langneuron", ["lang_steer_de", "lang_ppl_de"], model_args=args, limit=3,
                                  batch_size=3)
        dirs.append(save_like_output_path(res, args, root / name))
    return dirs


def test_raw_lm_eval_files_differ_only_in_clock_fields(runs):
    docs = [json.loads(next(d.rglob("results_*.json")).read_text(encoding="utf-8")) for d in runs]
    assert docs[0] != docs[1]  # lm-eval's own files never repeat: they hold the date and the run time
    differing = {k for k in docs[0].keys() | docs[1].keys() if docs[0].get(k) != docs[1].get(k)}
    assert differing and differing <= set(VOLATILE_KEYS)
    assert normalize(docs[0]) == normalize(docs[1])


def test_normalize_results_cli_gives_identical_bytes(run_cli, runs, tmp_path):
    outs = []
    for i, d in enumerate(runs):
        out = tmp_path / f"n{i}.json"
        rc, stdout, stderr = run_cli("normalize-results", d, "--out", out)  # a directory: its results_*.json
        assert rc == 0, stderr
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    doc = json.loads(outs[0].read_text(encoding="utf-8"))
    assert not set(VOLATILE_KEYS) & set(doc)
    assert doc["langneuron_normalized"]["dropped"] == ["date", "total_evaluation_time_seconds"]
    # what made the numbers is still recorded: seeds, versions and the intervention
    cfg = doc["config"]
    assert (cfg["random_seed"], cfg["numpy_seed"], cfg["torch_seed"], cfg["fewshot_seed"]) == (0, 1234, 1234, 1234)
    assert doc["lm_eval_version"] and doc["transformers_version"]
    assert cfg["langneuron"]["langneuron_eval_version"] and cfg["langneuron"]["mode"] == "activate"
    # normalising a normalised file changes nothing
    rc, _, stderr = run_cli("normalize-results", outs[0], "--out", tmp_path / "twice.json")
    assert rc == 0, stderr
    assert (tmp_path / "twice.json").read_bytes() == outs[0].read_bytes()


def test_normalize_results_refuses_to_overwrite_and_bad_input(run_cli, runs, tmp_path):
    out = tmp_path / "n.json"
    out.write_text("keep me")
    rc, _, stderr = run_cli("normalize-results", runs[0], "--out", out)
    assert rc == 2 and "already exists; pass --force" in stderr and out.read_text() == "keep me"
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "results"}')
    rc, _, stderr = run_cli("normalize-results", bad, "--out", tmp_path / "x.json")
    assert rc == 2 and "not an lm-eval results dict" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()
