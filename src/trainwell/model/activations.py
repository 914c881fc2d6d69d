"""Activation functions by name, as plain functions and as modules.

Names, argument names and defaults follow Keras (``leaky_relu`` has ``alpha=0.3``,
``elu`` ``alpha=1.0``). Modules are PyTorch's own wherever PyTorch has the same
function, so models built by trainwell stay plain PyTorch; ``activation_name``
recognises them again (losses look for a final softmax or sigmoid, diagnostics
for ReLU-family or saturating activations).

Choices that differ from some reference:

* ``leaky_relu``: slope ``alpha=0.3``, the default of Keras' ``LeakyReLU`` layer (tf.keras 2,
  the book's, and Keras 3 alike). Keras 3's *function* ``keras.activations.leaky_relu`` (what
  ``Dense(activation="leaky_relu")`` calls there) defaults to 0.2, as ``tf.nn.leaky_relu``
  does; PyTorch's ``nn.LeakyReLU`` to 0.01. ``{"name": "leaky_relu", "alpha": 0.2}`` gives
  Keras 3's function (the chapter itself passes ``alpha=0.2``).
* ``prelu``: one learnable slope shared by all units unless ``num_parameters``
  (or the layer width passed as ``units``) asks for one per unit, as Keras does.
  Slopes start at ``alpha=0.25`` (He et al. 2015, PyTorch); Keras starts at 0,
  which ``alpha=0.0`` reproduces.
* ``hard_sigmoid``: ``clip(slope * x + 0.5, 0, 1)`` with ``slope=1/6`` by default,
  i.e. ``relu6(x + 3) / 6`` as in Keras 3 and ``nn.Hardsigmoid``; Keras 2 (and the
  book's edition) used ``slope=0.2``.
* ``rrelu``: not in Keras; PyTorch's defaults ``lower=1/8``, ``upper=1/3``. Its
  functional form uses the mean slope ``(lower + upper) / 2`` (evaluation mode).

This is one module: each activation is a factory, a rule for its arguments and a type to
recognise, three tables read side by side; split, a new activation would be added in three places.
"""

from __future__ import annotations

import inspect
import math
from functools import partial
from typing import Any, Callable, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainwell.checks import check_integer, is_integer, is_number
from trainwell.errors import ConfigError, reject_unknown

__all__ = [
    "SELU_ALPHA",
    "SELU_SCALE",
    "RELU_FAMILY",
    "SATURATING",
    "selu_constants",
    "Exponential",
    "ScaledELU",
    "HardSigmoid",
    "get_activation",
    "activation_function",
    "activation_name",
    "activation_names",
]


def selu_constants() -> tuple[float, float]:
    """SELU's ``(alpha, scale)`` for the fixed point mean 0, variance 1 (Klambauer et al. 2017, eq. 14).

    >>> alpha, scale = selu_constants()
    >>> round(alpha, 10), round(scale, 10)
    (1.6732632424, 1.0507009874)
    """
    erfc1 = math.erfc(1 / math.sqrt(2))
    alpha = -math.sqrt(2 / math.pi) / (erfc1 * math.exp(0.5) - 1)
    denominator = (
        2 * math.erfc(math.sqrt(2)) * math.e**2
        + math.pi * erfc1**2 * math.e
        - 2 * (2 + math.pi) * erfc1 * math.sqrt(math.e)
        + math.pi
        + 2
    )
    scale = (1 - erfc1 * math.sqrt(math.e)) * math.sqrt(2 * math.pi) / math.sqrt(denominator)
    return alpha, scale


SELU_ALPHA, SELU_SCALE = selu_constants()

#: Activations that do not saturate for positive inputs (the chapter's cure for vanishing gradients).
RELU_FAMILY = frozenset({"relu", "leaky_relu", "prelu", "rrelu", "elu", "selu"})
#: Activations that saturate at both ends, where gradients vanish.
SATURATING = frozenset({"sigmoid", "tanh", "hard_sigmoid", "softsign"})

_HARD_SIGMOID_SLOPE = 1 / 6
_SAME = 1e-12  # constants this close are treated as PyTorch's own


# --------------------------------------------------------------------------- small modules


