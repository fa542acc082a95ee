"""`langneuron record` end to end, and its bad inputs: exit code 2, one line, nothing partial written."""

from pathlib import Path

import pytest
import torch

from langneuron_eval.core.stats import ActivationStats


def test_record_writes_stats_matching_in_process_record(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path):
    out = tmp_path / "stats.safetensors"
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--langs", "zh,en",
                         "--out", out, "--sentence-means", "--no-progress")
    assert rc == 0, err
    stats = ActivationStats.load(out)
    assert stats.languages == ["zh", "en"]
    assert stats.sentence_means.shape == (8, 2, 48)
    assert "tok/s" in err
    meta = stats.metadata
    assert meta["corpus"]["zh"]["sentences"] == 4 and len(meta["corpus"]["zh"]["sha256"]) == 64
    assert meta["record_config"]["site"] == "act_out" and "torch" in meta["versions"]
    # same inputs -> byte-identical file
    out2 = tmp_path / "again.safetensors"
    run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--langs", "zh,en",
            "--out", out2, "--sentence-means", "--no-progress")
    assert out.read_bytes() == out2.read_bytes()


def _lang_pairs(corpus):
    return [f"{lang}={corpus}/{lang}.txt" for lang in ("en", "de")]


@pytest.mark.parametrize("case, message", [
    ("missing_model", "model directory not found"),
    ("not_a_model", "not a Hugging Face model directory"),
    ("missing_corpus", "corpus not found"),
    ("missing_file", "corpus file for en not found"),
    ("empty_file", "corpus file for en is empty"),
    ("unknown_lang", "no corpus for language(s) xx"),
    ("bad_lang", "invalid language code"),
    ("exists", "already exists; pass --force"),
    ("bad_batch", "batch size must be >= 1"),
])
def test_record_bad_inputs(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path, case, message):
    out = tmp_path / "stats.safetensors"
    args = ["record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--out", out, "--no-progress"]
    if case == "missing_model":
        args[2] = tmp_path / "nope"
    elif case == "not_a_model":
        args[2] = tmp_path
    elif case == "missing_corpus":
        args[4] = tmp_path / "nocorpus"
    elif case == "missing_file":
        args[4] = f"en={tmp_path}/missing.txt"
    elif case == "empty_file":
        (tmp_path / "empty.txt").write_text("\n\n")
        args[4] = f"en={tmp_path}/empty.txt"
    elif case == "unknown_lang":
        args += ["--langs", "en,xx"]
    elif case == "bad_lang":
        args += ["--langs", "English"]
    elif case == "exists":
        out.write_bytes(b"keep me")
    elif case == "bad_batch":
        args += ["--batch-size", "0"]
    rc, _, err = run_cli(*args)
    assert rc == 2
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    if case == "exists":
        assert out.read_bytes() == b"keep me"
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_refused_architecture_is_one_line(run_cli, tiny_corpus_dir, tmp_path):
    from langneuron_eval.testing import make_tiny_model

    # experts outside a fused experts module cannot be observed one by one (docs/sites.md, docs/moe.md)
    make_tiny_model("jetmoe", tmp_path / "moe")
    rc, _, err = run_cli("record", "--model", tmp_path / "moe", "--corpus", tiny_corpus_dir,
                         "--out", tmp_path / "s.safetensors", "--no-progress")
    assert rc == 2 and "fused experts" in err and "JetMoeMoE" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s.safetensors").exists()


def test_interrupted_record_leaves_previous_output_intact(tiny_model_dir, tmp_path, record_killed_after_checkpoint):
    """Kill a running `record` mid-way: the previous output file is untouched and no temp file is left."""
    big = tmp_path / "corpus"
    big.mkdir()
    (big / "en.txt").write_text("\n".join(f"sentence number {i} about the weather" for i in range(2000)))
    out = tmp_path / "stats.safetensors"
    out.write_bytes(b"previous result")
    proc = record_killed_after_checkpoint(2, "--model", tiny_model_dir, "--corpus", big, "--out", out, "--force",
                                          "--no-progress", "--chunk-size", "100", "--checkpoint-every", "1")
    assert proc.returncode == 137, proc.stderr  # killed mid-way (20 chunks), not finished
    assert out.read_bytes() == b"previous result"
    left = sorted(p.name for p in tmp_path.iterdir())
    # only the resumable checkpoint (itself written atomically) may stand beside the untouched output
    assert [n for n in left if n not in ("corpus", "stats.safetensors", "stats.safetensors.partial")] == []


