"""Shared measurements and their command-line checks: held-out text, overlap refusal, fail-early, quiet lm-eval."""

from __future__ import annotations

import json
import logging
import math

import pytest

from langneuron_eval.core.corpus import CorpusSource, overlap_problems, resolve_corpus
from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.dominance import diagonal_dominance
from langneuron_eval.lmeval import evaluation
from langneuron_eval.pipelines.measurements import (
    check_held_out,
    held_out_sources,
    ppl_change_matrix,
    ppl_documents,
)
from langneuron_eval.testing import make_tiny_model

VI = ["Hôm nay trời đẹp và chúng tôi đi dạo.", "Tôi thích đọc sách vào buổi tối.", "Con mèo ngủ trên ghế.",
      "Chợ mở cửa từ sáng sớm.", "Anh ấy làm việc ở bệnh viện."]
ZH = ["今天天气很好。", "我喜欢在晚上看书。", "猫在椅子上睡觉。", "市场一大早就开门了。", "他在医院工作。"]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def detection(tmp_path):
    """A statistics corpus (vi, zh) and a neuron file that records it, as `detect` writes it."""
    d = tmp_path / "detect"
    d.mkdir()
    _write(d / "vi.txt", VI[:3])
    _write(d / "zh.txt", ZH[:3])
    recorded = {s.lang: s.fingerprint() for s in resolve_corpus([str(d)])}
    neurons = tmp_path / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"vi": [(0, u) for u in range(24)], "zh": [(1, u) for u in range(24)]},
               provenance={"stats_corpus": recorded}).save(neurons)
    return d, recorded, neurons


def test_overlap_same_file_shared_lines_and_held_out(detection, tmp_path):
    d, recorded, _ = detection
    same = overlap_problems([CorpusSource("vi", str(d / "vi.txt"), "txt")], recorded)
    assert len(same) == 1 and "is the file the statistics were recorded on for vi" in same[0]
    mixed = _write(tmp_path / "vi_mixed.txt", VI[1:])  # two of its four lines are detection lines
    shared = overlap_problems([CorpusSource("vi", str(mixed), "txt")], recorded)
    assert len(shared) == 1 and shared[0].startswith("2 lines of the evaluation text for vi")
    held_out = _write(tmp_path / "vi_new.txt", VI[3:])
    assert overlap_problems([CorpusSource("vi", str(held_out), "txt")], recorded) == []
    (d / "vi.txt").write_text("changed since recording\n")  # the recorded text is gone: only hashes can tell
    assert overlap_problems([CorpusSource("vi", str(mixed), "txt")], recorded) == []


def test_check_held_out_refuses_or_warns(detection, tmp_path):
    d, recorded, _ = detection
    sources = [CorpusSource("zh", str(d / "zh.txt"), "txt")]
    with pytest.raises(LangNeuronError, match="pass --allow-overlap"):
        check_held_out(sources, recorded, allow_overlap=False)
    assert len(check_held_out(sources, recorded, allow_overlap=True)) == 1
    assert "cannot check" in check_held_out(sources, None, allow_overlap=False)[0]


def test_held_out_text_outside_the_demo_languages_needs_a_corpus(tmp_path):
    with pytest.raises(LangNeuronError, match="no held-out text for vi.*--corpus"):
        held_out_sources(None, ["en", "vi"])
    assert held_out_sources(None, ["en", "zh"]) is None
    sources = held_out_sources([f"vi={_write(tmp_path / 'v.txt', VI)}"], ["vi"])
    assert [s.lang for s in sources] == ["vi"]


def test_diagonal_dominance():
    m = [[0.5, 0.1, 0.0],
         [0.2, 0.4, 0.3],
         [0.1, 0.2, 0.2]]  # column 2's maximum is in row 1: 2 of 3 columns are diagonal-dominant
    d = diagonal_dominance(m)
    assert d["columns_diagonal_max"] == 2 and d["share"] == pytest.approx(2 / 3)
    # geometric-mean perplexity ratio, diagonal / off-diagonal (issue #23: a ratio that cannot blow up)
    diag, off = [1.5, 1.4, 1.2], [1.2, 1.1, 1.1, 1.3, 1.0, 1.2]
    assert d["ratio"] == pytest.approx(math.exp(sum(map(math.log, diag)) / 3 - sum(map(math.log, off)) / 6))
    assert 0 < d["p_value"] <= 1 and d["permutations"] == 6
    balanced = diagonal_dominance([[0.1, -0.1], [-0.1, 0.1]])  # the old ratio was undefined here
    assert balanced["ratio"] == pytest.approx(1.1 / 0.9) and balanced["p_value"] == pytest.approx(0.5)


def test_ppl_matrix_refuses_detection_text_before_loading(run_cli, detection, tmp_path):
    d, _, neurons = detection
    argv = ["ppl-matrix", "--model", tmp_path / "no-model", "--neurons", neurons, "--out", tmp_path / "pm"]
    rc, _, err = run_cli(*argv, "--corpus", d)
    assert rc == 2 and "is the file the statistics were recorded on" in err and "--allow-overlap" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "pm" / "ppl_matrix.json").exists()
    rc, _, err = run_cli(*argv, "--corpus", d, "--allow-overlap")  # warns, then fails on the missing model
    assert rc == 2 and err.count("warning:") == 2 and "no-model" in err.splitlines()[-1]
    rc, _, err = run_cli(*argv, "--langs", "vi")  # no --corpus: the shipped text has no vi
    assert rc == 2 and "no held-out text for vi" in err


