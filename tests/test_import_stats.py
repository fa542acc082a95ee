"""``langneuron import-stats``: the seed code's activation files become statistics every count-based detector reads.

The fixtures are written exactly as the reference code writes them: LAPE's ``activation.py`` saves
``dict(n=<int>, over_zero=<int32 [L, N]>)`` (before December 2024 also ``sum1``..``sum4``, float32) to
``activation.<lang>.train.<model>``; NJUNLP's saves ``{"total_tokens": <int>, "over_zero": <int64 [L, N]>}``
to ``activation.<lang>.<Model>-<tag>.pt`` and the instruction-only run to ``prefix.activation.<lang>...``.
"""

from __future__ import annotations

import pytest
import torch

from langneuron_eval.core.import_stats import ImportConfig, find_reference_files, import_reference
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.errors import LangNeuronError

L, N = 2, 48  # the shape of the tiny llama fixture


def _counts(seed: int, n: int, dtype=torch.int32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n + 1, (L, N), generator=g).to(dtype)


def write_lape(folder, langs=("en", "zh", "vi"), model="llama-7b", sums=False):
    """LAPE files; returns {lang: (n, over_zero, sum1, sum2)}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, lang in enumerate(langs):
        n = 500 + 100 * i
        payload = {"n": n, "over_zero": _counts(i, n)}
        if sums:
            g = torch.Generator().manual_seed(100 + i)
            for p in (1, 2, 3, 4):
                payload[f"sum{p}"] = torch.rand(L, N, generator=g) * n
        torch.save(payload, folder / f"activation.{lang}.train.{model}")
        out[lang] = payload
    return out


def write_njunlp(folder, langs=("en", "ru"), tag="Mistral-abc123"):
    """NJUNLP full-run and prefix files; cell [0, 0] of the first language counts more than the response tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, lang in enumerate(langs):
        full_n, pre_n = 900 + i, 400
        pre = _counts(10 + i, pre_n, torch.int64)
        full = pre + _counts(20 + i, full_n - pre_n, torch.int64)
        if i == 0:
            full[0, 0] = pre[0, 0] + (full_n - pre_n) + 3  # 3 more than the response tokens
            full[1, 1] = pre[1, 1] - 2  # prefix counted more than the full run: negative difference
        torch.save({"total_tokens": full_n, "over_zero": full}, folder / f"activation.{lang}.{tag}.pt")
        torch.save({"total_tokens": pre_n, "over_zero": pre}, folder / f"prefix.activation.{lang}.{tag}.pt")
        out[lang] = (full_n, full, pre_n, pre)
    return out


def test_lape_files_import_counts_and_shape(tmp_path):
    files = write_lape(tmp_path / "data")
    refs = find_reference_files([str(tmp_path / "data")], ImportConfig("llama"))
    stats, report = import_reference(refs, ImportConfig("llama"))
    assert stats.languages == ["en", "vi", "zh"]  # sorted when --langs is not given
    for k, lang in enumerate(stats.languages):
        assert int(stats.n_tokens[k]) == files[lang]["n"]
        assert torch.equal(stats.positive_counts[k], files[lang]["over_zero"].long())
    fp = stats.fingerprint
    assert (fp.model_type, fp.num_layers, fp.intermediate_size, fp.site) == ("llama", L, N, "act_out")
    assert report.fmt == "lape" and not stats.has_activation_sums and report.warnings() == []


def test_old_lape_files_keep_their_sums(tmp_path):
    files = write_lape(tmp_path / "data", sums=True)
    config = ImportConfig("llama", langs=["zh", "en"])
    stats, _ = import_reference(find_reference_files([str(tmp_path / "data")], config), config)
    assert stats.languages == ["zh", "en"] and stats.has_activation_sums
    expected = files["zh"]["sum1"].double() / files["zh"]["n"]
    assert torch.allclose(stats.activation_mean()[0], expected)


