"""Bad-input battery across every command: exit code 2 and one line naming the problem, never a traceback.

Each case is (command line, expected message fragment). Other test files cover more cases per command
(test_cli_record.py, test_detectors_cli.py, test_lm_model.py, test_leaderboard.py); this file is the list
that spans them all, and it grows with each new command.
"""

from __future__ import annotations

import json

import pytest
import torch

from langneuron_eval.neurons import NeuronFile
from langneuron_eval.sites import ModelFingerprint
from langneuron_eval.stats import ActivationStats

FP = ModelFingerprint("llama", 2, 48, "act_out")


@pytest.fixture
def files(tmp_path, tiny_model_dir, tiny_corpus_dir):
    """Good and bad inputs, written once per test."""
    g = torch.Generator().manual_seed(0)
    n = torch.tensor([100, 100, 0])  # zh has zero tokens
    pos = torch.randint(0, 100, (3, 2, 48), generator=g)
    pos[2] = 0
    sums = torch.randn(3, 2, 48, generator=g, dtype=torch.float64)
    ActivationStats(["en", "de", "zh"], n, pos, sums, sums.abs(), FP).save(tmp_path / "stats.safetensors")
    good = tmp_path / "stats.safetensors"
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:200])
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "malformed.json").write_text("{\"schema\": ")
    NeuronFile(FP, "handmade", {"zh": [[0, 1]], "en": [[1, 2]]}).save(tmp_path / "neurons.json")
    NeuronFile(ModelFingerprint("llama", 3, 64, "act_out"), "handmade", {"zh": [[2, 63]]}).save(
        tmp_path / "other_shape.json")
    data = json.loads((tmp_path / "neurons.json").read_text())
    data["languages"]["zh"] = [[7, 1]]
    del data["content_sha256"]
    (tmp_path / "out_of_range.json").write_text(json.dumps(data))
    (tmp_path / "results.json").write_text("not json")
    (tmp_path / "empty_corpus").mkdir()
    (tmp_path / "empty_corpus" / "en.txt").write_text("")
    return {"dir": tmp_path, "model": tiny_model_dir, "corpus": tiny_corpus_dir}


CASES = {
    # command: record
    "record/missing model": (["record", "--model", "{dir}/nope", "--corpus", "{corpus}", "--out", "{dir}/o.st"],
                             "model directory not found"),
    "record/empty corpus file": (["record", "--model", "{model}", "--corpus", "{dir}/empty_corpus", "--out",
                                  "{dir}/o.st"], "is empty"),
    "record/unknown language": (["record", "--model", "{model}", "--corpus", "{corpus}", "--langs", "en,tlh",
                                 "--out", "{dir}/o.st"], "no corpus for language(s) tlh"),
    "record/existing output": (["record", "--model", "{model}", "--corpus", "{corpus}", "--out",
                                "{dir}/neurons.json"], "already exists"),
    # command: detect
    "detect/missing stats": (["detect", "--stats", "{dir}/missing.safetensors", "--method", "lape", "--out",
                              "{dir}/n.json"], "not found"),
    "detect/truncated stats": (["detect", "--stats", "{dir}/truncated.safetensors", "--method", "lape", "--out",
                                "{dir}/n.json"], "not a readable safetensors file"),
    "detect/stats is JSON": (["detect", "--stats", "{dir}/neurons.json", "--method", "lape", "--out",
                              "{dir}/n.json"], "safetensors"),
    "detect/unknown method": (["detect", "--stats", "{dir}/stats.safetensors", "--method", "lapee", "--out",
                               "{dir}/n.json"], "did you mean"),
    "detect/bad param value": (["detect", "--stats", "{dir}/stats.safetensors", "--method", "lape", "--param",
                                "top_rate=lots", "--out", "{dir}/n.json"], "top_rate"),
    "detect/unknown param": (["detect", "--stats", "{dir}/stats.safetensors", "--method", "lape", "--param",
                              "toprate=0.1", "--out", "{dir}/n.json"], "toprate"),
    "detect/kojima without sentence means": (["detect", "--stats", "{dir}/stats.safetensors", "--method",
                                              "kojima_ap", "--out", "{dir}/n.json"], "sentence"),
    # command: neurons-report
    "report/empty neuron file": (["neurons-report", "{dir}/empty.json"], "empty"),
    "report/malformed JSON": (["neurons-report", "{dir}/malformed.json"], "not valid JSON"),
    "report/out-of-range neuron": (["neurons-report", "{dir}/out_of_range.json"], "out of range"),
    "report/different shapes": (["neurons-report", "{dir}/neurons.json", "{dir}/other_shape.json"],
                                "different models"),
    # command: ppl-matrix
    "ppl-matrix/neuron file for another shape": (["ppl-matrix", "--model", "{model}", "--neurons",
                                                  "{dir}/other_shape.json", "--out", "{dir}/pm"], "3 layers"),
    "ppl-matrix/missing neuron file": (["ppl-matrix", "--model", "{model}", "--neurons", "{dir}/missing.json",
                                        "--out", "{dir}/pm"], "not found"),
    # command: compare
    "compare/malformed results": (["compare", "{dir}/results.json", "{dir}/results.json"], "results.json"),
    # command: leaderboard
    "leaderboard/no usable results": (["leaderboard", "{dir}/empty_corpus", "--out", "{dir}/lb"], "no usable"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_without_traceback(run_cli, files, case):
    argv, fragment = CASES[case]
    before = {p.name: p.stat().st_mtime_ns for p in files["dir"].iterdir()}
    rc, out, err = run_cli(*[a.format(**files) for a in argv])
    errors = [line for line in err.strip().splitlines() if "error" in line.lower()]
    assert rc == 2, (case, err)
    assert "Traceback" not in err and len(errors) == 1, (case, err)  # progress lines may precede it
    assert fragment in errors[0], (case, errors[0])
    after = {p.name: p.stat().st_mtime_ns for p in files["dir"].iterdir()}
    assert after == before, f"{case}: files were written or changed: {set(after) ^ set(before)}"


def test_zero_token_language_gets_no_neurons_and_no_nan(run_cli, files):
    """METHODS.md: the reference divides by the token count; a language without tokens gets probability 0."""
    d = files["dir"]
    rc, _, err = run_cli("detect", "--stats", d / "stats.safetensors", "--method", "lape", "--out", d / "n.json")
    assert rc == 0, err
    nf = NeuronFile.load(d / "n.json")
    assert nf.languages.get("zh", []) == []


def test_same_inputs_give_byte_identical_neuron_files(run_cli, files):
    d = files["dir"]
    for name in ("a.json", "b.json"):
        rc, _, err = run_cli("detect", "--stats", d / "stats.safetensors", "--method", "random",
                             "--param", "seed=3", "--out", d / name)
        assert rc == 0, err
    assert (d / "a.json").read_bytes() == (d / "b.json").read_bytes()
    prov = NeuronFile.load(d / "a.json").provenance
    assert prov["seed"] == 3 and prov["package_version"] and prov["stats_sha256"]
