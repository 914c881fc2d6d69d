"""The epoch's order of the samples and its batches, each one rank's share under torchrun.

A fit draws each epoch's order from its own generator (seeded from the trainer's seed),
so the order does not depend on what else draws random numbers. Under ``torchrun`` every
rank draws the same order (rank 0's seed) and takes its own slice of each global batch
(:meth:`trainwell.train.distributed.ProcessRank.shard`); in one process a batch is the whole
global batch. The generator's state at an epoch's start is kept (:attr:`Batches.epoch_order`)
so that a state saved mid-epoch can redraw the epoch's order.
"""

from __future__ import annotations

from typing import Iterator

import torch

from trainwell.train import distributed


def order_generator(seed: int | None, sharding: distributed.ProcessRank | None, batch_size: int) -> torch.Generator:
    """The generator of a fit's epoch orders: seeded by ``seed`` (else a fresh seed), rank 0's for every rank
    (whose world size must divide the global ``batch_size``)."""
    order = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
    if sharding is not None:
        sharding.local_batch_size(batch_size)  # the world size must divide the global batch
        order.manual_seed(distributed.shared_seed(order.initial_seed()))  # one permutation for all ranks
    return order


#: About how much of the training inputs one gather fetches (see Batches._gathered_in_chunks).
_CHUNK_BYTES = 1 << 20


class Batches:
    """One fit's epochs of batches of ``(x, y)`` (and the samples' weights, when given), tensors on the device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool, order: torch.Generator,
                 device: torch.device, sharding: distributed.ProcessRank | None, weights: torch.Tensor | None = None):
        self.x, self.y, self.n = x, y, len(x)
        self.weights = weights  # one per sample (sample_weight times class_weight), or None
        self.batch_size, self.shuffle, self.order, self.device = batch_size, shuffle, order, device
        self.sharding = sharding
        self.epoch_order: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None

    def start_epoch(self) -> torch.Tensor:
        """Draw the epoch's order (keeping the generator's state before it); return it, on the device."""
        self.epoch_order = self.order.get_state()
        indices = torch.randperm(self.n, generator=self.order) if self.shuffle else torch.arange(self.n)
        self.indices = indices.to(self.device)
        return self.indices

    def __call__(self, first: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, int, float,
                                                         torch.Tensor | None]]:
        """The epoch's batches from sample ``first`` on: ``(start, xb, yb, count, weight, wb)`` for this rank.

        ``start`` is the global batch's position in the epoch, ``count`` the rank's number of
        samples, ``weight`` what its mean loss is scaled by (1.0 in one process; see
        :meth:`~trainwell.train.distributed.ProcessRank.shard`), ``wb`` the batch's sample weights (None
        without weights).
        """
        if self.sharding is None:
            yield from self._gathered_in_chunks(first)
            return
        for start in range(first, self.n, self.batch_size):
            batch = self.indices[start:start + self.batch_size]
            batch, count, weight = self.sharding.shard(batch)  # this rank's slice of the global batch
            wb = None if self.weights is None else self.weights.index_select(0, batch)
            yield start, self.x.index_select(0, batch), self.y.index_select(0, batch), count, weight, wb

    def _gathered_in_chunks(self, first: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, int, float,
                                                                  torch.Tensor | None]]:
        """One process's batches, gathered a chunk of batches at a time and handed out as slices of it.

        Why: gathering 32 shuffled rows of images costs about 18 us a batch, most of it waiting on memory
        row by row; one gather of a chunk of about 1 MiB lets the memory system fetch many rows at once
        (9 us a batch). The batches hold the same values: each is its own rows of a fresh chunk, so a
        model that changes its input in place changes only its own batch.
        """
        size = self.batch_size
        row_bytes = max(1, self.x[:1].numel() * self.x.element_size())
        chunk = size * max(1, min(64, _CHUNK_BYTES // (row_bytes * size)))
        for chunk_start in range(first, self.n, chunk):
            rows = self.indices[chunk_start:chunk_start + chunk]
            xs, ys = self.x.index_select(0, rows), self.y.index_select(0, rows)
            ws = None if self.weights is None else self.weights.index_select(0, rows)
            held = len(rows)
            for offset in range(0, held, size):
                end = offset + size
                wb = None if ws is None else ws[offset:end]
                yield chunk_start + offset, xs[offset:end], ys[offset:end], min(size, held - offset), 1.0, wb

    def more_after(self, start: int) -> bool:
        """Whether the batch at ``start`` is not the epoch's last."""
        return start + self.batch_size < self.n
