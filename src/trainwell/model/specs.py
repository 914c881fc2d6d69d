"""Layer specs: what each layer is (Dense, BatchNormalization, Dropout, AlphaDropout, Flatten,
Activation), read alike from Python and from a config table.

The image layers (Conv2D, pooling, Reshape, SpatialDropout2D) live in
:mod:`trainwell.model.conv_specs`, which adds its types to :data:`LAYER_TYPES` with
:func:`register_layer_type` when the model package is imported.

A spec is a small frozen dataclass that says *what* a layer is (``Dense(300,
activation="relu")``) without knowing its input size; it checks its own keys, plans its
output shape and parameter count, and builds its module once the input shape is known.
:func:`layer_from_dict` reads one from its config form (``{"type": "dense", "units": 300}``),
so Python and config files describe models identically. :mod:`trainwell.model.layers` turns a
list of them into a model.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Union

from torch import nn

from trainwell.checks import is_integer, is_number
from trainwell.errors import ConfigError
from trainwell.model.activations import get_activation
from trainwell.model.init import get_initializer
from trainwell.model.conv_modules import ChannelBatchNorm
from trainwell.model.modules import ActivatedLinear, BatchNorm
from trainwell.model.regularization import ConstraintSpec, RegularizerSpec, get_constraint, get_regularizer

Shape = tuple[int, ...]
ActivationSpec = Union[str, Mapping[str, Any], None]
InitSpec = Union[str, Mapping[str, Any]]


class LayerSpec(ABC):
    """Base of all layer specs: a ``type`` key for config files and a ``build`` step."""

    type: ClassVar[str]

    @abstractmethod
    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        """Return the module for this layer and its output shape (without the batch axis)."""

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        """The parameters this layer would have and its output shape, without building it
        (the layers that neither have weights nor change the shape keep this default)."""
        return 0, input_shape

    def to_dict(self) -> dict[str, Any]:
        """The config-file form of this spec; ``layer_from_dict`` reads it back."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        kept = {k: _plain(v) for k, v in values.items() if k not in defaults or v != defaults[k]}
        return {"type": self.type, **kept}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _check(condition: bool, layer: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{layer}: {message}")


def _needs_features(layer: str, input_shape: Shape) -> int:
    _check(len(input_shape) >= 1, layer, f"needs an input with a feature axis, got shape {input_shape}")
    return input_shape[-1]


@dataclass(frozen=True)
class Dense(LayerSpec):
    """A fully connected layer with an optional activation (Keras' ``Dense``).

    ``init`` defaults to ``glorot_uniform`` and biases to zeros, as in Keras
    (PyTorch's ``nn.Linear`` uses a scaled uniform instead). ``kernel_regularizer``
    (``l2(0.01)``, ``{"name": "l2", "factor": 0.01}``) adds a penalty on the weights to
    the loss; ``kernel_constraint`` (``max_norm(1.0)``) bounds them after every step.
    Both are kept in their config form, so a saved model keeps them.

    A layer factory is ``functools.partial`` over the spec, as the chapter writes it:

    >>> from functools import partial
    >>> from trainwell.model.regularization import l2
    >>> RegularizedDense = partial(Dense, activation="elu", init="he_normal", kernel_regularizer=l2(0.01))
    >>> RegularizedDense(300).kernel_regularizer
    {'name': 'l2', 'factor': 0.01}
    """

    units: int
    activation: ActivationSpec = None
    init: InitSpec = "glorot_uniform"
    bias_init: InitSpec = "zeros"
    use_bias: bool = True
    name: str | None = None
    kernel_regularizer: RegularizerSpec | None = None
    kernel_constraint: ConstraintSpec | None = None
    type: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        _check(is_integer(self.units) and self.units > 0,
               "dense", f"'units' must be a positive integer, got {self.units!r}")
        _check(isinstance(self.use_bias, bool), "dense", f"'use_bias' must be true or false, got {self.use_bias!r}")
        check_kernel_options(self, self.units)

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        features = _needs_features("dense", input_shape)
        return (features * self.units + self.units * self.use_bias + _activation_parameters(self.activation, self.units),
                (*input_shape[:-1], self.units))

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        features = _needs_features("dense", input_shape)
        module = ActivatedLinear(
            features, self.units, bias=self.use_bias, activation=_activation_module(self.activation, self.units),
            kernel_regularizer=None if self.kernel_regularizer is None else get_regularizer(self.kernel_regularizer),
            kernel_constraint=None if self.kernel_constraint is None else get_constraint(self.kernel_constraint))
        get_initializer(self.init)(module.weight)
        if module.bias is not None:
            get_initializer(self.bias_init)(module.bias)
        return module, (*input_shape[:-1], self.units)


def check_kernel_options(spec: Any, units: int) -> None:
    """A weighted layer's (Dense's, Conv2D's) initializers, activation, regularizer and constraint, checked.

    The names are looked up now so that a typo fails when the spec is written, not mid-build; the
    regularizer and constraint are kept in their config form (a plain table), so that specs compare,
    print and save alike.
    """
    get_initializer(spec.init)
    get_initializer(spec.bias_init)
    _activation_module(spec.activation, units)
    if spec.kernel_regularizer is not None:
        object.__setattr__(spec, "kernel_regularizer", get_regularizer(spec.kernel_regularizer).to_dict())
    if spec.kernel_constraint is not None:
        object.__setattr__(spec, "kernel_constraint", get_constraint(spec.kernel_constraint).to_dict())


def _activation_parameters(spec: ActivationSpec, units: int) -> int:
    """The parameters of a layer's activation for ``units`` units (PReLU: one slope per unit, or one shared),
    counted from builds with 1 and 2 units, so a huge layer's count costs nothing."""
    one, two = (sum(p.numel() for p in _activation_module(spec, n).parameters()) for n in (1, 2))
    return one + (two - one) * (units - 1)


def _activation_module(spec: ActivationSpec, units: int) -> nn.Module:
    # ``units`` lets PReLU learn one slope per unit, as Keras' PReLU does; other activations ignore it.
    return get_activation(spec, units=units)


@dataclass(frozen=True)
class BatchNormalization(LayerSpec):
    """Batch normalization over the last axis, with Keras' defaults; on an image ``(C, H, W)``
    (a Conv2D's output), over each channel, with statistics over the batch, rows and columns.

    Keras' ``momentum`` is the weight of the *old* moving average (0.99); PyTorch's
    is the weight of the *new* batch statistic, so the module gets ``1 - momentum``.
    ``epsilon`` defaults to Keras' 1e-3 (PyTorch: 1e-5).
    """

    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    name: str | None = None
    type: ClassVar[str] = "batch_normalization"

    def __post_init__(self) -> None:
        _check(is_number(self.momentum) and 0.0 <= self.momentum < 1.0, "batch_normalization",
               f"'momentum' must be in [0, 1), got {self.momentum!r}")
        _check(is_number(self.epsilon) and self.epsilon > 0, "batch_normalization",
               f"'epsilon' must be a positive number, got {self.epsilon!r}")
        _check(self.center == self.scale, "batch_normalization",
               "'center' and 'scale' must be both true or both false (PyTorch's affine switch)")

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        return 4 * _normalized_features(input_shape), input_shape  # with the moving statistics

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        features = _normalized_features(input_shape)
        kind = ChannelBatchNorm if len(input_shape) == 3 else BatchNorm
        module = kind(features, eps=self.epsilon, momentum=round(1.0 - self.momentum, 12), affine=self.scale)
        return module, input_shape


def _normalized_features(input_shape: Shape) -> int:
    """What a BatchNormalization normalizes: the channels of an image (C, H, W) (BatchNorm2d, as Keras'
    BatchNormalization after a Conv2D normalizes its channels axis), else the last axis."""
    if len(input_shape) == 3:
        return input_shape[0]
    return _needs_features("batch_normalization", input_shape)


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Standard dropout: zero each input with probability ``rate`` while training."""

    rate: float
    name: str | None = None
    type: ClassVar[str] = "dropout"

    def __post_init__(self) -> None:
        _check(is_number(self.rate) and 0.0 <= self.rate < 1.0, self.type, f"'rate' must be in [0, 1), got {self.rate!r}")

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        return nn.Dropout(self.rate), input_shape


@dataclass(frozen=True)
class AlphaDropout(Dropout):
    """Dropout that keeps SELU's mean and variance (for self-normalizing networks)."""

    type: ClassVar[str] = "alpha_dropout"

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        return nn.AlphaDropout(self.rate), input_shape


@dataclass(frozen=True)
class Flatten(LayerSpec):
    """Flatten everything but the batch axis (28x28 images -> 784 features)."""

    name: str | None = None
    type: ClassVar[str] = "flatten"

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        return 0, (math.prod(input_shape),)

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        return nn.Flatten(), (math.prod(input_shape),)


@dataclass(frozen=True)
class Activation(LayerSpec):
    """An activation on its own, e.g. after a BatchNormalization placed before it."""

    activation: ActivationSpec
    name: str | None = None
    type: ClassVar[str] = "activation"

    def __post_init__(self) -> None:
        _activation_module(self.activation, 1)

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        return _activation_module(self.activation, _activation_units(input_shape)), input_shape

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        return _activation_units(input_shape), input_shape  # at most one weight per unit (PReLU)


def _activation_units(input_shape: Shape) -> int:
    """The units an activation's weights are per (PReLU's slopes): the channels of an image (C, H, W)
    (PyTorch's PReLU reads axis 1; Keras' PReLU has one slope per value unless shared_axes), else the last axis."""
    if len(input_shape) == 3:
        return input_shape[0]
    return input_shape[-1] if input_shape else 1


LAYER_TYPES: dict[str, type[LayerSpec]] = {
    cls.type: cls for cls in (Dense, BatchNormalization, Dropout, AlphaDropout, Flatten, Activation)
}


def register_layer_type(cls: type[LayerSpec]) -> type[LayerSpec]:
    """Make a spec class readable from config files by its ``type`` (a class decorator)."""
    if LAYER_TYPES.get(cls.type, cls) is not cls:
        raise ValueError(f"layer type {cls.type!r} is already {LAYER_TYPES[cls.type].__name__}")
    LAYER_TYPES[cls.type] = cls
    return cls


def layer_from_dict(data: Mapping[str, Any], *, where: str = "layer") -> LayerSpec:
    """Read one layer spec from its config form, with errors that name the key.

    >>> layer_from_dict({"type": "dense", "units": 100, "activation": "elu"})
    Dense(units=100, activation='elu', init='glorot_uniform', bias_init='zeros', use_bias=True, name=None, kernel_regularizer=None, kernel_constraint=None)
    """
    if isinstance(data, LayerSpec):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table with a 'type' key, got {data!r}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        raise ConfigError(f"{where}.type: unknown layer type {kind!r}; allowed: {', '.join(LAYER_TYPES)}")
    cls = LAYER_TYPES[kind]
    allowed = [f.name for f in dataclasses.fields(cls)]
    options = {k: v for k, v in data.items() if k != "type"}
    for key in options:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} for a {kind} layer; allowed: {', '.join(allowed)}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for key in required:
        if key not in options:
            raise ConfigError(f"{where}: a {kind} layer needs {key!r}")
    try:
        return cls(**options)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
