"""torch.distributed for the recorder: rank and world, chunk partial sums gathered in chunk order, sums."""

from __future__ import annotations

import torch
import torch.distributed as dist

from langneuron_eval.core.counters import Accumulator
from langneuron_eval.errors import LangNeuronError


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) when running under torch.distributed (torchrun / accelerate launch), else (0, 1)."""

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def comm_device(world: int) -> torch.device:
    """Where collectives run: the current GPU under NCCL, else the CPU (gloo, or a single process)."""
    if world > 1:

        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_round(mine: list[torch.Tensor | None] | None, acc: Accumulator, world: int,
                 failure: Exception | None = None) -> list[list[torch.Tensor | None] | None]:
    """Every rank's chunk partial of this round, in rank (= chunk) order; None where a rank had no chunk.

    ``failure``: this rank's chunk stopped the run (non-finite activations); every rank then raises, the
    failing one its own message, so that no rank waits forever in the next collective."""
    if world == 1:
        if failure is not None:
            raise failure
        return [mine]

    device = comm_device(world)
    flag = torch.tensor([2 if failure is not None else 0 if mine is None else 1], dtype=torch.int64, device=device)
    flags = [torch.zeros_like(flag) for _ in range(world)]
    dist.all_gather(flags, flag)
    if failure is not None:
        raise failure
    stopped = [r for r, f in enumerate(flags) if int(f) == 2]
    if stopped:
        raise LangNeuronError(f"rank {stopped[0]} stopped the recording (see its message)")
    local = acc.stacked_chunk(mine, device)  # [L, 2, N]
    parts = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    return [list(p.unbind(0)) if int(f) else None for p, f in zip(parts, flags)]


def barrier(world: int) -> None:
    """Wait for every rank (no-op in a single process)."""
    if world > 1:
        dist.barrier()


def gather_objects(obj):
    """``obj`` of every rank, in rank order (small picklable values: the sentence stores' states)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_to(t: torch.Tensor, device: torch.device, slice_elems: int = 1 << 26) -> None:
    """Sum ``t`` over ranks in place; a tensor elsewhere than ``device`` travels there in slices."""

    if t.device == device:
        dist.all_reduce(t)
        return
    flat = t.view(-1)  # t is contiguous: every tensor passed here was built by this module
    for s in range(0, flat.numel(), slice_elems):
        part = flat[s: s + slice_elems].to(device)
        dist.all_reduce(part)
        flat[s: s + slice_elems].copy_(part)
