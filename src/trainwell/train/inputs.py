"""The arrays a Trainer is given (to fit, evaluate, predict), checked, and its model's logits of them in batches.

Inputs take the model's dtype (so ``x / 255.0``, float64, works) and go to the device;
targets are the loss's own (:meth:`trainwell.model.losses.Loss.prepare_targets`); inputs and
targets are checked against each other and against the model's output, from one forward
of two samples that changes no weight, statistic or random stream. Logits are computed
in batches with the model in evaluation mode, and the model's mode restored after.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from trainwell.checks import is_integer
from trainwell.data.arrays import model_dtype, model_inputs, output_shape
from trainwell.errors import ArrayError, ConfigError
from trainwell.metrics import compute
from trainwell.model.losses import Loss


def inputs_for(model: nn.Module, device: torch.device, x: Any, what: str, *, finite: bool = True) -> torch.Tensor:
    """``x`` as ``model``'s inputs: its dtype, on ``device``, finite (unless ``finite=False``)."""
    return model_inputs(x, dtype=model_dtype(model), device=device, what=what, finite=finite)


def logits_shape(model: nn.Module, forward: nn.Module, x: torch.Tensor, what: str) -> tuple[int, ...]:
    """The per-sample shape of the logits of ``x`` (see :func:`trainwell.data.arrays.output_shape`)."""
    return output_shape(model, x, what, forward=lambda batch: logits_in_batches(model, forward, batch, batch_size=2))


def checked_data(model: nn.Module, forward: nn.Module, loss: Loss, device: torch.device, x: Any, y: Any, what: str, *,
                 finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets checked against each other and against the model (``what``: "training data"...);
    ``finite=False`` lets non-finite inputs through (to batches that ``skip_nonfinite`` skips)."""
    if y is None:
        raise ArrayError(f"{what}: y is missing; give the targets beside the inputs (x, y), or a torch Dataset "
                         "or DataLoader of (x, y) items alone")
    x, y = inputs_for(model, device, x, f"{what} x", finite=finite), loss.prepare_targets(y, f"{what} y").to(device)
    if len(x) != len(y):
        raise ArrayError(f"{what}: {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise ArrayError(f"{what}: no samples")
    loss.check_targets(y, logits_shape(model, forward, x, f"{what} x"), f"{what} y")
    return x, y


@torch.no_grad()
def logits_in_batches(model: nn.Module, forward: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``forward`` (the logits of ``model`` or of its layers above a cached prefix) of ``x``, in evaluation mode."""
    if not is_integer(batch_size) or batch_size < 1:
        raise ConfigError(f"batch_size: must be a positive integer, got {batch_size!r}")
    was_training = model.training
    model.eval()
    try:
        return torch.cat([forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def loss_and_metrics(loss: Loss, metrics: Sequence[str], logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The mean loss of ``logits`` against ``y``, and each of ``metrics`` on the whole set
    (:mod:`trainwell.metrics`; accuracy counted on the device)."""
    results = {"loss": float(loss(logits, y))}
    if "accuracy" in metrics:
        results["accuracy"] = loss.correct(logits, y).item() / len(y)
    results.update(compute(metrics, loss, logits, y))
    return results
