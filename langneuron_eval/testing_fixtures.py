"""pytest fixtures for packages that add a detector: tiny model, corpus and activation statistics.

A third-party detector is tested against real :class:`~langneuron_eval.core.stats.ActivationStats`, and
recording them needs a model, a tokenizer and text in several languages. These fixtures build all
of it offline in a few seconds (random-init 2-layer Llama, byte-level tokenizer, 4 sentences in
en/de/zh), so a detector package's test file is a few lines::

    # conftest.py
    pytest_plugins = ["langneuron_eval.testing_fixtures"]

    # test_my_detector.py
    from langneuron_eval.detectors import run_detector

    def test_finds_every_language(tiny_stats):
        nf = run_detector("my_package.detector:detect", tiny_stats, {"k": "3"})
        assert set(nf.languages) == set(tiny_stats.languages)

Model, corpus and statistics are session-scoped (built once per test run and shared, so treat
them as read-only); ``tiny_stats_file`` is written anew for every test that asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from langneuron_eval.core.corpus import resolve_corpus
from langneuron_eval.core.modeling import load_model
from langneuron_eval.core.recorder import RecordConfig, record
from langneuron_eval.testing import make_tiny_model, write_tiny_corpus

if TYPE_CHECKING:
    from langneuron_eval.core.stats import ActivationStats


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random-init Llama (2 layers x 48 FFN units, seed 0) with the byte-level tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model("llama", directory, seed=0)
    return directory


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder with ``en.txt``, ``de.txt`` and ``zh.txt`` (4 sentences each)."""
    return write_tiny_corpus(tmp_path_factory.mktemp("tiny-corpus"))


@pytest.fixture(scope="session")
def tiny_stats(tiny_model_dir: Path, tiny_corpus_dir: Path) -> ActivationStats:
    """Statistics of the tiny model on the tiny corpus, with per-sentence means (languages de, en, zh).

    Recorded with ``sentence_means=True`` so that detectors needing sentence-level activations
    (Kojima et al.'s AP, median/percentile activation values) work on it too.
    """
    model, tokenizer = load_model(tiny_model_dir)
    sources = resolve_corpus([str(tiny_corpus_dir)])
    return record(model, tokenizer, sources, RecordConfig(sentence_means=True), progress=False)


@pytest.fixture
def tiny_stats_file(tiny_stats: ActivationStats, tmp_path: Path) -> Path:
    """``tiny_stats`` saved as ``tiny_stats.safetensors`` in the test's own ``tmp_path`` (for CLI tests)."""
    path = tmp_path / "tiny_stats.safetensors"
    tiny_stats.save(path)
    return path
