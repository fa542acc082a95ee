"""`langneuron record` end to end, and its bad inputs: exit code 2, one line, nothing partial written."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from langneuron_eval.stats import ActivationStats


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


def test_unknown_architecture_is_one_line(run_cli, tiny_corpus_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from langneuron_eval.testing import make_tokenizer

    cfg = AutoConfig.for_model("opt", hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2,
                               word_embed_proj_dim=16, vocab_size=300)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "opt")
    make_tokenizer(tmp_path / "opt")
    rc, _, err = run_cli("record", "--model", tmp_path / "opt", "--corpus", tiny_corpus_dir,
                         "--out", tmp_path / "s.safetensors", "--no-progress")
    assert rc == 2 and "unsupported architecture model_type='opt'" in err and len(err.strip().splitlines()) == 1


def test_interrupted_record_leaves_previous_output_intact(tiny_model_dir, tmp_path):
    """Kill a running `record` mid-way: the previous output file is untouched and no temp file is left."""
    big = tmp_path / "corpus"
    big.mkdir()
    (big / "en.txt").write_text("\n".join(f"sentence number {i} about the weather" for i in range(200000)))
    out = tmp_path / "stats.safetensors"
    out.write_bytes(b"previous result")
    code = ("import sys; from langneuron_eval.cli.main import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "record", "--model", str(tiny_model_dir), "--corpus",
                             str(big), "--out", str(out), "--force", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import time

    time.sleep(8)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.kill()
    proc.wait()
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


def test_corpus_in_the_wrong_language_warns_but_records(run_cli, tiny_model_dir, tiny_corpus_dir, tmp_path):
    from langneuron_eval.testing import TINY_CORPUS

    (tmp_path / "de.txt").write_text("\n".join(TINY_CORPUS["en"]) + "\n")  # English text declared as German
    out = tmp_path / "s.safetensors"
    rc, _, err = run_cli("record", "--model", tiny_model_dir, "--corpus", f"de={tmp_path}/de.txt",
                         f"--corpus=en={tiny_corpus_dir}/en.txt", "--out", out, "--no-progress")
    assert rc == 0
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "de corpus" in warnings[0] and "'en'" in warnings[0]
    assert out.exists()
