"""Regularization: l1/l2 weight penalties and the max-norm constraint (MC dropout: trainwell.uncertainty).

The chapter's vocabulary, as Keras defines it:

* a *regularizer* is a penalty on a layer's kernel added to the training loss:
  ``l1(0.01)`` adds ``0.01 * sum(|w|)``, ``l2(0.01)`` adds ``0.01 * sum(w**2)`` (no 1/2),
  ``l1_l2`` adds both. The loss the optimizer sees is the batch's mean data loss plus
  every penalty;
* a *constraint* rescales a kernel in place after every optimizer step; ``max_norm(c)``
  keeps each unit's incoming weight vector at norm <= c.

Regularizers and constraints are small frozen dataclasses: callable on a tensor, and
written to config files as ``{name = "l2", factor = 0.01}`` or
``{name = "max_norm", max_value = 1.0}``. A Dense layer stores them on its module
(``module.kernel_regularizer``, ``module.kernel_constraint``), where the Trainer finds
them; any other module with a ``weight`` can carry them the same way.

>>> w = torch.tensor([[3.0, -4.0]])
>>> l2(0.01)(w), l1(0.1)(w)          # 0.01 * (9 + 16), 0.1 * (3 + 4)
(tensor(0.2500), tensor(0.7000))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import torch
from torch import nn

from trainwell.checks import check_number, is_integer
from trainwell.errors import ConfigError

# ------------------------------------------------------------------ penalties


@dataclass(frozen=True)
class Regularizer:
    """``l1 * sum(|w|) + l2 * sum(w**2)``: Keras' L1, L2 and L1L2 in one small class.

    >>> Regularizer(l1=0.0, l2=0.5)(torch.ones(2, 3))
    tensor(3.)
    """

    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        for key in ("l1", "l2"):
            value = getattr(self, key)
            check_number(value, f"kernel_regularizer: '{key}' must be a number >= 0", minimum=0)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        penalty = weight.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * weight.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * weight.square().sum()
        return penalty

    def to_dict(self) -> dict[str, Any]:
        """The config-file form: ``{"name": "l2", "factor": 0.01}`` and the like."""
        if self.l1 and not self.l2:
            return {"name": "l1", "factor": self.l1}
        if self.l2 and not self.l1:
            return {"name": "l2", "factor": self.l2}
        return {"name": "l1_l2", "l1": self.l1, "l2": self.l2}


def l1(factor: float = 0.01) -> Regularizer:
    """Keras' ``l1``: ``factor * sum(|w|)``, which pushes weights to exactly zero (sparse models)."""
    return Regularizer(l1=_factor(factor, "factor"))


def l2(factor: float = 0.01) -> Regularizer:
    """Keras' ``l2``: ``factor * sum(w**2)`` (no 1/2 in front), weight decay as a loss term."""
    return Regularizer(l2=_factor(factor, "factor"))


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    """Keras' ``l1_l2``: both penalties, each with its own factor."""
    return Regularizer(l1=_factor(l1, "l1"), l2=_factor(l2, "l2"))


REGULARIZERS = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
RegularizerSpec = Union[str, Mapping[str, Any], Regularizer]


def _factor(value: Any, key: str) -> float:
    check_number(value, f"kernel_regularizer: '{key}' must be a number >= 0", minimum=0)
    return float(value)


def get_regularizer(spec: RegularizerSpec) -> Regularizer:
    """A regularizer from its name (``"l2"``: Keras' default factor 0.01), a table or itself.

    >>> get_regularizer({"name": "l1_l2", "l1": 0.001, "l2": 0.01})
    Regularizer(l1=0.001, l2=0.01)
    """
    if isinstance(spec, Regularizer):
        return spec
    name, options = _name_and_options(spec, "kernel_regularizer", REGULARIZERS)
    allowed = ("factor",) if name in ("l1", "l2") else ("l1", "l2")
    for key in options:
        if key not in allowed:
            raise ConfigError(f"kernel_regularizer: unknown key {key!r} for {name}; allowed: name, {', '.join(allowed)}")
    return REGULARIZERS[name](**options)


# ---------------------------------------------------------------- constraints

KERAS_EPSILON = 1e-7


