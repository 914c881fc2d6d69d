"""A fit's validation under torchrun: each rank evaluates its slice of the validation data, and every
rank logs the figures of the whole set.

In one process a fit's validation is ``evaluate`` on the validation data. Under torchrun each rank
takes a contiguous slice of it (arrays: ``tensor_split``; a Dataset: a ``Subset`` of it), computes
the logits of that slice alone, and the ranks add their sums (loss times samples, right
predictions, samples) in one all-reduce; the metrics of the whole set's outputs (auc, f1, rmse...)
gather every rank's logits and targets first, only when such a metric is asked for. Each rank
then does its share of the work, and every rank logs the same figures, those of one process up to
float rounding, which the callbacks that steer the fit (EarlyStopping, ReduceLROnPlateau) need to
decide alike. A DataLoader is used as given: with a ``DistributedSampler`` its batches are this
rank's share and are added up the same way (the sampler repeats a few items to even out the ranks'
shares; they then count twice); without one every rank evaluates all of it, as one process does.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from trainwell.data.streams import is_stream, stream_length
from trainwell.metrics import compute, needs_outputs
from trainwell.model.losses import Loss
from trainwell.train import distributed
from trainwell.train.inputs import logits_in_batches
from trainwell.train.streamed import BatchCheck, streamed_logits

Outputs = Callable[[], "tuple[torch.Tensor, torch.Tensor] | None"]


class ShardedValidation:
    """Loss and metrics of the whole validation set from this rank's ``outputs`` (its slice's logits and
    targets, None for a rank left without samples): one all-reduce of the sums, and a gather of the
    outputs when a metric needs them."""

    def __init__(self, loss: Loss, metrics: tuple[str, ...], outputs: Outputs):
        self.loss, self.metrics, self.outputs = loss, metrics, outputs

    def __call__(self) -> dict[str, float]:
        part = self.outputs()
        loss_sum = correct = count = 0.0
        if part is not None:
            logits, targets = part
            count = len(targets)
            loss_sum = float(self.loss(logits, targets)) * count
            if "accuracy" in self.metrics:
                correct = self.loss.correct(logits, targets).item()
        loss_sum, correct, count = distributed.sum_over_ranks(loss_sum, correct, count)
        results = {"loss": loss_sum / count}
        if "accuracy" in self.metrics:
            results["accuracy"] = correct / count
        if needs_outputs(self.metrics):
            gathered = distributed.gather_over_ranks(None if part is None else list(part))
            results.update(compute(self.metrics, self.loss, *gathered))
        return results


def sharded_validation(trainer: Any, data: Any, sharding: distributed.ProcessRank, batch_size: int, *,
                       forward: nn.Module) -> ShardedValidation | None:
    """The fit's validation on ``data`` (a checked pair of tensors, a Dataset or a DataLoader) for this rank of
    ``sharding``; None for a DataLoader without a DistributedSampler, which every rank evaluates whole."""
    model, loss = trainer.model, trainer.loss
    if not is_stream(data):
        x, y = (part.tensor_split(sharding.world_size)[sharding.rank] for part in data)
        outputs = (lambda: None) if len(x) == 0 else (lambda: (logits_in_batches(model, forward, x, batch_size), y))
        return ShardedValidation(loss, tuple(trainer.metrics), outputs)
    if isinstance(data, DataLoader):
        if not _has_distributed_sampler(data):
            return None
        share: Dataset | DataLoader = data
    else:
        bounds = torch.arange(stream_length(data, "validation data")).tensor_split(sharding.world_size)[sharding.rank]
        if len(bounds) == 0:
            return ShardedValidation(loss, tuple(trainer.metrics), lambda: None)
        share = Subset(data, range(int(bounds[0]), int(bounds[-1]) + 1))

    def outputs() -> tuple[torch.Tensor, torch.Tensor]:
        check = BatchCheck(model, forward, loss, trainer.device, "validation data")
        return streamed_logits(model, forward, share, batch_size, check)

    return ShardedValidation(loss, tuple(trainer.metrics), outputs)


def _has_distributed_sampler(loader: DataLoader) -> bool:
    return any(isinstance(sampler, DistributedSampler)
               for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)))