def test_jsonl_corpus_and_bad_jsonl(run_cli, tiny_model_dir, tmp_path):
    (tmp_path / "en.jsonl").write_text('{"text": "hello there"}\n{"text": "good morning"}\n')
    out = tmp_path / "s.safetensors"
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", f"en={tmp_path}/en.jsonl", "--out", out,
                         "--no-progress")
    assert rc == 0, err
    assert ActivationStats.load(out).metadata["corpus"]["en"]["sentences"] == 2
    (tmp_path / "de.jsonl").write_text('{"txt": "hallo"}\n')
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", f"de={tmp_path}/de.jsonl",
                         "--out", tmp_path / "t.safetensors", "--no-progress")
    assert rc == 2 and 'expected a JSON object with a "text" field' in err
    assert torch.is_tensor(ActivationStats.load(out).n_tokens)
    assert not Path(tmp_path / "t.safetensors").exists()


def test_ctrl_c_names_the_kept_checkpoint_and_resume_finishes_the_same_file(run_cli, tiny_model_dir, tmp_path,
                                                                           monkeypatch):
    """Ctrl-C (raised here from the corpus reader after 250 texts, so without a timing race) keeps OUT.partial,
    says so, and --resume then writes the file an uninterrupted run writes."""
    from langneuron_eval.core.corpus import CorpusSource

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "en.txt").write_text("\n".join(f"sentence number {i} about the weather" for i in range(400)) + "\n")
    common = ["record", "--model", tiny_model_dir, "--corpus", corpus, "--no-progress", "--chunk-size", "100",
              "--checkpoint-every", "1"]
    full = tmp_path / "full.safetensors"
    assert run_cli(*common, "--out", full)[0] == 0
    texts = CorpusSource.texts

    def interrupted(self):
        for i, text in enumerate(texts(self)):
            if i == 250:
                raise KeyboardInterrupt
            yield text

    monkeypatch.setattr(CorpusSource, "texts", interrupted)
    out = tmp_path / "stats.safetensors"
    rc, _, err = run_cli(*common, "--out", out)
    assert rc == 130 and not out.exists()
    assert "no partial output" not in err and f"kept in {out}.partial" in err and "--resume" in err
    monkeypatch.setattr(CorpusSource, "texts", texts)
    rc, _, err = run_cli(*common, "--out", out, "--resume")
    assert rc == 0, err
    assert out.read_bytes() == full.read_bytes() and not Path(f"{out}.partial").exists()


def test_ctrl_c_before_any_checkpoint_leaves_nothing(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path,
                                                               monkeypatch):
    from langneuron_eval.core.corpus import CorpusSource

    def interrupted(self):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(CorpusSource, "texts", interrupted)
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--out",
                         tmp_path / "s.safetensors", "--no-progress", "--lid-check", "1")
    assert rc == 130 and len(err.strip().splitlines()) == 1 and "kept in" not in err  # the generic message
    assert list(tmp_path.iterdir()) == []


def test_count_special_tokens_and_module_template_options(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path):
    base = ["record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--langs", "en", "--no-progress"]
    rc, _, err = run_cli(*base, "--out", tmp_path / "a.safetensors")
    assert rc == 0, err
    rc, _, err = run_cli(*base, "--out", tmp_path / "b.safetensors", "--count-special-tokens",
                         "--act-module", "model.layers.{layer}.mlp.act_fn")
    assert rc == 0, err
    a, b = ActivationStats.load(tmp_path / "a.safetensors"), ActivationStats.load(tmp_path / "b.safetensors")
    assert int(b.n_tokens[0]) == int(a.n_tokens[0]) + 4  # the BOS of each of the 4 sentences
    assert not a.counts_special_tokens and b.counts_special_tokens
    assert b.metadata["record_config"]["module_template"] == "model.layers.{layer}.mlp.act_fn"
    rc, _, err = run_cli(*base, "--out", tmp_path / "c.safetensors", "--down-module", "model.layers.{layer}.mlp.x")
    assert rc == 2 and "--down-module names the module of the other site" in err


