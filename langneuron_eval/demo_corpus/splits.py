"""Stable split assignment: a meaning's split comes from a SHA-256 of its id, never from ``hash()``.

``hash()`` of a str changes with PYTHONHASHSEED, so it would move sentences between splits from run
to run; SHA-256 of the UTF-8 id is the same on every machine and Python version.
"""

from __future__ import annotations

import hashlib
import random

SPLITS = ("train", "detect", "eval")
_BOUNDS = ((80, "train"), (90, "detect"), (100, "eval"))  # percent buckets: 80 / 10 / 10


def bucket(key: str) -> int:
    """A number in [0, 100) derived from ``key`` (uniform over keys)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_of(key: str) -> str:
    b = bucket(key)
    for bound, name in _BOUNDS:
        if b < bound:
            return name
    raise AssertionError("unreachable")


def rng(*parts: object) -> random.Random:
    """A private, deterministic RNG for one purpose (string seeds are hashed with SHA-512 by ``random``)."""
    return random.Random("/".join(str(p) for p in parts))
