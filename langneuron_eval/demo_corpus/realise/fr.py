"""French: le/la/l', contractions au/du, elision of de/que before a vowel, adjective position and
agreement (un petit appartement, une maison moderne, un vieil appartement), son/sa."""

from __future__ import annotations

from langneuron_eval.demo_corpus.engine import Frame, Realiser
from langneuron_eval.demo_corpus.entries import Entry

_VOWELS = "aeiouyàâäéèêëîïôöûùüœæh"


def elides(word: str, aspirated: bool = False) -> bool:
    """True if ``word`` takes l'/d'/qu' (vowel or mute h; aspirated h is flagged in the lexicon)."""
    return not aspirated and word[:1].lower() in _VOWELS


def the(gender: str, body: str, aspirated: bool = False) -> str:
    if elides(body, aspirated):
        return "l'" + body
    return ("le " if gender == "m" else "la ") + body


def to_the(gender: str, body: str, aspirated: bool = False) -> str:
    if elides(body, aspirated):
        return "à l'" + body
    return ("au " if gender == "m" else "à la ") + body


def of_the(gender: str, body: str, aspirated: bool = False) -> str:
    if elides(body, aspirated):
        return "de l'" + body
    return ("du " if gender == "m" else "de la ") + body


def of(body: str) -> str:
    return ("d'" if elides(body) else "de ") + body


class French(Realiser):
    lang = "fr"

    def _with_adj(self, f: dict, frame: Frame) -> tuple[str, bool]:
        """Noun with the frame's adjective in place; returns the phrase and whether its first word is the noun."""
        a = frame["adj"].f("fr")
        g, sg = f["g"], f["sg"]
        if a["pre"]:
            form = a["f"] if g == "f" else (a["mv"] if elides(sg, f["asp"]) else a["m"])
            return f"{form} {sg}", False
        return f"{sg} {a['f'] if g == 'f' else a['m']}", True

    def _noun(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("fr")
        g, sg, pl, asp = f["g"], f["sg"], f["pl"], f["asp"]
        if view in ("", "sg"):
            return sg, sg
        if view == "pl":
            return pl, pl
        if view in ("les", "topic"):
            return "les " + pl, pl
        if view == "des":
            return "des " + pl, pl
        if view == "le":
            return the(g, sg, asp), sg
        if view == "un":
            return ("un " if g == "m" else "une ") + sg, sg
        if view == "au":
            return to_the(g, sg, asp), sg
        if view == "du":
            return of_the(g, sg, asp), sg
        if view == "de":
            return of(sg), sg
        if view == "poss":
            return ("sa " if g == "f" and not elides(sg, asp) else "son ") + sg, sg
        if view == "cup":
            return ("une tasse " if "cup" in e.tags else "un verre ") + of(sg), sg
        body, noun_first = self._with_adj(f, frame)
        if view == "leA":
            return the(g, body, asp and noun_first), sg
        if view == "unA":
            return ("un " if g == "m" else "une ") + body, sg
        raise KeyError(view)

    def _place(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("fr")
        g, noun, prep = f["g"], f[""], f["p"]
        if view == "loc" and f["loc"]:
            return f["loc"], noun
        if view in ("loc", "dir"):
            return (to_the(g, noun) if prep == "à" else f"{prep} {the(g, noun)}"), noun
        if view == "le":
            return the(g, noun), noun
        if view == "de_le":
            return of_the(g, noun), noun
        return noun, noun

    def _relative(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f("fr")
        noun = f[""]
        if view == "le":
            return the(f["g"], noun), noun
        return ("sa " if f["g"] == "f" and not elides(noun) else "son ") + noun, noun

    def _act(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f("fr")[view], None

    def _adj(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        """``pl@a``: plural agreeing in gender with slot ``a``; ``sg@p``: singular agreeing with ``p``."""
        f = e.f("fr")
        number, _, other = view.partition("@")
        if not other:
            return f["m"], None
        key = ("f" if frame[other].gender("fr") == "f" else "m") + ("p" if number == "pl" else "")
        return f[key], None

    def join(self, text: str, piece: str) -> tuple[str, str]:
        """Elide ``de``/``que`` before a vowel across a slot boundary (``d'Amélie``, ``qu'Étienne``)."""
        text, piece = super().join(text, piece)
        if piece and elides(piece) and (text.endswith((" de ", " que ")) or text in ("de ", "que ", "De ", "Que ")):
            text = text[:-2] + "'"
        return text, piece
