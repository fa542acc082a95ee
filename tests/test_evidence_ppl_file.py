"""ppl_matrix.json schema 2: attach_evidence fills intervals and dominance from per-document scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from langneuron_eval.core.ppl_matrix import PplMatrixFile
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import attach_evidence

LANGS = ["en", "zh", "fr"]


def synthetic(rng: np.random.Generator, n: int = 40, skip: str | None = None) -> PplMatrixFile:
    """Per-document layout as ppl_change_matrix returns it; own-language rows raise NLL by 0.3 nats/byte."""
    units = {c: rng.integers(20, 200, n).astype(float) for c in LANGS}
    base = {c: units[c] * rng.gamma(20.0, 0.1, n) for c in LANGS}
    nll = {"none": {c: base[c].tolist() for c in LANGS}}
    for r in LANGS:
        if r != skip:
            nll[r] = {c: (base[c] + units[c] * (0.3 if r == c else 0.01) + rng.normal(0, 1, n) * units[c] * 0.05)
                      .tolist() for c in LANGS}
    ppl0 = {c: math.exp(sum(base[c]) / units[c].sum()) for c in LANGS}
    matrix = [[math.exp(sum(nll.get(r, nll["none"])[c]) / units[c].sum()) / ppl0[c] - 1 for c in LANGS] for r in LANGS]
    per_document = {"units": {c: units[c].tolist() for c in LANGS}, "nll": nll}
    return PplMatrixFile(list(LANGS), matrix, ppl0, per_document=per_document)


def test_attach_evidence_writes_schema_2_that_loads_back(tmp_path):
    pm = attach_evidence(synthetic(np.random.default_rng(0)), n_resamples=300, seed=3)
    low, high = np.array(pm.ci_low), np.array(pm.ci_high)
    assert (low <= np.array(pm.matrix)).all() and (np.array(pm.matrix) <= high).all() and (high > low).all()
    assert pm.n_docs == {"en": 40, "zh": 40, "fr": 40}
    assert pm.interval["seed"] == 3 and pm.interval["n_resamples"] == 300 and pm.interval["confidence"] == 0.95
    assert pm.dominance["columns_diagonal_max"] == 3 and pm.dominance["p_value"] == pytest.approx(1 / 6)
    assert pm.dominance["ratio"]["ci_low"] < pm.dominance["ratio"]["value"] < pm.dominance["ratio"]["ci_high"]
    path = pm.save(tmp_path / "ppl_matrix.json")
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 2 and len(doc["ci_low"]) == 3
    back = PplMatrixFile.load(path)
    assert back.ci_low == pm.ci_low and back.dominance == pm.dominance and back.per_document == pm.per_document
    again = attach_evidence(back, n_resamples=300, seed=3)  # reproducible from the file alone
    assert again.ci_high == pm.ci_high


def test_rows_without_neurons_are_the_baseline_and_old_files_still_load(tmp_path):
    pm = attach_evidence(synthetic(np.random.default_rng(1), skip="zh"), n_resamples=200)
    assert pm.ci_low[1] == [0.0, 0.0, 0.0] and pm.ci_high[1] == [0.0, 0.0, 0.0]
    old = {"schema": "langneuron-eval/ppl-matrix", "schema_version": 1, "languages": ["en", "zh"],
           "matrix": [[0.5, 0.0], [0.1, 0.4]], "baseline": {"en": 3.0, "zh": 4.0}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = PplMatrixFile.load(tmp_path / "old.json")
    assert loaded.ci_low is None and loaded.per_document is None
    filled = attach_evidence(loaded)  # no documents: dominance from the matrix, no intervals
    assert filled.ci_low is None and filled.dominance["p_value"] == pytest.approx(0.5)
    assert filled.dominance["ratio"]["ci_low"] is None  # stored as JSON null: no interval without documents


def test_broken_per_document_layout_is_one_clear_error():
    pm = synthetic(np.random.default_rng(2))
    pm.per_document["units"].pop("fr")
    with pytest.raises(LangNeuronError, match="no scores for the evaluated language fr"):
        attach_evidence(pm)
    pm = synthetic(np.random.default_rng(2))
    pm.per_document["nll"]["en"]["zh"] = pm.per_document["nll"]["en"]["zh"][:-1]
    with pytest.raises(LangNeuronError, match="deactivating en scored a different number of zh documents"):
        attach_evidence(pm)
