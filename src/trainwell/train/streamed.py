"""A fit's batches from a torch Dataset or DataLoader: read a batch at a time, moved to the device per batch.

Arrays are preloaded on the device and sliced (:class:`trainwell.train.batches.Batches`); data
that need not fit in memory streams through a DataLoader instead. The loop cannot tell
them apart: both sources give ``start_epoch()``, ``(start, xb, yb, count, weight)`` per step
from a position, ``more_after(start)``, ``epoch_order`` and ``batch_size``, and both are
saved and restored with the fit (:mod:`trainwell.train.resume`).

* :class:`DatasetBatches`: a Dataset, batched by trainwell. Each epoch's order is drawn from
  the fit's order generator exactly as for arrays, so a ``TensorDataset(x, y)`` gives the
  same batches, and the same weights, as ``fit(x, y)``; under torchrun each rank loads only
  its share of each global batch (the arrays' shard, so the ranks together compute what one
  process computes). Resuming mid-epoch redraws the epoch's order and starts at the saved
  batch without reading the ones before it: exact, whatever ``num_workers``, unless the
  Dataset's ``__getitem__`` draws random numbers inside worker processes (their generators
  start afresh in a resumed run).
* :class:`LoaderBatches`: a user's DataLoader, used as given (its batch size, sampler,
  workers). The generators it draws from (torch's global one, its own ``generator`` and its
  sampler's) are saved with the fit; resuming mid-epoch reloads the epoch's batches before
  the saved one and drops them, so the rest of the epoch is the uninterrupted one's when the
  loader is deterministic given those generators. Under torchrun its sampler must be a
  ``DistributedSampler``, whose ``set_epoch`` is called at each epoch's start.

Each batch is checked as arrays are (:class:`BatchCheck`): inputs take the model's dtype and
must be finite, targets are the loss's, on the CPU before they move (no device sync); the
first batch is also checked against the model's output. A bad batch is one ArrayError
naming it, and for a Dataset the item.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from trainwell.data.arrays import model_dtype, model_inputs
from trainwell.data.streams import batch_parts, loader_batches, ordered_batches, stream_length
from trainwell.errors import ArrayError
from trainwell.model.losses import Loss
from trainwell.train import distributed
from trainwell.train.inputs import logits_shape

Batch = tuple[int, torch.Tensor, torch.Tensor, int, float]


class BatchCheck:
    """One collated batch as the model's inputs and the loss's targets on ``device``, checked as arrays are.

    ``what`` names the data ("training data"); ``finite=False`` lets non-finite inputs through (to
    batches that ``skip_nonfinite`` skips); ``targets=False`` keeps the inputs alone (prediction).
    """

    def __init__(self, model: nn.Module, forward: nn.Module, loss: Loss, device: torch.device, what: str, *,
                 finite: bool = True, targets: bool = True):
        self.model, self.forward, self.loss, self.device, self.what = model, forward, loss, device, what
        self.finite, self.targets, self.dtype = finite, targets, model_dtype(model)
        self.sample_shape: tuple[int, ...] | None = None  # the first batch's, which every later batch must have
        self.output_shape: tuple[int, ...] = ()

    def __call__(self, batch: Any, where: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        name = f"{self.what} {where}"
        x, y = batch_parts(batch, name, targets=self.targets)
        x = model_inputs(x, dtype=self.dtype, what=f"{name} x", finite=self.finite)
        if self.sample_shape is None:  # the first batch: does it fit the model?
            self.output_shape = logits_shape(self.model, self.forward, x.to(self.device), f"{name} x")
            self.sample_shape = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != self.sample_shape:
            raise ArrayError(f"{name} x: samples of shape {tuple(x.shape[1:])}, but the first batch's are "
                             f"{self.sample_shape}")
        if not self.targets:
            return x.to(self.device, non_blocking=True), None
        y = self.loss.prepare_targets(y, f"{name} y")
        if len(y) != len(x):
            raise ArrayError(f"{name}: {len(x)} inputs but {len(y)} targets")
        self.loss.check_targets(y, self.output_shape, f"{name} y")
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def _items_named(indices: list[int]) -> str:
    shown = ", ".join(map(str, indices[:4]))
    return f"dataset items {shown}{', ...' if len(indices) > 4 else ''}"


class DatasetBatches:
    """One fit's epochs of batches of a Dataset: the arrays' orders and shards, loaded by a DataLoader."""

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool, order: torch.Generator,
                 device: torch.device, sharding: distributed.ProcessRank | None, check: BatchCheck,
                 num_workers: int = 0):
        self.dataset, self.n = dataset, stream_length(dataset, check.what)
        self.batch_size, self.shuffle, self.order, self.device = batch_size, shuffle, order, device
        self.sharding, self.check, self.num_workers = sharding, check, num_workers
        self.epoch_order: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None
        first = list(range(min(2, self.n)))  # the first items, checked before the fit begins
        reader = DataLoader(dataset, batch_sampler=[first], generator=torch.Generator())
        self._checked(next(loader_batches(reader, check.what, name=lambda i: _items_named(first))), first, "batch 1")

    def start_epoch(self) -> torch.Tensor:
        """Draw the epoch's order as :class:`~trainwell.train.batches.Batches` does (it stays on the CPU)."""
        self.epoch_order = self.order.get_state()
        self.indices = torch.randperm(self.n, generator=self.order) if self.shuffle else torch.arange(self.n)
        return self.indices

    def _share(self, start: int) -> tuple[list[int], int, float]:
        batch = self.indices[start:start + self.batch_size]
        count, weight = len(batch), 1.0
        if self.sharding is not None:  # this rank's slice of the global batch, as for arrays
            batch, count, weight = self.sharding.shard(batch)
        return batch.tolist(), count, weight

    def __call__(self, first: int = 0) -> Iterator[Batch]:
        """The epoch's batches from sample ``first`` on, this rank's share of each (see ``Batches.__call__``)."""
        starts = range(first, self.n, self.batch_size)
        shares = [self._share(start) for start in starts]
        # Worker processes are seeded from the loader's generator: one per epoch, drawn from nothing global.
        seed = int.from_bytes(hashlib.sha256(self.epoch_order.numpy().tobytes()).digest()[:7], "big")
        loader = DataLoader(self.dataset, batch_sampler=[indices for indices, _, _ in shares],
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(seed))
        number = first // self.batch_size  # of the epoch's first batch here, from 0
        batches = loader_batches(loader, self.check.what,
                                 name=lambda i: f"batch {number + i + 1} ({_items_named(shares[i][0])})")
        for start, (indices, count, weight), batch in zip(starts, shares, batches):
            xb, yb = self._checked(batch, indices, f"batch {start // self.batch_size + 1}")
            yield start, xb, yb, count, weight, None

    def _checked(self, batch: Any, indices: list[int], where: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch`` checked; if it fails, its items one by one, so that the message names the bad item."""
        try:
            return self.check(batch, where)
        except ArrayError:
            for index in indices:
                item = torch.utils.data.default_collate([self.dataset[index]])
                self.check(item, f"item {index} ({where})")
            raise

    def more_after(self, start: int) -> bool:
        """Whether the batch at ``start`` is not the epoch's last."""
        return start + self.batch_size < self.n

    def state_dict(self) -> None:
        """Nothing beyond the order generator, which the fit saves (and ``epoch_order`` mid-epoch)."""
        return None

    def load_state_dict(self, state: Any, *, in_epoch: bool) -> None:
        pass


def _generators(loader: DataLoader) -> list[torch.Generator]:
    """The generators a DataLoader draws from besides torch's global one: its own and its sampler's."""
    found: list[torch.Generator] = []
    for owner in (loader, loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def _distributed_sampler(loader: DataLoader) -> DistributedSampler | None:
    for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        if isinstance(sampler, DistributedSampler):
            return sampler
    return None


class LoaderBatches:
    """One fit's epochs of a user's DataLoader, as it gives them; its generators saved with the fit."""

    def __init__(self, loader: DataLoader, *, order: torch.Generator, sharding: distributed.ProcessRank | None,
                 check: BatchCheck, epochs_done: Callable[[], int]):
        self.loader, self.order, self.check, self.epochs_done = loader, order, check, epochs_done
        self.steps = stream_length(loader, check.what)
        self.batch_size = loader.batch_size or 1  # a batch sampler's batches: positions count batches
        self.n = self.steps * self.batch_size
        self.sampler = _distributed_sampler(loader)
        if sharding is not None and self.sampler is None:
            raise ArrayError(f"{check.what}: under torchrun a DataLoader needs a DistributedSampler, so that each "
                             "process reads its own share; pass the Dataset itself and trainwell shards it")
        self.generators = _generators(loader)
        self.epoch_order: torch.Tensor | None = None
        self.epoch_start: dict[str, Any] | None = None  # the generators' states before the epoch's first batch
        self._resumed_start: dict[str, Any] | None = None

    def _states(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in self.generators]}

    def _set_states(self, states: dict[str, Any]) -> None:
        torch.set_rng_state(states["torch"])
        for generator, state in zip(self.generators, states["generators"]):
            generator.set_state(state)

    def start_epoch(self) -> None:
        """Set a DistributedSampler's epoch and keep the generators' states of the epoch's start."""
        self.epoch_order = self.order.get_state()
        if self.sampler is not None:
            self.sampler.set_epoch(self.epochs_done())
        self.epoch_start, self._resumed_start = self._resumed_start or self._states(), None

    def __call__(self, first: int = 0) -> Iterator[Batch]:
        """The loader's batches from batch ``first // batch_size`` on; the ones before it are read and dropped."""
        skip = first // self.batch_size
        now = self._states() if skip else None
        if skip:  # the generators as they were when the epoch began, then as they are now
            self._set_states(self.epoch_start)
        batches = loader_batches(self.loader, self.check.what)
        for _ in range(skip):
            next(batches, None)
        if now is not None:
            self._set_states(now)
        for number, batch in enumerate(batches, start=skip):
            xb, yb = self.check(batch, f"batch {number + 1}")
            yield number * self.batch_size, xb, yb, len(xb), 1.0, None

    def more_after(self, start: int) -> bool:
        return start // self.batch_size + 1 < self.steps

    def state_dict(self) -> dict[str, Any]:
        """The loader's generators now, and at the epoch's start (for a state saved mid-epoch)."""
        return {"generators": [g.get_state() for g in self.generators], "epoch_start": self.epoch_start}

    def load_state_dict(self, state: dict[str, Any], *, in_epoch: bool) -> None:
        for generator, saved in zip(self.generators, state["generators"]):
            generator.set_state(saved)
        self._resumed_start = state["epoch_start"] if in_epoch else None


def streamed_batches(data: Dataset | DataLoader, batch_size: int, *, shuffle: bool, order: torch.Generator,
                     device: torch.device, sharding: distributed.ProcessRank | None, check: BatchCheck,
                     num_workers: int, epochs_done: Callable[[], int]) -> DatasetBatches | LoaderBatches:
    """The source of a fit's batches for a Dataset (batched by trainwell) or a DataLoader (as given)."""
    if isinstance(data, DataLoader):
        return LoaderBatches(data, order=order, sharding=sharding, check=check, epochs_done=epochs_done)
    return DatasetBatches(data, batch_size, shuffle=shuffle, order=order, device=device, sharding=sharding,
                          check=check, num_workers=num_workers)


@torch.no_grad()
def streamed_logits(model: nn.Module, forward: nn.Module, data: Dataset | DataLoader, batch_size: int,
                    check: BatchCheck) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``forward``'s logits of every batch of ``data`` in order, in evaluation mode, and the targets
    (None when ``check`` keeps inputs alone)."""
    was_training = model.training
    logits, targets = [], []
    try:
        for number, batch in enumerate(ordered_batches(data, batch_size, check.what)):
            xb, yb = check(batch, f"batch {number + 1}")
            model.eval()  # the first batch's check restores the mode it found
            logits.append(forward(xb))
            if yb is not None:
                targets.append(yb)
    finally:
        model.train(was_training)
    if not logits:
        raise ArrayError(f"{check.what}: no samples")
    return torch.cat(logits), torch.cat(targets) if targets else None
