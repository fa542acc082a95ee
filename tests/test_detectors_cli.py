"""The detector registry, third-party entry points, and the ``detect`` / ``neurons-report`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors import registry as reg
from langneuron_eval.detectors.base import DetectionResult, Detector
from langneuron_eval.errors import LangNeuronError

FIXTURE = Path(__file__).parent / "third_party_detector"
FP = ModelFingerprint("llama", 2, 48, "act_out")


def make_stats(seed=0, K=3, sentences=True):
    g = torch.Generator().manual_seed(seed)
    n = torch.full((K,), 200)
    base = torch.rand(2, 48, generator=g) ** 2
    pos = (base * (0.5 + 0.5 * torch.rand(K, 2, 48, generator=g)) * 200).long()
    pos[0, 0, :6] = 190  # a few clearly 'en' units
    sums = torch.randn(K, 2, 48, generator=g, dtype=torch.float64)
    sm = torch.randn(3 * K, 2, 48, generator=g) if sentences else None
    sl = torch.arange(3 * K) % K if sentences else None
    return ActivationStats(["en", "de", "zh"][:K], n, pos, sums, sums.abs(), FP, sm, sl)


@pytest.fixture
def stats_file(tmp_path):
    path = tmp_path / "stats.safetensors"
    make_stats().save(path)
    return path


@pytest.fixture
def clean_registry(monkeypatch):
    """Registrations and discovered entry points made by a test do not leak into other tests."""
    monkeypatch.setattr(reg.REGISTRY, "_objs", dict(reg.REGISTRY._objs))
    monkeypatch.setattr(reg.REGISTRY, "_origins", dict(reg.REGISTRY._origins))
    return reg.REGISTRY


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch, clean_registry):
    """The toy package 'installed': its module and a dist-info with entry_points.txt on sys.path."""
    site = tmp_path / "site"
    dist = site / "toy_langneuron_detector-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-langneuron-detector\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[langneuron_eval.detectors]\n"
        "toy_first = toy_langneuron_detector:first_units\n"
        "toy_last = toy_langneuron_detector:LastUnits\n")
    (site / "toy_langneuron_detector.py").write_text((FIXTURE / "toy_langneuron_detector.py").read_text())
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("toy_langneuron_detector", None)


# ------------------------------------------------------------------------------------------- registry
def test_importing_the_registry_does_not_import_torch_or_detectors():
    code = ("import sys, langneuron_eval.detectors as d; d.available_detectors(); "
            "print('torch' in sys.modules, 'langneuron_eval.detectors.lape' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(__file__).parents[1]), "PATH": ""})
    assert out.stdout.split() == ["False", "False"]


def test_unknown_name_suggests_close_matches():
    with pytest.raises(LangNeuronError, match=r"unknown detector 'kojima' \(did you mean 'kojima_ap'\?\)"):
        reg.get_detector("kojima")
    with pytest.raises(LangNeuronError, match="available: .*lape"):
        reg.get_detector("zzz")


def test_module_attr_target_and_decorator(clean_registry):
    det = reg.get_detector("langneuron_eval.detectors.lape:LapeDetector")
    assert det.name == "lape"
    with pytest.raises(LangNeuronError, match="cannot load detector no_such_module:X: ModuleNotFoundError"):
        reg.get_detector("no_such_module:X")

    @reg.register_detector("tests_mine")
    class Mine(Detector):
        """Mine: every unit of layer 1 for English."""

        def detect(self, stats, params):
            return DetectionResult({"en": [(1, j) for j in range(stats.intermediate_size)]})

    assert "tests_mine" in reg.available_detectors()
    assert reg.get_detector("tests_mine").name == "tests_mine"
    with pytest.raises(ValueError, match="already registered"):
        reg.register_detector("tests_mine", target="pkg:Other")


def test_entry_point_detectors_are_discovered(plugin_on_path):
    assert {"toy_first", "toy_last"} <= set(reg.available_detectors())
    assert reg.REGISTRY.origin("toy_first") == "entry point (toy-langneuron-detector)"
    res = reg.get_detector("toy_first")(make_stats(), n=3)
    assert res.languages["de"] == [(0, 0), (0, 1), (0, 2)]


# ------------------------------------------------------------------------------------------- detect
def test_detect_writes_a_neuron_file_and_prints_counts(run_cli, stats_file, tmp_path):
    out = tmp_path / "n.json"
    rc, stdout, stderr = run_cli("detect", "--stats", stats_file, "--method", "lape", "--param", "top_rate=0.1",
                                 "--param", "filter_rate=0.9", "--out", out)
    assert rc == 0, stderr
    nf = NeuronFile.load(out)
    assert nf.detector == "lape" and nf.params["top_rate"] == 0.1 and nf.params["filter_rate"] == 0.9
    for lang, units in nf.languages.items():
        assert f"{lang}  " in stdout and stdout.split(f"\n{lang}")[1].split()[0] == str(len(units))
    assert sum(map(len, nf.languages.values())) > 0


def test_detect_finds_third_party_detectors(run_cli, plugin_on_path, stats_file, tmp_path):
    rc, stdout, _ = run_cli("detect", "--list")
    assert rc == 0 and "toy_first" in stdout and "toy_last" in stdout and "Toy: the first n units" in stdout
    assert "    n (int, default 1)" in stdout
    rc, _, stderr = run_cli("detect", "--stats", stats_file, "--method", "toy_last", "--param", "n=3",
                            "--param", "only=zh", "--out", tmp_path / "t.json")
    assert rc == 0, stderr
    nf = NeuronFile.load(tmp_path / "t.json")
    assert nf.detector == "toy_last" and nf.languages == {"zh": [(1, 45), (1, 46), (1, 47)]}
    assert nf.params == {"n": 3, "only": "zh"}
    rc, _, stderr = run_cli("detect", "--stats", stats_file, "--method", "toy_frist", "--out", tmp_path / "u.json")
    assert rc == 2 and "did you mean 'toy_first'" in stderr and stderr.count("\n") == 1


def test_detect_lists_builtins_with_parameters(run_cli):
    rc, stdout, _ = run_cli("detect", "--list")
    assert rc == 0
    for name in ("lape", "kojima_ap", "zhang", "random", "lap"):
        assert f"\n{name}  [built-in]" in "\n" + stdout
    assert "    lambda (float or none, default None)" in stdout
    assert "    formulation (code|paper, default 'code')" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--stats", "{tmp}/missing.safetensors", "--out", "{tmp}/o.json"], "statistics file not found"),
    (["--stats", "{stats}", "--method", "lapee", "--out", "{tmp}/o.json"], "did you mean 'lape'"),
    (["--stats", "{stats}", "--param", "top_rate", "--out", "{tmp}/o.json"], "is not NAME=VALUE"),
    (["--stats", "{stats}", "--param", "top_rat=0.1", "--out", "{tmp}/o.json"], "valid parameters: top_rate"),
    (["--stats", "{stats}", "--param", "top_rate=x", "--out", "{tmp}/o.json"], "expects float"),
    (["--stats", "{stats}", "--out", "{tmp}/exists.json"], "already exists; pass --force"),
    (["--stats", "{stats}", "--method", "kojima_ap", "--out", "{tmp}/o.json"], "per-sentence mean activations"),
    (["--out", "{tmp}/o.json"], "--stats is required"),
    (["--stats", "{stats}"], "--out is required"),
])
def test_detect_errors_are_one_line(run_cli, tmp_path, argv, message):
    stats = tmp_path / "s.safetensors"
    make_stats(sentences="kojima_ap" not in argv).save(stats)
    (tmp_path / "exists.json").write_text("keep")
    rc, stdout, stderr = run_cli("detect", *[a.format(tmp=tmp_path, stats=stats) for a in argv])
    assert rc == 2
    assert message in stderr and stderr.count("\n") == 1 and stderr.startswith("langneuron detect: error:")
    assert (tmp_path / "exists.json").read_text() == "keep" and not (tmp_path / "o.json").exists()


def test_detect_refuses_one_language_statistics_and_writes_nothing(run_cli, tmp_path):
    """A unit is language-specific only by contrast with other languages: one language cannot answer that."""
    stats = tmp_path / "one.safetensors"
    make_stats(K=1).save(stats)
    for method in ("lape", "random", "zhang"):
        rc, stdout, stderr = run_cli("detect", "--stats", stats, "--method", method, "--out", tmp_path / "n.json")
        assert rc == 2 and stdout == "", (method, stdout)
        assert stderr.count("\n") == 1 and stderr.startswith("langneuron detect: error:")
        assert "cover one language (en)" in stderr and "at least two" in stderr
        assert list(tmp_path.iterdir()) == [stats]  # no neuron file, not even a partial or temporary one


def test_random_per_layer_control_from_a_neuron_file(run_cli, stats_file, tmp_path):
    """``random --param reference_neurons=F --param per_layer=true``: per language and layer, F's counts."""
    ref, out = tmp_path / "lape.json", tmp_path / "r.json"
    assert run_cli("detect", "--stats", stats_file, "--param", "top_rate=0.1", "--out", ref)[0] == 0
    rc, _, stderr = run_cli("detect", "--stats", stats_file, "--method", "random", "--param",
                            f"reference_neurons={ref}", "--param", "per_layer=true", "--param", "seed=5", "--out", out)
    assert rc == 0, stderr
    a, r = NeuronFile.load(ref), NeuronFile.load(out)
    for lang in a.languages:
        assert sorted(x for x, _ in r.languages[lang]) == sorted(x for x, _ in a.languages[lang])
    assert r.params["per_layer"] is True and r.extra["per_layer"] is True
    assert r.languages != a.languages
    other = ModelFingerprint("llama", 3, 48, "act_out")
    NeuronFile(other, "x", {"en": [(2, 1)]}).save(tmp_path / "other.json")
    rc, _, stderr = run_cli("detect", "--stats", stats_file, "--method", "random", "--param",
                            f"reference_neurons={tmp_path / 'other.json'}", "--out", tmp_path / "bad.json")
    assert rc == 2 and "another model shape" in stderr and not (tmp_path / "bad.json").exists()


