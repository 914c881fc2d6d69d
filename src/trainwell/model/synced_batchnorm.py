"""BatchNormalization's statistics over every rank's batch of a data-parallel step (``sync_batchnorm``).

Under DDP each rank normalizes by its own slice of the global batch; with ``sync_batchnorm`` the
mean and variance are those of the whole global batch, so a step computes what one process with
that batch computes (to float rounding), moving statistics included. trainwell's BatchNormalization
layers (:class:`~trainwell.model.modules.BatchNorm`, and ``ChannelBatchNorm`` after a Conv2D) do it
themselves, with two all-reduces of the per-channel sums in the forward pass, whose gradients are
all-reduced in the backward pass (autograd's chain rule through the sums, as
``torch.nn.SyncBatchNorm``'s backward does it). Not ``torch.nn.SyncBatchNorm``: it runs on GPUs only
(``SyncBatchNorm expected input tensor to be on GPU``, on CPU/gloo), its moving variance is the
unbiased one where trainwell's layers keep Keras' biased one, and it normalizes axis 1 where
trainwell's BatchNormalization of a sequence normalizes the last. These work on the CPU (gloo) and
on CUDA (NCCL) alike.

A fit turns the layers' flag on for its length (:func:`synchronized_batchnorm`); outside a fit, in
inference mode or in one process nothing changes and nothing is paid. torch's own BatchNorm modules
in a model are refused with ``sync_batchnorm`` (:func:`check_sync_batchnorm`), since they would go
unsynced: torch's ``SyncBatchNorm.convert_sync_batchnorm`` converts them (on GPUs).

One difference from one process remains: a rank whose share of a short last batch is empty
runs one sample with weight 0 (``ProcessRank.shard``), and that sample counts in the batch's
statistics; it happens only when the epoch's last batch has fewer samples than there are ranks.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from trainwell.errors import ConfigError


def over_ranks() -> bool:
    """Whether this process is one of several in a process group (the statistics then need the others)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        torch.distributed.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        torch.distributed.all_reduce(total)
        return total


def batch_norm_over_ranks(module: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """``module``'s batch normalization of ``x`` (channels on axis 1) in training, by the mean and biased
    variance of every rank's batch; the module's moving statistics updated by them (its own update:
    Keras' for trainwell's layers)."""
    axes = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    values = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    count = x.numel() // x.shape[1]
    sums = _SumOverRanks.apply(torch.cat([values.sum(axes, dtype=torch.float64),
                                          torch.tensor([count], dtype=torch.float64, device=x.device)]))
    total = float(sums[-1].detach())
    if total < 2:  # as F.batch_norm says it, of the global batch
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.size()} "
                         f"on each of {torch.distributed.get_world_size()} ranks")
    mean = (sums[:-1] / total).to(values.dtype)
    centered = values - mean.reshape(shape)
    variance = (_SumOverRanks.apply(centered.square().sum(axes, dtype=torch.float64)) / total).to(values.dtype)
    invstd = torch.rsqrt(variance + module.eps)
    y = centered * invstd.reshape(shape)
    if module.weight is not None:
        y = y * module.weight.reshape(shape) + module.bias.reshape(shape)
    module.update_moving_statistics(mean.detach(), invstd.detach(), module.count_batch())
    return y.to(x.dtype)


def _syncs_itself(module: nn.Module) -> bool:
    """trainwell's BatchNormalization layers (which have the ``synchronized`` flag), and torch's SyncBatchNorm."""
    return hasattr(type(module), "synchronized") or isinstance(module, nn.SyncBatchNorm)


def check_sync_batchnorm(sync_batchnorm: Any, model: nn.Module) -> bool:
    """``sync_batchnorm`` as a bool, refused unless it is one, or when ``model`` holds a torch BatchNorm
    module that would go unsynced."""
    if not isinstance(sync_batchnorm, bool):
        raise ConfigError(f"sync_batchnorm: must be true or false, got {sync_batchnorm!r}")
    if sync_batchnorm:
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not _syncs_itself(module):
                raise ConfigError(
                    f"sync_batchnorm: syncs trainwell's BatchNormalization layers, but {name or 'the model'} is "
                    f"torch's {type(module).__name__}; build the layer with trainwell's BatchNormalization, or "
                    "convert the model with torch.nn.SyncBatchNorm.convert_sync_batchnorm (GPUs only) and leave "
                    "sync_batchnorm off")
    return sync_batchnorm


@contextmanager
def synchronized_batchnorm(model: nn.Module, on: bool) -> Iterator[None]:
    """``with synchronized_batchnorm(model, True):`` around a fit: its BatchNormalization layers normalize
    by every rank's batch while in training mode; as they were after."""
    if not on:
        yield
        return
    check_sync_batchnorm(on, model)
    layers = [module for module in model.modules() if hasattr(type(module), "synchronized")]
    before = [layer.synchronized for layer in layers]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer, was in zip(layers, before):
            layer.synchronized = was
