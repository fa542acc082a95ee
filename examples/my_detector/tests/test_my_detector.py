"""Tests of the example detector against real (tiny) activation statistics from langneuron-eval's fixtures."""

import pytest
import torch

from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.detectors import available_detectors, get_detector, run_detector

TARGET = "my_detector:MeanContrastDetector"


def test_every_language_gets_at_most_top_k_units(tiny_stats):
    nf = run_detector(TARGET, tiny_stats, {"top_k": "5", "min_contrast": "0"})
    assert set(nf.languages) == set(tiny_stats.languages)
    for lang, units in nf.languages.items():
        assert 0 < len(units) <= 5, lang
        assert all(0 <= a < tiny_stats.num_layers and 0 <= b < tiny_stats.intermediate_size for a, b in units)
    assert nf.params == {"top_k": 5, "min_contrast": 0.0}


def test_selected_units_are_those_of_highest_contrast(tiny_stats):
    from my_detector import contrast_scores

    score = contrast_scores(tiny_stats)
    nf = run_detector(TARGET, tiny_stats, {"top_k": "3", "min_contrast": "-100"})
    for i, lang in enumerate(tiny_stats.languages):
        chosen = torch.tensor([score[i, a, b].item() for a, b in nf.languages[lang]], dtype=torch.float64)
        assert chosen.min() >= score[i].flatten().topk(3).values.min() - 1e-12


def test_a_high_threshold_selects_nothing(tiny_stats):
    nf = run_detector(TARGET, tiny_stats, {"min_contrast": "1e9"})
    assert all(units == [] for units in nf.languages.values())


def test_bad_parameter_is_reported(tiny_stats):
    from langneuron_eval.errors import LangNeuronError

    with pytest.raises(LangNeuronError, match="top_k"):
        run_detector(TARGET, tiny_stats, {"top_k": "many"})


def test_neuron_file_round_trip(tiny_stats, tmp_path):
    nf = run_detector(TARGET, tiny_stats, {"top_k": "4"})
    nf.save(tmp_path / "n.json")
    assert NeuronFile.load(tmp_path / "n.json").languages == nf.languages


def test_entry_point_when_installed():
    # after `pip install .` the name resolves through the langneuron_eval.detectors entry point
    if "my_detector" not in available_detectors():
        pytest.skip("my-detector is not installed (only importable)")
    assert type(get_detector("my_detector")).__name__ == "MeanContrastDetector"
