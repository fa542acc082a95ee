"""What a frame is: slots with their pools, one template per language, optional QA questions.

A *frame* is one abstract meaning (chosen slot values); the same frame is realised in every
language by its template, which is what makes the corpus parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from langneuron_eval.demo_corpus.engine import Frame, template_slots
from langneuron_eval.demo_corpus.entries import LANGS, Entry
from langneuron_eval.demo_corpus.lexicon import get, select

QTYPES = ("who", "what", "where", "when")


@dataclass(frozen=True)
class Question:
    """A question about slot ``answer`` of a frame, one template per language."""

    qtype: str
    answer: str
    text: Mapping[str, str]


@dataclass(frozen=True)
class FrameSpec:
    id: str
    slots: Mapping[str, tuple[Entry, ...]]
    text: Mapping[str, str]
    questions: tuple[Question, ...] = ()
    valid: Callable[[Frame], bool] | None = None
    cap: int = 1500  # at most this many frames are drawn from the slot product

    def check(self) -> None:
        """Every template names only known slots, and the sentence templates use every slot."""
        for lang in LANGS:
            used = template_slots(self.text[lang])
            if not used <= set(self.slots):
                raise ValueError(f"{self.id}/{lang}: unknown slots {used - set(self.slots)}")
        for q in self.questions:
            if q.qtype not in QTYPES or q.answer not in self.slots:
                raise ValueError(f"{self.id}: bad question {q.qtype}/{q.answer}")
            for lang in LANGS:
                if not template_slots(q.text[lang]) <= set(self.slots):
                    raise ValueError(f"{self.id}/{q.qtype}/{lang}: unknown slots")


def pool(*tags: str, exclude: tuple[str, ...] = ()) -> tuple[Entry, ...]:
    found = select(*tags, exclude=exclude)
    if not found:
        raise ValueError(f"empty pool {tags}")
    return found


def ids(*entry_ids: str) -> tuple[Entry, ...]:
    return tuple(get(i) for i in entry_ids)


def union(*pools: Iterable[Entry]) -> tuple[Entry, ...]:
    seen: dict[str, Entry] = {}
    for p in pools:
        for e in p:
            seen.setdefault(e.id, e)
    return tuple(seen.values())


def nums(lo: int, hi: int, step: int = 1) -> tuple[Entry, ...]:
    return tuple(get(f"n{n}") for n in range(lo, hi + 1, step))


def q(qtype: str, answer: str, **text: str) -> Question:
    return Question(qtype, answer, text)


def spec(id_: str, slots: Mapping[str, tuple[Entry, ...]], *, en: str, de: str, fr: str, es: str, zh: str,
         ja: str, questions: tuple[Question, ...] = (), valid: Callable[[Frame], bool] | None = None,
         cap: int = 1500) -> FrameSpec:
    s = FrameSpec(id_, dict(slots), {"en": en, "de": de, "fr": fr, "es": es, "zh": zh, "ja": ja},
                  tuple(questions), valid, cap)
    s.check()
    return s
