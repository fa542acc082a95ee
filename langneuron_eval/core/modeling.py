"""Loading a causal LM and its tokenizer (a transformers directory, a hub id or a GGUF file), with errors a user
can act on.

GGUF checkpoints (``path/to/model.gguf``) load through transformers' GGUF support: the quantised tensors are
dequantised to ``dtype`` and the tokenizer is rebuilt from the same file, so no other file is needed. This needs
the ``gguf`` package (``pip install 'langneuron-eval[gguf]'``).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import torch

from langneuron_eval.core import demo_assets
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_output_dir

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "auto": "auto"}
GGUF_SUFFIX = ".gguf"
GGUF_INSTALL = "pip install 'langneuron-eval[gguf]'"

# Special tokens that stand for another modality (image, audio, video placeholders). A text model should never
# sample them, yet some multimodal families' base models give them real probability (Gemma 3 270m:
# <start_of_image>); generation bans them (see ``non_text_token_ids``).
_NON_TEXT = re.compile(r"image|audio|video|vision|speech|pixel", re.IGNORECASE)


def resolve_dtype(name: str) -> Any:
    try:
        return DTYPES[name]
    except KeyError:
        raise LangNeuronError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}") from None


def default_model_path() -> str:
    """The shipped demo model, used when a command is given no --model."""
    return str(demo_assets.base_model_path())


def is_gguf(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(GGUF_SUFFIX)


def split_gguf(path: str | os.PathLike, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``("dir", "name.gguf")`` for a GGUF path (transformers wants the folder and the file name apart).

    ``path`` may already be the folder with ``gguf_file`` given separately (lm-eval's ``pretrained=DIR,gguf_file=NAME``).
    """
    path = str(path)
    if gguf_file:
        return path, str(gguf_file)
    if is_gguf(path):
        p = Path(path).expanduser()
        return str(p.parent), p.name
    return path, None


def require_gguf() -> None:
    """One line naming the install when the ``gguf`` package that transformers' GGUF reader needs is missing."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise LangNeuronError(f"reading a GGUF checkpoint needs the gguf package: {GGUF_INSTALL}") from None


def check_model_path(path: str, gguf_file: str | None = None) -> None:
    """One-line errors for a local model path that is missing or not a model, before transformers is asked.

    Hub ids (``org/name``) pass; a path starting with ``.``, ``/`` or ``~``, or with more than one ``/``,
    is taken as a local directory. A ``.gguf`` path (or a folder plus ``gguf_file``) must be an existing file,
    and the ``gguf`` package must be installed.
    """
    folder, name = split_gguf(path, gguf_file)
    if name is not None:
        file = Path(folder).expanduser() / name
        if not file.is_file():
            raise LangNeuronError(f"GGUF file not found: {file}")
        require_gguf()
        return
    local = Path(path).expanduser()
    if local.exists() and not (local / "config.json").exists():
        raise LangNeuronError(f"{path} is not a Hugging Face model directory (no config.json)")
    if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise LangNeuronError(f"model directory not found: {path}")


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?|\d+)$")


def check_device_map(device_map: str | None) -> str | None:
    """One line for a ``--device-map`` Accelerate would reject, before any model file is read."""
    if device_map is None or device_map in DEVICE_MAPS or _DEVICE.match(device_map):
        return device_map
    raise LangNeuronError(f"invalid device map {device_map!r}; use one of {', '.join(DEVICE_MAPS)} "
                          "or a device name (cpu, cuda, cuda:0)")


def load_model(path: str | os.PathLike, dtype: str = "float32", device: str = "cpu",
               revision: str | None = None, trust_remote_code: bool = False, gguf_file: str | None = None,
               device_map: str | None = None):
    """Load ``(model, tokenizer)`` for inference, in eval mode (dropout off, so hooks see deterministic values).

    ``path`` is a local directory, a hub id (needs a network or a filled HF cache) or a ``.gguf`` file
    (dequantised to ``dtype``; tokenizer from the same file). ``device_map`` (``auto``, ``balanced``,
    ``sequential``, ``cpu``, ...) lets Accelerate spread the layers over the devices instead of moving the
    whole model to ``device``: a model too large for one GPU.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars are the ones that matter
    path = str(path)
    check_model_path(path, gguf_file)
    folder, name = split_gguf(path, gguf_file)
    extra: dict[str, Any] = {"gguf_file": name} if name else {}
    if check_device_map(device_map):
        extra["device_map"] = device_map
    try:
        tok = AutoTokenizer.from_pretrained(folder, revision=revision, trust_remote_code=trust_remote_code, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            folder, revision=revision, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise LangNeuronError(f"cannot load model {path!r}{offline}: {first}") from None
    if not device_map:
        model.to(device)
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return model, tok


def non_text_token_ids(tokenizer: Any, keep: tuple[int, ...] = ()) -> list[int]:
    """Ids of added tokens that stand for another modality (``<start_of_image>``, ``<audio_soft_token>``, ...).

    An added token counts when its text names a non-text modality (image, audio, video, vision, speech, pixel)
    and it is special or written as a placeholder ``<...>`` (GGUF files mark Gemma 3's image tokens
    user-defined, not control); ordinary vocabulary pieces such as HTML's ``<img>`` are never listed, nor EOS
    nor the ids in ``keep``. Generation passes these as ``suppress_tokens`` so that a text model's sampled output
    is text: Gemma 3 270m's base model ranks ``<start_of_image>`` among its likeliest tokens after BOS.
    """
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    eos = tokenizer.eos_token_id
    protected = {*keep, *([eos] if isinstance(eos, int) else [])}
    ids = [int(i) for i, t in decoder.items()
           if _NON_TEXT.search(str(t.content)) and int(i) not in protected
           and (getattr(t, "special", False) or (str(t.content).startswith("<") and str(t.content).endswith(">")))]
    vocab = getattr(tokenizer, "vocab_size", None)
    return sorted(i for i in ids if vocab is None or i < max(int(vocab), len(tokenizer)))


def saveable_copy(model: Any) -> Any:
    """A plain transformers model with the same weights, for a model loaded from GGUF.

    A GGUF-loaded model remembers its origin in its config and refuses ``save_pretrained``; rebuilding it from its
    config and copying the (already dequantised) weights gives one that saves as a normal checkpoint.
    """
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    for attr in ("quantization_config", "gguf_file"):
        if hasattr(config, attr):
            delattr(config, attr)
    fresh = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    real_missing = [k for k in missing if k not in set(getattr(fresh, "_tied_weights_keys", None) or [])]
    if real_missing or unexpected:
        raise LangNeuronError(f"cannot copy the weights: missing {real_missing[:3]}, unexpected {unexpected[:3]}")
    fresh.tie_weights()
    fresh.generation_config = copy.deepcopy(model.generation_config)
    return fresh.eval()


def save_as_directory(path: str | os.PathLike, out: str | os.PathLike, dtype: str = "float32",
                      force: bool = False) -> Path:
    """Load ``path`` (e.g. a ``.gguf``) and save it as a transformers directory (safetensors + tokenizer).

    Loading a GGUF dequantises every tensor and rebuilds the tokenizer (minutes for a 262k vocabulary); a directory
    written once here loads in seconds, for runs that load the same model many times.
    """
    out = check_output_dir(out, force=force)
    model, tok = load_model(path, dtype=dtype)
    plain = saveable_copy(model) if split_gguf(path)[1] else model
    tmp = out.with_name(f".{out.name}.tmp")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
