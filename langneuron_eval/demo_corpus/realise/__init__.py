"""One realiser per language: how concepts become words (articles, case, agreement, particles)."""

from __future__ import annotations

import functools

from langneuron_eval.demo_corpus.engine import Realiser
from langneuron_eval.demo_corpus.realise.cjk import Chinese, Japanese
from langneuron_eval.demo_corpus.realise.de import German
from langneuron_eval.demo_corpus.realise.en import English
from langneuron_eval.demo_corpus.realise.es import Spanish
from langneuron_eval.demo_corpus.realise.fr import French

_CLASSES: dict[str, type[Realiser]] = {"en": English, "de": German, "fr": French, "es": Spanish,
                                       "zh": Chinese, "ja": Japanese}


@functools.cache
def realiser(lang: str) -> Realiser:
    return _CLASSES[lang]()
