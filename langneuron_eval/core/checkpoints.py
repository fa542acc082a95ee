"""Checkpoints of a recording run, so that an interrupted run continues with --resume to the same file."""

from __future__ import annotations

import json

from safetensors import safe_open
from safetensors.torch import save_file

from langneuron_eval.core.counters import Accumulator
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import atomic_path, canonical_json


class Checkpoint:
    """Periodic snapshot of a recording run, so an interrupted run can continue with --resume.

    ``acc`` is any accumulator with ``totals(device)``, ``n_tokens``, ``store`` and ``restore(tensors)``: the
    dense one (core/counters.py) or the mixture-of-experts one (core/moe_record.py).
    Snapshots are taken at chunk boundaries and the resumed run re-reads the same chunks, so the batches,
    and hence the floating-point additions, are exactly those of an uninterrupted run.
    """

    def __init__(self, path: str | None, every: int, key: dict) -> None:
        self.path, self.every, self.key = path, every, key

    def save(self, acc: Accumulator, progress: dict) -> None:
        """Snapshot the totals; the per-sentence means are already on disk: fsync them and keep their row count
        (a few bytes, so that checkpoints cost the same at every corpus size)."""
        tensors = {**acc.totals("cpu"), "n_tokens": acc.n_tokens}
        if acc.store is not None:
            progress = {**progress, "sentence_store": acc.store.checkpoint().to_dict()}
        with atomic_path(self.path, force=True) as tmp:
            save_file(tensors, str(tmp), metadata={"key": canonical_json(self.key),
                                                   "progress": canonical_json(progress)})

    def load(self, acc: Accumulator) -> dict:
        """Load the totals into ``acc``; returns the progress (with ``sentence_store``: the store's state)."""
        try:
            with safe_open(str(self.path), framework="pt") as f:
                meta = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise LangNeuronError(f"cannot read checkpoint {self.path} ({e}); delete it to start over") from None
        if json.loads(meta["key"]) != json.loads(json.dumps(self.key)):
            raise LangNeuronError(f"checkpoint {self.path} was made with another model, corpus or settings; "
                                  "delete it or drop --resume")
        acc.restore(tensors)  # the accumulator (dense, or core/moe_record.py's) knows its tensors
        return json.loads(meta["progress"])
