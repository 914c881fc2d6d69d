"""Weight initializers with Keras' names, defaults and meaning, for PyTorch tensors.

Every initializer fills a tensor in place and returns it, like ``torch.nn.init``.
``get_initializer`` turns a config value (a name, a dict or a callable) into
such a function, checking its arguments when it is looked up rather than when
the first layer is built.

Fans follow PyTorch's layout: a ``Linear`` weight has shape ``(out, in)`` and a
convolution weight ``(out, in / groups, *kernel)``, so ``fan_in`` is
``in * prod(kernel)`` and ``fan_out`` is ``out * prod(kernel)``.

This is one module: each initializer is a function, an argument check and a registry entry,
read together; split, one initializer would be spread over three files.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from trainwell.checks import check_number
from trainwell.errors import ConfigError, reject_unknown

__all__ = [
    "TRUNCATED_NORMAL_STD_CORRECTION",
    "MODES",
    "DISTRIBUTIONS",
    "fans",
    "variance_scaling",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "identity",
    "zeros",
    "ones",
    "constant",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "get_initializer",
    "initializer_names",
]

#: Standard deviation of a standard normal truncated at +-2: Keras divides the
#: wanted stddev by it so the *truncated* draws have the wanted stddev.
TRUNCATED_NORMAL_STD_CORRECTION = 0.87962566103423978

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

Initializer = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------- checks


def _number(owner: str, arg: str, value: Any, *, positive: bool = False,
            nonnegative: bool = False) -> float:
    """Return ``value`` as a float, or raise ConfigError if it is not a fitting number."""
    check_number(value, f"{owner}: {arg} must be a finite number", finite=True)
    if positive:
        check_number(value, f"{owner}: {arg} must be > 0", above=0)
    if nonnegative:
        check_number(value, f"{owner}: {arg} must be >= 0", minimum=0)
    return float(value)


def _choice(owner: str, arg: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            f"{owner}: unknown {arg} {value!r}; allowed: {', '.join(allowed)}"
        )
    return value


def _check_variance_scaling(*, scale=1.0, mode="fan_in", distribution="truncated_normal"):
    owner = "initializer 'variance_scaling'"
    _number(owner, "scale", scale, positive=True)
    _choice(owner, "mode", mode, MODES)
    _choice(owner, "distribution", distribution, DISTRIBUTIONS)


def _check_gain(name: str):
    def check(*, gain=1.0):
        _number(f"initializer '{name}'", "gain", gain)
    return check


def _check_constant(*, value=0.0):
    _number("initializer 'constant'", "value", value)


def _check_random_normal(*, mean=0.0, stddev=0.05):
    _number("initializer 'random_normal'", "mean", mean)
    _number("initializer 'random_normal'", "stddev", stddev, nonnegative=True)


def _check_truncated_normal(*, mean=0.0, stddev=0.05):
    _number("initializer 'truncated_normal'", "mean", mean)
    _number("initializer 'truncated_normal'", "stddev", stddev, positive=True)


def _check_random_uniform(*, minval=-0.05, maxval=0.05):
    owner = "initializer 'random_uniform'"
    lo = _number(owner, "minval", minval)
    hi = _number(owner, "maxval", maxval)
    if lo > hi:
        raise ConfigError(f"{owner}: minval must be <= maxval, got {minval!r} > {maxval!r}")


# --------------------------------------------------------------------------- fans


def fans(tensor: Tensor) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight in PyTorch layout ``(out, in, *kernel)``.

    Like Keras, a 1-D tensor has both fans equal to its length and a scalar has 1.

    >>> fans(torch.empty(300, 784))
    (784, 300)
    >>> fans(torch.empty(64, 3, 5, 5))
    (75, 1600)
    >>> fans(torch.empty(10))
    (10, 10)
    """
    shape = tuple(tensor.shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


# --------------------------------------------------------------------------- initializers


def variance_scaling(tensor: Tensor, *, scale: float = 1.0, mode: str = "fan_in",
                     distribution: str = "truncated_normal") -> Tensor:
    """Keras' VarianceScaling: draws with variance ``scale / n``, n chosen by ``mode``.

    ``truncated_normal`` divides the stddev by 0.8796... and cuts at 2 stddev, so the
    kept values really have variance ``scale / n``; ``uniform`` uses the limit
    ``sqrt(3 * scale / n)``. This one function is Glorot, He and LeCun initialization.
    """
    _check_variance_scaling(scale=scale, mode=mode, distribution=distribution)
    fan_in, fan_out = fans(tensor)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, n)
    if distribution == "truncated_normal":
        std = math.sqrt(variance) / TRUNCATED_NORMAL_STD_CORRECTION
        return torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)
    if distribution == "untruncated_normal":
        return torch.nn.init.normal_(tensor, mean=0.0, std=math.sqrt(variance))
    limit = math.sqrt(3.0 * variance)
    return torch.nn.init.uniform_(tensor, -limit, limit)


