"""Run one detector on statistics and package the result as a :class:`~langneuron_eval.core.neurons.NeuronFile`.

Everything a neuron file needs besides the sets themselves is filled in here, once, so that
third-party detectors only compute sets: the model fingerprint (a neuron file must name the model
shape it applies to), the parameters with defaults, each unit's activation values for steering
(``stats.unit_values``: token mean, and with per-sentence means the median and percentiles), and
provenance (hash of the statistics, package versions, seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.base import DetectionResult, normalize_result, params_to_dict
from langneuron_eval.detectors.registry import get_detector
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.provenance import versions


def run_detector(name_or_target: str, stats: ActivationStats, params: Mapping[str, Any] | None = None
                 ) -> NeuronFile:
    """Detect language-specific neurons and return them as a neuron file (not yet saved).

    Args:
        name_or_target: a registered method name (``"lape"``) or a ``"module:attr"`` target.
        stats: activation statistics; must carry a model fingerprint.
        params: parameter values, as strings (from the CLI) or Python values; missing ones take defaults.

    Raises:
        LangNeuronError: unknown detector or parameter, unconvertible value, statistics without a
            fingerprint, or a problem the detector reports.
    """
    if stats.fingerprint is None:
        raise LangNeuronError("the statistics carry no model fingerprint, so the neuron file could not name the "
                              "model it applies to; re-record them with `langneuron record`")
    if len(stats.languages) < 2:
        found = ", ".join(stats.languages) or "none"
        raise LangNeuronError(f"the statistics cover one language ({found}); a unit is language-specific only by "
                              "contrast with other languages: record statistics of at least two")
    stats.validate()  # NaN/inf counters (or in-memory sentence means) are refused in one line (issue #28)
    detector = get_detector(name_or_target)
    p = detector.make_params(dict(params or {}))
    result: DetectionResult = normalize_result(detector.detect(stats, p), name_or_target)
    unknown = [lang for lang in result.languages if lang not in stats.languages]
    if unknown:
        raise LangNeuronError(f"detector {name_or_target!r} returned languages not in the statistics: {', '.join(unknown)}")
    values = {lang: stats.unit_values(lang, units) for lang, units in result.languages.items()
              if units and result.kind == "neurons"}  # whole experts have no activation values
    values = {lang: v for lang, v in values.items() if v}
    param_dict = params_to_dict(p)

    made_by = versions()
    provenance = {
        "stats_sha256": stats.sha256(),
        "package_version": made_by["langneuron_eval"],
        "lm_eval_version": made_by.get("lm_eval"),
        "versions": made_by,
        "seed": param_dict.get("seed"),  # None: the detector draws no random numbers
    }
    if stats.metadata.get("corpus"):  # what the statistics were recorded on: evaluation must not reuse it
        provenance["stats_corpus"] = stats.metadata["corpus"]
    return NeuronFile(fingerprint=stats.fingerprint, detector=name_or_target, languages=result.languages,
                      params=param_dict, values=values, extra=result.extra, provenance=provenance,
                      kind=result.kind)