@pytest.mark.slow
def test_ppl_matrix_scores_the_given_text_in_any_language(run_cli, tiny_model_dir, detection, tmp_path):
    _, _, neurons = detection
    runs = {}
    for name, vi in (("a", VI[3:]), ("b", ["Một câu hoàn toàn khác.", "Và thêm một câu nữa ở đây."])):
        folder = tmp_path / f"eval-{name}"
        folder.mkdir()
        _write(folder / "vi.txt", vi)
        _write(folder / "zh.txt", ZH[3:])
        rc, out, err = run_cli("ppl-matrix", "--model", tiny_model_dir, "--neurons", neurons, "--corpus", folder,
                               "--langs", "vi,zh", "--out", tmp_path / f"pm-{name}", "--limit", "2")
        assert rc == 0, err
        assert "tokens/s" in out and "[3/3] deactivating zh" in err
        runs[name] = json.loads((tmp_path / f"pm-{name}" / "ppl_matrix.json").read_text())
    a, b = runs["a"], runs["b"]
    assert a["languages"] == ["vi", "zh"] and set(a["provenance"]["corpus"]) == {"vi", "zh"}
    assert a["baseline"]["zh"] == pytest.approx(b["baseline"]["zh"], rel=1e-6)  # same zh text, other batches
    assert a["baseline"]["vi"] != b["baseline"]["vi"]  # the vi text given was scored


def test_bench_detector_fails_before_recording(run_cli, detection, tmp_path):
    d, _, _ = detection
    out = tmp_path / "bench"
    cases = [(["--langs", "vi"], "no corpus for language(s) vi"),  # the demo detection text has no vi
             (["--langs", "vi", "--corpus", d], "no held-out text for vi"),
             (["--langs", "vi,zh", "--corpus", d, "--eval-corpus", d], "is the file the statistics were recorded on"),
             (["--langs", "xx-nonsense"], "xx-nonsense")]
    for extra, message in cases:
        rc, _, err = run_cli("bench-detector", "lape", "--out", out, "--no-progress", *extra)
        assert rc == 2 and message in err, (extra, err)
        assert not (out / "stats.safetensors").exists()


def test_quiet_lm_eval_restores_what_it_silences():
    import lm_eval.api.task
    from tqdm import tqdm

    from langneuron_eval.pipelines.progress import quiet_lm_eval

    logger = logging.getLogger("lm_eval")
    logger.setLevel(logging.INFO)
    with quiet_lm_eval():
        assert logger.level == logging.ERROR and lm_eval.api.task.tqdm is not tqdm
        assert lm_eval.api.task.tqdm(range(3)).disable  # a bar drawn inside is disabled
    assert logger.level == logging.INFO and lm_eval.api.task.tqdm is tqdm
    with pytest.raises(RuntimeError), quiet_lm_eval():
        raise RuntimeError("restored on errors too")
    assert logger.level == logging.INFO and lm_eval.api.task.tqdm is tqdm
    with quiet_lm_eval(verbose=True):
        assert logger.level == logging.INFO


def test_a_command_module_that_fails_to_import_is_an_error(monkeypatch):
    from langneuron_eval.cli import main

    monkeypatch.setitem(main.COMMANDS, "broken", "no_such_command_module")
    with pytest.raises(ModuleNotFoundError, match="no_such_command_module"):
        main.build_parser()


def test_progress_lines_with_and_without_bars():
    import io

    from langneuron_eval.pipelines.progress import Progress

    out = io.StringIO()  # not a terminal: one line per run instead of a bar
    log = Progress("demo", 2, stream=out)
    bar = log("matrix", runs=3)
    for label in ("no intervention", "deactivating de", "deactivating zh"):
        bar.run(label)
    bar.close()
    log("summary")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[demo 1/2") and lines[0].endswith("] matrix")
    assert lines[1].startswith("  [1/3] no intervention (") and "ETA" not in lines[1]
    assert lines[3].startswith("  [3/3] deactivating zh (") and "ETA" in lines[3]
    assert lines[4].startswith("[demo 2/2") and len(lines) == 5
    quiet = io.StringIO()
    log = Progress("demo", 1, stream=quiet, bars=False)  # --no-progress: the step lines stay
    log("matrix", runs=2).run("no intervention")
    assert quiet.getvalue().count("\n") == 1 and "[demo 1/1" in quiet.getvalue()
    silent = io.StringIO()
    Progress("bench", None, enabled=False, stream=silent)("x", runs=1).run("y")
    assert silent.getvalue() == ""