class Exponential(nn.Module):
    """``exp(x)`` (Keras' ``exponential``); PyTorch has no module for it."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.exp(x)


class ScaledELU(nn.Module):
    """``scale * elu(x, alpha)``: SELU with custom constants (defaults use ``nn.SELU``)."""

    def __init__(self, alpha: float = SELU_ALPHA, scale: float = SELU_SCALE):
        super().__init__()
        self.alpha = alpha
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, scale={self.scale}"


class HardSigmoid(nn.Module):
    """``clip(slope * x + 0.5, 0, 1)``; ``slope=0.2`` is Keras 2's hard sigmoid."""

    def __init__(self, slope: float = 0.2):
        super().__init__()
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(self.slope * x + 0.5, 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


# --------------------------------------------------------------------------- registry


class _Built(NamedTuple):
    module: Callable[[], nn.Module]
    function: Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


def _is_selu(alpha: float, scale: float) -> bool:
    return abs(alpha - SELU_ALPHA) < _SAME and abs(scale - SELU_SCALE) < _SAME


def _scaled_elu(x: Tensor, *, alpha: float, scale: float) -> Tensor:
    return scale * F.elu(x, alpha)


def _hard_sigmoid(x: Tensor, *, slope: float) -> Tensor:
    return torch.clamp(slope * x + 0.5, 0.0, 1.0)


# One factory per name: its keyword arguments (with Keras' defaults) are exactly
# what a config may set; it returns how to build the module and the function.

def _sigmoid():
    return _Built(nn.Sigmoid, torch.sigmoid)


def _tanh():
    return _Built(nn.Tanh, torch.tanh)


def _relu():
    return _Built(nn.ReLU, F.relu)


def _leaky_relu(*, alpha=0.3):
    return _Built(partial(nn.LeakyReLU, alpha), partial(F.leaky_relu, negative_slope=alpha))


def _prelu(*, num_parameters=1, alpha=0.25):
    # All slopes start equal, so before training the function is a leaky ReLU.
    return _Built(partial(nn.PReLU, num_parameters, alpha),
                  partial(F.leaky_relu, negative_slope=alpha))


def _rrelu(*, lower=1 / 8, upper=1 / 3):
    if lower > upper:
        raise ConfigError(f"activation 'rrelu': lower must be <= upper, got {lower} > {upper}")
    return _Built(partial(nn.RReLU, lower, upper),
                  partial(F.rrelu, lower=lower, upper=upper, training=False))


def _elu(*, alpha=1.0):
    return _Built(partial(nn.ELU, alpha), partial(F.elu, alpha=alpha))


def _selu(*, alpha=SELU_ALPHA, scale=SELU_SCALE):
    if _is_selu(alpha, scale):
        return _Built(nn.SELU, F.selu)
    return _Built(partial(ScaledELU, alpha, scale), partial(_scaled_elu, alpha=alpha, scale=scale))


def _softplus():
    return _Built(nn.Softplus, F.softplus)


def _softsign():
    return _Built(nn.Softsign, F.softsign)


def _hard_sigmoid_factory(*, slope=_HARD_SIGMOID_SLOPE):
    if abs(slope - _HARD_SIGMOID_SLOPE) < _SAME:
        return _Built(nn.Hardsigmoid, F.hardsigmoid)
    return _Built(partial(HardSigmoid, slope), partial(_hard_sigmoid, slope=slope))


def _exponential():
    return _Built(Exponential, torch.exp)


def _linear():
    return _Built(nn.Identity, _identity)


def _softmax(*, axis=-1):
    return _Built(partial(nn.Softmax, dim=axis), partial(F.softmax, dim=axis))


def _gelu(*, approximate=False):
    mode = "tanh" if approximate else "none"
    return _Built(partial(nn.GELU, approximate=mode), partial(F.gelu, approximate=mode))


def _swish():
    return _Built(nn.SiLU, F.silu)


def _mish():
    return _Built(nn.Mish, F.mish)


_FACTORIES: dict[str, Callable[..., _Built]] = {
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "prelu": _prelu,
    "rrelu": _rrelu,
    "elu": _elu,
    "selu": _selu,
    "softplus": _softplus,
    "softsign": _softsign,
    "hard_sigmoid": _hard_sigmoid_factory,
    "exponential": _exponential,
    "linear": _linear,
    "softmax": _softmax,
    "gelu": _gelu,
    "swish": _swish,
    "mish": _mish,
}

# What each argument name must be, shared by all activations that use it.
_ARGUMENT_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "alpha": ("a number >= 0", lambda v: _is_finite_number(v) and v >= 0),
    "scale": ("a number > 0", lambda v: _is_finite_number(v) and v > 0),
    "lower": ("a number >= 0", lambda v: _is_finite_number(v) and v >= 0),
    "upper": ("a number >= 0", lambda v: _is_finite_number(v) and v >= 0),
    "slope": ("a number > 0", lambda v: _is_finite_number(v) and v > 0),
    "num_parameters": ("an integer >= 1",
                       lambda v: is_integer(v) and v >= 1),
    "axis": ("an integer", is_integer),
    "approximate": ("true or false", lambda v: isinstance(v, bool)),
}


def _is_finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def activation_names() -> list[str]:
    """The names ``get_activation`` and ``activation_function`` accept, sorted.

    >>> "selu" in activation_names()
    True
    """
    return sorted(_FACTORIES)


