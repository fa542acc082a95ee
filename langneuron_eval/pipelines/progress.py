"""What our long commands print while they work: numbered step lines, one bar per step, lm-eval kept quiet.

``langneuron demo`` and ``bench-detector`` run dozens of lm-eval evaluations; each would print its own
"Running loglikelihood requests" bar and INFO lines, burying the few lines a newcomer needs. Commands use one
:class:`Progress` (a line per step of ours, and within a step a bar over its runs with the current run and an
ETA) and wrap their evaluations in :func:`quiet_lm_eval`, which silences lm-eval's bars and logs and restores
them afterwards, so that importing code (a notebook, a test) keeps its own settings.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO


class Progress:
    """Step lines ``[name k/N  12s] message`` on stderr; ``enabled=False`` prints nothing, ``bars=False`` no bars.

    ``total`` (the number of steps) may be ``None`` when it is not known up front; the line then shows
    only the elapsed time.
    """

    def __init__(self, name: str, total: int | None = None, enabled: bool = True, stream: TextIO | None = None,
                 bars: bool = True):
        self.name, self.total, self.enabled, self.bars = name, total, enabled, bars
        self.stream = stream
        self.done = 0
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, msg: str, runs: int = 0) -> RunBar:
        """Start the next step; ``runs`` > 0 gives it a bar that :meth:`RunBar.run` advances."""
        self.done += 1
        count = f" {self.done}/{self.total}" if self.total else ""
        self.print(f"[{self.name}{count} {self.elapsed():5.0f}s] {msg}")
        return RunBar(self, runs)

    def print(self, line: str) -> None:
        if self.enabled:
            print(line, file=self.stream or sys.stderr, flush=True)


class RunBar:
    """The runs of one step: a tqdm bar (what runs now, ETA) on a terminal, a line per run elsewhere."""

    def __init__(self, owner: Progress, runs: int) -> None:
        self.owner, self.runs, self.count = owner, runs, 0
        self.started = time.perf_counter()
        self.bar: Any = None
        stream = owner.stream or sys.stderr
        if owner.enabled and owner.bars and runs > 0 and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=runs, file=stream, leave=False, dynamic_ncols=True,
                            bar_format="  {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining} {postfix}")

    def run(self, label: str) -> None:
        """Announce the next run (``label``: what it computes); the bar counts the finished ones."""
        if self.count and self.bar is not None:
            self.bar.update(1)
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(label)
            return
        if not self.owner.bars:
            return
        seconds = time.perf_counter() - self.started
        eta = "" if self.count == 1 else f", ETA {seconds / (self.count - 1) * (self.runs - self.count + 1):.0f}s"
        self.owner.print(f"  [{self.count}/{self.runs}] {label} ({seconds:.0f}s elapsed{eta})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.runs - self.bar.n)
            self.bar.close()
            self.bar = None


def _silent_tqdm(cls: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        kwargs["disable"] = True
        return cls(*args, **kwargs)

    return make


@contextlib.contextmanager
def quiet_lm_eval(verbose: bool = False) -> Iterator[None]:
    """Silence lm-eval's progress bars and INFO/WARNING logs inside the block (unless ``verbose``), then restore.

    lm-eval's modules call ``tqdm(...)`` by the name they imported; those names are swapped for a factory that
    passes ``disable=True`` and put back on exit, as is the ``lm_eval`` logger's level. The bars of ``datasets``
    and ``transformers`` (model loading) are switched off through their own switches and back on afterwards.
    """
    if verbose:
        yield
        return
    import lm_eval.api.model
    import lm_eval.api.task
    import lm_eval.evaluator
    import lm_eval.models.huggingface  # noqa: F401  (the modules that draw bars, imported so they can be patched)
    from tqdm import tqdm

    logger = logging.getLogger("lm_eval")
    level = logger.level
    patched = [mod for name, mod in list(sys.modules.items())
               if name.startswith("lm_eval") and getattr(mod, "tqdm", None) is tqdm]
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as tf_logging

    datasets_bars, transformers_bars = ds_logging.is_progress_bar_enabled(), tf_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    tf_logging.disable_progress_bar()  # "Loading weights" on every model load
    logger.setLevel(logging.ERROR)
    for mod in patched:
        mod.tqdm = _silent_tqdm(tqdm)
    try:
        yield
    finally:
        for mod in patched:
            mod.tqdm = tqdm
        logger.setLevel(level)
        if datasets_bars:
            ds_logging.enable_progress_bar()
        if transformers_bars:
            tf_logging.enable_progress_bar()
