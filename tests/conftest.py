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
