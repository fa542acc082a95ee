"""Calling ``lm_eval.simple_evaluate`` from Python on our tasks (used by ppl-matrix, the demo, the benchmark).

The CLI route (``lm_eval --model langneuron ...``) loads the model once per run. Sweeps such as the
perplexity matrix instead load one :class:`~langneuron_eval.lmeval.model.LangNeuronLM`, switch its
intervention with ``set_intervention`` and pass the *instance* to ``simple_evaluate``; the task
manager is built once, with only our task folder (indexing lm-eval's ~15k built-in tasks takes ~8 s).

Seeds are lm-eval's CLI defaults (python 0, numpy 1234, torch 1234, few-shot 1234), so a run here
samples exactly what ``lm_eval ... --seed 0,1234,1234,1234`` (the default) samples for the same
model, tasks, batch size and device.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval.plugin import register_model, tasks_dir

DEFAULT_SEEDS = (0, 1234, 1234, 1234)  # python, numpy, torch, few-shot: lm-eval's defaults
SEED_NAMES = ("python", "numpy", "torch", "fewshot")


def seeds_record(seeds: Sequence[int | None] = DEFAULT_SEEDS) -> dict[str, int | None]:
    """The seeds as outputs record them: ``{"python": 0, "numpy": 1234, "torch": 1234, "fewshot": 1234}``."""
    return dict(zip(SEED_NAMES, seeds))


def seeds_of(seed: int | None) -> tuple[int | None, ...]:
    """``lm_eval --seed N``: one integer sets the python, numpy, torch and few-shot seeds; ``None``, the defaults.

    ``bench-detector --seed`` and ``demo --seed`` pass theirs through here, so that their sampled generations
    (``lang_steer`` samples at temperature 0.8) are a different, reproducible draw for every seed.
    """
    if seed is None:
        return DEFAULT_SEEDS
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise LangNeuronError(f"seed must be an integer, got {seed!r}")
    return (seed,) * len(SEED_NAMES)


def make_task_manager(include_defaults: bool = False, include_path: str | Path | Sequence[str | Path] | None = None,
                      metadata: dict[str, Any] | None = None):
    """A ``TaskManager`` that knows our tasks (plus lm-eval's own with ``include_defaults=True``).

    ``metadata`` reaches every task's loader, as lm-eval's ``--metadata`` does: ``{"corpus": SPEC}`` points the
    ``lang_ppl_<lang>`` tasks at the user's held-out text (a corpus spec as ``langneuron record`` takes it).
    """
    from lm_eval.tasks import TaskManager


    extra = [] if include_path is None else ([include_path] if isinstance(include_path, (str, Path)) else list(include_path))
    ours = tasks_dir()
    paths = extra if ours.resolve() in {Path(p).resolve() for p in extra} else [ours, *extra]
    return TaskManager(include_path=paths, include_defaults=include_defaults, metadata=metadata)


def check_tasks(tasks: Sequence[str], task_manager: Any) -> None:
    """Raise one line naming the first task ``task_manager`` does not know (checked before loading a model)."""
    known = set(task_manager.all_tasks)
    missing = [t for t in tasks if t not in known]
    if missing:
        raise LangNeuronError(f"no lm-eval task {missing[0]}" + (f" (nor {len(missing) - 1} more)" if missing[1:] else "")
                              + " among langneuron_eval's tasks")


def load_model(pretrained: str | os.PathLike, neurons: str | os.PathLike | None = None, *, device: str = "cpu",
               batch_size: int | str = 1, dtype: str = "float32", **kwargs: Any):
    """Load ``pretrained`` once as a ``langneuron`` model (``kwargs``: intervention and ``hf`` arguments)."""
    # lazy: the model pulls in torch and lm-eval's HF model; listing tasks or building a task manager does not
    from langneuron_eval.lmeval.model import LangNeuronLM

    return LangNeuronLM(pretrained=str(pretrained), neurons=None if neurons is None else str(neurons),
                        device=device, batch_size=batch_size, dtype=dtype, **kwargs)


def evaluate(model: Any, tasks: Sequence[str], *, model_args: dict[str, Any] | str | None = None,
             limit: int | float | None = None, batch_size: int | str = 1, device: str = "cpu",
             task_manager: Any = None, seeds: Sequence[int | None] = DEFAULT_SEEDS, log_samples: bool = False,
             gen_kwargs: dict[str, Any] | None = None, bootstrap_iters: int = 1000,
             metadata: dict[str, Any] | None = None, environment: bool = True) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` on ``tasks`` with our tasks and model registered.

    Args:
        model: a model name (``"langneuron"``, ``"hf"``) with ``model_args``, or an ``LM`` instance.
        tasks: task or group names (ours, and lm-eval's if ``task_manager`` includes them).
        limit: documents per task (lm-eval takes the first ``limit``).
        seeds: python, numpy, torch and few-shot seeds (``None`` leaves one unseeded).
        bootstrap_iters: only used for lm-eval's bootstrapped metrics; means have closed-form stderr.
        metadata: task metadata, as lm-eval's ``--metadata`` (e.g. ``{"corpus": SPEC}``); it is given to the task
            manager built here, so it cannot be combined with a ``task_manager`` (build that one with it).
        environment: record lm-eval's environment report and git hash in the results. Both run subprocesses
            (about 0.3 s a call, several seconds on a busy machine); callers that keep only the scores pass False.
    """
    import lm_eval


    register_model()
    if task_manager is None:
        task_manager = make_task_manager(metadata=metadata)
    elif metadata:
        raise ValueError("pass metadata to make_task_manager() when giving a task_manager")
    random_seed, numpy_seed, torch_seed, fewshot_seed = seeds
    kwargs: dict[str, Any] = {}
    if isinstance(model, str):
        kwargs.update(model_args=model_args or {}, batch_size=batch_size, device=device)
    results = _probes(lm_eval.simple_evaluate, environment)(
        model=model, tasks=list(tasks), limit=limit, task_manager=task_manager, log_samples=log_samples,
        gen_kwargs=gen_kwargs, bootstrap_iters=bootstrap_iters, random_seed=random_seed,
        numpy_random_seed=numpy_seed, torch_random_seed=torch_seed, fewshot_random_seed=fewshot_seed, **kwargs)
    if results is None:  # not rank 0 under accelerate
        return {}
    return results


# lm-eval's environment report (torch's collect_env: subprocesses, 0.5-2 s a call), made once per process and working
# directory: what it reports (library versions, hardware) does not change while a process runs.
_ENV_REPORTS: dict[str, dict[str, Any]] = {}


def _probes(fn, environment: bool = True):
    """Run ``fn`` with lm-eval's git-hash probe silenced, and without its environment report unless ``environment``.

    lm-eval records ``git describe`` of the current directory; outside a git checkout git prints
    "fatal: not a git repository" to the terminal on every evaluation, which buried the demo's progress.
    """
    import functools
    import subprocess

    import lm_eval.evaluator as ev
    from lm_eval.loggers.utils import get_commit_from_path

    def git_hash():
        if not environment:
            return None
        try:
            return subprocess.check_output(["git", "describe", "--always"], stderr=subprocess.DEVNULL).strip().decode()
        except (subprocess.CalledProcessError, FileNotFoundError):
            return get_commit_from_path(os.getcwd())

    def env_info(results):
        if environment:
            key = os.getcwd()  # the report names the git hash of the working directory's parent
            if key not in _ENV_REPORTS:
                _ENV_REPORTS[key] = {}
                original_env_info(_ENV_REPORTS[key])
            results.update(copy.deepcopy(_ENV_REPORTS[key]))

    original_env_info = ev.add_env_info

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        original, ev.get_git_commit_hash, ev.add_env_info = ev.get_git_commit_hash, git_hash, env_info
        try:
            return fn(*args, **kwargs)
        finally:
            ev.get_git_commit_hash, ev.add_env_info = original, original_env_info

    return wrapper
