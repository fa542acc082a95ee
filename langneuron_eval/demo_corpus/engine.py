"""Template engine shared by all languages.

A template is text with slots: ``{p}`` (default form), ``{o.i_acc}`` (a named form, computed by the
language's realiser), ``{p?er|sie}`` (pick by the slot's grammatical gender m|f|n in this language).
Rendering records where each slot's *head word* (the name, the noun, the time phrase) lands, so QA
answers are exact character spans of the text rather than a later string search.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from langneuron_eval.demo_corpus.entries import GENDER_INDEX, Entry

Frame = Mapping[str, Entry]
Part = str | tuple[str, str, tuple[str, ...] | None]
Spans = dict[str, tuple[int, str]]

_SLOT = re.compile(r"\{(\w+)(?:\.([\w@]+))?(?:\?([^{}]*))?\}")


@functools.cache
def compile_template(text: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    pos = 0
    for m in _SLOT.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        alts = tuple(m.group(3).split("|")) if m.group(3) is not None else None
        parts.append((m.group(1), m.group(2) or "", alts))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def template_slots(text: str) -> set[str]:
    return {p[0] for p in compile_template(text) if not isinstance(p, str)}


def capitalize_first(text: str) -> str:
    """Upper-case the first letter (after opening punctuation such as Spanish ``¿``); offsets are unchanged."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text if ch.isupper() else text[:i] + ch.upper() + text[i + 1:]
    return text


class Realiser:
    """Renders templates for one language; subclasses implement one ``_<kind>`` method per entry kind."""

    lang = ""
    sep = " "  # between the sentences of a paragraph

    def view(self, entry: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        """The form ``view`` of ``entry`` and the head word inside it (``None`` if it has none)."""
        return getattr(self, "_" + entry.kind)(entry, view, frame)

    # ---- kinds whose forms are stored literally
    def _phrase(self, entry: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        forms = entry.f(self.lang)
        text = forms[view]
        if "{" in text:
            text = self.render(text, frame)
        return text, forms.get("head")

    def _time(self, entry: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        forms = entry.f(self.lang)
        return forms[view], forms["head"]

    def _city(self, entry: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        name = entry.f(self.lang)[""]
        return name, name

    def _person(self, entry: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        name = entry.f(self.lang)[""]
        return name, name

    def _num(self, entry: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        text = entry.f(self.lang)[view]
        return text, text

    def _profession(self, entry: Entry, view: str, frame: Frame) -> tuple[str, str | None]:
        word = entry.f(self.lang)["mf"][GENDER_INDEX[frame["p"].gender(self.lang)]]
        return word, word

    # ---- rendering
    def join(self, text: str, piece: str) -> tuple[str, str]:
        """Glue ``piece`` after ``text``: no doubled spaces, no space before ``.`` or ``,``."""
        if not text:
            return text, piece.lstrip(" ")
        if text.endswith(" ") and piece[0] in " .,":
            text = text.rstrip(" ")
        return text, piece

    def render(self, template: str, frame: Frame, spans: Spans | None = None) -> str:
        text = ""
        for part in compile_template(template):
            head = None
            if isinstance(part, str):
                slot, piece = None, part
            else:
                slot, view, alts = part
                entry = frame[slot]
                if alts is not None:
                    piece = alts[GENDER_INDEX[entry.gender(self.lang)]]
                else:
                    piece, head = self.view(entry, view, frame)
            if not piece:
                continue
            text, piece = self.join(text, piece)
            if head and spans is not None and slot is not None and slot not in spans:
                at = piece.find(head)
                if at < 0:
                    raise ValueError(f"head {head!r} not in {piece!r}")
                spans[slot] = (len(text) + at, head)
            text += piece
        return text

    def sentence(self, template: str, frame: Frame, spans: Spans | None = None) -> str:
        return capitalize_first(self.render(template, frame, spans))
