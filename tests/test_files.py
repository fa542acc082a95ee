"""Stats and neuron files: round trips, schema and hash checks, and refusals that name the problem."""

import json

import pytest
import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.errors import LangNeuronError

FP = ModelFingerprint("llama", 2, 48, "act_out")


def make_stats(K=3, L=2, N=48, sentences=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(50, 100, (K,), generator=g)
    pos = torch.stack([torch.randint(0, int(n[k]) + 1, (L, N), generator=g) for k in range(K)])
    sums = torch.randn(K, L, N, generator=g, dtype=torch.float64)
    sm = torch.randn(6, L, N, generator=g) if sentences else None
    sl = torch.tensor([0, 0, 1, 1, 2, 2]) if sentences else None
    return ActivationStats(["en", "de", "zh"][:K], n, pos, sums, sums.abs() * 2, FP, sm, sl, {"seed": 0})


def test_stats_round_trip_is_exact(tmp_path):
    s = make_stats()
    s.save(tmp_path / "s.safetensors")
    t = ActivationStats.load(tmp_path / "s.safetensors")
    for name, tensor in s.tensors().items():
        assert torch.equal(tensor, t.tensors()[name]), name
    assert t.languages == s.languages and t.fingerprint == FP and t.metadata == {"seed": 0}
    # same content -> same bytes
    s.save(tmp_path / "again.safetensors")
    assert (tmp_path / "s.safetensors").read_bytes() == (tmp_path / "again.safetensors").read_bytes()


def test_stats_refuses_overwrite_without_force(tmp_path):
    s = make_stats()
    path = tmp_path / "s.safetensors"
    path.write_bytes(b"user data")
    with pytest.raises(LangNeuronError, match="--force"):
        s.save(path)
    assert path.read_bytes() == b"user data"
    s.save(path, force=True)
    assert ActivationStats.load(path).languages == s.languages


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "not a readable safetensors"),
    (lambda b: b"", "empty"),
    (lambda b: b[:-8] + bytes(8), "content hash"),
])
def test_stats_damaged_files_are_refused(tmp_path, damage, message):
    path = tmp_path / "s.safetensors"
    make_stats().save(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(LangNeuronError, match=message):
        ActivationStats.load(path)


def test_stats_reject_nan_negative_and_impossible_counts():
    s = make_stats()
    with pytest.raises(LangNeuronError, match="NaN"):
        ActivationStats(s.languages, s.n_tokens, s.positive_counts, s.activation_sums * float("nan"),
                        s.activation_sq_sums)
    with pytest.raises(LangNeuronError, match="negative"):
        ActivationStats(s.languages, s.n_tokens, -s.positive_counts - 1, s.activation_sums, s.activation_sq_sums)
    with pytest.raises(LangNeuronError, match="exceed"):
        ActivationStats(s.languages, s.n_tokens * 0, s.positive_counts + 1, s.activation_sums, s.activation_sq_sums)


def test_zero_token_language_has_zero_probability_not_nan():
    s = make_stats(sentences=False)
    s.n_tokens[1] = 0
    s.positive_counts[1] = 0
    p = s.activation_probability()
    assert torch.isfinite(p).all() and (p[1] == 0).all()


def test_unit_values_mean_and_median():
    s = make_stats()
    vals = s.unit_values("de", [(0, 3), (1, 7)])
    mean = s.activation_sums[1] / s.n_tokens[1]
    assert vals["mean"] == pytest.approx([float(mean[0, 3]), float(mean[1, 7])])
    rows = s.sentence_means[2:4]
    assert vals["median"][0] == pytest.approx(float(rows[:, 0, 3].double().mean()))  # median of two = their mean


def neuron_file(**kw):
    args = dict(fingerprint=FP, detector="handmade", languages={"zh": [[1, 5], [0, 2], [0, 2]], "en": [[0, 1]]},
                values={"zh": {"mean": [0.5, 0.25]}})
    args.update(kw)
    return NeuronFile(**args)


def test_neuron_file_round_trip_sorted_unique(tmp_path):
    nf = neuron_file()
    assert nf.languages["zh"] == [(0, 2), (1, 5)]
    nf.save(tmp_path / "n.json")
    back = NeuronFile.load(tmp_path / "n.json")
    assert back.languages == nf.languages and back.values == nf.values and back.sha256() == nf.sha256()
    assert [t.tolist() for t in back.by_layer("zh").values()] == [[2], [5]]


def test_neuron_file_edited_by_hand_fails_hash(tmp_path):
    path = tmp_path / "n.json"
    neuron_file().save(path)
    data = json.loads(path.read_text())
    data["languages"]["zh"].append([1, 6])
    path.write_text(json.dumps(data))
    with pytest.raises(LangNeuronError, match="content hash"):
        NeuronFile.load(path)
    del data["content_sha256"]
    data["values"] = {}
    path.write_text(json.dumps(data))
    assert (1, 6) in NeuronFile.load(path).languages["zh"]


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("{not json", "not valid JSON"), ("[]", "JSON object"),
    ('{"schema": "langneuron-eval/neurons", "schema_version": 99}', "schema version 99"),
    ('{"schema": "other"}', "unexpected schema"),
])
def test_malformed_neuron_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LangNeuronError, match=message):
        NeuronFile.load(path)


def test_out_of_range_neurons_and_shape_mismatch():
    with pytest.raises(LangNeuronError, match="out of range"):
        neuron_file(languages={"zh": [[2, 0]]}, values={})
    with pytest.raises(LangNeuronError, match="out of range"):
        neuron_file(languages={"zh": [[0, 48]]}, values={})
    other = ModelFingerprint("llama", 4, 96, "act_out")
    with pytest.raises(LangNeuronError) as e:
        neuron_file().check_model(other)
    assert "2 layers x 48 units" in str(e.value) and "4 layers x 96 units" in str(e.value)
