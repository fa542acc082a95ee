"""German: articles and adjective endings by case and gender, preposition contractions (im, zum, ins),
possessives (sein/ihr) agreeing with the possessor and declined for the possessed noun."""

from __future__ import annotations

from langneuron_eval.demo_corpus.engine import Frame, Realiser
from langneuron_eval.demo_corpus.entries import GENDER_INDEX, Entry

DEF = {"nom": {"m": "der", "f": "die", "n": "das", "p": "die"},
       "acc": {"m": "den", "f": "die", "n": "das", "p": "die"},
       "dat": {"m": "dem", "f": "der", "n": "dem", "p": "den"}}
INDEF = {"nom": {"m": "ein", "f": "eine", "n": "ein"},
         "acc": {"m": "einen", "f": "eine", "n": "ein"},
         "dat": {"m": "einem", "f": "einer", "n": "einem"}}
# adjective endings after the definite article (weak), after ein (mixed); possessive endings
WEAK = {"nom": {"m": "e", "f": "e", "n": "e", "p": "en"}, "acc": {"m": "en", "f": "e", "n": "e", "p": "en"},
        "dat": {"m": "en", "f": "en", "n": "en", "p": "en"}}
MIXED = {"nom": {"m": "er", "f": "e", "n": "es"}, "acc": {"m": "en", "f": "e", "n": "es"},
         "dat": {"m": "en", "f": "en", "n": "en"}}
POSS = {"nom": {"m": "", "f": "e", "n": ""}, "acc": {"m": "en", "f": "e", "n": ""},
        "dat": {"m": "em", "f": "er", "n": "em"}}
CONTRACT = {("in", "dem"): "im", ("in", "das"): "ins", ("an", "dem"): "am", ("an", "das"): "ans",
            ("zu", "dem"): "zum", ("zu", "der"): "zur", ("bei", "dem"): "beim", ("von", "dem"): "vom"}
ACC_PREPS = ("in", "an", "auf")


def dative_plural(pl: str) -> str:
    return pl if pl.endswith(("n", "s")) else pl + "n"


def prep_phrase(prep: str, case: str, gender: str, noun: str) -> str:
    art = DEF[case][gender]
    short = CONTRACT.get((prep, art))
    return f"{short} {noun}" if short else f"{prep} {art} {noun}"


class German(Realiser):
    lang = "de"

    def _possessor_stem(self, frame: Frame) -> str:
        return ("sein", "ihr")[GENDER_INDEX[frame["p"].gender("de")]]

    def _noun(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("de")
        g, sg, pl = f["g"], f["sg"], f["pl"]
        if view in ("", "sg"):
            return sg, sg
        if view in ("pl", "topic"):
            return pl, pl
        if view == "verb":  # the verb a dish is made with: backt / kocht / macht
            return f["verb"], None
        if view == "cup":
            return ("eine Tasse " if "cup" in e.tags else "ein Glas ") + sg, sg
        kind, _, case = view.partition("_")
        if kind == "d":
            return f"{DEF[case][g]} {sg}", sg
        if kind == "i":
            return f"{INDEF[case][g]} {sg}", sg
        if kind == "dp":
            noun = dative_plural(pl) if case == "dat" else pl
            return f"{DEF[case]['p']} {noun}", noun
        if kind == "poss":
            return f"{self._possessor_stem(frame)}{POSS[case][g]} {sg}", sg
        stem = frame["adj"].f("de")["stem"]
        if kind == "dA":
            return f"{DEF[case][g]} {stem}{WEAK[case][g]} {sg}", sg
        if kind == "iA":
            return f"{INDEF[case][g]} {stem}{MIXED[case][g]} {sg}", sg
        raise KeyError(view)

    def _place(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("de")
        g, noun = f["g"], f[""]
        if view == "loc":
            return prep_phrase(f["lp"], "dat", g, noun), noun
        if view == "dir":
            dp = f["dp"]
            return prep_phrase(dp, "acc" if dp in ACC_PREPS else "dat", g, noun), noun
        if view == "neben":
            return f"neben {DEF['dat'][g]} {noun}", noun
        if view == "naechst":
            return f"{DEF['nom'][g]} nächste {noun}", noun
        if view == "d_nom":
            return f"{DEF['nom'][g]} {noun}", noun
        return noun, noun

    def _relative(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("de")
        if view == "d_nom":
            return f"{DEF['nom'][f['g']]} {f['']}", f[""]
        case = view or "nom"
        noun = f[""] if case == "nom" else f["obl"]
        return f"{self._possessor_stem(frame)}{POSS[case][f['g']]} {noun}", noun

    def _act(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f("de")[view], None

    def _adj(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f("de")["stem"], None
