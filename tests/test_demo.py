"""The embedded default: the shipped demo models load and the whole demo runs (quick sizes) offline."""

import json
import math

import pytest

from langneuron_eval.core import demo_assets
from langneuron_eval.core.modeling import load_model
from langneuron_eval.demo_corpus import sentences
from langneuron_eval.languages import DEMO_LANGUAGES as LANGUAGES


def _perplexity(model, tok, texts):
    """Token perplexity of ``texts`` (each scored from BOS, padding masked out)."""
    import torch

    tok.padding_side = "right"  # positions count from 0 for every text
    batch = tok(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        logits = model(**batch).logits[:, :-1]  # [batch, pos, vocab]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="sum")
    return math.exp(nll.item() / int((labels[:, 1:] != -100).sum()))


def test_shipped_models_load_with_plain_transformers():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for path in (demo_assets.base_model_path(), demo_assets.aligned_model_path()):
        model = AutoModelForCausalLM.from_pretrained(path)
        tok = AutoTokenizer.from_pretrained(path)
        assert model.config.model_type == "llama"
        assert sum(p.numel() for p in model.parameters()) < 6_000_000
        size = sum(f.stat().st_size for f in path.iterdir())
        assert size < 25 * 2**20
        for lang in LANGUAGES:  # trained, and not memorising its training text: measured here, not read back
            held_out = _perplexity(model, tok, sentences(lang, "eval", n=40))
            seen = _perplexity(model, tok, sentences(lang, "train", n=40))
            assert held_out < 20, (lang, held_out)
            assert held_out / seen < 1.6, (lang, held_out, seen)
        ids = tok("Das Wetter ist heute schön.", return_tensors="pt")["input_ids"]
        assert ids.shape[1] < 15  # a trained BPE, not bytes


def test_base_model_generates_every_language_from_bos():
    import torch

    from langneuron_eval.lid import detect as detect_language

    model, tok = load_model(demo_assets.base_model_path())
    torch.manual_seed(0)
    ids = torch.full((60, 1), tok.bos_token_id)
    out = model.generate(ids, do_sample=True, temperature=0.8, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    labels = {detect_language(tok.decode(o[1:], skip_special_tokens=True)) for o in out}
    assert set(LANGUAGES) <= labels


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(run_cli, tmp_path):
    out = tmp_path / "demo"
    rc, stdout, err = run_cli("demo", "--quick", "--out", out, "--no-progress")
    assert rc == 0, err
    matrix = json.loads((out / "ppl_matrix" / "lape" / "ppl_matrix.json").read_text())
    assert matrix["languages"] == list(LANGUAGES)
    assert len(matrix["matrix"]) == 6 and all(len(row) == 6 for row in matrix["matrix"])
    for name in ("leaderboard.md", "leaderboard.csv", "index.html"):
        assert (out / "leaderboard" / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["steering"]["lape"]) == set(matrix["languages"])
    assert "Steering with lape" in stdout and "[demo 9/9" in err  # --quick steers with lape only
    rc, _, err = run_cli("demo", "--quick", "--out", out)
    assert rc == 2 and "--force" in err


def test_summary_shows_intervals_and_the_dominance_test():
    """The summary reads the evidence: cell intervals, the permutation p, Wilson/Newcombe intervals and n."""
    from langneuron_eval.pipelines.demo import DemoConfig, format_summary
    from langneuron_eval.pipelines.detector_battery import gain_evidence

    langs = ["en", "zh"]
    diagonal = {"columns_diagonal_max": 2, "share": 1.0, "ratio": 1.3, "ratio_ci": [1.2, 1.4], "p_value": 0.5}
    pm = {"matrix": [[0.3, 0.01], [0.02, 0.4]], "ci_low": [[0.25, -0.01], [0.0, 0.35]],
          "ci_high": [[0.35, 0.03], [0.04, 0.45]], "n_docs": {"en": 300, "zh": 300}, "diagonal": diagonal}
    rates = {"en": {"unsteered": 0.1, "steered": 0.9, "gain": 0.8, **gain_evidence(0.1, 100, 0.9, 100)},
             "zh": {"unsteered": 0.0, "steered": 0.6, "gain": 0.6, **gain_evidence(0.0, 3, 0.6, 5)}}
    summary = {"neuron_counts": {"lape": {"en": 3, "zh": 4}}, "ppl_matrix": {"lape": pm},
               "steering": {"lape": rates}, "qa": {"base": {}, "aligned": {}}}
    text = format_summary(summary, langs, DemoConfig())
    assert "| en | +0.300 [0.25, 0.35] | +0.010 [-0.01, 0.03] |" in text
    assert "permutation p = 0.5" in text and "ratio 1.3 [1.20, 1.40]" in text and "300 held-out documents" in text
    assert "| en | 0.10 [0.06, 0.17] | 0.90 [0.83, 0.94] | +0.80 [" in text and "| 100 |" in text
    assert "for 2 of 2 languages (1 with the whole 95% interval" in text  # zh's 5 generations cannot tell


def test_qa_change_is_paired_by_item_and_printed_with_intervals():
    """The aligned - base change is the mean per-item difference over shared items, with a t interval."""
    from langneuron_eval.pipelines.demo import DemoConfig, format_summary, qa_change

    base = {i: 0.5 * (i % 2) for i in range(40)}  # graded scores (F1): t intervals
    aligned = {i: 0.75 for i in range(40)} | {99: 0.0}  # item 99 was not scored by the base model: not paired
    ev = qa_change(base, aligned)
    assert ev["n"] == 40 and ev["change"]["value"] == pytest.approx(0.5)
    assert ev["change"]["ci_low"] < 0.5 < ev["change"]["ci_high"] and ev["change"]["ci_low"] > 0.3
    assert ev["aligned"]["ci_low"] == ev["aligned"]["ci_high"] == 0.75  # no spread: the point itself
    acc = qa_change({i: 0.0 for i in range(200)}, {i: float(i < 17) for i in range(200)})  # 0/1: Wilson, Newcombe
    assert acc["base"]["value"] == 0.0 and 0.0 < acc["base"]["ci_high"] < 0.03  # 0 of 200 is not "exactly 0"
    assert acc["change"]["value"] == pytest.approx(0.085) and 0.0 < acc["change"]["ci_low"] < 0.085
    summary = {"neuron_counts": {}, "ppl_matrix": {}, "steering": {}, "qa": {}, "qa_evidence": {"xmath_zh": ev}}
    text = format_summary(summary, ["zh"], DemoConfig())
    low, high = ev["change"]["ci_low"], ev["change"]["ci_high"]
    assert f"| xmath_zh | 40 | 0.250 [{ev['base']['ci_low']:.3f}, " in text and f"+0.500 [{low:.3f}, {high:.3f}] |" in text
