"""The whole lexicon: every concept by id, and tag queries that define the slot pools of frames."""

from __future__ import annotations

import functools

from langneuron_eval.demo_corpus import (
    lex_actions,
    lex_animals,
    lex_food,
    lex_misc,
    lex_people,
    lex_places,
    lex_things,
    lex_time,
)
from langneuron_eval.demo_corpus.entries import Entry

_MODULES = (lex_people, lex_food, lex_animals, lex_things, lex_places, lex_time, lex_actions, lex_misc)


@functools.lru_cache(maxsize=1)
def lexicon() -> dict[str, Entry]:
    """All entries by id, in declaration order (the order matters: it makes enumeration deterministic)."""
    out: dict[str, Entry] = {}
    for mod in _MODULES:
        for e in mod.entries():
            if e.id in out:
                raise ValueError(f"duplicate lexicon id {e.id!r}")
            out[e.id] = e
    return out


def get(entry_id: str) -> Entry:
    return lexicon()[entry_id]


@functools.cache
def select(*tags: str, exclude: tuple[str, ...] = ()) -> tuple[Entry, ...]:
    """Entries carrying every tag in ``tags`` and none in ``exclude``, in declaration order.

    An entry's kind (``noun``, ``phrase``, ``place``...) counts as one of its tags.
    """
    want, unwanted = set(tags), set(exclude)
    return tuple(e for e in lexicon().values() if want <= (e.tags | {e.kind}) and not (e.tags & unwanted))


def counts() -> dict[str, int]:
    """How many concepts of each broad class the lexicon holds (documentation and tests)."""
    lex = lexicon().values()
    return {
        "nouns": sum(1 for e in lex if e.kind in ("noun", "place")),
        "verbs_and_predicates": sum(1 for e in lex if e.kind == "act" or e.tags & {"state", "state_rel",
                                                                                     "state_city", "ailment"}),
        "names": sum(1 for e in lex if e.kind == "person"),
        "places": sum(1 for e in lex if e.kind in ("place", "city")),
        "times": sum(1 for e in lex if e.kind == "time"),
        "adjectives": sum(1 for e in lex if e.kind == "adj"),
    }
