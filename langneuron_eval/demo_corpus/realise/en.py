"""English: a/an, possessives agreeing with the possessor (his/her), cup-of phrases."""

from __future__ import annotations

from langneuron_eval.demo_corpus.engine import Frame, Realiser
from langneuron_eval.demo_corpus.entries import GENDER_INDEX, Entry


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


class English(Realiser):
    lang = "en"

    def _his(self, frame: Frame) -> str:
        return ("his", "her")[GENDER_INDEX[frame["p"].gender("en")]]

    def _noun(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("en")
        sg, pl = f["sg"], f["pl"]
        if view in ("", "sg"):
            return sg, sg
        if view in ("pl", "topic"):
            return pl, pl
        if view == "a":
            return f"{article(sg)} {sg}", sg
        if view == "the":
            return f"the {sg}", sg
        if view == "poss":
            return f"{self._his(frame)} {sg}", sg
        if view == "cup":
            cup = "cup" if "cup" in e.tags else "glass"
            return f"a {cup} of {sg}", sg
        adj = frame["adj"].f("en")[""]
        if view == "aA":
            return f"{article(adj)} {adj} {sg}", sg
        if view == "theA":
            return f"the {adj} {sg}", sg
        if view == "A":
            return f"{adj} {sg}", sg
        raise KeyError(view)

    def _place(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("en")
        if view == "the":
            return f"the {f['']}", f[""]
        return f[view], f[""]

    def _relative(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        noun = e.f("en")[""]
        return (noun, noun) if view == "bare" else (f"{self._his(frame)} {noun}", noun)

    def _profession(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        word, _ = super()._profession(e, view, frame)
        return (f"{article(word)} {word}", word) if view == "a" else (word, word)

    def _act(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f("en")[view], None

    def _adj(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f("en")[""], None
