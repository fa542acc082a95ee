"""Extractive QA items (XQuAD format) built from frames.

An item is a 2-3 sentence context (the target frame plus one or two distractor frames of other
kinds, about other people, not mentioning the answer concept) and a question about one slot of the
target frame. The structure is language-independent and realised per language, so item ``id`` is
the same in every language. The answer span comes from the engine's recorded head offsets.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from langneuron_eval.demo_corpus.build import FrameInst, frames_of
from langneuron_eval.demo_corpus.engine import Frame
from langneuron_eval.demo_corpus.entries import Entry
from langneuron_eval.demo_corpus.frame_spec import Question
from langneuron_eval.demo_corpus.realise import realiser
from langneuron_eval.demo_corpus.splits import rng

# Items per split: train feeds fine-tuning, detect/eval are benchmark-sized for CPU runs.
QA_CAP = {"train": 4000, "detect": 300, "eval": 300}


@dataclass(frozen=True)
class QAStructure:
    """A language-independent QA item: which frames form the context and what is asked."""

    id: str
    frames: tuple[FrameInst, ...]
    target: int  # index of the frame the question is about
    question: Question


def _distractor_ok(d: FrameInst, target: FrameInst, chosen: list[FrameInst], answer_id: str) -> bool:
    """A distractor must not make the question ambiguous: other template, other person, no answer concept."""
    if d.spec.id == target.spec.id or any(d.spec.id == c.spec.id for c in chosen):
        return False
    people = {target.person, *(c.person for c in chosen)} - {""}
    if d.person and d.person in people:
        return False
    return answer_id not in {e.id for e in d.frame.values()}


@functools.cache
def structures(split: str) -> tuple[QAStructure, ...]:
    """The split's QA items in a fixed order (capped by ``QA_CAP``)."""
    r = rng("qa", split)
    pool = list(frames_of(split))
    targets = [f for f in pool if f.spec.questions]
    r.shuffle(targets)
    out: list[QAStructure] = []
    for f in targets[:QA_CAP[split]]:
        question = r.choice(f.spec.questions)
        answer_id = f.frame[question.answer].id
        want = r.choice((1, 2))
        chosen: list[FrameInst] = []
        for _ in range(200):
            d = r.choice(pool)
            if _distractor_ok(d, f, chosen, answer_id):
                chosen.append(d)
                if len(chosen) == want:
                    break
        at = r.randrange(len(chosen) + 1)
        frames = chosen[:at] + [f] + chosen[at:]
        out.append(QAStructure(f"demo-{split}-{len(out):05d}", tuple(frames), at, question))
    return tuple(out)


def _english_names(frame: Frame, lang: str) -> Frame:
    """The frame with every person called by their English name (as written in ``lang``), so a question
    about an English context asks about "James" / "詹姆斯", not "田中さん" (his name in the Japanese corpus)."""
    out = dict(frame)
    for slot, e in frame.items():
        if e.kind == "person" and lang != "en":
            out[slot] = Entry(e.id, e.kind, e.tags, {**e.forms, lang: {**e.forms[lang], "": e.forms[lang]["en_name"]}})
    return out


def realise(item: QAStructure, lang: str, cross_lingual: bool = False) -> dict[str, Any]:
    """The item in ``lang`` (or, cross-lingually, an English context with a ``lang`` question)."""
    ctx_lang = "en" if cross_lingual else lang
    real = realiser(ctx_lang)
    sentences: list[str] = []
    offset = 0
    start = head = None
    for i, f in enumerate(item.frames):
        spans: dict[str, tuple[int, str]] | None = {} if i == item.target else None
        text = real.sentence(f.spec.text[ctx_lang], f.frame, spans)
        if spans is not None:
            at, head = spans[item.question.answer]
            start = offset + at
        sentences.append(text)
        offset += len(text) + len(real.sep)
    context = real.sep.join(sentences)
    assert start is not None and head is not None
    answer = context[start:start + len(head)]
    assert answer.lower() == head.lower(), (answer, head)  # only sentence-initial capitalisation may differ
    frame = item.frames[item.target].frame
    if cross_lingual:
        frame = _english_names(frame, lang)
    question = realiser(lang).sentence(item.question.text[lang], frame)
    return {"id": item.id, "context": context, "question": question,
            "answers": {"text": [answer], "answer_start": [start]}}