@pytest.fixture(scope="module")
def en_zh_lm(tiny_model_dir, tmp_path_factory):
    """The tiny Llama with a handmade neuron file for en and zh (the shipped demo text covers both)."""
    neurons = tmp_path_factory.mktemp("n") / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"en": [(0, u) for u in range(0, 48, 2)], "zh": [(1, u) for u in range(24)]}).save(neurons)
    return evaluation.load_model(str(tiny_model_dir), str(neurons), batch_size=4)


def test_one_call_matrix_equals_one_lm_eval_pass_per_condition(en_zh_lm, tmp_path):
    """All K+1 conditions in one engine call (per-row interventions) = K+1 lm-eval passes, per document."""
    one = ppl_change_matrix(en_zh_lm, ["en", "zh"], limit=3)
    passes = ppl_change_matrix(en_zh_lm, ["en", "zh"], limit=3, results_dir=tmp_path)
    assert (tmp_path / "base-none-ppl" / "results_ppl.json").exists()
    assert one["runs"] == passes["runs"] == 3 and not one["nonfinite"]
    for cond in ("none", "en", "zh"):
        for lang in ("en", "zh"):
            assert one["per_document"]["nll"][cond][lang] == pytest.approx(passes["per_document"]["nll"][cond][lang],
                                                                          rel=1e-6)
    assert one["per_document"]["units"] == passes["per_document"]["units"]
    texts = ppl_documents(evaluation.make_task_manager(), ["zh"], 3)["zh"]
    assert one["per_document"]["units"]["zh"] == [len(t.encode("utf-8")) for t in texts]
    flat = [v for row in one["matrix"] for v in row]
    assert flat == pytest.approx([v for row in passes["matrix"] for v in row], abs=1e-6)
    assert max(abs(v) for v in flat) > 1e-5  # deactivating changed something
    # the point values are today's definition: byte perplexity ratio - 1
    base = math.exp(sum(one["per_document"]["nll"]["none"]["zh"]) / sum(one["per_document"]["units"]["zh"]))
    row = math.exp(sum(one["per_document"]["nll"]["en"]["zh"]) / sum(one["per_document"]["units"]["zh"]))
    assert one["baseline"]["zh"] == pytest.approx(base) and one["matrix"][0][1] == pytest.approx(row / base - 1)


def test_a_reused_baseline_skips_the_unsteered_pass_and_keeps_the_per_document_pairing(en_zh_lm):
    """``baseline_nll`` from an earlier call: one run fewer, the same matrix; a mismatched one is refused."""
    full = ppl_change_matrix(en_zh_lm, ["en", "zh"], limit=3)
    reused = ppl_change_matrix(en_zh_lm, ["en", "zh"], limit=3, baseline_nll=full["per_document"]["nll"]["none"])
    assert reused["runs"] == full["runs"] - 1 == 2
    assert reused["per_document"]["nll"]["none"] == full["per_document"]["nll"]["none"]  # carried over as given
    for cond in ("en", "zh"):
        for lang in ("en", "zh"):  # other batch compositions: equal to float32 rounding
            assert reused["per_document"]["nll"][cond][lang] == pytest.approx(full["per_document"]["nll"][cond][lang],
                                                                              rel=1e-6)
    assert reused["baseline"] == full["baseline"]
    assert [v for r in reused["matrix"] for v in r] == pytest.approx([v for r in full["matrix"] for v in r], abs=1e-6)
    with pytest.raises(LangNeuronError, match="another limit or corpus"):
        ppl_change_matrix(en_zh_lm, ["en", "zh"], limit=2, baseline_nll=full["per_document"]["nll"]["none"])


def test_weak_big_vocabulary_model_gives_finite_byte_perplexity_and_reasons(run_cli, tmp_path):
    """Issue #28: a random-init 65k-vocabulary model; zh word perplexity used to overflow into a traceback."""
    model_dir = tmp_path / "big-vocab"
    make_tiny_model("llama", model_dir, vocab_size=65_536, hidden_size=64, initializer_range=1.0)
    neurons = tmp_path / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"en": [(0, 1), (1, 2)], "zh": [(0, 3), (1, 4)]}).save(neurons)
    for metric in ("byte_perplexity", "word_perplexity"):
        rc, out, err = run_cli("ppl-matrix", "--model", model_dir, "--neurons", neurons, "--langs", "en,zh",
                               "--limit", "2", "--metric", metric, "--out", tmp_path / metric)
        assert rc == 0, err
        doc = json.loads((tmp_path / metric / "ppl_matrix.json").read_text())
        if metric == "byte_perplexity":
            assert all(math.isfinite(v) for v in doc["baseline"].values())
        else:
            assert doc["baseline"]["zh"] is None and "written without spaces" in out
    res = evaluation.evaluate(evaluation.load_model(str(model_dir)), ["lang_ppl_en", "lang_ppl_zh"], limit=2,
                              task_manager=evaluation.make_task_manager(), environment=False)
    assert "word_perplexity,none" not in res["results"]["lang_ppl_zh"]
    assert math.isfinite(res["results"]["lang_ppl_zh"]["byte_perplexity,none"])
    assert res["results"]["lang_ppl_en"]["word_perplexity,none"] > 0  # inf allowed, never an OverflowError
