"""Resumable and multi-process recording give the same statistics as one uninterrupted run."""

import os
import subprocess
import sys

import pytest
import torch

from langneuron_eval.core.stats import ActivationStats, sidecar_path


@pytest.fixture(scope="module")
def mid_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("midcorpus")
    (d / "en.txt").write_text("\n".join(f"the {i}th cat sat on mat number {i * 7}" for i in range(3000)) + "\n")
    (d / "de.txt").write_text("\n".join(f"die {i}. Katze sitzt auf der Matte {i * 3}" for i in range(1500)) + "\n")
    return d


def _cmd(*args):
    return [sys.executable, "-m", "langneuron_eval.cli.main", "record", "--no-progress", *map(str, args)]


def test_resume_after_kill_gives_identical_file(tiny_model_dir, mid_corpus, tmp_path, record_killed_after_checkpoint):
    common = ["--model", tiny_model_dir, "--corpus", mid_corpus, "--langs", "en,de", "--chunk-size", "100",
              "--checkpoint-every", "1", "--sentence-means"]
    full = tmp_path / "full.safetensors"
    subprocess.run(_cmd(*common, "--out", full), check=True, capture_output=True)

    out = tmp_path / "resumed.safetensors"
    killed = record_killed_after_checkpoint(3, *common, "--out", out)  # 45 chunks: dies at the 3rd
    assert killed.returncode == 137, killed.stderr
    partial = tmp_path / "resumed.safetensors.partial"
    assert partial.exists(), "no checkpoint was written before the kill"
    assert not out.exists()
    rc = subprocess.run(_cmd(*common, "--out", out, "--resume"), capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert not partial.exists()
    assert out.read_bytes() == full.read_bytes()
    assert sidecar_path(out).read_bytes() == sidecar_path(full).read_bytes()  # the rows after the kill: rewritten


def test_resume_without_checkpoint_is_an_error(run_cli, tiny_model_dir, mid_corpus, tmp_path):
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", mid_corpus, "--out",
                         tmp_path / "x.safetensors", "--resume", "--no-progress")
    assert rc == 2 and "nothing to resume" in err


LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_gloo_processes_match_one(tiny_model_dir, mid_corpus, tmp_path, launcher):
    common = ["--model", tiny_model_dir, "--corpus", mid_corpus, "--langs", "en,de", "--chunk-size", "250",
              "--sentence-means", "--max-sentences", "1000"]
    single = tmp_path / "single.safetensors"
    subprocess.run(_cmd(*common, "--out", single), check=True, capture_output=True)
    multi = tmp_path / "multi.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, *LAUNCHERS[launcher], "-m", "langneuron_eval.cli.main", "record",
                          "--no-progress", *map(str, common), "--out", str(multi)], capture_output=True, text=True,
                         env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 processes)" in run.stderr  # one process group of two ranks, not two lone processes
    a, b = ActivationStats.load(single), ActivationStats.load(multi)
    assert torch.equal(a.n_tokens, b.n_tokens)
    assert torch.equal(a.positive_counts, b.positive_counts)
    assert torch.equal(a.sentence_tensor(), b.sentence_tensor())
    assert torch.equal(a.sentence_lang, b.sentence_lang)
    assert a.metadata == b.metadata
    # chunk partial sums are added in corpus order on every rank, so even the float sums are bit-identical,
    # and the ranks' per-sentence means, merged in corpus order, are the single run's file byte for byte
    assert multi.read_bytes() == single.read_bytes()
    assert sidecar_path(multi).read_bytes() == sidecar_path(single).read_bytes()
    assert not list(tmp_path.glob("*.partial*"))  # shards and checkpoints are gone
