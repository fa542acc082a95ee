"""Writing the corpus to disk as ``<out_dir>/<split>/<lang>.txt`` (atomic: temp file, then rename)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write one line per item (UTF-8, ``\\n``) via a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for line in lines:
                if "\n" in line:
                    raise ValueError("a corpus line contains a newline")
                fh.write(line + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n


def write_all(out_dir: str | os.PathLike, langs: Iterable[str], splits: Iterable[str],
              n_per_split: Mapping[str, int | None], get: Callable[[str, str, int | None], list[str]]
              ) -> dict[str, dict[str, int]]:
    root = Path(out_dir)
    counts: dict[str, dict[str, int]] = {}
    for split in splits:
        counts[split] = {}
        for lang in langs:
            counts[split][lang] = write_lines(root / split / f"{lang}.txt", get(lang, split, n_per_split.get(split)))
    return counts
