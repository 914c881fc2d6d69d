"""Data-parallel training under ``torchrun``: the few collective pieces the Trainer needs.

``torchrun --nproc_per_node=N`` (or several nodes) starts N copies of the same
command with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment.
:func:`init_from_env` joins them into one process group (gloo for CPU tensors, NCCL
for CUDA ones); from then on every Trainer in the process trains data-parallel:
the model is wrapped in ``DistributedDataParallel``, every rank draws the same
seeded permutation of the epoch and takes its own slice of each global batch (so
the ranks' shards are disjoint and their union is the epoch), and the epoch's loss
and accuracy sums are added over the ranks before they are logged. One step then
computes what one process computes with the same global batch, up to float
rounding. Only rank 0 writes files and prints (:func:`is_main_process`).

Without ``torchrun`` nothing here runs: the Trainer asks :func:`current` once per
fit and gets ``None``.
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator

import torch
from torch import nn

# rank 0's object on every rank: the callbacks' own collective (they sit below this package), used here too
from trainwell.callbacks.ranks import from_rank_zero
from trainwell.errors import ConfigError
from trainwell.train import rendezvous


@dataclass(frozen=True)
class ProcessRank:
    """This process's place in the group: ``rank`` of ``world_size``."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch_size(self, batch_size: int) -> int:
        """The per-rank batch: the global batch over the world size, which must divide it.

        >>> ProcessRank(rank=0, world_size=4).local_batch_size(32)
        8
        """
        if batch_size % self.world_size:
            raise ConfigError(f"train.batch_size {batch_size} is not divisible by the world size "
                              f"{self.world_size}; use a multiple of {self.world_size}")
        return batch_size // self.world_size

    def shard(self, batch: torch.Tensor) -> tuple[torch.Tensor, int, float]:
        """This rank's part of a global batch of indices: ``(indices, count, weight)``.

        Full batches split evenly. A short last batch splits as evenly as it can, and
        ``weight`` (the rank's count times the world size over the batch's length)
        scales the rank's mean loss so that DDP's average of the ranks' gradients is
        still the gradient of the global batch's mean. A rank left without samples
        runs one sample with weight 0, so that every rank takes part in each step.

        >>> ProcessRank(rank=1, world_size=2).shard(torch.arange(8))
        (tensor([4, 5, 6, 7]), 4, 1.0)
        >>> ProcessRank(rank=1, world_size=2).shard(torch.arange(3))
        (tensor([2]), 1, 0.6666666666666666)
        """
        part = batch.tensor_split(self.world_size)[self.rank]
        if len(part) == 0:
            return batch[:1], 0, 0.0
        return part, len(part), len(part) * self.world_size / len(batch)