def test_device_map_loads_through_accelerate_and_records_the_same_counts(run_cli, tiny_model_dir, tiny_corpus_dir,
                                                                         tmp_path):
    """``--device-map`` hands placement to Accelerate (hooks on every layer, no ``.to``); here everything lands on
    the CPU, so the counts must equal a plain ``--device cpu`` run (the multi-device case is in tests/gpu)."""
    plain, mapped = tmp_path / "plain.safetensors", tmp_path / "mapped.safetensors"
    for out, extra in ((plain, []), (mapped, ["--device-map", "cpu"])):
        rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--langs", "zh,en",
                             "--out", out, "--no-progress", *extra)
        assert rc == 0, err
    a, b = ActivationStats.load(plain), ActivationStats.load(mapped)
    assert torch.equal(a.positive_counts, b.positive_counts) and torch.equal(a.activation_sums, b.activation_sums)


# ---------------------------------------------------------------------- per-sentence means in a sidecar (issue #27)
def test_sentence_means_sidecar_gives_the_in_memory_detection(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path):
    """record --sentence-means writes <stem>.sentences.safetensors; detect reads it within a tiny budget and
    selects exactly what the in-memory statistics (library record) select, with the same median values."""
    import json

    from langneuron_eval.core.corpus import resolve_corpus
    from langneuron_eval.core.modeling import load_model
    from langneuron_eval.core.recorder import RecordConfig, record
    from langneuron_eval.core.sentence_store import SentenceMeansFile
    from langneuron_eval.core.stats import sidecar_path
    from langneuron_eval.detectors.runner import run_detector

    out = tmp_path / "stats.safetensors"
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--out", out,
                         "--sentence-means", "--no-progress", "--chunk-size", "3", "--checkpoint-every", "1")
    assert rc == 0, err
    assert sidecar_path(out).name == "stats.sentences.safetensors" and sidecar_path(out).exists()
    stats = ActivationStats.load(out)
    assert isinstance(stats.sentence_means, SentenceMeansFile)
    model, tok = load_model(str(tiny_model_dir))
    mem = record(model, tok, resolve_corpus([str(tiny_corpus_dir)]), RecordConfig(sentence_means=True, chunk_size=3),
                 progress=False)
    assert torch.equal(stats.sentence_tensor(), mem.sentence_means)
    params = ["--param", "k_top=5", "--param", "k_bottom=5"]
    rc, _, err = run_cli("detect", "--stats", out, "--method", "kojima_ap", *params, "--memory-budget", "300M",
                         "--out", tmp_path / "n.json")
    assert rc == 0, err
    got = json.loads((tmp_path / "n.json").read_text())
    expected = run_detector("kojima_ap", mem, {"k_top": 5, "k_bottom": 5})
    assert got["languages"] == {k: [list(u) for u in v] for k, v in expected.languages.items()}
    assert got["values"] == json.loads(json.dumps(expected.values))


def test_statistics_without_their_sidecar_or_with_a_changed_one_are_refused(run_cli, tiny_model_dir,
                                                                            tiny_corpus_dir, tmp_path):
    from langneuron_eval.core.stats import sidecar_path
    from langneuron_eval.errors import LangNeuronError

    out = tmp_path / "stats.safetensors"
    assert run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--out", out,
                   "--sentence-means", "--no-progress")[0] == 0
    side = sidecar_path(out)
    data = bytearray(side.read_bytes())
    data[-1] ^= 0x40
    side.write_bytes(bytes(data))
    rc, _, err = run_cli("detect", "--stats", out, "--method", "kojima_ap", "--out", tmp_path / "n.json")
    assert rc == 2 and "sha256" in err and len(err.strip().splitlines()) == 1
    side.unlink()
    with pytest.raises(LangNeuronError, match="stats.sentences.safetensors, which is missing"):
        ActivationStats.load(out)


def test_saving_a_language_subset_writes_its_own_sidecar(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path):
    from langneuron_eval.core.stats import sidecar_path

    out = tmp_path / "stats.safetensors"
    assert run_cli("record", "--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--out", out,
                   "--sentence-means", "--sentence-dtype", "bfloat16", "--no-progress")[0] == 0
    stats = ActivationStats.load(out)
    sub = stats.subset_languages(["zh", "en"])
    sub.save(tmp_path / "sub.safetensors")
    again = ActivationStats.load(tmp_path / "sub.safetensors")
    assert sidecar_path(tmp_path / "sub.safetensors").exists()
    rows = torch.isin(stats.sentence_lang, torch.tensor([stats.lang_index("zh"), stats.lang_index("en")]))
    assert torch.equal(again.sentence_tensor(), stats.sentence_tensor()[rows])
    assert again.sentence_means.dtype.name == "bfloat16"
    assert torch.equal(stats.sentence_tensor(), stats.sentence_tensor().bfloat16().float())  # stored in 16 bits
