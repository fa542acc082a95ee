"""``accelerate launch`` / ``torchrun`` of ``lm_eval --model langneuron`` over 2 CPU processes (gloo).

lm-eval's ``hf`` model decides on data parallelism by counting CUDA devices, so on a CPU-only machine
every launched process would evaluate all documents as rank 0. ``langneuron`` takes rank and world
size from Accelerate instead; these tests check that the documents are really split over the two
ranks, that rank 0 writes the only results file, and that the scores equal a single-process run.

The launched script is lm-eval's own console entry point with our ``.pth`` hook activated (as after
``pip install``), so this is the plain ``lm_eval --model langneuron`` route.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_lm_plugin import _env, _pth_file

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile

pytestmark = pytest.mark.slow

TASKS = "lang_ppl_en,xqa_de"  # log-likelihood and greedy generation
LIMIT = 6


@pytest.fixture(scope="module")
def lm_eval_script(tmp_path_factory) -> Path:
    """A script equal to the ``lm_eval`` console script, run with the ``.pth`` hook active."""
    d = tmp_path_factory.mktemp("launch")
    shutil.copy(_pth_file(), d / "langneuron_eval_lmeval.pth")
    script = d / "lm_eval_cli.py"
    script.write_text(f"import site, sys\nsite.addsitedir({str(d)!r})\n"
                      "from lm_eval.__main__ import cli_evaluate\ncli_evaluate()\n", encoding="utf-8")
    return script


@pytest.fixture(scope="module")
def neurons(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("neurons") / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"zh": [(0, u) for u in range(0, 48, 3)], "de": [(1, u) for u in range(1, 48, 4)]},
               values={"zh": {"mean": [0.3] * 16}, "de": {"mean": [0.2] * 12}}).save(path)
    return path


def _lm_eval_args(model_dir: Path, neurons: Path, out: Path) -> list[str]:
    return ["--model", "langneuron",
            "--model_args", f"pretrained={model_dir},neurons={neurons},mode=activate,lang=de,value=mean,strength=2",
            "--tasks", TASKS, "--limit", str(LIMIT), "--batch_size", "1", "--output_path", str(out),
            "--log_samples"]


def _run(cmd: list[str], cwd: Path) -> str:
    env = _env(OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    return log


def _results(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    files = sorted(out.rglob("results_*.json"))
    assert len(files) == 1, f"expected one results file (rank 0 only), found {files}"
    samples = {}
    for task in TASKS.split(","):
        (sample_file,) = out.rglob(f"samples_{task}_*.jsonl")
        samples[task] = [json.loads(line) for line in sample_file.read_text(encoding="utf-8").splitlines()]
    return json.loads(files[0].read_text(encoding="utf-8")), samples


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_model_dir, neurons, lm_eval_script):
    work = tmp_path_factory.mktemp("single")
    _run([sys.executable, str(lm_eval_script), *_lm_eval_args(tiny_model_dir, neurons, work / "out")], work)
    return _results(work / "out")


def _check_same_as_single(single, parallel, log: str) -> None:
    for task in TASKS.split(","):
        assert f"Building contexts for {task} on rank 0" in log
        assert f"Building contexts for {task} on rank 1" in log  # the documents were split
    (res1, samples1), (res2, samples2) = single, parallel
    for task in TASKS.split(","):
        by_doc1 = {s["doc_id"]: s for s in samples1[task]}
        by_doc2 = {s["doc_id"]: s for s in samples2[task]}
        assert sorted(by_doc2) == list(range(LIMIT))  # every document once, gathered from both ranks
        for doc_id, s in by_doc1.items():
            assert by_doc2[doc_id]["filtered_resps"] == s["filtered_resps"]  # batch size 1: same numbers
        for key, value in res1["results"][task].items():
            if isinstance(value, float):
                assert res2["results"][task][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert res2["config"]["langneuron"] == res1["config"]["langneuron"]


def test_accelerate_launch_splits_documents_over_cpu_processes(tmp_path, tiny_model_dir, neurons, lm_eval_script,
                                                              single):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(lm_eval_script), *_lm_eval_args(tiny_model_dir, neurons, tmp_path / "out")]
    log = _run(cmd, tmp_path)
    _check_same_as_single(single, _results(tmp_path / "out"), log)


def test_torchrun_splits_documents_over_cpu_processes(tmp_path, tiny_model_dir, neurons, lm_eval_script, single):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(lm_eval_script), *_lm_eval_args(tiny_model_dir, neurons, tmp_path / "out")]
    log = _run(cmd, tmp_path)
    _check_same_as_single(single, _results(tmp_path / "out"), log)
