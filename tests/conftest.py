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
