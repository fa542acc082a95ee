"""The ``langneuron`` model for lm-evaluation-harness: ``hf`` plus a language-neuron intervention.

``LangNeuronLM`` is lm-eval's ``HFLM`` with three methods replaced: ``_model_call`` (every
log-likelihood forward pass), ``_model_generate`` (every ``generate`` call, whose prefill and
decoding steps all pass through the hooked modules; its loop, :mod:`langneuron_eval.lmeval.decoding`, drops
finished rows from the batch) and ``loglikelihood_rolling`` (perplexity tasks),
which runs :class:`~langneuron_eval.lmeval.engine.RollingEngine`: lm-eval's rolling windows of all
documents batched together, and the log-likelihood of the targets without full-vocabulary logits for the
whole batch. It agrees with ``hf`` to 1e-6 relative (float32; the softmax is always taken in float32, where
``hf`` takes it in the model's dtype). Inside :meth:`LangNeuronLM.task_interventions` each generation request
carries its own task's intervention, so the generations of many steering tasks (one target language and setting
each) share ``generate`` calls. Everything ``hf`` accepts is passed through, so batching, devices,
dtypes, chat templates and ``accelerate launch`` data parallelism behave as with ``--model hf`` (with
several processes, rolling log-likelihoods take ``hf``'s own path); with ``mode=none`` no hook is installed.

Usage::

    lm_eval --model langneuron \\
        --model_args pretrained=DIR,neurons=neurons.json,mode=activate,lang=zh,value=median \\
        --tasks lang_steer_zh

The intervention (mode, languages, value, strength, positions, deactivated languages, neuron file
path, its sha256 and detector) is added to the results JSON under ``config.langneuron`` through
``get_model_info``, which ``lm_eval.simple_evaluate`` merges into ``results["config"]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from langneuron_eval import __version__
from langneuron_eval.core.fingerprint import NeuronSites
from langneuron_eval.core.interventions import Intervention, InterventionSpec, LanguageEdit, RowInterventions
from langneuron_eval.core.modeling import check_model_path, non_text_token_ids, split_gguf
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.sites import resolve_for_file
from langneuron_eval.core.templates import check_template
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import sha256_file
from langneuron_eval.lmeval.decoding import CompactDecoding, RowScope
from langneuron_eval.lmeval.engine import Budget, DocScore, RollingEngine, RollingSpec, encode_once


def _flag(value: Any, name: str) -> bool:
    """A model-args boolean: ``true``/``1``/``yes`` or ``false``/``0``/``no``/``none`` (any case); else one line."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "none"):
        return False
    raise LangNeuronError(f"{name} must be true or false, got {value!r}")


