"""Writing files so that an interrupted or failed run never leaves a half-written or clobbered file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to replace an existing output unless the user asked for it with --force."""
    path = Path(path)
    if path.exists() and not force:
        raise LangNeuronError(f"{path} already exists; pass --force to overwrite it")
    if path.exists() and path.is_dir():
        raise LangNeuronError(f"{path} is a directory, expected a file path")
    for parent in path.parents:  # the nearest existing ancestor must be a directory we can create files in
        if parent.exists():
            if not parent.is_dir():
                raise LangNeuronError(f"cannot write {path}: {parent} is not a directory")
            break
    return path


def check_output_dir(path: str | os.PathLike, force: bool | None = None, hint: str = "pass --force to overwrite "
                     "its files or choose another --out") -> Path:
    """Refuse an output directory that is a file, or (``force=False``) one that already holds files.

    ``force=None`` accepts a non-empty directory (commands that check each output file themselves).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LangNeuronError(f"--out {path} exists and is not a directory")
    if force is False and path.exists() and any(path.iterdir()):
        raise LangNeuronError(f"{path} is not empty; {hint}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only if the block succeeds.

    The temporary file lives in the same directory so that ``os.replace`` is an atomic rename,
    and it is removed if the block raises (including KeyboardInterrupt).
    """
    path = check_writable(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)  # only now that something is about to be written
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp (and some writers) make 0600; outputs get the permissions a plain open() gives
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, force: bool = True) -> Path:
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, force: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), force)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and fixed separators, so equal content gives equal bytes and hashes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as ``None`` and tuples as lists, so strict JSON (``allow_nan=False``) takes it."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any, force: bool = True) -> Path:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    return write_text(path, text, force)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_readable(path: str | os.PathLike, what: str) -> Path:
    """Fail with one line naming the file when it is missing, a directory, unreadable or empty."""
    path = Path(path)
    try:
        if not path.exists():
            raise LangNeuronError(f"{what} not found: {path}")
        if path.is_dir():
            raise LangNeuronError(f"{what} {path} is a directory, expected a file")
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as e:
        raise LangNeuronError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if empty:
        raise LangNeuronError(f"{what} {path} is empty")
    return path


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON, turning every failure into a one-line error that names the file."""
    path = check_readable(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LangNeuronError(f"cannot read {what} {path}: {e.__class__.__name__}: {e}") from None
    if not text.strip():
        raise LangNeuronError(f"{what} {path} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LangNeuronError(f"{what} {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
