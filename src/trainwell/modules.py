"""The few ``nn.Module`` classes trainwell adds to PyTorch's own.

Models built from a spec are ``nn.Sequential`` containers of these and of PyTorch's
modules, so they work with everything else in PyTorch (hooks, DDP, torch.compile).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ActivatedLinear(nn.Linear):
    """A Keras-style Dense layer: ``activation(x @ W.T + b)`` in one module.

    Keeping the activation inside the layer gives one module per spec layer (so the
    summary, freezing and layer reuse count layers as the chapter does) and lets the
    trainer take the pre-activation output (``forward_logits``) of a final softmax
    or sigmoid layer to compute the loss stably.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: nn.Module | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self.activation = activation if activation is not None else nn.Identity()

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the activation."""
        return F.linear(x, self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(F.linear(x, self.weight, self.bias))


class BatchNorm(nn.BatchNorm1d):
    """Batch normalization over the last axis, as Keras' BatchNormalization does.

    PyTorch's BatchNorm1d normalizes axis 1; for inputs with more than two axes this
    module folds the leading axes into the batch so the statistics are per feature of
    the last axis, whatever the rank.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x)
        flat = x.reshape(-1, x.shape[-1])
        return super().forward(flat).reshape(x.shape)