def test_counts_only_stats_round_trip_and_refuse_means(tmp_path):
    write_lape(tmp_path / "data")
    config = ImportConfig("llama")
    stats, _ = import_reference(find_reference_files([str(tmp_path / "data")], config), config)
    stats.save(tmp_path / "s.safetensors")
    back = ActivationStats.load(tmp_path / "s.safetensors")
    assert back.activation_sums is None and torch.equal(back.positive_counts, stats.positive_counts)
    assert back.sha256() == stats.sha256()
    with pytest.raises(LangNeuronError, match="counts only"):
        back.activation_mean()
    assert back.unit_values("en", [(0, 1)]) == {}  # no mean to offer for `activate`
    sub = back.subset_languages(["zh", "en"])
    assert sub.activation_sums is None and torch.equal(sub.positive_counts[1], back.positive_counts[0])


def test_njunlp_prefix_subtracted_and_clamped(tmp_path):
    files = write_njunlp(tmp_path / "act")
    config = ImportConfig("mistral")
    stats, report = import_reference(find_reference_files([str(tmp_path / "act")], config), config)
    full_n, full, pre_n, pre = files["en"]
    k = stats.lang_index("en")
    n = full_n - pre_n
    assert int(stats.n_tokens[k]) == n
    assert int(stats.positive_counts[k, 0, 0]) == n  # clamped down to the response-token count
    assert int(stats.positive_counts[k, 1, 1]) == 0  # negative difference clamped up to 0
    expected = (full - pre).clamp(0, n)
    assert torch.equal(stats.positive_counts[k], expected)
    assert report.clamped_above == {"en": 1, "ru": 0} and report.clamped_below == {"en": 1, "ru": 0}
    assert stats.metadata["imported_from"]["response_tokens"] is True


def test_njunlp_without_prefix_counts_every_token(tmp_path):
    files = write_njunlp(tmp_path / "act")
    config = ImportConfig("mistral", subtract_prefix=False)
    stats, report = import_reference(find_reference_files([str(tmp_path / "act")], config), config)
    assert int(stats.n_tokens[stats.lang_index("ru")]) == files["ru"][0]
    assert torch.equal(stats.positive_counts[stats.lang_index("ru")], files["ru"][1])
    assert report.clamped_below == {"en": 0, "ru": 0}


def test_cli_import_then_every_count_detector_runs(tmp_path, run_cli):
    write_njunlp(tmp_path / "act", langs=("en", "ru", "zh"))
    out = tmp_path / "s.safetensors"
    rc, stdout, err = run_cli("import-stats", tmp_path / "act", "--model-type", "mistral", "--out", out)
    assert rc == 0, err
    assert "warning: 1 cells (en 1) count more positive tokens" in err
    assert "3 languages x 2 layers x 48 units" in stdout
    for method in ("lape", "zhang", "lap", "random"):
        rc, _, err = run_cli("detect", "--stats", out, "--method", method, "--out", tmp_path / f"{method}.json")
        assert rc == 0, (method, err)
    rc, _, err = run_cli("detect", "--stats", out, "--method", "kojima_ap", "--out", tmp_path / "k.json")
    assert rc == 2 and "per-sentence mean activations" in err and len(err.strip().splitlines()) == 1


def test_import_is_byte_reproducible(tmp_path, run_cli):
    write_lape(tmp_path / "data")
    for name in ("a", "b"):
        assert run_cli("import-stats", tmp_path / "data", "--model-type", "llama", "--out",
                       tmp_path / f"{name}.safetensors")[0] == 0
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


class _Boom:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Boom.target),))


def test_pickled_code_is_refused_not_run(tmp_path, run_cli):
    _Boom.target = str(tmp_path / "pwned")
    (tmp_path / "data").mkdir()
    torch.save({"n": 5, "over_zero": torch.zeros(L, N, dtype=torch.int32), "x": _Boom()},
               tmp_path / "data" / "activation.en.train.m")
    rc, _, err = run_cli("import-stats", tmp_path / "data", "--model-type", "llama", "--out", tmp_path / "s.safetensors")
    assert rc == 2 and "not a readable torch.save file of tensors" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "s.safetensors").exists()


