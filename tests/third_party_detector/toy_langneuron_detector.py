"""A minimal third-party detector package, used by tests/test_detectors_cli.py.

It is registered only through the ``langneuron_eval.detectors`` entry-point group (see the
pyproject.toml next to this file); the test makes it discoverable without pip by writing a
``*.dist-info`` directory with the same entry points onto ``sys.path``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from langneuron_eval.detectors.base import DetectionResult, Detector


def first_units(stats, n: int = 1, layer: int = 0):
    """Toy: the first n units of one layer, for every language (a plain function detector)."""
    return {"languages": {lang: [(layer, j) for j in range(n)] for lang in stats.languages},
            "extra": {"toy": "first_units"}}


@dataclass
class LastParams:
    n: int = field(default=2, metadata={"help": "how many units"})
    only: str = field(default="", metadata={"help": "restrict to this language"})


class LastUnits(Detector):
    """Toy: the last n units of the last layer (a Detector subclass)."""

    Params = LastParams

    def detect(self, stats, params: LastParams) -> DetectionResult:
        L, N = stats.num_layers, stats.intermediate_size
        units = [(L - 1, N - 1 - j) for j in range(params.n)]
        return DetectionResult({lang: units for lang in stats.languages if not params.only or lang == params.only})
