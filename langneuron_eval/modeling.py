"""Loading a causal LM and its tokenizer, with errors a user can act on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .errors import LangNeuronError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "auto": "auto"}


def resolve_dtype(name: str) -> Any:
    try:
        return DTYPES[name]
    except KeyError:
        raise LangNeuronError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}") from None


def default_model_path() -> str:
    """The shipped demo model, used when a command is given no --model."""
    from . import demo_assets

    return str(demo_assets.base_model_path())


def check_model_path(path: str) -> None:
    """One-line errors for a local model path that is missing or not a model, before transformers is asked.

    Hub ids (``org/name``) pass; a path starting with ``.``, ``/`` or ``~``, or with more than one ``/``,
    is taken as a local directory.
    """
    local = Path(path).expanduser()
    if local.exists() and not (local / "config.json").exists():
        raise LangNeuronError(f"{path} is not a Hugging Face model directory (no config.json)")
    if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise LangNeuronError(f"model directory not found: {path}")


def load_model(path: str | os.PathLike, dtype: str = "float32", device: str = "cpu",
               revision: str | None = None, trust_remote_code: bool = False):
    """Load ``(model, tokenizer)`` for inference, in eval mode (dropout off, so hooks see deterministic values).

    ``path`` is a local directory or a hub id; hub ids need a network (or a filled HF cache).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars are the ones that matter
    path = str(path)
    check_model_path(path)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, revision=revision, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise LangNeuronError(f"cannot load model {path!r}{offline}: {first}") from None
    model.to(device)
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return model, tok
