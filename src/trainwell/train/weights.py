"""Sample weights and class weights: one weight per training sample, as Keras turns class_weight into them.

``fit(x, y, sample_weight=w)`` weighs sample i's loss by ``w[i]``; ``Trainer(class_weight=
{0: 1.0, 1: 5.0})`` weighs every sample of class 1 by 5. With both, a sample's weight is their
product (as Keras). The batch's loss is then the mean over the batch of ``weight_i * loss_i``
(:meth:`trainwell.model.losses.Loss.__call__`). Classes that ``class_weight`` does not name
weigh 1 (as scikit-learn's ``class_weight`` dicts). Keys are class indices (ints, or strings
of digits, as TOML writes keys) or class names, resolved through the data's names when the
trainer knows them (``Trainer.class_names``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from trainwell.checks import is_integer, is_number
from trainwell.data.arrays import as_tensor
from trainwell.errors import ArrayError, ConfigError
from trainwell.model.losses import Loss


def check_class_weight(class_weight: Any, loss: Loss) -> dict[Any, float] | None:
    """``class_weight`` checked when the Trainer is made: a mapping of class -> finite weight >= 0,
    for a classification loss with one class per sample."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, Mapping) or not class_weight:
        raise ConfigError(f"class_weight: expected a table of class -> weight, e.g. {{0: 1.0, 1: 5.0}}, "
                          f"got {class_weight!r}")
    if loss.regression:
        raise ConfigError(f"class_weight: the loss {loss.name} is a regression loss (no classes); "
                          "weigh samples with fit(sample_weight=...)")
    for key, value in class_weight.items():
        if isinstance(key, bool) or not (is_integer(key) or isinstance(key, str)):
            raise ConfigError(f"class_weight: key {key!r} must be a class index or a class name")
        if not is_number(value) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"class_weight: the weight of class {key!r} must be a finite number >= 0, "
                              f"got {value!r}")
    return dict(class_weight)


def class_weight_table(class_weight: Mapping[Any, float], classes: int,
                       names: Sequence[str] | None = None) -> torch.Tensor:
    """The weight of each class index 0..classes-1 (1.0 where not named); keys are indices, strings of
    digits or, given ``names``, class names."""
    table = torch.ones(classes, dtype=torch.float32)
    for key, value in class_weight.items():
        index = _class_index(key, classes, names)
        table[index] = float(value)
    return table


def _class_index(key: Any, classes: int, names: Sequence[str] | None) -> int:
    if names is not None and isinstance(key, str) and key in names:
        return list(names).index(key)
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if not is_integer(key):
        known = f"the classes are {', '.join(map(str, names))}" if names is not None else \
            "class names are known only when the data records them; use class indices 0, 1, ..."
        raise ConfigError(f"class_weight: {key!r} is not a class; {known}")
    if not 0 <= key < classes:
        raise ConfigError(f"class_weight: class {key} is out of range: the model has {classes} classes "
                          f"(0..{classes - 1})")
    return int(key)


def sample_weights(sample_weight: Any, class_weight: Mapping[Any, float] | None, loss: Loss, y: torch.Tensor,
                   output_shape: tuple[int, ...], *, names: Sequence[str] | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """One weight per sample of ``y`` (the loss's targets, checked), on its device, in ``dtype`` (the model's:
    a float64 model's loss weighs in float64); None when unweighted."""
    weights = None
    if sample_weight is not None:
        weights = as_tensor(sample_weight, "sample_weight", expected="one non-negative number per sample")
        if weights.dim() == 2 and weights.shape[1] == 1:
            weights = weights.reshape(-1)
        if weights.dim() != 1 or len(weights) != len(y):
            raise ArrayError(f"sample_weight: shape {tuple(weights.shape)}, but there are {len(y)} samples: give "
                             "one weight per sample, shape (n,)")
        weights = weights.to(device=y.device, dtype=dtype)
        bad = (~torch.isfinite(weights)) | (weights < 0)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise ArrayError(f"sample_weight: weights must be finite numbers >= 0; got {float(weights[first]):g} "
                             f"(sample {first})")
    if class_weight is not None:
        if loss.binary and tuple(output_shape) != (1,):
            raise ConfigError(f"class_weight: the model has {output_shape[-1]} sigmoid outputs (several labels "
                              "per sample); class_weight needs one class per sample: use sample_weight")
        classes = 2 if loss.binary else int(output_shape[-1])
        per_class = class_weight_table(class_weight, classes, names).to(y.device)
        from_classes = per_class.index_select(0, loss.true_classes(y))
        weights = from_classes if weights is None else weights * from_classes
    return weights
