"""Spanish: el/la, contractions al/del, post-nominal adjectives with agreement, su."""

from __future__ import annotations

from langneuron_eval.demo_corpus.engine import Frame, Realiser
from langneuron_eval.demo_corpus.entries import Entry


def the(gender: str, body: str) -> str:
    return ("el " if gender == "m" else "la ") + body


def to_the(gender: str, body: str) -> str:
    return ("al " if gender == "m" else "a la ") + body


def of_the(gender: str, body: str) -> str:
    return ("del " if gender == "m" else "de la ") + body


class Spanish(Realiser):
    lang = "es"

    def _noun(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("es")
        g, sg, pl = f["g"], f["sg"], f["pl"]
        if view in ("", "sg"):
            return sg, sg
        if view == "pl":
            return pl, pl
        if view in ("los", "topic"):
            return ("los " if g == "m" else "las ") + pl, pl
        if view == "el":
            return the(g, sg), sg
        if view == "un":
            return ("un " if g == "m" else "una ") + sg, sg
        if view == "al":
            return to_the(g, sg), sg
        if view == "del":
            return of_the(g, sg), sg
        if view == "poss":
            return "su " + sg, sg
        if view == "cup":
            return ("una taza de " if "cup" in e.tags else "un vaso de ") + sg, sg
        a = frame["adj"].f("es")
        body = f"{sg} {a['f'] if g == 'f' else a['m']}"
        if view == "elA":
            return the(g, body), sg
        if view == "unA":
            return ("un " if g == "m" else "una ") + body, sg
        raise KeyError(view)

    def _place(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("es")
        g, noun = f["g"], f[""]
        if view == "loc":
            return (f["loc"] or "en " + the(g, noun)), noun
        if view == "dir":
            return to_the(g, noun), noun
        if view == "el":
            return the(g, noun), noun
        if view == "del":
            return of_the(g, noun), noun
        return noun, noun

    def _relative(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("es")
        noun = f[""]
        if view == "el":
            return the(f["g"], noun), noun
        return "su " + noun, noun

    def _act(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f("es")[view], None

    def _adj(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("es")
        _, _, other = view.partition("@")
        if other:
            return f["fp" if frame[other].gender("es") == "f" else "mp"], None
        return f["m"], None

    def join(self, text: str, piece: str) -> tuple[str, str]:
        """``y`` becomes ``e`` before an /i/ sound across a slot boundary (``Javier e Ignacio``)."""
        text, piece = super().join(text, piece)
        if text.endswith(" y ") and piece[:1] in "IiÍí":
            text = text[:-2] + "e "
        return text, piece
