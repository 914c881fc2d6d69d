"""Losses by name, always computed from logits for numerical stability.

A model may end in a softmax or sigmoid (as the chapter's Keras models do, so that
``model(x)`` gives probabilities). Taking the log of a probability that rounded to 0
gives ``inf``, so the trainer never does: :func:`logits_model` finds the final
softmax/sigmoid and gives a view of the model that stops just before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.data.arrays import as_tensor, check_finite
from trainwell.errors import ArrayError, ConfigError
from trainwell.model.modules import LogitsMethod, LogitsView, final_activation


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

    @property
    def binary(self) -> bool:
        """Whether the targets are 0/1 values (a sigmoid per output unit) rather than class indices."""
        return self.target_dtype.is_floating_point

    def prepare_targets(self, targets: Any, what: str = "y") -> torch.Tensor:
        """Targets in the dtype and shape this loss expects, or one ArrayError naming ``what``.

        Class indices (sparse categorical cross-entropy) are whole numbers, one per sample,
        of shape ``(n,)`` or ``(n, 1)``; binary targets are 0 or 1 (or probabilities between
        them), of shape ``(n,)`` or ``(n, outputs)``. Whether they fit the model's outputs is
        :meth:`check_targets`' part.
        """
        if self.binary:
            targets = as_tensor(targets, what, expected="labels 0 or 1").to(self.target_dtype)
            check_finite(targets, what, needs="labels must be 0 or 1")
            return targets.reshape(-1, 1) if targets.dim() == 1 else targets
        targets = as_tensor(targets, what, expected="class indices 0, 1, ... (encode string labels first, "
                                                    "e.g. classes, y = np.unique(y, return_inverse=True))")
        if targets.dim() == 2 and targets.shape[1] == 1:
            targets = targets.reshape(-1)
        if targets.dim() != 1:
            hint = "; for one-hot labels pass y.argmax(axis=1)" if targets.dim() == 2 else ""
            raise ArrayError(f"{what}: labels of shape {tuple(targets.shape)}; {self.name} takes one class index "
                             f"per sample, of shape (n,){hint}")
        if targets.is_floating_point():
            check_finite(targets, what, needs="labels must be class indices 0, 1, ...")
            fractional = (targets != targets.round()).nonzero()
            if len(fractional):
                sample = int(fractional[0, 0])
                raise ArrayError(f"{what}: labels must be class indices 0, 1, ...; got {float(targets[sample]):g} "
                                 f"(sample {sample})")
        return targets.to(self.target_dtype)

    def check_targets(self, targets: torch.Tensor, output_shape: tuple[int, ...], what: str = "y") -> None:
        """ArrayError when a target is one the model's outputs (``output_shape``, per sample) cannot give.

        One pass over the targets (their minimum and maximum), read from the device once.
        """
        if not len(targets):
            return
        if self.binary and tuple(targets.shape[1:]) != tuple(output_shape):
            raise ArrayError(f"{what}: labels of shape {tuple(targets.shape)}, but the model gives outputs of shape "
                             f"(n, {', '.join(map(str, output_shape))}); {self.name} takes one label per output unit")
        if not self.binary and len(output_shape) != 1:
            raise ArrayError(f"{what}: the model gives outputs of shape (n, {', '.join(map(str, output_shape))}); "
                             f"{self.name} needs one score per class, (n, classes): flatten the inputs first "
                             "(a Flatten layer)")
        low, high = torch.stack([targets.min(), targets.max()]).tolist()
        if self.binary and (low < 0 or high > 1):
            raise ArrayError(f"{what}: label {high if high > 1 else low:g} is not a {self.name} label; labels must "
                             "be 0 or 1 (or probabilities between them)")
        units = output_shape[-1] if output_shape else 1
        if not self.binary and (low < 0 or high >= units):
            raise ArrayError(f"{what}: label {int(low if low < 0 else high)} is out of range: the model has {units} "
                             f"output units, so labels must be 0..{units - 1}")

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
    :class:`~trainwell.model.modules.TwoTower`) provides its own logits; any other model is
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
