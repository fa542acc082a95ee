"""``langneuron sweep``: the choice rules on hand-built points, the controls, the judge, and one tiny run."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from langneuron_eval.core.demo_assets import base_model_path
from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.lmeval import evaluation
from langneuron_eval.pipelines import sweep


def _neurons(path: Path, langs=("en", "zh", "de"), per_layer: int = 30) -> Path:
    """A neuron file for the demo model (4 layers x 768 units): ``per_layer`` units a layer per language."""
    rng = random.Random(1)
    units = {lang: sorted({(layer, rng.randrange(768)) for layer in range(4) for _ in range(per_layer)})
             for lang in langs}
    values = {lang: {"mean": [1.5 + 0.01 * i for i in range(len(u))]} for lang, u in units.items()}
    NeuronFile(ModelFingerprint("llama", 4, 768, "act_out"), "handmade", units, values=values).save(path, force=True)
    return path


def _point(lang: str, setting: sweep.Setting, success: float, over: bool = False) -> dict:
    return {"lang": lang, "setting_obj": setting, "over_budget": over,
            "dev": {"on_target_fluent": {"value": success}}}


# ------------------------------------------------------------------------------------ rules


def test_budget_compares_with_the_unsteered_generations():
    budget = sweep.DamageBudget(max_distinct_2_drop=0.1, max_judge_ppl_ratio=2.0)
    base = {"distinct_2": {"value": 0.9}}
    assert budget.check({"distinct_2": {"value": 0.8}, "judge_ppl_median": 2.0}, base) == []
    broken = budget.check({"distinct_2": {"value": 0.5}, "judge_ppl_median": 3.0}, base)
    assert len(broken) == 2 and "distinct-2 drops by 0.40" in broken[0] and "3.00 > 2" in broken[1]
    assert budget.check({"distinct_2": {"value": 0.9}, "judge_ppl_median": math.nan}, base)  # no judge: not within


def test_choice_takes_the_best_within_budget_and_the_gentler_on_ties():
    weak, mid, strong = sweep.Setting(1.0), sweep.Setting(4.0), sweep.Setting(12.0)
    points = [_point("zh", weak, 0.2), _point("zh", mid, 0.6), _point("zh", strong, 0.9, over=True)]
    assert sweep.choose(points)["setting_obj"] == mid  # the best success over budget is not eligible
    assert sweep.choose([_point("zh", weak, 0.6), _point("zh", mid, 0.6)])["setting_obj"] == weak
    assert sweep.choose([_point("zh", strong, 0.9, over=True)]) is None


def test_overall_setting_must_be_within_budget_for_every_language():
    a, b = sweep.Setting(1.0), sweep.Setting(4.0)
    points = [_point("en", a, 0.5), _point("zh", a, 0.1), _point("en", b, 0.9), _point("zh", b, 0.9, over=True)]
    assert sweep.choose_overall(points, ["en", "zh"]) == a
    assert sweep.choose_overall(points[2:], ["en", "zh"]) is None


def test_random_control_keeps_per_layer_counts_and_values_but_no_unit(tmp_path):
    nf = NeuronFile.load(_neurons(tmp_path / "n.json"))
    control = sweep.random_control(nf, seed=3)
    for lang, units in nf.languages.items():
        drawn = control.languages[lang]
        count = lambda us: {layer: sum(1 for x, _ in us if x == layer) for layer in range(4)}  # noqa: E731
        assert count(drawn) == count(units)
        assert not set(drawn) & set(units)
        assert control.values[lang]["mean"] == nf.values[lang]["mean"]
    assert sweep.random_control(nf, seed=3).languages == control.languages  # seeded


def test_other_language_control_takes_the_next_swept_language(tmp_path):
    nf = NeuronFile.load(_neurons(tmp_path / "n.json"))
    assert sweep.other_language("en", ["en", "zh"], nf) == "zh"
    assert sweep.other_language("zh", ["en", "zh"], nf) == "en"
    assert sweep.other_language("en", ["en"], nf) in {"zh", "de"}  # one swept language: another of the file


def test_frontier_keeps_only_points_that_raise_success():
    assert sweep._frontier([(3.0, 0.5), (1.0, 0.2), (2.0, 0.1), (4.0, 0.9), (math.nan, 1.0)]) == [
        (1.0, 0.2), (3.0, 0.5), (4.0, 0.9)]


# ------------------------------------------------------------------------------------ judge


def test_judge_perplexity_is_the_unsteered_models_per_token_perplexity(tmp_path):
    lm = evaluation.load_model(base_model_path(), _neurons(tmp_path / "n.json"), batch_size=2)
    lm.set_intervention(mode="none")
    texts = ["Der Hund schläft im Garten.", "我喜欢编程。", ""]
    got = sweep.judge_perplexities(lm, ["", "", ""], texts)
    for text, ppl in zip(texts[:2], got):
        ids = torch.tensor([[lm.prefix_token_id, *lm.tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(ids).logits[0, :-1].double(), -1)
        nll = -logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].mean().item()
        assert ppl == pytest.approx(math.exp(nll), rel=1e-4)
    assert math.isnan(got[2])  # an empty generation has no perplexity


def test_heldout_reference_scores_target_text_cut_to_the_generation_length(tmp_path):
    """The held-out reference: the judge's per-token perplexity of real text, first N tokens, after the prompt."""
    lm = evaluation.load_model(base_model_path(), _neurons(tmp_path / "n.json"), batch_size=2)
    lm.set_intervention(mode="none")
    line = "Der kleine Hund schläft jeden Nachmittag im warmen Garten hinter dem alten Haus."
    (tmp_path / "de.txt").write_text(line + "\n", encoding="utf-8")
    tokens = lm.tokenizer(line, add_special_tokens=False)["input_ids"]

    def direct(n):  # perplexity of the line's first n tokens after BOS, from the model's logits
        ids = torch.tensor([[lm.prefix_token_id, *tokens[:n]]])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(ids).logits[0, :-1].double(), -1)
        return math.exp(-logp[torch.arange(n), ids[0, 1:]].mean().item())

    refs = {}
    for n in (6, 12):
        cfg = sweep.SweepConfig(langs=("de",), judge_reference="heldout", judge_corpus=f"de={tmp_path / 'de.txt'}")
        # one line, cycled over three prompts
        refs[n] = sweep.heldout_reference(lm, "de", ["", "", ""], n, sweep.heldout_manager(cfg))
        assert refs[n] == pytest.approx(direct(n), rel=1e-6)
    assert len(tokens) > 12 and refs[6] != refs[12]


