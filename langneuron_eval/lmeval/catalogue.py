"""The vocabulary shared by tasks, measurements and the leaderboard: task names, metric names, thresholds.

Spelled once here so that a renamed task or a moved bar changes every reader at once.
"""

from __future__ import annotations

PPL_FAMILY = "lang_ppl"  # lang_ppl_<lang>: perplexity of held-out text in one language
STEER_FAMILY = "lang_steer"  # lang_steer_<lang>: generations from a neutral prompt, scored by LID
STEER_PROMPTED_FAMILY = "lang_steer_prompted"  # the same from per-language prompts
STEER_FAMILIES = (STEER_FAMILY, STEER_PROMPTED_FAMILY)

PPL_METRIC = "byte_perplexity"  # the default perplexity: defined for every script
PPL_METRICS = ("byte_perplexity", "word_perplexity")
LOWER_IS_BETTER = frozenset({"byte_perplexity", "word_perplexity", "bits_per_byte"})
LANG_RATE = "lang_rate"  # share of generations whose LID label is the target language
ON_TARGET_FLUENT = "on_target_fluent"  # on target AND not degenerate: the success a repetition loop cannot game
# success and damage shown beside lang_rate (all reported per generation by the lang_steer tasks)
QUALITY_METRICS = (ON_TARGET_FLUENT, "distinct_2", "degenerate")

STEER_SUCCESS = 0.5  # a gain of at least 50 points of lang_rate counts as "steered"


def ppl_task(lang: str) -> str:
    """``lang_ppl_<lang>``."""
    return f"{PPL_FAMILY}_{lang}"


def steer_task(lang: str, family: str = STEER_FAMILY) -> str:
    """``lang_steer_<lang>`` (or another steering family's task for ``lang``)."""
    return f"{family}_{lang}"
