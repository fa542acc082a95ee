"""From frame specs to the corpus: draw frames, assign splits, group them into lines, realise lines.

Everything here is language-independent until :func:`line_text`, so the same line (one to three
frames) is realised in every language, which is what makes ``parallel_pairs`` aligned.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass

from langneuron_eval.demo_corpus.engine import Frame
from langneuron_eval.demo_corpus.entries import Entry
from langneuron_eval.demo_corpus.frame_spec import FrameSpec
from langneuron_eval.demo_corpus.frames import all_specs
from langneuron_eval.demo_corpus.realise import realiser
from langneuron_eval.demo_corpus.splits import rng, split_of

ENUM_LIMIT = 200_000  # slot products up to this size are enumerated exhaustively before sampling
# Lines kept per split (train keeps all). eval/detect are capped so lm-eval runs stay short on a CPU;
# the frames left out are simply unused, never moved to another split.
LINE_CAP = {"train": None, "detect": 4000, "eval": 800}
PARAGRAPH_SIZES = (1, 2, 3)
PARAGRAPH_WEIGHTS = (70, 20, 10)


@dataclass(frozen=True)
class FrameInst:
    """One drawn frame: its spec, slot values, unique id and split."""

    spec: FrameSpec
    frame: Frame
    id: str
    split: str

    @property
    def person(self) -> str:
        """Id of the frame's main person (slot ``p``), or ``""``."""
        p = self.frame.get("p")
        return p.id if p is not None else ""


def draw(spec: FrameSpec) -> list[FrameInst]:
    """Deterministically draw up to ``spec.cap`` distinct valid frames from the spec's slot product."""
    names = list(spec.slots)
    pools = [spec.slots[n] for n in names]
    r = rng("frames", spec.id)
    total = math.prod(len(p) for p in pools)
    combos: list[tuple[Entry, ...]] = []
    if total <= ENUM_LIMIT:
        for combo in itertools.product(*pools):
            if spec.valid is None or spec.valid(dict(zip(names, combo))):
                combos.append(combo)
        if len(combos) > spec.cap:
            combos = r.sample(combos, spec.cap)
    else:
        seen: set[tuple[str, ...]] = set()
        for _ in range(spec.cap * 40):
            combo = tuple(r.choice(p) for p in pools)
            key = tuple(e.id for e in combo)
            if key in seen or (spec.valid is not None and not spec.valid(dict(zip(names, combo)))):
                continue
            seen.add(key)
            combos.append(combo)
            if len(combos) >= spec.cap:
                break
    out = []
    for combo in combos:
        values = dict(zip(names, combo))
        fid = spec.id + "|" + "|".join(f"{n}={e.id}" for n, e in values.items())
        split_key = spec.id + "|" + "|".join(f"{n}={e.key}" for n, e in values.items())
        out.append(FrameInst(spec, values, fid, split_of(split_key)))
    return out


@functools.lru_cache(maxsize=1)
def all_frames() -> tuple[FrameInst, ...]:
    return tuple(f for s in all_specs() for f in draw(s))


@functools.cache
def frames_of(split: str) -> tuple[FrameInst, ...]:
    return tuple(f for f in all_frames() if f.split == split)


@functools.cache
def lines_of(split: str) -> tuple[tuple[FrameInst, ...], ...]:
    """Lines of one split: mostly single frames, some 2-3 frames about the same person (a paragraph)."""
    r = rng("lines", split)
    by_person: dict[str, list[FrameInst]] = defaultdict(list)
    for f in frames_of(split):
        by_person[f.person].append(f)
    lines: list[tuple[FrameInst, ...]] = []
    for person in sorted(by_person):
        group = by_person[person]
        r.shuffle(group)
        i = 0
        while i < len(group):
            k = r.choices(PARAGRAPH_SIZES, PARAGRAPH_WEIGHTS)[0] if person else 1
            lines.append(tuple(group[i:i + k]))
            i += k
    r.shuffle(lines)
    cap = LINE_CAP[split]
    return tuple(lines[:cap] if cap is not None else lines)


class _TextCache:
    """Realised sentence of each frame per language (frames are shared by lines, QA and pairs)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}

    def sentence(self, lang: str, f: FrameInst) -> str:
        key = (lang, f.id)
        text = self._cache.get(key)
        if text is None:
            text = realiser(lang).sentence(f.spec.text[lang], f.frame)
            self._cache[key] = text
        return text


_TEXTS = _TextCache()


def frame_text(lang: str, f: FrameInst) -> str:
    return _TEXTS.sentence(lang, f)


def line_text(lang: str, line: tuple[FrameInst, ...]) -> str:
    return realiser(lang).sep.join(frame_text(lang, f) for f in line)
