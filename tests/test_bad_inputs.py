"""Bad-input battery across every command: exit code 2 and one line naming the problem, never a traceback.

Each case is (command line, expected message fragment): ``CASES`` for the ``langneuron`` commands,
``MODEL_ARGS_CASES`` for the ``--model_args`` of the lm-eval model, ``UNREADABLE_CASES`` for files without
read permission, and a corpus in the wrong language, which warns and goes on. Other test files cover more cases per command (test_cli_record.py,
test_detectors_cli.py, test_lm_model.py, test_leaderboard.py); this file is the list that spans them all,
and it grows with each new command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.stats import ActivationStats

FP = ModelFingerprint("llama", 2, 48, "act_out")


def _tampered_stats(good, path, name, value):
    """A stats file with one bad value whose content hash is recomputed, so the value check must catch it."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from langneuron_eval.core.stats import content_hash

    with safe_open(str(good), framework="pt") as f:
        header = json.loads(f.metadata()["langneuron"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors[name][0, 0, 0] = value
    header["content_sha256"] = content_hash(tensors)
    save_file(tensors, str(path), metadata={"langneuron": json.dumps(header)})


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
    _tampered_stats(good, tmp_path / "nan_stats.safetensors", "activation_sums", float("nan"))
    _tampered_stats(good, tmp_path / "negative_stats.safetensors", "positive_counts", -5)
    (tmp_path / "results.json").write_text("not json")
    (tmp_path / "empty_corpus").mkdir()
    (tmp_path / "empty_corpus" / "en.txt").write_text("")
    return {"dir": tmp_path, "model": tiny_model_dir, "corpus": tiny_corpus_dir}


CASES = {
    # command: record
    "record/bad device map": (["record", "--model", "{model}", "--corpus", "{corpus}", "--device-map", "bogus",
                               "--out", "{dir}/o.st"], "invalid device map"),
    "record/missing model": (["record", "--model", "{dir}/nope", "--corpus", "{corpus}", "--out", "{dir}/o.st"],
                             "model directory not found"),
    "record/empty corpus file": (["record", "--model", "{model}", "--corpus", "{dir}/empty_corpus", "--out",
                                  "{dir}/o.st"], "is empty"),
    "record/unknown language": (["record", "--model", "{model}", "--corpus", "{corpus}", "--langs", "en,tlh",
                                 "--out", "{dir}/o.st"], "no corpus for language(s) tlh"),
    "record/existing output": (["record", "--model", "{model}", "--corpus", "{corpus}", "--out",
                                "{dir}/neurons.json"], "already exists"),
    "record/output inside a file": (["record", "--model", "{model}", "--corpus", "{corpus}", "--out",
                                     "{dir}/neurons.json/o.st"], "neurons.json"),
    # command: detect
    "detect/missing stats": (["detect", "--stats", "{dir}/missing.safetensors", "--method", "lape", "--out",
                              "{dir}/n.json"], "not found"),
    "detect/truncated stats": (["detect", "--stats", "{dir}/truncated.safetensors", "--method", "lape", "--out",
                                "{dir}/n.json"], "not a readable safetensors file"),
    "detect/stats is JSON": (["detect", "--stats", "{dir}/neurons.json", "--method", "lape", "--out",
                              "{dir}/n.json"], "safetensors"),
    "detect/NaN in stats": (["detect", "--stats", "{dir}/nan_stats.safetensors", "--method", "lape", "--out",
                             "{dir}/n.json"], "NaN"),
    "detect/negative counts": (["detect", "--stats", "{dir}/negative_stats.safetensors", "--method", "lape",
                                "--out", "{dir}/n.json"], "negative"),
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
    "compare/missing results": (["compare", "{dir}/missing_run", "{dir}/results.json"], "not found"),
    # command: normalize-results
    "normalize-results/malformed results": (["normalize-results", "{dir}/results.json", "--out", "{dir}/n.json"],
                                            "not valid JSON"),
    "normalize-results/not a results file": (["normalize-results", "{dir}/neurons.json", "--out", "{dir}/n.json"],
                                             "not an lm-eval results dict"),
    "normalize-results/directory without results": (["normalize-results", "{dir}/empty_corpus", "--out",
                                                     "{dir}/n.json"], "no results_*.json"),
    "normalize-results/existing output": (["normalize-results", "{dir}/results.json", "--out", "{dir}/empty.json"],
                                          "already exists"),
    # command: leaderboard
    "leaderboard/no usable results": (["leaderboard", "{dir}/empty_corpus", "--out", "{dir}/lb"], "no usable"),
    "leaderboard/out is a file": (["leaderboard", "{dir}/empty_corpus", "--out", "{dir}/neurons.json"],
                                  "not a directory"),
    "leaderboard/not a sweep file": (["leaderboard", "{dir}/empty_corpus", "--sweep", "{dir}/neurons.json",
                                      "--out", "{dir}/lb"], "not a sweep.json"),
    # command: sweep
    "sweep/missing neuron file": (["sweep", "--model", "{model}", "--neurons", "{dir}/missing.json", "--langs", "en",
                                   "--out", "{dir}/sw"], "not found"),
    "sweep/bad strength": (["sweep", "--model", "{model}", "--neurons", "{dir}/neurons.json", "--langs", "en",
                            "--strengths", "x", "--out", "{dir}/sw"], "strength"),
    # commands that write a directory: demo, train-demo, bench-detector
    "demo/out is a file": (["demo", "--out", "{dir}/neurons.json"], "not a directory"),
    "demo/out not empty": (["demo", "--out", "{dir}"], "not empty"),
    "train-demo/out is a file": (["train-demo", "--out", "{dir}/neurons.json"], "not a directory"),
    "train-demo/zero tokens": (["train-demo", "--out", "{dir}/td", "--tokens", "0"], "--tokens must be"),
    "bench-detector/unknown detector": (["bench-detector", "lapee", "--out", "{dir}/b"], "did you mean"),
    "bench-detector/out is a file": (["bench-detector", "lape", "--out", "{dir}/neurons.json"], "not a directory"),
    "ppl-matrix/out is a file": (["ppl-matrix", "--model", "{model}", "--neurons", "{dir}/neurons.json",
                                  "--out", "{dir}/neurons.json"], "not a directory"),
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
    """docs/methods.md §1: a language without tokens gets probability 0 (the reference divides by the count)."""
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


# ---------------------------------------------------------------------------------------------------------
# The `langneuron` lm-eval model: bad --model_args, parsed by lm-eval's own argument-string parser.
# Each fails before the model is loaded (except the shape check, which needs the model's shape).

MODEL_ARGS_CASES = {
    "unknown mode": ("pretrained={model},neurons={dir}/neurons.json,mode=bogus,lang=zh", "unknown intervention mode='bogus'"),
    "mode=activate without lang": ("pretrained={model},neurons={dir}/neurons.json,mode=activate",
                                   "mode=activate needs lang="),
    "mode=activate without neurons": ("pretrained={model},mode=activate,lang=zh", "mode=activate needs neurons="),
    "lang without mode": ("pretrained={model},neurons={dir}/neurons.json,lang=zh", "lang=zh is set but mode=none"),
    "missing neuron file": ("pretrained={model},neurons={dir}/missing.json,mode=deactivate,lang=zh",
                            "neuron file not found"),
    "empty neuron file": ("pretrained={model},neurons={dir}/empty.json,mode=deactivate,lang=zh", "is empty"),
    "malformed neuron file": ("pretrained={model},neurons={dir}/malformed.json,mode=deactivate,lang=zh",
                              "not valid JSON"),
    "neuron index out of range": ("pretrained={model},neurons={dir}/out_of_range.json,mode=deactivate,lang=zh",
                                  "out of range"),
    "neuron file for another shape": ("pretrained={model},neurons={dir}/other_shape.json,mode=deactivate,lang=zh",
                                      "3 layers x 64 units"),
    "language not in the file": ("pretrained={model},neurons={dir}/neurons.json,mode=deactivate,lang=ko",
                                 "language 'ko' is not in neuron file"),
    "deactivated language not in the file": (
        "pretrained={model},neurons={dir}/neurons.json,mode=deactivate,lang=zh,deactivate=fr",
        "language 'fr' is not in neuron file"),
    "statistic not in the file": ("pretrained={model},neurons={dir}/neurons.json,mode=activate,lang=zh,value=median",
                                  "no 'median' activation values for 'zh'"),
    "unknown activation value": ("pretrained={model},neurons={dir}/neurons.json,mode=activate,lang=zh,value=loud",
                                 "invalid activation value"),
    "strength not a number": ("pretrained={model},neurons={dir}/neurons.json,mode=scale,lang=zh,strength=x",
                              "strength='x' is not a number"),
    "unknown positions": ("pretrained={model},neurons={dir}/neurons.json,mode=deactivate,lang=zh,positions=prompt",
                          "unknown positions='prompt'"),
    "deactivate=others combined": (
        "pretrained={model},neurons={dir}/neurons.json,mode=activate,lang=zh,value=1,deactivate=others+en",
        "cannot be combined"),
    "deactivate=others without lang": ("pretrained={model},neurons={dir}/neurons.json,deactivate=others",
                                       "deactivate=others needs lang="),
    "missing model directory": ("pretrained={dir}/no_model,neurons={dir}/neurons.json,mode=deactivate,lang=zh",
                                "model directory not found"),
}


@pytest.mark.parametrize("case", sorted(MODEL_ARGS_CASES))
def test_bad_model_args_are_one_line(files, case):
    from lm_eval.api.registry import get_model

    from langneuron_eval.errors import LangNeuronError
    from langneuron_eval.lmeval.plugin import register_model

    register_model()
    arg_string, fragment = MODEL_ARGS_CASES[case]
    before = {p.name: p.stat().st_mtime_ns for p in files["dir"].iterdir()}
    with pytest.raises(LangNeuronError) as err:
        get_model("langneuron").create_from_arg_string(arg_string.format(**files), {"device": "cpu", "batch_size": 1})
    assert "\n" not in str(err.value) and fragment in str(err.value), (case, str(err.value))
    assert {p.name: p.stat().st_mtime_ns for p in files["dir"].iterdir()} == before


# ---------------------------------------------------------------------------------------------------------
# Unreadable files (mode 000). Root reads any file through the CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
# capabilities, so as root the command runs in a child without them; the files stay root's own, and the
# interpreter, libraries and test directories stay readable through their owner permissions.

UNREADABLE_CASES = {
    "record/unreadable corpus file": (["record", "--model", "{model}", "--corpus", "en={locked}/en.txt", "--out",
                                       "{dir}/o.st"], "cannot read corpus file {locked}/en.txt: Permission denied"),
    "detect/unreadable stats": (["detect", "--stats", "{locked}/stats.safetensors", "--method", "lape", "--out",
                                 "{dir}/n.json"], "cannot read statistics file {locked}/stats.safetensors"),
    "neurons-report/unreadable neuron file": (["neurons-report", "{locked}/neurons.json"],
                                              "cannot read neuron file {locked}/neurons.json"),
    "ppl-matrix/unreadable neuron file": (["ppl-matrix", "--model", "{model}", "--neurons", "{locked}/neurons.json",
                                           "--out", "{dir}/pm"], "cannot read neuron file {locked}/neurons.json"),
    "compare/unreadable results": (["compare", "{locked}/results_x.json", "{locked}/results_x.json"],
                                   "cannot read lm-eval results file {locked}/results_x.json"),
    "normalize-results/unreadable results": (["normalize-results", "{locked}/results_x.json", "--out",
                                              "{dir}/n.json"], "cannot read lm-eval results file"),
    "model_args/unreadable neuron file": (None, "cannot read neuron file {locked}/neurons.json"),
}


def _drop_file_capabilities() -> None:  # runs in the child between fork and exec
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH; PR_CAPBSET_DROP = 24
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture
def locked(files):
    """Readable-looking inputs with permission bits 000."""
    import shutil

    d = files["dir"] / "locked"
    d.mkdir()
    shutil.copy(files["dir"] / "stats.safetensors", d / "stats.safetensors")
    shutil.copy(files["dir"] / "neurons.json", d / "neurons.json")
    (d / "en.txt").write_text("a line of English text\n", encoding="utf-8")
    (d / "results_x.json").write_text('{"results": {}}', encoding="utf-8")
    for p in d.iterdir():
        p.chmod(0)
    yield d
    for p in d.iterdir():
        p.chmod(0o644)


@pytest.mark.parametrize("case", sorted(UNREADABLE_CASES))
def test_unreadable_file_is_one_line(files, locked, case):
    import os
    import subprocess
    import sys

    argv, fragment = UNREADABLE_CASES[case]
    fmt = {**files, "locked": locked}
    if argv is None:  # the lm-eval model, through lm-eval's argument-string parser
        code = ("import sys\nfrom lm_eval.api.registry import get_model\n"
                "from langneuron_eval.errors import LangNeuronError\n"
                "from langneuron_eval.lmeval.plugin import register_model\nregister_model()\n"
                "try:\n    get_model('langneuron').create_from_arg_string(sys.argv[1], {'device': 'cpu'})\n"
                "except LangNeuronError as e:\n    print(f'lm_eval: error: {e}', file=sys.stderr)\n    sys.exit(2)\n")
        cmd = [sys.executable, "-c", code,
               "pretrained={model},neurons={locked}/neurons.json,mode=deactivate,lang=zh".format(**fmt)]
    else:
        cmd = [sys.executable, "-m", "langneuron_eval.cli.main", *[a.format(**fmt) for a in argv]]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                     os.environ.get("PYTHONPATH")])))
    before = {p.name: p.stat().st_mtime_ns for p in files["dir"].iterdir()}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                              preexec_fn=_drop_file_capabilities if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as e:  # the container forbids dropping capabilities (no CAP_SETPCAP)
        pytest.skip(f"running as root and cannot drop CAP_DAC_OVERRIDE to make a file unreadable: {e}")
    errors = [line for line in proc.stderr.strip().splitlines() if "error" in line.lower()]
    assert proc.returncode == 2, (case, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and len(errors) == 1, (case, proc.stderr[-2000:])
    assert fragment.format(**fmt) in errors[0] and "Permission denied" in errors[0], (case, errors[0])
    assert {p.name: p.stat().st_mtime_ns for p in files["dir"].iterdir()} == before


# ---------------------------------------------------------------------------------------------------------
# Inputs where going on is right, with a warning: a corpus whose text is mostly in another language than
# declared (RUCAIBox issue #19: English inside other languages' corpora) is still recorded.

ENGLISH = ["The weather was cold and the children stayed inside all afternoon.",
           "She bought three books at the market before the train left the station.",
           "Our neighbours painted their house blue during the summer holidays.",
           "He forgot his umbrella at the office and walked home in the rain."]
GERMAN = ["Das Wetter war kalt und die Kinder blieben den ganzen Nachmittag im Haus.",
          "Sie kaufte drei Bücher auf dem Markt, bevor der Zug den Bahnhof verließ."]


@pytest.mark.parametrize("english_share, warns", [(0.75, True), (0.0, False)])
def test_corpus_in_the_wrong_language_warns_and_records(run_cli, files, english_share, warns):
    d = files["dir"]
    n_en = int(40 * english_share)
    lines = [ENGLISH[i % len(ENGLISH)] for i in range(n_en)] + [GERMAN[i % len(GERMAN)] for i in range(40 - n_en)]
    (d / "de.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, _, err = run_cli("record", "--model", files["model"], "--corpus", f"de={d / 'de.txt'}", "--out",
                         d / "de.safetensors", "--no-progress")
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    if warns:
        assert len(warnings) == 1 and "75%" in warnings[0] and "de corpus" in warnings[0] and "'en'" in warnings[0]
    else:
        assert warnings == []
    assert ActivationStats.load(d / "de.safetensors").languages == ["de"]
