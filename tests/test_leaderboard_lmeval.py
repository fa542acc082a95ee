"""The leaderboard on files written by a real lm-eval run (tiny model, ``--limit 2``), not hand-built ones.

The run goes through lm-eval's own ``EvaluationTracker`` exactly as ``lm_eval --output_path DIR
--log_samples`` does (``lm_eval/_cli/run.py``), so the results/samples file names and keys are
whatever the installed lm-eval writes; if a future lm-eval changes them, this test says so.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

TASK = "lang_steer_zh"  # generation + language ID; needs no shipped corpus


def _evaluate_and_save(out: Path, model: str, model_args: dict[str, Any], task_manager: Any) -> None:
    from lm_eval.loggers import EvaluationTracker

    from langneuron_eval.lmeval import evaluation

    tracker = EvaluationTracker(output_path=str(out))
    tracker.general_config_tracker.log_experiment_args(
        model_source=model, model_args=model_args, system_instruction=None, chat_template=None,
        fewshot_as_multiturn=False)
    results = evaluation.evaluate(model, [TASK], model_args=model_args, limit=2, log_samples=True,
                                  task_manager=task_manager)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])


@pytest.mark.slow
def test_real_tiny_evaluation_feeds_the_leaderboard(run_cli, tiny_model_dir, tmp_path):
    import lm_eval

    from langneuron_eval import __version__
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile
    from langneuron_eval.fileio import sha256_file
    from langneuron_eval.lmeval import evaluation

    nf = NeuronFile(fingerprint=ModelFingerprint("llama", 2, 48, "act_out"), detector="toy",
                    languages={"zh": [(0, 1), (1, 7)], "de": [(0, 3)]}, params={"k": 2})
    nf_path = nf.save(tmp_path / "neurons.json")
    out = tmp_path / "lm_eval_out"
    tm = evaluation.make_task_manager()
    _evaluate_and_save(out, "hf", {"pretrained": str(tiny_model_dir)}, tm)
    _evaluate_and_save(out, "langneuron", {"pretrained": str(tiny_model_dir), "neurons": str(nf_path),
                                           "mode": "deactivate", "lang": "zh"}, tm)
    assert len(list(out.rglob("results_*.json"))) == 2
    assert len(list(out.rglob(f"samples_{TASK}_*.jsonl"))) == 2

    site = tmp_path / "site"
    rc, _, err = run_cli("leaderboard", out, "--out", site, "--neurons", nf_path)
    assert rc == 0, err
    assert "warning" not in err
    rows = list(csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8"))))
    assert [(r["model"], r["detector"], r["intervention"]) for r in rows] == [
        (str(tiny_model_dir), "none", "none"),
        (str(tiny_model_dir), "toy", "deactivate(zh)"),
    ]
    base, deact = rows
    for row in rows:
        assert 0.0 <= float(row[f"{TASK}/lang_rate"]) <= 1.0
        assert row[f"{TASK}/lang_rate_stderr"] != ""  # two samples: lm-eval computes a stderr
        assert row["samples"] == "2" and row["limit"] == "2"
        assert row["lm_eval_version"] == lm_eval.__version__
        assert row["date"].endswith("Z")
    assert base["neurons_sha256"] == "" and base["langneuron_eval_version"] == ""
    assert deact["neurons_sha256"] == sha256_file(nf_path)
    assert deact["detector_params"] == "k=2" and deact["langneuron_eval_version"] == __version__
    page = (site / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 1  # layer distribution (a deactivate run steers nothing)
    md = (site / "leaderboard.md").read_text(encoding="utf-8")
    # the detector view names the model by its folder, never the path; the toy detector is listed, unmeasured
    assert f"### {tiny_model_dir.name} · not scored\n" in md and "| – | toy |" in md and str(tiny_model_dir) not in md
    assert "deactivate(zh)" in (site / "leaderboard.csv").read_text(encoding="utf-8")