def glorot_normal(tensor: Tensor) -> Tensor:
    """Glorot (Xavier) normal, Keras-style: truncated normal, variance 1 / fan_avg."""
    return variance_scaling(tensor, scale=1.0, mode="fan_avg", distribution="truncated_normal")


def glorot_uniform(tensor: Tensor) -> Tensor:
    """Glorot (Xavier) uniform, Keras' default: limit sqrt(6 / (fan_in + fan_out))."""
    return variance_scaling(tensor, scale=1.0, mode="fan_avg", distribution="uniform")


def he_normal(tensor: Tensor) -> Tensor:
    """He normal, Keras-style: truncated normal, variance 2 / fan_in (for ReLU)."""
    return variance_scaling(tensor, scale=2.0, mode="fan_in", distribution="truncated_normal")


def he_uniform(tensor: Tensor) -> Tensor:
    """He uniform: limit sqrt(6 / fan_in) (for ReLU)."""
    return variance_scaling(tensor, scale=2.0, mode="fan_in", distribution="uniform")


def lecun_normal(tensor: Tensor) -> Tensor:
    """LeCun normal, Keras-style: truncated normal, variance 1 / fan_in (for SELU)."""
    return variance_scaling(tensor, scale=1.0, mode="fan_in", distribution="truncated_normal")


def lecun_uniform(tensor: Tensor) -> Tensor:
    """LeCun uniform: limit sqrt(3 / fan_in)."""
    return variance_scaling(tensor, scale=1.0, mode="fan_in", distribution="uniform")