def test_detect_force_overwrites(run_cli, stats_file, tmp_path):
    out = tmp_path / "n.json"
    out.write_text("old")
    rc, _, _ = run_cli("detect", "--stats", stats_file, "--out", out, "--force", "--param", "top_rate=0.05")
    assert rc == 0 and NeuronFile.load(out).detector == "lape"


# ------------------------------------------------------------------------------------------- neurons-report
def _neuron_file(path, languages, detector="x", extra=None):
    NeuronFile(FP, detector, languages, extra=extra or {}).save(path)
    return path


def test_report_single_file(run_cli, tmp_path):
    a = _neuron_file(tmp_path / "a.json", {"en": [(0, 1), (0, 2), (1, 3)], "de": [(0, 2), (1, 4)], "zh": [(0, 2)]})
    rc, stdout, _ = run_cli("neurons-report", a, "--json", tmp_path / "r.json")
    assert rc == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["content_sha256"] == [NeuronFile.load(a).sha256()] and doc["versions"]["langneuron_eval"]
    r = doc["summaries"][0]
    assert r["counts"] == {"en": 3, "de": 2, "zh": 1} and r["unique_units"] == 4
    assert r["layer_distribution"] == {"en": [2, 1], "de": [1, 1], "zh": [1, 0]}
    assert r["overlap"]["en"]["de"] == pytest.approx(1 / 3) and r["overlap"]["de"]["en"] == pytest.approx(1 / 2)
    assert r["overlap"]["zh"]["en"] == 1.0
    assert r["n_histogram"] == [0, 3, 0, 1]  # (0,2) is in all three languages
    assert r["classes"]["en"] == {"specific": 2, "related": 0, "general": 1} and r["general"] == 1
    assert "units per layer" in stdout and "overlap |row ∩ col| / |row|" in stdout