def _arguments(name: str) -> list[str]:
    return list(inspect.signature(_FACTORIES[name]).parameters)


def _build(name: Any, kwargs: Mapping[str, Any]) -> _Built:
    """Check ``name`` and its arguments, then run its factory."""
    if not isinstance(name, str):
        raise ConfigError(f"activation name must be a string, got {name!r}")
    if name not in _FACTORIES:
        raise ConfigError(f"unknown activation {name!r}; allowed: {', '.join(activation_names())}")
    allowed = _arguments(name)
    reject_unknown(kwargs, allowed, what=f"activation {name!r}")
    converted = {}
    for arg, value in kwargs.items():
        what, ok = _ARGUMENT_RULES[arg]
        if not ok(value):
            raise ConfigError(f"activation {name!r}: {arg} must be {what}, got {value!r}")
        converted[arg] = float(value) if what.startswith("a number") else value
    return _FACTORIES[name](**converted)


def get_activation(spec: str | Mapping[str, Any] | nn.Module | None = None, *,
                   units: int | None = None, **overrides: Any) -> nn.Module:
    """Turn a config value into an activation module.

    ``spec`` is a name, a dict ``{"name": ..., **arguments}``, a module (returned as
    is) or None (identity). ``overrides`` are arguments of the named activation and
    win over the dict's. ``units`` is the width of the layer the activation follows:
    it is not an argument but context, used only by ``prelu`` (one slope per unit
    unless ``num_parameters`` says otherwise), so layer builders may always pass it.

    >>> get_activation("leaky_relu")
    LeakyReLU(negative_slope=0.3)
    >>> get_activation({"name": "elu", "alpha": 0.5})
    ELU(alpha=0.5)
    >>> get_activation("prelu", units=3).weight.shape
    torch.Size([3])
    """
    if isinstance(spec, nn.Module) or spec is None:
        if overrides:
            raise ConfigError(
                f"activation arguments {', '.join(map(repr, sorted(overrides)))} need an "
                f"activation name, got {'None' if spec is None else type(spec).__name__}"
            )
        return nn.Identity() if spec is None else spec
    if isinstance(spec, str):
        name, kwargs = spec, dict(overrides)
    elif isinstance(spec, Mapping):
        if "name" not in spec:
            raise ConfigError(
                f"activation dict needs a 'name' key; allowed names: {', '.join(activation_names())}"
            )
        name = spec["name"]
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        kwargs.update(overrides)
    else:
        raise ConfigError(
            "activation must be a name, a dict with 'name', an nn.Module or None, "
            f"got {type(spec).__name__}"
        )
    if units is not None:
        check_integer(units, "units must be an integer >= 1", minimum=1)
        if name == "prelu":
            kwargs.setdefault("num_parameters", units)
    return _build(name, kwargs).module()


def activation_function(name: str, **kwargs: Any) -> Callable[[Tensor], Tensor]:
    """The activation ``name`` as a plain function of a tensor (e.g. to plot its curve).

    Arguments are those of ``get_activation``. Learnable or random activations give
    their starting or mean function: ``prelu`` its initial slope, ``rrelu`` the
    mean slope.

    >>> f = activation_function("leaky_relu")
    >>> f(torch.tensor([-1.0, 2.0]))
    tensor([-0.3000,  2.0000])
    """
    return _build(name, kwargs).function


# --------------------------------------------------------------------------- recognition

_NAMES_BY_TYPE: dict[type, str] = {
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.PReLU: "prelu",
    nn.RReLU: "rrelu",
    nn.ELU: "elu",
    nn.SELU: "selu",
    ScaledELU: "selu",
    nn.Softplus: "softplus",
    nn.Softsign: "softsign",
    nn.Hardsigmoid: "hard_sigmoid",
    HardSigmoid: "hard_sigmoid",
    Exponential: "exponential",
    nn.Identity: "linear",
    nn.Softmax: "softmax",
    nn.GELU: "gelu",
    nn.SiLU: "swish",
    nn.Mish: "mish",
}


def activation_name(module: Any) -> str | None:
    """The canonical name of an activation module, or None if it is not one we know.

    Recognises PyTorch's modules and trainwell's own by type (subclasses included),
    whatever their arguments: ``nn.LeakyReLU(0.01)`` is still ``"leaky_relu"``.

    >>> activation_name(nn.Softmax(dim=-1))
    'softmax'
    >>> activation_name(nn.Linear(2, 2)) is None
    True
    """
    if not isinstance(module, nn.Module):
        return None
    for cls in type(module).__mro__:
        if cls in _NAMES_BY_TYPE:
            return _NAMES_BY_TYPE[cls]
    return None
