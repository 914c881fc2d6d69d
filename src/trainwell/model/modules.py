"""The few ``nn.Module`` classes trainwell adds to PyTorch's own.

Models built from a spec are ``nn.Sequential`` containers of these and of PyTorch's
modules, so they work with everything else in PyTorch (hooks, DDP, torch.compile).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.model.activations import activation_name
from trainwell.model.synced_batchnorm import batch_norm_over_ranks, over_ranks


class ActivatedLinear(nn.Linear):
    """A Keras-style Dense layer: ``activation(x @ W.T + b)`` in one module.

    Keeping the activation inside the layer gives one module per spec layer (so the
    summary, freezing and layer reuse count layers as the chapter does) and lets the
    trainer take the pre-activation output (``forward_logits``) of a final softmax
    or sigmoid layer to compute the loss stably.

    ``kernel_regularizer`` (a penalty added to the loss) and ``kernel_constraint``
    (applied after each optimizer step) are plain attributes the Trainer looks for;
    see :mod:`trainwell.model.regularization`.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: nn.Module | None = None,
                 kernel_regularizer=None, kernel_constraint=None):
        super().__init__(in_features, out_features, bias=bias)
        self.activation = activation if activation is not None else nn.Identity()
        self.kernel_regularizer = kernel_regularizer
        self.kernel_constraint = kernel_constraint

    def extra_repr(self) -> str:
        extras = [f"{key}={value}" for key in ("kernel_regularizer", "kernel_constraint")
                  if (value := getattr(self, key)) is not None]
        return ", ".join([super().extra_repr(), *extras])

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

    The moving variance follows Keras too: ``moving = (1 - momentum) * moving + momentum
    * batch_variance`` with the *biased* batch variance (Keras' ``momentum`` 0.99 is
    ``1 - momentum`` here), where PyTorch's BatchNorm1d averages the unbiased one (a
    factor ``n / (n - 1)``: 1.03 at the chapter's batches of 32). The output and the
    gradient in training are batch normalization's as PyTorch computes them; only the
    statistics kept for inference differ. A plain ``nn.BatchNorm1d`` keeps PyTorch's update.

    ``synchronized`` (set by a fit with ``sync_batchnorm``): in training, under a process group, the
    statistics are those of every rank's batch (:mod:`trainwell.model.synced_batchnorm`).
    """

    synchronized = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            return self.forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        if not (self.training and self.track_running_stats):
            return super().forward(x)  # inference (the moving statistics), or batch statistics only
        if self.synchronized and over_ranks():
            return batch_norm_over_ranks(self, x)
        if x.shape[0] < 2:  # as F.batch_norm says it
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.size()}")
        factor = self.count_batch()
        y, mean, invstd = torch.native_batch_norm(x, self.weight, self.bias, None, None, True, 0.0, self.eps)
        self.update_moving_statistics(mean, invstd, factor)
        return y

    def count_batch(self) -> float:
        """Count one training batch, as BatchNorm1d does; the weight the batch's statistics get."""
        self.num_batches_tracked.add_(1)
        return 1.0 / float(self.num_batches_tracked) if self.momentum is None else float(self.momentum)

    def update_moving_statistics(self, mean: torch.Tensor, invstd: torch.Tensor, factor: float) -> None:
        """Keras' update of the moving mean and variance, in place, from a batch's mean and
        ``invstd = 1 / sqrt(variance + eps)`` (what the batch-norm kernel returns: no second pass
        over the batch, and four small ops).

        The biased variance is ``invstd ** -2 - eps``, exact to the float rounding of
        ``variance + eps`` (which is what inference uses); ``lerp`` toward ``invstd ** -2`` then
        less ``factor * eps`` is the same update in one op less. No ``no_grad`` is needed: the
        kernel's mean and invstd carry no gradient, and the statistics are buffers.
        """
        variance_plus_eps = invstd.pow(-2)
        if mean.dtype != self.running_mean.dtype:  # half-precision batches keep float32 statistics
            mean, variance_plus_eps = mean.to(self.running_mean.dtype), variance_plus_eps.to(self.running_var.dtype)
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(variance_plus_eps, factor).sub_(self._scaled_eps(factor))

    def _scaled_eps(self, factor: float) -> torch.Tensor | float:
        """``factor * eps`` as a kept 0-dim tensor of the statistics' dtype (the same number: PyTorch rounds
        a Python float to that dtype first), since an op with a Python number costs about 3 us more per call
        (PyTorch wraps it in a tensor and converts it); made again when the factor, dtype or device change."""
        if torch.compiler.is_compiling():
            return factor * self.eps
        kept = self.__dict__.get("_kept_scaled_eps")
        statistics = self.running_var
        if kept is None or kept[0] != (factor, statistics.dtype, statistics.device):
            value = torch.tensor(factor * self.eps, dtype=statistics.dtype, device=statistics.device)
            kept = self.__dict__["_kept_scaled_eps"] = ((factor, statistics.dtype, statistics.device), value)
        return kept[1]


class LogitsView(nn.Module):
    """Runs a sequential model but stops before its final softmax/sigmoid.

    It shares the model's modules (no copy), so training through the view trains the model.
    """

    def __init__(self, model: nn.Sequential):
        super().__init__()
        children = list(model)  # every use: model.children() yields a module used twice only once
        self.body = nn.Sequential(*children[:-1])
        self.last = children[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.body:  # as self.body(x), one module call less per step
            x = layer(x)
        if isinstance(self.last, ActivatedLinear):
            return self.last.forward_logits(x)
        return x  # the last module is the activation itself


class LogitsMethod(nn.Module):
    """Calls a model's own ``forward_logits`` (for models that are not a plain stack)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_logits(x)


def final_activation(model: nn.Module) -> str | None:
    """The name of a sequential model's last activation when it is a softmax or sigmoid, else None."""
    if not isinstance(model, nn.Sequential) or len(model) == 0:
        return None
    last = model[-1]
    if isinstance(last, ActivatedLinear):
        last = last.activation
    name = activation_name(last)
    return name if name in ("softmax", "sigmoid") else None


class TwoTower(nn.Module):
    """Two towers that each read one image of a pair, joined by a small head.

    The input is a batch of pairs of shape ``(N, 2, ...)``; tower A reads ``x[:, 0]``,
    tower B reads ``x[:, 1]``, their outputs are concatenated and the head turns them
    into one logit ("same class?"). After training, ``tower_a`` is an ordinary model
    that can be reused (and frozen) under a new head.
    """

    def __init__(self, tower_a: nn.Module, tower_b: nn.Module, head: nn.Module):
        super().__init__()
        self.tower_a = tower_a
        self.tower_b = tower_b
        self.head = head

        self.output_activation = final_activation(head)
        # Kept in a plain list so the view's (shared) modules are not registered twice.
        self._head_logits = [LogitsView(head)] if self.output_activation else [head]

    def _joined(self, pairs: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tower_a(pairs[:, 0]), self.tower_b(pairs[:, 1])], dim=-1)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.head(self._joined(pairs))

    def forward_logits(self, pairs: torch.Tensor) -> torch.Tensor:
        """The head's output before its final sigmoid (the trainer's loss uses this)."""
        return self._head_logits[0](self._joined(pairs))
