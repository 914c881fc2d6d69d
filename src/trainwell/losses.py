"""Losses by name, always computed from logits for numerical stability.

A model may end in a softmax or sigmoid (as the chapter's Keras models do, so that
``model(x)`` gives probabilities). Taking the log of a probability that rounded to 0
gives ``inf``, so the trainer never does: :func:`logits_model` finds the final
softmax/sigmoid and gives a view of the model that stops just before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.errors import ConfigError
from trainwell.modules import LogitsMethod, LogitsView, final_activation


@dataclass(frozen=True)
class Loss:
    """A loss on logits, with the matching output activation and accuracy."""

    name: str
    output_activation: str
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    probabilities: Callable[[torch.Tensor], torch.Tensor]
    predicted_classes: Callable[[torch.Tensor], torch.Tensor]
    target_dtype: torch.dtype

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.compute(logits, targets)

    def prepare_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets in the dtype and shape this loss expects."""
        targets = targets.to(self.target_dtype)
        return targets.reshape(-1, 1) if self.target_dtype.is_floating_point and targets.dim() == 1 else targets

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """How many predictions in the batch are right (a 0-d tensor: no host sync)."""
        return (self.predicted_classes(logits) == targets.reshape(-1).to(torch.long)).sum()


def _binary_classes(logits: torch.Tensor) -> torch.Tensor:
    return (logits.reshape(-1) > 0).to(torch.long)


LOSSES: dict[str, Loss] = {
    "sparse_categorical_crossentropy": Loss(
        name="sparse_categorical_crossentropy",
        output_activation="softmax",
        compute=F.cross_entropy,
        probabilities=lambda logits: torch.softmax(logits, dim=-1),
        predicted_classes=lambda logits: logits.argmax(dim=-1),
        target_dtype=torch.long,
    ),
    "binary_crossentropy": Loss(
        name="binary_crossentropy",
        output_activation="sigmoid",
        compute=F.binary_cross_entropy_with_logits,
        probabilities=torch.sigmoid,
        predicted_classes=_binary_classes,
        target_dtype=torch.float32,
    ),
}


def get_loss(name: str | Loss) -> Loss:
    """Look a loss up by its Keras name."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; allowed: {', '.join(LOSSES)}")
    return LOSSES[name]


def logits_model(model: nn.Module, loss: Loss) -> nn.Module:
    """A module computing the logits ``loss`` needs from ``model``'s input.

    A model ending in the loss's own output activation is viewed without it; a model
    with a ``forward_logits`` method and an ``output_activation`` name (such as
    :class:`~trainwell.modules.TwoTower`) provides its own logits; any other model is
    taken to output logits already (PyTorch's convention).
    """
    ending = getattr(model, "output_activation", None) if hasattr(model, "forward_logits") else final_activation(model)
    if ending is None:
        return model
    if ending != loss.output_activation:
        raise ConfigError(
            f"the model ends in {ending} but the loss {loss.name} expects a {loss.output_activation} output "
            f"(or raw logits); use loss = "
            f"{'binary_crossentropy' if ending == 'sigmoid' else 'sparse_categorical_crossentropy'} "
            f"or change the last layer's activation")
    return LogitsMethod(model) if hasattr(model, "forward_logits") else LogitsView(model)
