"""Losses by name, always computed from logits for numerical stability; their options and sample weights.

A model may end in a softmax or sigmoid (as the chapter's Keras models do, so that
``model(x)`` gives probabilities). Taking the log of a probability that rounded to 0
gives ``inf``, so the trainer never does: :func:`logits_model` finds the final
softmax/sigmoid and gives a view of the model that stops just before it. A regression
loss (mse, mae, huber) takes the model's outputs as they are: the model ends in a linear
unit, and a softmax or sigmoid there is refused.

Options as Keras names them: ``label_smoothing`` for the cross-entropies (categorical and
sparse: ``y * (1 - ls) + ls / K``; binary: ``y * (1 - ls) + 0.5 * ls``; Keras 2's sparse
loss has none, PyTorch's ``F.cross_entropy`` has it, with the categorical meaning) and
``delta`` for huber (1.0). ``get_loss(name, **options)`` gives the loss with them; with
every option at its default it is the registry's own object. A batch's loss with sample
weights is Keras' "sum_over_batch_size": the mean over the batch of ``weight_i * loss_i``,
``loss_i`` the mean over sample i's outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.checks import is_number
from trainwell.data.arrays import as_tensor, check_finite
from trainwell.errors import ArrayError, ConfigError
from trainwell.model.modules import LogitsMethod, LogitsView, final_activation

KINDS = ("classes", "binary", "one_hot", "regression")


@dataclass(frozen=True)
class Loss:
    """A loss on logits, with the matching output activation and accuracy.

    ``compute(logits, targets, reduction, **options)`` is the loss (``reduction`` "mean" or
    "none", as PyTorch's); ``kind`` says what the targets are: class indices ("classes"),
    0/1 per output unit ("binary"), one-hot or probability rows ("one_hot"), or values
    ("regression"). ``label_smoothing`` and ``delta`` are the options (None where the loss
    has none).
    """

    name: str
    output_activation: str | None  # None: a linear output (a regression loss)
    compute: Callable[..., torch.Tensor]
    probabilities: Callable[[torch.Tensor], torch.Tensor]
    predicted_classes: Callable[[torch.Tensor], torch.Tensor]  # a regression loss's refuses
    target_dtype: torch.dtype
    kind: str = "classes"
    label_smoothing: float | None = None
    delta: float | None = None

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 sample_weight: torch.Tensor | None = None) -> torch.Tensor:
        """The batch's mean loss; with ``sample_weight`` (one per sample), the mean of weight times loss."""
        if sample_weight is None:
            return self.compute(logits, targets, "mean", **self.options)
        per_element = self.compute(logits, targets, "none", **self.options)
        per_sample = per_element.reshape(len(per_element), -1).mean(dim=1) if per_element.dim() > 1 else per_element
        return (per_sample * sample_weight.to(per_sample.dtype)).mean()

    @property
    def options(self) -> dict[str, float]:
        """The options this loss has (label_smoothing, delta), by name."""
        return {key: value for key, value in (("label_smoothing", self.label_smoothing), ("delta", self.delta))
                if value is not None}

    @property
    def title(self) -> str:
        """The name, with the options that differ from the defaults: ``huber (delta=2)``."""
        changed = [f"{key}={value:g}" for key, value in self.options.items()
                   if value != _DEFAULTS.get(self.name, {}).get(key)]
        return f"{self.name} ({', '.join(changed)})" if changed else self.name

    @property
    def binary(self) -> bool:
        """Whether the targets are 0/1 values (a sigmoid per output unit) rather than class indices."""
        return self.kind == "binary"

    @property
    def regression(self) -> bool:
        """Whether the targets are values (mse, mae, huber): the model ends in a linear unit, predictions are values."""
        return self.kind == "regression"

    @property
    def classes_per_output(self) -> bool:
        """Whether the model gives one score per class (softmax over the last axis: sparse or categorical)."""
        return self.kind in ("classes", "one_hot")

    def prepare_targets(self, targets: Any, what: str = "y") -> torch.Tensor:
        """Targets in the dtype and shape this loss expects, or one ArrayError naming ``what``.

        Class indices (sparse categorical cross-entropy) are whole numbers, one per sample,
        of shape ``(n,)`` or ``(n, 1)``; binary targets are 0 or 1 (or probabilities between
        them), of shape ``(n,)`` or ``(n, outputs)``; categorical targets are one-hot rows
        (or probabilities), ``(n, classes)``; regression targets are finite numbers,
        ``(n,)`` or ``(n, outputs)``. Whether they fit the model's outputs is
        :meth:`check_targets`' part.
        """
        if self.kind in ("binary", "regression"):
            needs = "labels must be 0 or 1" if self.binary else "targets must be finite numbers"
            targets = as_tensor(targets, what, expected="labels 0 or 1" if self.binary else "numbers")
            targets = targets.to(self.target_dtype)
            check_finite(targets, what, needs=needs)
            return targets.reshape(-1, 1) if targets.dim() == 1 else targets
        if self.kind == "one_hot":
            targets = as_tensor(targets, what, expected="one-hot rows (n, classes)").to(self.target_dtype)
            if targets.dim() != 2:
                raise ArrayError(f"{what}: labels of shape {tuple(targets.shape)}; {self.name} takes one-hot rows "
                                 "(or class probabilities) of shape (n, classes); for class indices use "
                                 "sparse_categorical_crossentropy")
            check_finite(targets, what, needs="labels must be one-hot rows or class probabilities")
            return targets
        targets = as_tensor(targets, what, expected="class indices 0, 1, ... (encode string labels first, "
                                                    "e.g. classes, y = np.unique(y, return_inverse=True))")
        if targets.dim() == 2 and targets.shape[1] == 1:
            targets = targets.reshape(-1)
        if targets.dim() != 1:
            hint = ("; for one-hot labels pass y.argmax(axis=1) or use categorical_crossentropy"
                    if targets.dim() == 2 else "")
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
        shape = f"(n, {', '.join(map(str, output_shape))})"
        if self.kind in ("binary", "regression", "one_hot") and tuple(targets.shape[1:]) != tuple(output_shape):
            per = {"binary": "one label per output unit", "regression": "one target value per output unit",
                   "one_hot": "one column per output unit (class)"}[self.kind]
            raise ArrayError(f"{what}: {'targets' if self.regression else 'labels'} of shape "
                             f"{tuple(targets.shape)}, but the model gives outputs of shape {shape}; "
                             f"{self.name} takes {per}")
        if self.classes_per_output and len(output_shape) != 1:
            raise ArrayError(f"{what}: the model gives outputs of shape {shape}; "
                             f"{self.name} needs one score per class, (n, classes): flatten the inputs first "
                             "(a Flatten layer)")
        if self.regression:
            return
        low, high = torch.stack([targets.min(), targets.max()]).tolist()
        if self.kind in ("binary", "one_hot") and (low < 0 or high > 1):
            what_is = "0 or 1 (or probabilities between them)" if self.binary else "one-hot rows (or probabilities)"
            raise ArrayError(f"{what}: label {high if high > 1 else low:g} is not a {self.name} label; labels must "
                             f"be {what_is}")
        units = output_shape[-1] if output_shape else 1
        if self.kind == "classes" and (low < 0 or high >= units):
            raise ArrayError(f"{what}: label {int(low if low < 0 else high)} is out of range: the model has {units} "
                             f"output units, so labels must be 0..{units - 1}")

    def true_classes(self, targets: torch.Tensor) -> torch.Tensor:
        """The class each target names (the argmax of a one-hot row; 0/1 labels per output unit, rounded)."""
        if self.kind == "one_hot":
            return targets.argmax(dim=-1)
        if self.binary:
            return (targets.reshape(-1) >= 0.5).to(torch.long)
        return targets.reshape(-1).to(torch.long)

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """How many predictions in the batch are right (a 0-d tensor: no host sync)."""
        if self.kind == "one_hot":
            return (self.predicted_classes(logits) == targets.argmax(dim=-1)).sum()
        return (self.predicted_classes(logits) == targets.reshape(-1).to(torch.long)).sum()


def _binary_classes(logits: torch.Tensor) -> torch.Tensor:
    return (logits.reshape(-1) > 0).to(torch.long)


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean", *,
                   label_smoothing: float = 0.0) -> torch.Tensor:
    """Sparse (class indices) or categorical (probability rows) cross-entropy, as PyTorch smooths either."""
    if not label_smoothing:
        return F.cross_entropy(logits, targets, reduction=reduction)
    return F.cross_entropy(logits, targets, reduction=reduction, label_smoothing=label_smoothing)