def orthogonal(tensor: Tensor, *, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain``; tensors with more than 2 dims are flattened."""
    _check_gain("orthogonal")(gain=gain)
    return torch.nn.init.orthogonal_(tensor, gain=gain)


def identity(tensor: Tensor, *, gain: float = 1.0) -> Tensor:
    """``gain`` times the identity matrix (ones on the diagonal if not square); 2-D only."""
    _check_gain("identity")(gain=gain)
    if tensor.dim() != 2:
        raise ConfigError(
            f"initializer 'identity' needs a 2-D tensor, got shape {tuple(tensor.shape)}"
        )
    with torch.no_grad():
        return torch.nn.init.eye_(tensor).mul_(gain)


def zeros(tensor: Tensor) -> Tensor:
    """All zeros (Keras' default for biases)."""
    return torch.nn.init.zeros_(tensor)


def ones(tensor: Tensor) -> Tensor:
    """All ones."""
    return torch.nn.init.ones_(tensor)


def constant(tensor: Tensor, *, value: float = 0.0) -> Tensor:
    """Every element set to ``value``."""
    _check_constant(value=value)
    return torch.nn.init.constant_(tensor, value)


def random_normal(tensor: Tensor, *, mean: float = 0.0, stddev: float = 0.05) -> Tensor:
    """Normal draws, Keras' defaults mean 0 and stddev 0.05."""
    _check_random_normal(mean=mean, stddev=stddev)
    return torch.nn.init.normal_(tensor, mean=mean, std=stddev)


def random_uniform(tensor: Tensor, *, minval: float = -0.05, maxval: float = 0.05) -> Tensor:
    """Uniform draws in ``[minval, maxval]``, Keras' defaults +-0.05."""
    _check_random_uniform(minval=minval, maxval=maxval)
    return torch.nn.init.uniform_(tensor, minval, maxval)


def truncated_normal(tensor: Tensor, *, mean: float = 0.0, stddev: float = 0.05) -> Tensor:
    """Normal draws cut at 2 stddev around ``mean`` (Keras: no variance correction here)."""
    _check_truncated_normal(mean=mean, stddev=stddev)
    return torch.nn.init.trunc_normal_(
        tensor, mean=mean, std=stddev, a=mean - 2 * stddev, b=mean + 2 * stddev
    )


# --------------------------------------------------------------------------- lookup

_INITIALIZERS: dict[str, Initializer] = {
    "variance_scaling": variance_scaling,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "orthogonal": orthogonal,
    "identity": identity,
    "zeros": zeros,
    "ones": ones,
    "constant": constant,
    "random_normal": random_normal,
    "random_uniform": random_uniform,
    "truncated_normal": truncated_normal,
}

_CHECKS: dict[str, Callable[..., None]] = {
    "variance_scaling": _check_variance_scaling,
    "orthogonal": _check_gain("orthogonal"),
    "identity": _check_gain("identity"),
    "constant": _check_constant,
    "random_normal": _check_random_normal,
    "random_uniform": _check_random_uniform,
    "truncated_normal": _check_truncated_normal,
}


def initializer_names() -> list[str]:
    """The names ``get_initializer`` accepts, sorted.

    >>> initializer_names()[:3]
    ['constant', 'glorot_normal', 'glorot_uniform']
    """
    return sorted(_INITIALIZERS)


def _arguments(fn: Callable) -> list[str]:
    """Keyword-only arguments of an initializer: what a config may set."""
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]


def get_initializer(spec: str | Mapping[str, Any] | Initializer) -> Initializer:
    """Turn a config value into ``fn(tensor) -> tensor`` that fills ``tensor`` in place.

    ``spec`` is a name (``"he_normal"``), a dict with ``"name"`` and arguments
    (``{"name": "constant", "value": 0.1}``) or a callable, returned as is.
    Names and arguments are checked now, so a typo fails before training starts.

    >>> init = get_initializer({"name": "constant", "value": 0.5})
    >>> init(torch.empty(2, 2))
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]])
    """
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping):
        if "name" not in spec:
            raise ConfigError(
                f"initializer dict needs a 'name' key; allowed names: {', '.join(initializer_names())}"
            )
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
        if not isinstance(name, str):
            raise ConfigError(f"initializer 'name' must be a string, got {name!r}")
    elif callable(spec):
        return spec
    else:
        raise ConfigError(
            "initializer must be a name, a dict with 'name' or a callable, "
            f"got {type(spec).__name__}"
        )

    if not isinstance(name, str) or name not in _INITIALIZERS:
        raise ConfigError(
            f"unknown initializer {name!r}; allowed: {', '.join(initializer_names())}"
        )
    fn = _INITIALIZERS[name]
    allowed = _arguments(fn)
    reject_unknown(kwargs, allowed, what=f"initializer {name!r}")
    if name in _CHECKS:
        _CHECKS[name](**kwargs)

    def initialize(tensor: Tensor) -> Tensor:
        with torch.no_grad():
            return fn(tensor, **kwargs)

    initialize.__name__ = name
    initialize.__qualname__ = name
    initialize.__doc__ = f"Initializer {name!r} with {kwargs!r} (from trainwell.model.init)."
    return initialize
