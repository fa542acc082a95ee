"""The embedded default: the shipped demo models load and the whole demo runs (quick sizes) offline."""

import json

import pytest

from langneuron_eval import demo_assets
from langneuron_eval.modeling import load_model


def test_shipped_models_load_with_plain_transformers():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for path in (demo_assets.base_model_path(), demo_assets.aligned_model_path()):
        model = AutoModelForCausalLM.from_pretrained(path)
        tok = AutoTokenizer.from_pretrained(path)
        assert model.config.model_type == "llama"
        assert sum(p.numel() for p in model.parameters()) < 6_000_000
        size = sum(f.stat().st_size for f in path.iterdir())
        assert size < 25 * 2**20
        report = json.loads((path / "training_report.json").read_text())
        for lang, ppl in report["perplexity"].items():  # trained, and not memorising its training text
            assert ppl["eval"] < 20, lang
            assert ppl["eval"] / ppl["train"] < 1.6, lang
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
    assert {"en", "de", "fr", "es", "zh", "ja"} <= labels


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(run_cli, tmp_path):
    out = tmp_path / "demo"
    rc, stdout, err = run_cli("demo", "--quick", "--out", out, "--no-progress")
    assert rc == 0, err
    matrix = json.loads((out / "ppl_matrix" / "lape" / "ppl_matrix.json").read_text())
    assert matrix["languages"] == ["en", "de", "fr", "es", "zh", "ja"]
    assert len(matrix["matrix"]) == 6 and all(len(row) == 6 for row in matrix["matrix"])
    for name in ("leaderboard.md", "leaderboard.csv", "index.html"):
        assert (out / "leaderboard" / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["steering"]["lape"]) == set(matrix["languages"])
    assert "Steering with lape" in stdout and "[demo 9/9" in err  # --quick steers with lape only
    rc, _, err = run_cli("demo", "--quick", "--out", out)
    assert rc == 2 and "--force" in err