def _binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean", *,
                          label_smoothing: float = 0.0) -> torch.Tensor:
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
    return F.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)


def _regression(function: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def compute(outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean", **options: float):
        return function(outputs, targets.to(outputs.dtype), reduction=reduction, **options)
    return compute


def _identity(outputs: torch.Tensor) -> torch.Tensor:
    return outputs


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def _no_classes(outputs: torch.Tensor) -> torch.Tensor:
    raise ConfigError("predict_classes: a regression loss's model predicts values, not classes; use predict(x) "
                      "for the values")


def _regression_loss(name: str, function: Callable[..., torch.Tensor], **options: float) -> Loss:
    return Loss(name=name, output_activation=None, compute=_regression(function), probabilities=_identity,
                predicted_classes=_no_classes, target_dtype=torch.float32, kind="regression", **options)


LOSSES: dict[str, Loss] = {
    "sparse_categorical_crossentropy": Loss(
        name="sparse_categorical_crossentropy", output_activation="softmax", compute=_cross_entropy,
        probabilities=_softmax, predicted_classes=_argmax, target_dtype=torch.long, kind="classes",
        label_smoothing=0.0),
    "binary_crossentropy": Loss(
        name="binary_crossentropy", output_activation="sigmoid", compute=_binary_cross_entropy,
        probabilities=torch.sigmoid, predicted_classes=_binary_classes, target_dtype=torch.float32, kind="binary",
        label_smoothing=0.0),
    "categorical_crossentropy": Loss(
        name="categorical_crossentropy", output_activation="softmax", compute=_cross_entropy,
        probabilities=_softmax, predicted_classes=_argmax, target_dtype=torch.float32, kind="one_hot",
        label_smoothing=0.0),
    "mse": _regression_loss("mse", F.mse_loss),
    "mae": _regression_loss("mae", F.l1_loss),
    "huber": _regression_loss("huber", F.huber_loss, delta=1.0),
}
_DEFAULTS = {name: loss.options for name, loss in LOSSES.items()}


def get_loss(name: str | Loss, **options: Any) -> Loss:
    """Look a loss up by its Keras name, with its options: ``get_loss("huber", delta=2.0)``,
    ``get_loss("categorical_crossentropy", label_smoothing=0.1)``. An option left out, or None,
    keeps the loss's own."""
    base = name if isinstance(name, Loss) else None
    if base is None:
        if not isinstance(name, str) or name not in LOSSES:
            raise ConfigError(f"unknown loss {name!r}; allowed: {', '.join(LOSSES)}")
        base = LOSSES[name]
    given = {key: value for key, value in options.items() if value is not None}
    for key, value in given.items():
        if key not in base.options:
            having = [n for n, loss in LOSSES.items() if key in loss.options]
            if not having:
                raise ConfigError(f"unknown loss option {key!r}; allowed: label_smoothing, delta")
            raise ConfigError(f"{key}: the loss {base.name} has no such option; it applies to {', '.join(having)}")
        if not is_number(value):
            raise ConfigError(f"{key}: must be a number, got {value!r}")
    smoothing, delta = given.get("label_smoothing"), given.get("delta")
    if smoothing is not None and not 0 <= smoothing < 1:
        raise ConfigError(f"label_smoothing: must be in [0, 1), got {smoothing!r}")
    if delta is not None and not delta > 0:
        raise ConfigError(f"delta: huber's delta must be a positive number, got {delta!r}")
    made = dataclasses.replace(base, **{key: float(value) for key, value in given.items()})
    registered = LOSSES.get(made.name)
    return registered if made == registered else made


def logits_model(model: nn.Module, loss: Loss) -> nn.Module:
    """A module computing the logits ``loss`` needs from ``model``'s input.

    A model ending in the loss's own output activation is viewed without it; a model
    with a ``forward_logits`` method and an ``output_activation`` name (such as
    :class:`~trainwell.model.modules.TwoTower`) provides its own logits; any other model is
    taken to output logits already (PyTorch's convention). A regression loss takes the
    outputs as they are, and refuses a model that ends in a softmax or sigmoid.
    """
    ending = getattr(model, "output_activation", None) if hasattr(model, "forward_logits") else final_activation(model)
    if ending is None:
        return model
    if loss.regression:
        raise ConfigError(f"the model ends in {ending} but {loss.name} is a regression loss: its model ends in a "
                          "linear unit (no activation on the last layer); for classes use "
                          f"{'binary_crossentropy' if ending == 'sigmoid' else 'sparse_categorical_crossentropy'}")
    if ending != loss.output_activation:
        raise ConfigError(
            f"the model ends in {ending} but the loss {loss.name} expects a {loss.output_activation} output "
            f"(or raw logits); use loss = "
            f"{'binary_crossentropy' if ending == 'sigmoid' else 'sparse_categorical_crossentropy'} "
            f"or change the last layer's activation")
    return LogitsMethod(model) if hasattr(model, "forward_logits") else LogitsView(model)
