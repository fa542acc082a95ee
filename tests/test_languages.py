"""The language table: lid.176's labels, the aliases users type, and one-line errors for the rest."""

from __future__ import annotations

import pytest

from langneuron_eval import languages, lid
from langneuron_eval.errors import LangNeuronError


def test_lid_languages_are_exactly_the_labels_of_the_shipped_model():
    labels = lid.model_labels()
    assert len(labels) == 176
    assert list(languages.LID_LANGUAGES) == labels


def test_the_detector_only_outputs_table_languages():
    texts = ["Xin chào, hôm nay trời đẹp quá.", "Habari ya asubuhi rafiki yangu.", "今日はいい天気ですね。",
             "Dzień dobry, jak się masz?", "Сегодня хорошая погода."]
    assert set(lid.detect_many(texts)) <= set(languages.LID_LANGUAGES)
    assert lid.detect_many(texts)[:1] == ["vi"]


def test_demo_languages_are_lid_labels():
    assert set(languages.DEMO_LANGUAGES) <= set(languages.LID_LANGUAGES)


@pytest.mark.parametrize("code, expected", [
    ("zh-Hans", "zh"), ("zh_CN", "zh"), ("cmn", "zh"), ("zho_Hant", "zh"), ("jpn", "ja"), ("jpn_Jpan", "ja"),
    ("deu_Latn", "de"), ("ger", "de"), ("German", "de"), ("VI", "vi"), ("vie_Latn", "vi"), ("pt-BR", "pt"),
    ("arb_Arab", "ar"), ("swh_Latn", "sw"), ("nob", "no"), ("fil", "tl"), ("zh-yue", "yue"), ("yue_Hant", "yue"),
])
def test_aliases_map_to_the_lid_label(code, expected):
    assert languages.normalize(code) == expected


@pytest.mark.parametrize("code, expected", [
    ("pan_Guru", "pa"), ("pan_Arab", "pnb"), ("azj_Latn", "az"), ("azb_Arab", "azb"), ("az-Arab", "azb"),
    ("kmr_Latn", "ku"), ("ckb_Arab", "ckb"), ("als", "als"), ("gsw", "als"), ("als_Latn", "sq"),
])
def test_scripts_and_codes_that_pick_a_different_label_stay_distinct(code, expected):
    assert languages.normalize(code) == expected


def test_every_label_and_alias_resolves_to_its_own_row():
    for lang in languages.table().values():
        for spelling in (lang.code, *lang.aliases):
            assert languages.normalize(spelling, lid_only=False) == lang.code, spelling


def test_a_language_lid176_cannot_identify_is_refused_in_one_line_with_its_name():
    with pytest.raises(LangNeuronError, match=r"'hau_Latn' \(Hausa\) cannot be scored") as err:
        languages.normalize("hau_Latn")
    assert "\n" not in str(err.value)
    assert languages.normalize("hau_Latn", lid_only=False) == "ha"


def test_unknown_code_suggests_close_labels():
    with pytest.raises(LangNeuronError, match=r"unknown language code 'germn'.*did you mean de \(German\)"):
        languages.normalize("germn")
    with pytest.raises(LangNeuronError, match="empty language code"):
        languages.normalize("  ")


def test_normalize_many_splits_dedupes_and_keeps_order():
    assert languages.normalize_many("zh-Hans,ja+en,cmn") == ["zh", "ja", "en"]
    assert languages.normalize_many(["deu_Latn", "de"]) == ["de"]
