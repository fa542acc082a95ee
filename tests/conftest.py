"""Shared fixtures: tiny random-init models built offline, and a small corpus."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from langneuron_eval.testing import make_tiny_model, write_tiny_corpus  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved random-init Llama (2 layers x 48 units) with the byte-level tokenizer."""
    d = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model("llama", d, seed=0)
    return d


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def run_cli(capsys):
    """Run ``langneuron ...`` in-process; return (exit code, stdout, stderr)."""
    from langneuron_eval.cli.main import main

    def _run(*argv: str):
        capsys.readouterr()  # drop whatever test set-up printed
        rc = main([str(a) for a in argv])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return _run


@pytest.fixture(scope="session")
def save_like_output_path():
    """Write an lm-eval results dict with lm-eval's own EvaluationTracker, as ``--output_path DIR`` does."""
    from lm_eval.loggers import EvaluationTracker

    def _save(results, model_args, out_dir):
        tracker = EvaluationTracker(output_path=str(out_dir))
        tracker.general_config_tracker.log_experiment_args(model_source="langneuron", model_args=model_args,
                                                           system_instruction=None, chat_template=None,
                                                           fewshot_as_multiturn=False)
        tracker.save_results_aggregated(results=results, samples=None)
        return out_dir

    return _save


# `langneuron record` in a subprocess that dies like `kill -9` (os._exit, no cleanup) right after its n-th
# checkpoint is on disk: an interruption at a known point instead of a kill timed by sleeping.
_DIE_AFTER_CHECKPOINT = """
import os, sys
from langneuron_eval.core import checkpoints
save, saves = checkpoints.Checkpoint.save, [0]
def save_then_die(self, *args, **kwargs):
    save(self, *args, **kwargs)
    saves[0] += 1
    if saves[0] == int(os.environ["LANGNEURON_TEST_DIE_AFTER"]):
        os._exit(137)
checkpoints.Checkpoint.save = save_then_die
from langneuron_eval.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def record_killed_after_checkpoint():
    """``f(n, *record_args)``: run ``langneuron record`` until its n-th checkpoint is written, then kill it."""
    import subprocess
    import sys

    def run(n, *args):
        env = {**os.environ, "LANGNEURON_TEST_DIE_AFTER": str(n)}
        return subprocess.run([sys.executable, "-c", _DIE_AFTER_CHECKPOINT, "record", *map(str, args)],
                              capture_output=True, text=True, env=env)

    return run