# ------------------------------------------------------------------------------------ command


@pytest.mark.parametrize(("extra", "message"), [
    (["--langs", "en,ja"], "language 'ja' is not in the neuron file"),
    (["--strengths", "1,x"], "--strengths takes comma-separated numbers"),
    (["--strengths", "0"], "strengths must be positive numbers"),
    (["--values", "median"], "no 'median' activation values"),
    (["--deactivate-others", "maybe"], "--deactivate-others takes no, yes or no,yes"),
    (["--positions", "prompt"], "positions must be all or generated"),
    (["--limit", "1"], "--limit must be at least 2"),
    (["--family", "xqa"], "--family must be one of"),
    (["--max-gen-toks", "0"], "--max-gen-toks must be at least 1"),
    (["--judge-reference", "own"], "--judge-reference must be one of unsteered, heldout"),
    (["--judge-corpus", "de=x.txt"], "--judge-corpus is the text of --judge-reference heldout"),
    (["--judge-reference", "heldout", "--judge-corpus", "nowhere"], "corpus not found: nowhere"),
])
def test_bad_input_is_one_line_before_the_model_loads(tmp_path, run_cli, monkeypatch, extra, message):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(evaluation, "load_model", no_model)
    neurons = _neurons(tmp_path / "n.json")
    rc, out, err = run_cli("sweep", "--neurons", str(neurons), "--out", str(tmp_path / "o"), *extra)
    assert rc == 2 and message in err and err.count("\n") == 1, err


