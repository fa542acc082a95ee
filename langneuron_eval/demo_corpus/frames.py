"""All frame specifications, in a fixed order (the order is part of the corpus definition)."""

from __future__ import annotations

import functools

from langneuron_eval.demo_corpus import (
    frames_daily,
    frames_nature,
    frames_social,
    frames_things,
    frames_world,
)
from langneuron_eval.demo_corpus.frame_spec import FrameSpec


@functools.lru_cache(maxsize=1)
def all_specs() -> tuple[FrameSpec, ...]:
    specs = [s for mod in (frames_daily, frames_social, frames_world, frames_things, frames_nature)
             for s in mod.frames()]
    seen = set()
    for s in specs:
        if s.id in seen:
            raise ValueError(f"duplicate frame id {s.id!r}")
        seen.add(s.id)
    return tuple(specs)


def spec_by_id(spec_id: str) -> FrameSpec:
    return {s.id: s for s in all_specs()}[spec_id]