def from_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` from torchrun's variables, or None outside torchrun."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return None
        return int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    except (KeyError, ValueError):
        raise ConfigError("WORLD_SIZE is set but RANK is missing or not an integer; start data-parallel "
                          "runs with torchrun --nproc_per_node=N") from None


def backend() -> str:
    """gloo for CPU tensors, plus NCCL for CUDA tensors when CUDA is available."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init_from_env(timeout: float | None = None) -> ProcessRank | None:
    """Join the process group torchrun describes (once); None when not under torchrun.

    On a GPU machine each process uses the GPU of its ``LOCAL_RANK``. ``timeout``: seconds a
    collective waits for the other ranks before it fails, for the group this call creates
    (default: torch's, 30 minutes).
    """
    waits = check_timeout(timeout)
    place = from_env()
    if place is None:
        return current()
    rank, world_size, local_rank = place
    if not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        store = rendezvous.store_of_this_attempt(rank, world_size, waits)
        torch.distributed.init_process_group(backend(), store=store, rank=rank, world_size=world_size, timeout=waits)
    return current()


MAX_TIMEOUT = 1e9  # seconds (about 30 years): a timedelta torch's C++ side can hold


def check_timeout(timeout: Any, what: str = "process_group_timeout") -> timedelta | None:
    """``timeout`` seconds as the timedelta init_process_group takes; None for torch's default; a
    ConfigError naming ``what`` unless it is a positive finite number."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError(f"{what}: must be a positive number of seconds (e.g. 1800), at most {MAX_TIMEOUT:g}, "
                          f"got {timeout!r}")
    return timedelta(seconds=timeout)


def local_rank() -> int | None:
    """This process's rank on its machine when it is one of several data-parallel processes: torchrun's
    ``LOCAL_RANK`` (known before the group is joined), else, in a group made by hand, ``LOCAL_RANK`` or
    the global rank; None in a single process."""
    group = current()
    if group is not None:
        return int(os.environ.get("LOCAL_RANK", group.rank))
    place = from_env()
    return None if place is None else place[2]


def current() -> ProcessRank | None:
    """The group this process belongs to, when there is one with more than one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    world_size = torch.distributed.get_world_size()
    return ProcessRank(rank=torch.distributed.get_rank(), world_size=world_size) if world_size > 1 else None


def is_main_process() -> bool:
    """True in a single process and on rank 0: the one process that writes files and prints."""
    context = current()
    return context is None or context.is_main


def shutdown(*, together: bool = False) -> None:
    """Leave the process group, if joined; ``together`` (a run that ended well): after a barrier. Why both and
    the garbage collected first: a fit's DDP wrapper, kept by reference cycles until the interpreter's teardown,
    held the group, and a gloo rank aborted at exit (1 run in 6 of two ranks before, none in 24 after)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if together:
            torch.distributed.barrier()
        gc.collect()
        torch.distributed.destroy_process_group()


@contextmanager
def process_group_from_env(timeout: float | None = None) -> Iterator[ProcessRank | None]:
    """``with process_group_from_env():`` around a run: joins torchrun's group (``timeout``: as
    :func:`init_from_env`'s) and leaves it after."""
    check_timeout(timeout)
    joined = from_env() is not None and not (torch.distributed.is_available() and torch.distributed.is_initialized())
    try:
        yield init_from_env(timeout)
    except BaseException:
        if joined:  # no barrier: the other ranks may never reach it
            shutdown()
        raise
    if joined:
        shutdown(together=True)


def shared_seed(seed: int) -> int:
    """Rank 0's ``seed``: every rank must draw the same permutation of the epoch."""
    value = torch.tensor([seed], dtype=torch.int64, device=_collective_device())
    torch.distributed.broadcast(value, src=0)
    return int(value.item())


def _collective_device() -> torch.device:
    """Where tensors for a collective must live: on the GPU for a group that is NCCL alone."""
    return torch.device("cuda") if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel: gradients averaged over the ranks in backward.

    DDP also copies rank 0's parameters and buffers to every rank when it is made.
    """
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def sum_over_ranks(*values: torch.Tensor | float) -> list[float]:
    """Each value added over every rank (one collective for all of them)."""
    context = current()
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if context is not None:
        tensor = tensor.to(_collective_device())
        torch.distributed.all_reduce(tensor)
    return tensor.cpu().tolist()


def gather_over_ranks(tensors: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
    """Every rank's ``tensors`` (an epoch's outputs and targets) joined along the first axis, on the CPU;
    None when no rank had any. In one process, the tensors as they are."""
    if current() is None:
        return tensors
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, None if tensors is None else [t.cpu() for t in tensors])
    parts = [part for part in gathered if part is not None]
    if not parts:
        return None
    return [torch.cat([part[i] for part in parts]) for i in range(len(parts[0]))]


def nonfinite_on_any_rank(loss: torch.Tensor) -> bool:
    """Whether ``loss`` (a scalar) is nan or infinite on this rank or any other.

    One all-reduce (MAX) of a 0/1 flag, on the loss's device, so that every rank takes the same
    decision (skip the batch or not) before any of them starts the backward pass, whose gradient
    all-reduce every rank must join. In one process, the loss's own check, with no collective.
    """
    flag = (~torch.isfinite(loss.detach())).to(torch.int32).reshape(1)
    if current() is not None:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def gather_object(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (one collective); in one process, ``[value]``."""
    if current() is None:
        return [value]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    """Wait until every rank gets here (nothing in one process): what follows happens after every rank's part."""
    if current() is not None:
        torch.distributed.barrier()


def decided_by_main(decide: Callable[[], Any]) -> Any:
    """``decide()`` run on rank 0 alone, and its result on every rank; in one process, ``decide()``.

    A decision that reads or changes the output folder (refuse a finished run, resume or start
    over) is made once, so no rank trains while another refuses. When ``decide`` raises, every
    rank raises that error (rank 0 its own; the others a copy), so they all stop together.
    """
    context = current()
    if context is None:
        return decide()
    outcome: tuple[bool, Any] | None = None
    if context.is_main:
        try:
            outcome = (True, decide())
        except Exception as error:  # every rank must hear of it before rank 0 raises it
            outcome = (False, error)
    ok, value = from_rank_zero(_picklable(outcome) if context.is_main else None)
    if not ok:
        if context.is_main:
            raise outcome[1]
        raise value
    return outcome[1] if context.is_main else value


def _picklable(outcome: tuple[bool, Any]) -> tuple[bool, Any]:
    """``outcome`` as it can be sent: an error that does not pickle goes as a RuntimeError with its message."""
    import pickle

    ok, value = outcome
    try:
        pickle.dumps(value)
    except Exception:
        if ok:
            raise
        value = RuntimeError(f"{type(value).__name__} on rank 0: {value}")
    return ok, value


def raised_together(run: Callable[[], Any]) -> Any:
    """``run()`` on every rank; when it raises on any rank, every rank raises (the lowest failing rank's error).

    For a step that may fail on one rank alone (rank 0's checks of the folders it writes to),
    so that no rank goes on into the training's collectives while another has stopped. In one
    process, ``run()``. One collective.
    """
    if current() is None:
        return run()
    result, failure = None, None
    try:
        result = run()
    except Exception as error:
        failure = error
    failures = gather_object(None if failure is None else _picklable((False, failure))[1])
    if failure is not None:
        raise failure
    first = next((error for error in failures if error is not None), None)
    if first is not None:
        raise first
    return result


def check_same_fit(settings: dict[str, Any]) -> None:
    """ConfigError on every rank when the ranks' fits differ in ``settings`` (their data's size, resume folder...).

    Every rank must call ``fit`` alike: a rank that resumes while another starts afresh, or
    that holds fewer samples, would wait in a collective the others never join, for the whole
    process-group timeout, and then fail far from the cause. One collective, once per fit.
    """
    if current() is None:
        return
    every = gather_object(settings)
    differ = [key for key in settings if any(rank[key] != every[0][key] for rank in every)]
    if differ:
        said = "; ".join(f"{key}: " + ", ".join(f"{rank[key]!r} on rank {index}" for index, rank in enumerate(every))
                         for key in differ)
        raise ConfigError(f"the ranks' fits differ ({said}): under torchrun every rank calls fit with the same "
                          "data and arguments (the same resume_dir on every rank)")