def test_heldout_reference_without_shipped_text_asks_for_a_corpus(tmp_path, run_cli):
    neurons = _neurons(tmp_path / "n.json", langs=("en", "vi"))
    rc, _, err = run_cli("sweep", "--neurons", str(neurons), "--langs", "vi", "--judge-reference", "heldout",
                         "--out", str(tmp_path / "o"))
    assert rc == 2 and "no held-out text ships for vi; give the judge reference's text with --judge-corpus" in err
    assert err.count("\n") == 1


def test_missing_neurons_and_out_are_one_line(tmp_path, run_cli):
    rc, _, err = run_cli("sweep", "--out", str(tmp_path / "o"))
    assert rc == 2 and "--neurons is required" in err
    rc, _, err = run_cli("sweep", "--neurons", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o"))
    assert rc == 2 and "missing.json" in err and err.count("\n") == 1


def test_tiny_sweep_on_the_demo_model(tmp_path, run_cli, monkeypatch):
    neurons = _neurons(tmp_path / "n.json")
    out = tmp_path / "sweep"
    gen_kwargs, evaluate = [], evaluation.evaluate

    def spy(*args, **kwargs):
        gen_kwargs.append(kwargs.get("gen_kwargs"))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", spy)
    rc, stdout, err = run_cli("sweep", "--neurons", str(neurons), "--langs", "en,zh", "--strengths", "1,4",
                              "--deactivate-others", "no", "--limit", "4", "--max-gen-toks", "12", "--out", str(out))
    assert rc == 0, err
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["max_gen_toks"] == 12 and gen_kwargs and all(g == {"max_gen_toks": 12} for g in gen_kwargs)
    assert len(doc["points"]) == 4 and {p["lang"] for p in doc["points"]} == {"en", "zh"}
    for p in doc["points"]:
        for m in ("lang_rate", "on_target_fluent", "distinct_2", "judge_ppl", "word_pass_rate", "line_pass_rate"):
            assert {"value", "ci_low", "ci_high"} <= set(p["dev"][m])
        assert p["dev"]["lang_rate"]["n"] == 4
    for lang in ("en", "zh"):
        chosen = doc["chosen"][lang]
        if chosen["setting"] is None:  # possible on a tiny sample: the reason is recorded
            assert "damage budget" in chosen["reason"]
            continue
        assert chosen["test"]["on_target_fluent"]["n"] == 4
        assert {"random_units", "other_language"} == set(chosen["controls"])
        assert chosen["controls"]["other_language"]["neurons_of"] == {"en": "zh", "zh": "en"}[lang]
        # success never exceeds the raw rate: it is lang_rate AND the quality checks
        assert chosen["test"]["on_target_fluent"]["value"] <= chosen["test"]["lang_rate"]["value"]
    assert doc["unsteered"]["dev"]["en"]["judge_ppl_median"] == pytest.approx(1.0)  # the reference itself
    assert doc["seeds"]["dev"] != doc["seeds"]["test"]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Chosen per language" in (out / "sweep.md").read_text() and "wrote" in stdout
    rc, _, err = run_cli("sweep", "--neurons", str(neurons), "--langs", "en", "--out", str(out))
    assert rc == 2 and "not empty" in err  # an earlier run is not overwritten without --force
    assert doc["judge_reference"] == {"kind": "unsteered", "corpus": None}


def test_sweep_with_the_heldout_judge_reference(tmp_path, run_cli):
    """The reference is the demo's held-out text of the language: the unsteered ratio is no longer 1 by definition."""
    out = tmp_path / "sweep"
    rc, _, err = run_cli("sweep", "--neurons", str(_neurons(tmp_path / "n.json")), "--langs", "zh", "--strengths",
                         "1", "--deactivate-others", "no", "--limit", "3", "--max-gen-toks", "8", "--no-controls",
                         "--judge-reference", "heldout", "--out", str(out))
    assert rc == 0, err
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["judge_reference"] == {"kind": "heldout", "corpus": None}
    base = doc["unsteered"]["dev"]["zh"]
    assert math.isfinite(base["judge_ppl_reference"]) and base["judge_ppl_median"] != pytest.approx(1.0)
    assert "held-out target-language text" in (out / "sweep.md").read_text()