def test_languages_and_files_checked_before_loading(tmp_path, run_cli):
    data = tmp_path / "data"
    data.mkdir()
    (data / "activation.en.train.m").write_bytes(b"not a torch file")  # would fail if it were loaded
    rc, _, err = run_cli("import-stats", data, "--model-type", "llama", "--langs", "en,vi", "--out", tmp_path / "s")
    assert rc == 2 and "no activation file for vi" in err
    rc, _, err = run_cli("import-stats", data, "--model-type", "llama", "--langs", "en,xx-nonsense", "--out",
                         tmp_path / "s")
    assert rc == 2 and "unknown language code" in err
    rc, _, err = run_cli("import-stats", data, "--model-type", "lama", "--out", tmp_path / "s")
    assert rc == 2 and "unknown model type 'lama'" in err
    rc, _, err = run_cli("import-stats", tmp_path / "nowhere", "--model-type", "llama", "--out", tmp_path / "s")
    assert rc == 2 and "activation file or folder not found" in err
    (data / "activation.vi.train.m").write_bytes(b"")  # unreadable, but not asked for
    torch.save({"n": 4, "over_zero": torch.ones(L, N, dtype=torch.int32)}, data / "activation.en.train.m")
    rc, _, err = run_cli("import-stats", data, "--model-type", "llama", "--langs", "en", "--out", tmp_path / "s")
    assert rc == 0, err


@pytest.mark.parametrize("payload, message", [
    ({"over_zero": torch.zeros(L, N)}, "expected keys 'over_zero' and one of"),
    ({"n": 5, "over_zero": torch.zeros(N)}, "must be a [layers, neurons] tensor"),
    ({"n": 5, "over_zero": torch.full((L, N), 0.5)}, "non-integer values"),
    ({"n": -1, "over_zero": torch.zeros(L, N, dtype=torch.int32)}, "non-negative integer token count"),
    ([1, 2], "expected a dict"),
])
def test_malformed_files_fail_with_one_line(tmp_path, run_cli, payload, message):
    (tmp_path / "d").mkdir()
    torch.save(payload, tmp_path / "d" / "activation.en.train.m")
    rc, _, err = run_cli("import-stats", tmp_path / "d", "--model-type", "llama", "--out", tmp_path / "s")
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_folder_of_two_models_needs_a_tag(tmp_path, run_cli):
    write_lape(tmp_path / "data", model="llama-7b")
    write_lape(tmp_path / "data", model="bloom-7b")
    rc, _, err = run_cli("import-stats", tmp_path / "data", "--model-type", "llama", "--out", tmp_path / "s")
    assert rc == 2 and "several models (train.bloom-7b, train.llama-7b)" in err
    rc, _, err = run_cli("import-stats", tmp_path / "data", "--model-type", "llama", "--tag", "train.llama-7b",
                         "--out", tmp_path / "s")
    assert rc == 0, err


def test_explicit_pairs_and_mismatched_shapes(tmp_path, run_cli):
    torch.save({"n": 9, "over_zero": torch.ones(L, N, dtype=torch.int32)}, tmp_path / "a.pt")
    torch.save({"n": 9, "over_zero": torch.ones(L + 1, N, dtype=torch.int32)}, tmp_path / "b.pt")
    rc, _, err = run_cli("import-stats", f"zh-Hans={tmp_path / 'a.pt'}", f"jpn={tmp_path / 'b.pt'}",
                         "--model-type", "llama", "--out", tmp_path / "s")
    assert rc == 2 and "files of different models" in err


def test_model_config_checks_the_shape(tmp_path, run_cli, tiny_model_dir):
    write_lape(tmp_path / "data")  # [2, 48]: the tiny llama's shape
    rc, out, err = run_cli("import-stats", tmp_path / "data", "--model", tiny_model_dir, "--out", tmp_path / "s")
    assert rc == 0 and "llama with 2 layers x 48 units" in out, err
    torch.save({"n": 9, "over_zero": torch.ones(3, N, dtype=torch.int32)}, tmp_path / "activation.en.x.m")
    rc, _, err = run_cli("import-stats", tmp_path / "activation.en.x.m", "--model", tiny_model_dir, "--out",
                         tmp_path / "s2")
    assert rc == 2 and "[3 layers, 48 units]" in err
