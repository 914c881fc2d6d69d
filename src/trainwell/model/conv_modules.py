"""The ``nn.Module`` classes of trainwell's image layers: convolution, pooling and batch norm on channels,
with Keras' padding.

Arrays are channels-first, as PyTorch's: a batch of images is ``(N, C, H, W)``. A
convolution given ``(N, H, W)`` (Fashion-MNIST's images as they arrive) reads them as one
channel, so no reshape is needed in front of it (Keras, channels-last, needs a
``Reshape((28, 28, 1))``).

``padding="same"`` has Keras' (TensorFlow's) meaning for every stride: the output has
``ceil(size / stride)`` rows and columns, and the padding that takes is split evenly with
the odd one at the bottom and right. PyTorch's own ``padding="same"`` allows stride 1
only, so these modules pad themselves: through the convolution's or pooling's own
(symmetric) padding where that is the same, else by ``F.pad`` first. Max pooling never
picks a padded value; average pooling leaves the padding out of the average, as Keras does.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.model.modules import BatchNorm
from trainwell.model.synced_batchnorm import batch_norm_over_ranks, over_ranks

Pair = tuple[int, int]
PADDINGS = ("valid", "same")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The padding (before, after) of one axis under Keras' ``"same"``: the extra one goes after.

    >>> same_padding(28, 3, 1), same_padding(28, 3, 2), same_padding(5, 2, 2)
    ((1, 1), (0, 1), (0, 1))
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """The output length of one axis: ``ceil(size / stride)`` for "same", ``(size - kernel) // stride + 1`` for "valid"."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


def _paddings(x: torch.Tensor, kernel: Pair, stride: Pair) -> tuple[Pair, Pair]:
    return same_padding(x.shape[-2], kernel[0], stride[0]), same_padding(x.shape[-1], kernel[1], stride[1])


class ActivatedConv2d(nn.Conv2d):
    """A Keras-style Conv2D: ``activation(conv(x) + b)`` in one module, with Keras' padding.

    ``padding`` is ``"valid"`` or ``"same"`` (any stride); a 3-D input ``(N, H, W)`` is one
    channel. ``kernel_regularizer`` and ``kernel_constraint`` are the attributes the Trainer
    looks for, as on :class:`~trainwell.model.modules.ActivatedLinear`.
    """

    def __init__(self, in_channels: int, filters: int, kernel_size: Pair, *, strides: Pair = (1, 1),
                 padding: str = "valid", bias: bool = True, activation: nn.Module | None = None,
                 kernel_regularizer=None, kernel_constraint=None):
        super().__init__(in_channels, filters, kernel_size, stride=strides, padding=0, bias=bias)
        self.keras_padding = padding
        self.activation = activation if activation is not None else nn.Identity()
        self.kernel_regularizer = kernel_regularizer
        self.kernel_constraint = kernel_constraint

    def extra_repr(self) -> str:
        extras = [f"keras_padding={self.keras_padding!r}"]
        extras += [f"{key}={value}" for key in ("kernel_regularizer", "kernel_constraint")
                   if (value := getattr(self, key)) is not None]
        return ", ".join([super().extra_repr(), *extras])

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the activation."""
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (N, H, W): one channel
        padding: Pair | int = 0
        if self.keras_padding == "same":
            (top, bottom), (left, right) = _paddings(x, self.kernel_size, self.stride)
            if top == bottom and left == right:
                padding = (top, left)
            else:
                x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.forward_logits(x))


class Pool2d(nn.Module):
    """Max or average pooling over the last two axes with Keras' ``"valid"``/``"same"`` padding.

    Works on ``(N, C, H, W)`` and on one-channel ``(N, H, W)`` alike (each plane on its own).
    """

    def __init__(self, kind: str, pool_size: Pair, strides: Pair, padding: str):
        super().__init__()
        if kind not in ("max", "average"):
            raise ValueError(f"kind must be 'max' or 'average', got {kind!r}")
        self.kind, self.pool_size, self.strides, self.padding = kind, tuple(pool_size), tuple(strides), padding

    def extra_repr(self) -> str:
        return f"{self.kind}, pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.max_pool2d if self.kind == "max" else F.avg_pool2d
        if self.padding == "valid":
            return pool(x, self.pool_size, self.strides)
        (top, bottom), (left, right) = _paddings(x, self.pool_size, self.strides)
        if top == bottom and left == right and 2 * top <= self.pool_size[0] and 2 * left <= self.pool_size[1]:
            if self.kind == "max":  # PyTorch's own padding is never picked by a max
                return F.max_pool2d(x, self.pool_size, self.strides, (top, left))
            return F.avg_pool2d(x, self.pool_size, self.strides, (top, left), count_include_pad=False)
        pads = (left, right, top, bottom)
        if self.kind == "max":
            return F.max_pool2d(F.pad(x, pads, value=-math.inf), self.pool_size, self.strides)
        # The average of the real values only: the padded window's mean over the mean of a padded mask.
        ones = x.new_ones((1,) * (x.dim() - 2) + tuple(x.shape[-2:]))
        return (F.avg_pool2d(F.pad(x, pads), self.pool_size, self.strides)
                / F.avg_pool2d(F.pad(ones, pads), self.pool_size, self.strides))


class GlobalAveragePool2d(nn.Module):
    """The mean of each channel over its rows and columns: ``(N, C, H, W) -> (N, C)``; ``(N, H, W) -> (N, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return x.mean(dim=(-2, -1))


class Reshape(nn.Module):
    """Reshape each sample to ``target_shape`` (the batch axis is kept), as Keras' Reshape."""

    def __init__(self, target_shape: Sequence[int]):
        super().__init__()
        self.target_shape = tuple(target_shape)

    def extra_repr(self) -> str:
        return f"target_shape={self.target_shape}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.target_shape)


class ChannelBatchNorm(nn.BatchNorm2d):
    """Batch normalization of each channel of ``(N, C, H, W)`` (statistics over N, H and W), as Keras'
    BatchNormalization after a Conv2D, with Keras' moving variance (the biased batch variance), as
    :class:`~trainwell.model.modules.BatchNorm` keeps it for Dense layers."""

    count_batch = BatchNorm.count_batch
    update_moving_statistics = BatchNorm.update_moving_statistics
    _scaled_eps = BatchNorm._scaled_eps
    synchronized = False  # as BatchNorm's: every rank's statistics, under a process group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats):
            return super().forward(x)
        self._check_input_dim(x)
        if self.synchronized and over_ranks():
            return batch_norm_over_ranks(self, x)
        if x.numel() // x.shape[1] < 2:  # as F.batch_norm says it
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.size()}")
        factor = self.count_batch()
        y, mean, invstd = torch.native_batch_norm(x, self.weight, self.bias, None, None, True, 0.0, self.eps)
        self.update_moving_statistics(mean, invstd, factor)
        return y
