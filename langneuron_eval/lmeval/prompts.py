"""Prompt formats shared by the evaluation tasks and the demo model's training data.

Kept in one place so that what the demo model learns to answer is exactly what the tasks ask.
"""

from __future__ import annotations

MT_PROMPT = "Translate an English sentence into a target language.\nEnglish: {src}\nTarget Language:"


def qa_prompt(context: str, question: str) -> str:
    """XQuAD-style extractive QA: the answer follows ``A:`` and ends at the line break."""
    return f"{context}\nQ: {question}\nA:"


def math_prompt(question: str) -> str:
    """MGSM-style question; the last number of the answer is scored."""
    return f"Q: {question}\nA:"


def mt_prompt(src: str) -> str:
    """Kojima et al.'s conditional prompt: the target language is deliberately not named."""
    return MT_PROMPT.format(src=src)