def _use_cpu_processes(device: Any) -> None:
    """Under ``torchrun`` / ``accelerate launch --multi_gpu`` without GPUs, make Accelerate use gloo on the CPU.

    Accelerate only builds a CPU process group when told to (``ACCELERATE_USE_CPU``, set by
    ``accelerate launch --cpu``, whose multi-process mode needs MPI); otherwise each process runs alone.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if str(device or "").startswith("cpu") or not torch.accelerator.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "true"


class _RowText(str):
    """A request's context that carries its row condition through lm-eval's sorting and batching.

    ``HFLM.generate_until`` sorts and batches the ``(context, gen_kwargs)`` tuples it is given and passes each
    batch's contexts, unchanged, to :meth:`LangNeuronLM.tok_batch_encode`; the tag tells that call which
    condition each row of the coming ``generate`` call has, whatever order lm-eval chose.
    """

    condition: int

    def __new__(cls, text: str, condition: int) -> _RowText:
        obj = super().__new__(cls, text)
        obj.condition = condition
        return obj


@dataclasses.dataclass
class _TaskPlan:
    """What :meth:`LangNeuronLM.task_interventions` installs: task -> condition index, and the per-row hooks."""

    index: dict[str, int]  # task name -> condition (0: no intervention)
    specs: dict[str, InterventionSpec]
    rows: RowInterventions
    pending: list[int] | None = None  # the row conditions of the batch tok_batch_encode saw last


@register_model("langneuron")
class LangNeuronLM(HFLM):
    """``hf`` with language neurons deactivated, activated or scaled on every forward pass.

    Args:
        pretrained: model directory or hub id (as for ``hf``).
        neurons: neuron file written by ``langneuron detect`` (JSON); needed unless ``mode=none``.
        mode: none | deactivate | activate | scale.
        lang: target language(s) of ``mode``, several joined with ``+``.
        value: activation value for ``activate``: mean | median | pNN | a number.
        strength: multiplies the value (``activate``) or the activation (``scale``).
        positions: all | generated (see ``langneuron_eval.core.interventions``).
        deactivate: languages joined with ``+`` to zero before ``mode`` is applied, or ``others``
            (every language of the file except ``lang``: LAPE-style "activate the target,
            deactivate the rest").
        suppress_non_text: ban special tokens of another modality (image/audio placeholders such as
            Gemma 3's ``<start_of_image>``) while generating (default true; ``false`` samples them).
        gguf_file: with ``pretrained=DIR``, a GGUF file in DIR (``pretrained=DIR/FILE.gguf`` works too):
            dequantised on load, tokenizer from the same file (needs ``pip install 'langneuron-eval[gguf]'``).
        compact_generation: generation drops each row from its batch once it is finished
            (:mod:`langneuron_eval.lmeval.decoding`; default true, ``false`` keeps ``generate``'s own loop).
        **kwargs: everything ``hf`` accepts.
    """

    def __init__(self, pretrained: Any, neurons: str | os.PathLike | None = None, mode: Any = "none",
                 lang: Any = None, value: Any = "mean", strength: Any = 1.0, positions: Any = "all",
                 deactivate: Any = None, suppress_non_text: Any = True, act_module: Any = None,
                 down_module: Any = None, compact_generation: Any = True, **kwargs: Any) -> None:
        spec = InterventionSpec.from_args(mode, lang, value, strength, positions, deactivate)
        # module-path templates with {layer}; without them the neuron file's own template or discovery
        self._site_modules = {site: check_template(str(t)) for site, t in
                              (("act_out", act_module), ("down_in", down_module)) if t not in (None, "")}
        neuron_file, neuron_path = self._load_neurons(neurons, spec)
        suppress, self._compact = _flag(suppress_non_text, "suppress_non_text"), _flag(compact_generation,
                                                                                      "compact_generation")
        if isinstance(pretrained, (str, os.PathLike)):
            # pretrained=FILE.gguf is split into the folder and gguf_file=NAME, as transformers wants them
            pretrained, gguf_file = split_gguf(pretrained, kwargs.get("gguf_file"))
            check_model_path(pretrained, gguf_file)
            if gguf_file:
                kwargs["gguf_file"] = gguf_file
        _use_cpu_processes(kwargs.get("device"))
        super().__init__(pretrained=pretrained, **kwargs)
        self._suppress = non_text_token_ids(self.tokenizer) if suppress else []  # e.g. Gemma 3's <start_of_image>
        self.decoding_stats: dict[str, Any] = {"row_steps": 0, "row_steps_unshrunk": 0, "fallbacks": []}
        self._adopt_cpu_data_parallel()
        self.intervention: Intervention | None = None
        self._neurons: NeuronFile | None = None
        self._neuron_path: str | None = None
        self._neuron_sha256: str | None = None
        self._spec = InterventionSpec()
        self._plan: _TaskPlan | None = None
        self._install(spec, neuron_file, neuron_path)

    def _adopt_cpu_data_parallel(self) -> None:
        """Shard documents over CPU processes launched by ``torchrun`` / ``accelerate launch``.

        ``hf`` counts CUDA devices to decide on data parallelism, so on a machine without GPUs every
        launched process evaluates *all* documents as rank 0 and the work is duplicated. When an
        ``Accelerator`` with several processes exists and the model sits on the CPU, take rank and world
        size from it; lm-eval then splits the documents, gathers them with gloo and writes on rank 0.
        """
        acc = getattr(self, "accelerator", None)
        if acc is None or acc.num_processes <= 1 or self._world_size > 1 or self.device.type != "cpu":
            return
        self._rank, self._world_size = acc.process_index, acc.num_processes

    # ------------------------------------------------------------------ intervention set-up
    @staticmethod
    def _load_neurons(neurons: Any, spec: InterventionSpec) -> tuple[NeuronFile | None, str | None]:
        if neurons is None or neurons == "":
            if spec.needs_neurons:
                what = f"mode={spec.mode}" if spec.mode != "none" else "deactivate="
                raise LangNeuronError(f"{what} needs neurons=<neuron file from `langneuron detect`>")
            return None, None
        path = str(Path(str(neurons)).expanduser().resolve())
        nf = NeuronFile.load(path)
        spec.check_against(nf, path)
        return nf, path

    def _install(self, spec: InterventionSpec, neurons: NeuronFile | None, path: str | None) -> None:
        # Built even for mode=none when a file is given: the Intervention checks the file's shape.
        iv = None
        if neurons is not None:
            sites = resolve_for_file(self.model, neurons.fingerprint, self._site_modules)
            iv = Intervention(self.model, neurons, spec.edits(neurons), positions=spec.positions, sites=sites)
        self.intervention = iv
        self._spec = spec
        if path != self._neuron_path:
            self._neuron_sha256 = sha256_file(path) if path else None
        self._neurons, self._neuron_path = neurons, path

    def set_intervention(self, mode: Any = "none", lang: Any = None, value: Any = "mean", strength: Any = 1.0,
                         positions: Any = "all", deactivate: Any = None,
                         neurons: str | os.PathLike | None = None) -> None:
        """Switch the intervention without reloading the model (used by ``langneuron ppl-matrix``).

        ``neurons=None`` keeps the current neuron file.
        """
        spec = InterventionSpec.from_args(mode, lang, value, strength, positions, deactivate)
        if neurons is None and self._neurons is not None:
            spec.check_against(self._neurons, str(self._neuron_path))
            self._install(spec, self._neurons, self._neuron_path)
        else:
            self._install(spec, *self._load_neurons(neurons, spec))

    @property
    def neuron_file(self) -> NeuronFile | None:
        return self._neurons

    @property
    def spec(self) -> InterventionSpec:
        return self._spec

    def _active(self) -> Intervention | None:
        iv = self.intervention
        return iv if iv is not None and iv.active else None

    # ------------------------------------------------------------------ the two wrapped calls
    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        iv = self._active()
        if iv is None:
            return super()._model_call(inps, attn_mask, labels)
        with iv:
            return super()._model_call(inps, attn_mask, labels)

    def _compact_loop(self, generation_kwargs: dict[str, Any], row_scope: RowScope | None = None) -> bool:
        """Hand the ``generate`` call to :class:`CompactDecoding` (rows leave the batch once finished); whether it was.

        Not with a thinking-token setting: lm-eval then keeps the text after the thinking block, which a stop
        string inside the thinking must not end.
        """
        if not self._compact or self.think_end_token is not None or "custom_generate" in generation_kwargs:
            return False
        generation_kwargs["custom_generate"] = CompactDecoding(row_scope, self.decoding_stats)
        return True

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str],
                        **generation_kwargs: Any) -> torch.Tensor:
        if self._suppress and "suppress_tokens" not in generation_kwargs:
            generation_kwargs["suppress_tokens"] = self._suppress  # e.g. Gemma 3's <start_of_image>
        if self._plan is not None and self._plan.pending is not None:
            return self._generate_rows(context, max_length, stop, **generation_kwargs)
        self._compact_loop(generation_kwargs)
        iv = self._active()
        if iv is None:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        with iv, iv.generating():
            return super()._model_generate(context, max_length, stop, **generation_kwargs)

    # ------------------------------------------------------------------ perplexity through the engine
    def rolling_engine(self) -> RollingEngine:
        """The engine behind ``loglikelihood_rolling`` (one per model; its ``stats`` add up over calls).

        An integer ``batch_size`` caps the windows per forward pass; ``auto`` leaves it to the engine's memory
        budget (:class:`~langneuron_eval.lmeval.engine.Budget`).
        """
        spec = RollingSpec(int(self.prefix_token_id), int(self.max_length))
        engine = getattr(self, "_engine", None)
        if engine is None or engine.spec != spec:
            rows = self.batch_size if isinstance(self.batch_size, int) else None
            engine = self._engine = RollingEngine(self.model, spec, Budget(batch_size=rows), device=self.device,
                                                  autocast_dtype=self.mixed_precision_dtype)
        return engine

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """lm-eval's rolling log-likelihood of each request's text, under the current intervention."""
        self._refuse_planned(requests, "rolling log-likelihood")
        # Several processes: lm-eval hands each rank its own share of requests and every rank holds a whole model
        # (data parallelism; no collective runs inside a forward pass), so each rank scores its share alone.
        if self.backend != "causal":
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        strings = [req.args[0] for req in requests]
        iv = self._active()
        scores = self.rolling_engine().score(encode_once(strings, self.tok_encode),
                                             row_context=lambda _rows: iv if iv is not None else contextlib.nullcontext())
        for string, score in zip(strings, scores):
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), score.loglikelihood)
        return [score.loglikelihood for score in scores]

    def score_conditions(self, texts: Sequence[str], conditions: Sequence[Hashable],
                         edits: dict[Hashable, Sequence[LanguageEdit]], on_batch: Any = None) -> list[DocScore]:
        """Rolling log-likelihood of ``texts[i]`` under ``edits[conditions[i]]``, all conditions in one engine call.

        Rows of one batch carry different interventions (:class:`RowInterventions`), each text is tokenised
        once, the model is not reloaded: a perplexity matrix's K+1 passes become one. ``on_batch(done, total)``
        is called after each forward pass with the windows scored so far. Edits apply at every position.
        """
        order = list(dict.fromkeys(conditions))
        missing = [c for c in order if c not in edits]
        if missing:
            raise LangNeuronError(f"no edits given for condition(s) {missing}")
        if any(edits[c] for c in order) and self._neurons is None:
            raise LangNeuronError("scoring under interventions needs a model loaded with neurons=<neuron file>")
        row_context = None
        if any(edits[c] for c in order):
            riv = RowInterventions(self.model, self._neurons, [tuple(edits[c]) for c in order], sites=self._sites())
            index = {c: k for k, c in enumerate(order)}
            row_context = lambda rows: riv.rows([index[c] for c in rows])  # noqa: E731
        return self.rolling_engine().score(encode_once(texts, self.tok_encode), list(conditions),
                                           row_context=row_context, on_batch=on_batch)

    def _sites(self) -> NeuronSites:
        """The neuron file's sites in this model (those of the installed intervention when there is one)."""
        if self.intervention is not None:
            return self.intervention.sites
        return resolve_for_file(self.model, self._neurons.fingerprint if self._neurons else None, self._site_modules)

    @property
    def row_conditions_supported(self) -> bool:
        """Whether rows of one batch can carry different interventions (not yet for mixture-of-experts files)."""
        return self._neurons is None or self._sites().moe is None

    # ------------------------------------------------------------------ one intervention per task while generating
    @contextlib.contextmanager
    def task_interventions(self, by_task: Mapping[str, InterventionSpec]) -> Iterator[None]:
        """Generate every request of task ``T`` under ``by_task[T]``, the rows of all tasks batched together.

        For a steering sweep over target languages (``lang_steer_<L>`` under "activate L"), one lm-eval pass over
        all the tasks inside this block replaces one pass per language: lm-eval batches the requests of every
        task with the same generation settings, and each row of a ``generate`` call is edited by its own task's
        intervention (:class:`RowInterventions`, the row's condition read from the request's ``task_name``).
        Requests of tasks not in ``by_task`` generate without intervention. Every spec must share ``positions``
        (``all`` or ``generated``); the model's own intervention must be ``mode=none`` (the two would compound).
        Log-likelihood requests of a task in ``by_task`` are refused: only generation is batched this way.

        What is identical to one pass per task: greedy outputs, row by row (each row's edits and prompt are the
        same; only floating-point results of a batched matrix product may differ in the last bits, which can flip
        an exact tie). Sampled outputs are not: lm-eval seeds torch once per pass and ``generate`` draws each
        step's tokens for the whole batch from one random stream, so which numbers a row receives depends on the
        batch's composition. The samples are as random and follow the same distribution, but not the same draws.
        """
        if self._plan is not None:
            raise LangNeuronError("task_interventions blocks do not nest")
        if self._active() is not None:
            raise LangNeuronError("task_interventions needs the model's own intervention at mode=none "
                                  "(call set_intervention(mode='none') first)")
        specs = dict(by_task)
        positions = {spec.positions for spec in specs.values()}
        if len(positions) > 1:
            raise LangNeuronError(f"per-task interventions must share positions, got {sorted(positions)}")
        conditions: list[tuple[LanguageEdit, ...]] = [()]
        for task, spec in specs.items():
            if spec.needs_neurons and self._neurons is None:
                raise LangNeuronError(f"task {task}: an intervention needs a model loaded with neurons=<neuron file>")
            if self._neurons is not None:
                spec.check_against(self._neurons, str(self._neuron_path))
            conditions.append(tuple(spec.edits(self._neurons)))
        rows = RowInterventions(self.model, self._neurons, conditions, positions=positions.pop() if positions else "all",
                                sites=self._sites())
        self._plan = _TaskPlan({task: k + 1 for k, task in enumerate(specs)}, specs, rows)
        try:
            yield
        finally:
            self._plan = None

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """``hf``'s ``generate_until``; inside :meth:`task_interventions` each context is tagged with its condition."""
        plan = self._plan
        if plan is None:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        tagged = [dataclasses.replace(req, arguments=(_RowText(req.args[0], plan.index.get(req.task_name, 0)),
                                                      *req.args[1:]))
                  for req in requests]
        try:
            return super().generate_until(tagged, disable_tqdm=disable_tqdm)
        finally:
            plan.pending = None

    def _generate_rows(self, context: torch.Tensor, max_length: int, stop: list[str],
                       **generation_kwargs: Any) -> torch.Tensor:
        """One ``generate`` call whose row ``r`` is edited by the condition ``tok_batch_encode`` recorded for it."""
        plan = self._plan
        assert plan is not None and plan.pending is not None
        conds, plan.pending = plan.pending, None
        if len(conds) != context.shape[0]:
            raise LangNeuronError(f"{context.shape[0]} prompts to generate from but {len(conds)} row conditions")
        if self._compact_loop(generation_kwargs, row_scope=lambda rows: plan.rows.rows([conds[r] for r in rows])):
            with plan.rows.generating():  # the loop enters the rows' conditions, and again as the batch shrinks
                return super()._model_generate(context, max_length, stop, **generation_kwargs)
        with plan.rows.rows(conds), plan.rows.generating():
            return super()._model_generate(context, max_length, stop, **generation_kwargs)

    def _refuse_planned(self, requests: Sequence[Any], what: str) -> None:
        plan = self._plan
        if plan is None:
            return
        steered = sorted({req.task_name for req in requests if plan.index.get(req.task_name, 0)})
        if steered:
            raise LangNeuronError(f"task_interventions apply to generation only; {what} requests of "
                                  f"{', '.join(steered)} cannot be scored under them")

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        self._refuse_planned(requests, "log-likelihood")
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def tok_batch_encode(self, strings: list[str], padding_side: str = "left", left_truncate_len: int | None = None,
                         truncation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``hf``, except that a batch of empty prompts starts from the BOS (prefix) token.

        Kojima et al.'s unconditional generation prompts with BOS only. Tokenizers that add BOS
        (Llama, XGLM) already encode ``""`` as ``[BOS]``; for those that add nothing (GPT-2, Qwen,
        BLOOM) ``hf`` would call ``generate`` on an empty tensor and fail, so only that case changes.
        """
        ids, mask = super().tok_batch_encode(strings, padding_side=padding_side,
                                             left_truncate_len=left_truncate_len, truncation=truncation)
        if self._plan is not None and strings and all(isinstance(s, _RowText) for s in strings):
            self._plan.pending = [s.condition for s in strings]  # the next generate call's rows, in this order
        if ids.shape[1] == 0:
            ids = torch.full((len(strings), 1), int(self.prefix_token_id), dtype=torch.long)
            mask = torch.ones_like(ids)
        return ids, mask

    # ------------------------------------------------------------------ provenance
    def intervention_info(self, spec: InterventionSpec | None = None) -> dict[str, Any]:
        """What ``results["config"]["langneuron"]`` records, enough to reproduce the intervention.

        ``spec``: describe that intervention (on this model and neuron file) instead of the installed one; a
        pass inside :meth:`task_interventions` records each task's this way.
        """
        spec, nf = spec or self._spec, self._neurons
        info: dict[str, Any] = {
            "mode": spec.mode,
            "lang": list(spec.langs),
            "value": spec.value,
            "strength": spec.strength,
            "positions": spec.positions,
            "deactivate": list(spec.deactivated(nf)),
            "deactivate_arg": "+".join(spec.deactivate) or None,
            "neurons": self._neuron_path,
            "neurons_sha256": self._neuron_sha256,
            "langneuron_eval_version": __version__,
        }
        if nf is not None:
            info.update({
                "neurons_content_sha256": nf.sha256(),
                "detector": nf.detector,
                "detector_params": nf.params,
                "site": nf.fingerprint.site,
                "neuron_counts": nf.counts(),
            })
        else:
            info.update({"neurons_content_sha256": None, "detector": None, "detector_params": {}, "site": None,
                         "neuron_counts": {}})
        return info

    def get_model_info(self) -> dict[str, Any]:
        info = super().get_model_info()
        info["langneuron"] = self.intervention_info()
        if self._plan is not None:
            info["langneuron"]["per_task"] = {task: self.intervention_info(spec)
                                              for task, spec in self._plan.specs.items()}
        return info

