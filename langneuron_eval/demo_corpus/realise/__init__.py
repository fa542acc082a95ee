"""One realiser per language: how concepts become words (articles, case, agreement, particles)."""

from __future__ import annotations

import functools

from ..engine import Realiser
from .cjk import Chinese, Japanese
from .de import German
from .en import English
from .es import Spanish
from .fr import French

_CLASSES: dict[str, type[Realiser]] = {"en": English, "de": German, "fr": French, "es": Spanish,
                                       "zh": Chinese, "ja": Japanese}


@functools.cache
def realiser(lang: str) -> Realiser:
    return _CLASSES[lang]()
