"""Chinese and Japanese: no inflection; measure words (一个苹果) and counters (三羽) come from the lexicon,
particles and word order from the templates. Sentences of a paragraph are joined without spaces."""

from __future__ import annotations

from langneuron_eval.demo_corpus.engine import Frame, Realiser
from langneuron_eval.demo_corpus.entries import Entry


class _CJK(Realiser):
    sep = ""

    def _noun(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f(self.lang)
        noun, mw = f[""], f["mw"]
        if view in ("", "topic"):
            return noun, noun
        if view == "mw":
            return mw, None
        if view == "one":
            return f"一{mw}{noun}", noun
        if view == "cup":
            return f"一杯{noun}", noun
        adj = frame["adj"].f(self.lang)[""]
        if view == "A":
            return f"{adj}{noun}", noun
        if view == "oneA":
            return f"一{mw}{adj}{noun}", noun
        raise KeyError(view)

    def _place(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        f = e.f(self.lang)
        return f.get(view, f[""]), f[""]

    def _relative(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        noun = e.f(self.lang)[""]
        return noun, noun

    def _act(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f(self.lang)[view], None

    def _adj(self, e: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        return e.f(self.lang)[""], None


class Chinese(_CJK):
    lang = "zh"


class Japanese(_CJK):
    lang = "ja"