def test_report_compares_two_files(run_cli, tmp_path):
    a = _neuron_file(tmp_path / "a.json", {"en": [(0, 1), (0, 2)], "de": [(0, 2), (1, 4)], "zh": [(1, 5)]})
    b = _neuron_file(tmp_path / "b.json", {"en": [(0, 1), (0, 3)], "de": [(0, 3), (1, 4), (1, 6)], "zh": [(1, 5)]},
                     detector="zhang", extra={"general": [[1, 1], [1, 2]], "appear": [0, 3, 1, 0]})
    rc, stdout, _ = run_cli("neurons-report", a, b, "--json", tmp_path / "r.json")
    assert rc == 0
    c = json.loads((tmp_path / "r.json").read_text())["comparison"]
    assert c["per_language"]["en"]["overlap"] == 0.5 and c["per_language"]["de"]["overlap"] == 0.5
    assert c["per_language"]["de"]["specific_a"] == 1 and c["per_language"]["de"]["specific_b"] == 2
    assert c["per_language"]["de"]["related_change"] == 0 and c["per_language"]["en"]["related_a"] == 1
    assert c["general_a"] == 0 and c["general_b"] == 2 and c["general_change"] == 2  # b: from extra
    assert c["n_histogram_change"] == [0, 1, 0, 2]
    assert "comparison" in stdout and "Δspec" in stdout


def test_report_errors(run_cli, tmp_path):
    rc, _, stderr = run_cli("neurons-report")
    assert rc == 2 and "one or two neuron files" in stderr
    rc, _, stderr = run_cli("neurons-report", tmp_path / "nope.json")
    assert rc == 2 and "not found" in stderr and stderr.count("\n") == 1
    other = ModelFingerprint("llama", 3, 48, "act_out")
    NeuronFile(other, "x", {"en": [(2, 1)]}).save(tmp_path / "o.json")
    a = _neuron_file(tmp_path / "a.json", {"en": [(0, 1)]})
    rc, _, stderr = run_cli("neurons-report", a, tmp_path / "o.json")
    assert rc == 2 and "different models" in stderr
