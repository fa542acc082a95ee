"""The pytest plugin ``langneuron_eval.testing_fixtures``, used the way a third-party detector package would.

pytester runs a separate pytest session in a temporary folder, so the repo's own conftest.py (which
defines fixtures of the same names) is not involved: only the plugin provides them.
"""

from __future__ import annotations

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["langneuron_eval.testing_fixtures"]\n'

THIRD_PARTY_TESTS = '''
import pytest

from langneuron_eval.detectors import run_detector
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.stats import ActivationStats


def top_units(stats, k: int = 2):
    """A detector as a third party writes it: the k units with the highest activation probability."""
    p = stats.activation_probability()  # [K, L, N]
    out = {}
    for i, lang in enumerate(stats.languages):
        flat = p[i].flatten().topk(k).indices.tolist()
        out[lang] = [(j // stats.intermediate_size, j % stats.intermediate_size) for j in flat]
    return {"languages": out}


def test_model_and_corpus(tiny_model_dir, tiny_corpus_dir):
    assert (tiny_model_dir / "config.json").is_file()
    assert sorted(p.name for p in tiny_corpus_dir.iterdir()) == ["de.txt", "en.txt", "zh.txt"]


def test_stats_are_recorded_with_sentence_means(tiny_stats):
    assert tiny_stats.languages == ["de", "en", "zh"]
    assert (tiny_stats.num_layers, tiny_stats.intermediate_size) == (2, 48)
    assert tiny_stats.has_sentences and tiny_stats.sentence_means.shape == (12, 2, 48)
    assert int(tiny_stats.n_tokens.min()) > 0


def test_stats_file_round_trips(tiny_stats_file, tiny_stats):
    assert tiny_stats_file.name == "tiny_stats.safetensors"
    assert ActivationStats.load(tiny_stats_file).sha256() == tiny_stats.sha256()


def test_own_detector_runs(tiny_stats, tmp_path):
    nf = run_detector(f"{__name__}:top_units", tiny_stats, {"k": "3"})
    assert {lang: len(units) for lang, units in nf.languages.items()} == {"de": 3, "en": 3, "zh": 3}
    nf.save(tmp_path / "n.json")
    assert NeuronFile.load(tmp_path / "n.json").params == {"k": 3}


def test_kojima_needs_sentence_means(tiny_stats):
    """kojima_ap runs on the fixture (it carries per-sentence means) and refuses the same counts without them."""
    nf = run_detector("kojima_ap", tiny_stats, {"k_top": "2", "k_bottom": "0"})
    assert {lang: len(units) for lang, units in nf.languages.items()} == {"de": 2, "en": 2, "zh": 2}
    counts_only = ActivationStats(tiny_stats.languages, tiny_stats.n_tokens, tiny_stats.positive_counts,
                                  tiny_stats.activation_sums, tiny_stats.activation_sq_sums, tiny_stats.fingerprint)
    with pytest.raises(LangNeuronError, match="per-sentence mean activations"):
        run_detector("kojima_ap", counts_only, {"k_top": "2", "k_bottom": "0"})


@pytest.fixture(scope="session")
def shared(tiny_stats):
    return tiny_stats


def test_session_fixture_is_shared(shared, tiny_stats):
    assert shared is tiny_stats
'''

WRONG_EXPECTATION = '''
def test_wrong_languages(tiny_stats):
    assert tiny_stats.languages == ["en"]
'''


def test_plugin_fixtures_work_in_a_third_party_test_suite(pytester):
    """Passing tests pass and a wrong expectation fails: the fixtures hold real statistics.

    One subprocess (not ``runpytest_inprocess``): pytester would unload the transformers modules the
    inner session imported, which breaks transformers' lazy imports for every later test here.
    """
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_toy_detector=THIRD_PARTY_TESTS, test_wrong=WRONG_EXPECTATION)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-W",
                                           "error::pytest.PytestAssertRewriteWarning", timeout=120)
    result.assert_outcomes(passed=6, failed=1, errors=0)  # errors=0: every fixture was set up
    result.stdout.fnmatch_lines(["*FAILED test_wrong.py::test_wrong_languages*"])