@dataclass(frozen=True)
class MaxNorm:
    """Keras' ``max_norm``: after each step, each unit's incoming weight vector gets norm <= c.

    ``axis`` keeps Keras' meaning, which refers to Keras' kernel of shape
    ``(inputs, units)``: the default ``axis=0`` takes the norm over the inputs, i.e.
    one norm per output unit. PyTorch stores the same kernel transposed, as
    ``Linear.weight`` of shape ``(units, inputs)``, so Keras' axis 0 is PyTorch's
    dim 1 (each row); ``axis=1`` bounds each input's outgoing weights instead, and
    ``axis=[0, 1]`` the whole matrix. The rescaling is Keras' formula,
    ``w * clip(norm, 0, c) / (1e-7 + norm)``.

    On a convolution's kernel (PyTorch's ``(filters, in_channels, kh, kw)``) the norm is
    each filter's, over its other axes: what Keras' ``MaxNorm(axis=[0, 1, 2])`` does on a
    Conv2D's ``(kh, kw, in_channels, filters)`` kernel. Both the default ``axis=0`` (each
    unit's incoming weights) and ``axis=[0, 1, 2]`` mean that there.

    >>> w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])   # PyTorch layout: 2 units, 2 inputs
    >>> MaxNorm(max_value=1.0)(w).norm(dim=1)          # unit 0 rescaled, unit 1 kept
    tensor([1.0000, 0.5000])
    """

    max_value: float = 2.0
    axis: Union[int, tuple[int, ...]] = 0

    def __post_init__(self) -> None:
        check_number(self.max_value, "kernel_constraint: 'max_value' must be a number > 0", above=0)
        axis = self.axis
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        if (not axes or len(set(axes)) != len(axes)
                or not all(is_integer(a) and a in (0, 1, 2) for a in axes)
                or (2 in axes and sorted(axes) != [0, 1, 2])):
            shown = list(axis) if isinstance(axis, tuple) else axis
            raise ConfigError(f"kernel_constraint: 'axis' = {shown!r} is not allowed; allowed: 0 (each unit's "
                              "incoming weights, Keras' default), 1 (each input's outgoing weights), [0, 1], or "
                              "[0, 1, 2] (each filter of a Conv2D)")
        object.__setattr__(self, "axis", axes[0] if len(axes) == 1 else tuple(sorted(axes)))

    def torch_dims(self, weight: torch.Tensor) -> tuple[int, ...]:
        """The dims of a PyTorch weight ``(units, inputs, ...)`` that Keras' axes name."""
        axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        if weight.dim() == 4 and axes in ((0,), (0, 1, 2)):
            return (1, 2, 3)  # each filter's weights
        if weight.dim() != 2 or 2 in axes:
            raise ConfigError(f"kernel_constraint: max_norm with axis {list(axes)} works on Dense kernels (2-D)"
                              f"{'' if 2 in axes else ' and, with axis 0 or [0, 1, 2], on Conv2D kernels (4-D)'}, "
                              f"got a weight of shape {tuple(weight.shape)}")
        return tuple(sorted(1 - a for a in axes))

    @torch.no_grad()
    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        """Rescale ``weight`` in place (and return it)."""
        norms = torch.linalg.vector_norm(weight, dim=self.torch_dims(weight), keepdim=True)
        weight.mul_(norms.clamp(max=self.max_value) / (KERAS_EPSILON + norms))
        return weight

    def to_dict(self) -> dict[str, Any]:
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return {"name": "max_norm", "max_value": self.max_value, "axis": axis}


def max_norm(max_value: float = 2.0, axis: int | Sequence[int] = 0) -> MaxNorm:
    """Keras' ``max_norm(max_value=2, axis=0)``; see :class:`MaxNorm` for what ``axis`` means."""
    return MaxNorm(max_value=max_value, axis=tuple(axis) if isinstance(axis, (list, tuple)) else axis)


CONSTRAINTS = {"max_norm": max_norm}
ConstraintSpec = Union[str, Mapping[str, Any], MaxNorm]


def get_constraint(spec: ConstraintSpec) -> MaxNorm:
    """A kernel constraint from its name (``"max_norm"``: Keras' default 2.0), a table or itself.

    >>> get_constraint({"name": "max_norm", "max_value": 1.0})
    MaxNorm(max_value=1.0, axis=0)
    """
    if isinstance(spec, MaxNorm):
        return spec
    name, options = _name_and_options(spec, "kernel_constraint", CONSTRAINTS)
    for key in options:
        if key not in ("max_value", "axis"):
            raise ConfigError(f"kernel_constraint: unknown key {key!r} for {name}; allowed: name, max_value, axis")
    return CONSTRAINTS[name](**options)


def _name_and_options(spec: Any, key: str, known: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
    else:
        raise ConfigError(f"{key}: expected a name or a table with a 'name' key, got {spec!r}")
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"{key}: unknown {key.split('_')[1]} {name!r}; allowed: {', '.join(known)}")
    return name, options


# ------------------------------------------------- what the trainer applies

def kernel_penalties(model: nn.Module) -> list[tuple[torch.Tensor, Regularizer]]:
    """``(weight, regularizer)`` for every module that carries a ``kernel_regularizer``."""
    return [(module.weight, module.kernel_regularizer) for module in model.modules()
            if getattr(module, "kernel_regularizer", None) is not None]


def kernel_constraints(model: nn.Module) -> list[tuple[torch.Tensor, MaxNorm]]:
    """``(weight, constraint)`` for every module that carries a ``kernel_constraint``."""
    return [(module.weight, module.kernel_constraint) for module in model.modules()
            if getattr(module, "kernel_constraint", None) is not None]


def total_penalty(penalties: Sequence[tuple[torch.Tensor, Regularizer]]) -> torch.Tensor:
    """The sum of all penalties, a 0-d tensor on the weights' device (kept in the graph)."""
    return torch.stack([regularizer(weight) for weight, regularizer in penalties]).sum()


def apply_constraints(constraints: Sequence[tuple[torch.Tensor, MaxNorm]]) -> None:
    """Apply every constraint in place (the trainer calls this after each optimizer step)."""
    for weight, constraint in constraints:
        constraint(weight)
