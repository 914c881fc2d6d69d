"""Layer specs and the builder that turns a list of them into a plain ``nn.Sequential``.

A spec is a small frozen dataclass that says *what* a layer is (``Dense(300,
activation="relu")``) without knowing its input size; :func:`build_model` infers
the shapes from the input shape. The same specs come from Python and from config
files (``{"type": "dense", "units": 300}``), so both describe models identically.

>>> model = build_model([Flatten(), Dense(300, activation="relu"), Dense(10, activation="softmax")], input_shape=(28, 28))
>>> [name for name, _ in model.named_children()]
['flatten', 'dense_1', 'dense_2']
>>> model(torch.zeros(2, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence, Union

import torch  # noqa: F401  (the module docstring's example uses it)
from torch import nn

from trainwell.checks import check_integer
from trainwell.model.activations import get_activation
from trainwell.errors import ConfigError
from trainwell.model.init import get_initializer
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
        _check(isinstance(self.units, int) and not isinstance(self.units, bool) and self.units > 0,
               "dense", f"'units' must be a positive integer, got {self.units!r}")
        _check(isinstance(self.use_bias, bool), "dense", f"'use_bias' must be true or false, got {self.use_bias!r}")
        # Look the names up now so a typo fails when the spec is written, not mid-build.
        get_initializer(self.init)
        get_initializer(self.bias_init)
        _activation_module(self.activation, self.units)
        # Kept in the config form (a plain table), so specs compare, print and save alike.
        if self.kernel_regularizer is not None:
            object.__setattr__(self, "kernel_regularizer", get_regularizer(self.kernel_regularizer).to_dict())
        if self.kernel_constraint is not None:
            object.__setattr__(self, "kernel_constraint", get_constraint(self.kernel_constraint).to_dict())

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
    """Batch normalization over the last axis, with Keras' defaults.

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
        _check(_is_number(self.momentum) and 0.0 <= self.momentum < 1.0, "batch_normalization",
               f"'momentum' must be in [0, 1), got {self.momentum!r}")
        _check(_is_number(self.epsilon) and self.epsilon > 0, "batch_normalization",
               f"'epsilon' must be a positive number, got {self.epsilon!r}")
        _check(self.center == self.scale, "batch_normalization",
               "'center' and 'scale' must be both true or both false (PyTorch's affine switch)")

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        return 4 * _needs_features("batch_normalization", input_shape), input_shape  # with the moving statistics

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        features = _needs_features("batch_normalization", input_shape)
        module = BatchNorm(features, eps=self.epsilon, momentum=round(1.0 - self.momentum, 12), affine=self.scale)
        return module, input_shape


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Standard dropout: zero each input with probability ``rate`` while training."""

    rate: float
    name: str | None = None
    type: ClassVar[str] = "dropout"

    def __post_init__(self) -> None:
        _check(_is_number(self.rate) and 0.0 <= self.rate < 1.0, self.type, f"'rate' must be in [0, 1), got {self.rate!r}")

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
        return _activation_module(self.activation, input_shape[-1] if input_shape else 1), input_shape

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        return (input_shape[-1] if input_shape else 1), input_shape  # at most one weight per unit (PReLU)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


LAYER_TYPES: dict[str, type[LayerSpec]] = {
    cls.type: cls for cls in (Dense, BatchNormalization, Dropout, AlphaDropout, Flatten, Activation)
}


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


def check_presets(presets: Mapping[str, Any], *, where: str = "model.presets") -> None:
    """Check named layer presets: each a table of default keys for a built-in layer ``type``."""
    for name, preset in presets.items():
        here = f"{where}.{name}"
        if name in LAYER_TYPES:
            raise ConfigError(f"{here}: a preset cannot reuse the built-in layer type {name!r}; pick another name")
        if not isinstance(preset, Mapping):
            raise ConfigError(f"{here}: expected a table of layer keys with a 'type', got {preset!r}")
        kind = preset.get("type")
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            raise ConfigError(f"{here}.type: {kind!r} is not a built-in layer type; allowed: {', '.join(LAYER_TYPES)}")
        allowed = [f.name for f in dataclasses.fields(LAYER_TYPES[kind])]
        for key in preset:
            if key != "type" and key not in allowed:
                raise ConfigError(f"{here}: unknown key {key!r} for a {kind} layer; allowed: {', '.join(allowed)}")


def expand_presets(layers: Sequence[Any], presets: Mapping[str, Any] | None) -> list[Any]:
    """Replace ``{type = "<preset>", ...}`` layers by the preset's keys, overridden by the layer's own.

    The config form of ``functools.partial``: the chapter's ``RegularizedDense`` written once
    under ``[model.presets.regularized_dense]`` and used as ``{type = "regularized_dense", units = 300}``.

    >>> presets = {"regularized_dense": {"type": "dense", "activation": "elu", "kernel_regularizer": "l2"}}
    >>> expand_presets([{"type": "regularized_dense", "units": 10, "activation": "softmax"}], presets)
    [{'type': 'dense', 'activation': 'softmax', 'kernel_regularizer': 'l2', 'units': 10}]
    """
    if not presets:
        return list(layers)
    check_presets(presets)
    expanded = []
    for layer in layers:
        if isinstance(layer, Mapping) and isinstance(layer.get("type"), str) and layer["type"] in presets:
            preset = presets[layer["type"]]
            layer = {**preset, **{k: v for k, v in layer.items() if k != "type"}, "type": preset["type"]}
        expanded.append(layer)
    return expanded


def expand_repeats(layers: Sequence[Any], *, where: str = "model.layers") -> list[Any]:
    """Replace a layer table with ``repeat = n`` by n copies of it (a config cannot loop).

    The chapter's 100-layer networks: ``{type = "dense", units = 100, activation = "selu", repeat = 99}``.

    >>> expand_repeats([{"type": "flatten"}, {"type": "dense", "units": 4, "repeat": 2}])
    [{'type': 'flatten'}, {'type': 'dense', 'units': 4}, {'type': 'dense', 'units': 4}]
    """
    expanded = []
    total = 0  # layers so far, counting every copy
    for index, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or "repeat" not in layer:
            expanded.append(layer)
            total += 1
            continue
        count = layer["repeat"]
        check_integer(count, f"{where}[{index}].repeat: must be an integer >= 1 (how many copies)", minimum=1)
        total += count
        if total + len(layers) - index - 1 > MAX_LAYERS:
            raise ConfigError(f"{where}[{index}].repeat = {count}: a model has at most {MAX_LAYERS:,} layers "
                              f"(this one would have {total + len(layers) - index - 1:,})")
        if layer.get("name") is not None and count > 1:
            raise ConfigError(f"{where}[{index}]: a repeated layer cannot have a name ({layer['name']!r}); "
                              "its copies are named <type>_<n>")
        expanded += [{k: v for k, v in layer.items() if k != "repeat"} for _ in range(count)]
    return expanded


# Bounds on what a spec may ask for, checked before anything is built: the chapter's deepest net
# has 100 layers and its largest about 270,000 parameters. A billion float32 parameters are
# 4 GB, and training holds several times that (gradients, the optimizer's state).
MAX_LAYERS = 10_000
MAX_PARAMETERS = 1_000_000_000


def check_model_size(input_shape: Shape, layers: Sequence[LayerSpec]) -> int:
    """The parameters a model would have, counted from its spec; ConfigError above MAX_PARAMETERS.

    A config (or a model file's spec) asking for ``units = 1000000000`` is refused here
    with the numbers, instead of PyTorch trying to allocate terabytes.
    """
    if len(layers) > MAX_LAYERS:
        raise ConfigError(f"model.layers: {len(layers):,} layers; a model has at most {MAX_LAYERS:,}")
    total, shape = 0, tuple(input_shape)
    largest = (0, 0)
    for index, layer in enumerate(layers):
        count, shape = layer.plan(shape)
        total += count
        largest = max(largest, (count, index))
    if total > MAX_PARAMETERS:
        count, index = largest
        raise ConfigError(f"model: {total:,} parameters ({count:,} in model.layers[{index}], a {layers[index].type} "
                          f"layer, on input shape {list(input_shape)}); a model has at most {MAX_PARAMETERS:,} "
                          "(4 GB of float32 weights, several times that while training)")
    return total


@dataclass(frozen=True)
class ModelSpec:
    """A whole model: the input shape (without the batch axis) and the layers in order."""

    input_shape: Shape
    layers: tuple[LayerSpec, ...]

    def __post_init__(self) -> None:
        shape = tuple(self.input_shape) if isinstance(self.input_shape, (list, tuple)) else ()
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ConfigError(f"model.input_shape: must be a list of positive integers, got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ConfigError("model.layers: a model needs at least one layer")
        check_model_size(self.input_shape, self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        layers = data.get("layers")
        if not isinstance(layers, Sequence) or isinstance(layers, (str, bytes)):
            raise ConfigError("model.layers: expected a list of layer tables")
        specs = [layer_from_dict(layer, where=f"model.layers[{i}]") for i, layer in enumerate(layers)]
        return cls(input_shape=data.get("input_shape") or (), layers=tuple(specs))


class Model(nn.Sequential):
    """An ``nn.Sequential`` that remembers the spec it was built from (for saving)."""

    def __init__(self, *args: Any, spec: ModelSpec | None = None):
        super().__init__(*args)
        self.spec = spec
        self.output_shapes: dict[str, Shape] = {}
        self.layer_specs: dict[str, LayerSpec] = {}


def build_model(layers: Sequence[LayerSpec | Mapping[str, Any]] | ModelSpec,
                input_shape: Sequence[int] | None = None, *, seed: int | None = None) -> Model:
    """Build a model from layer specs, inferring every layer's input size.

    Layers are named ``<type>_<n>`` (``dense_1``, ``dense_2``, ...) unless a spec gives
    a name; Flatten is just ``flatten`` when there is one.

    With ``seed``, the initial weights depend on the seed alone: they are drawn from a
    generator seeded with it, the same weights ``trainwell train`` draws for a config
    with that ``seed``; PyTorch's global random stream is left as it was. Without it,
    they are drawn from the global stream (seed it with :func:`trainwell.seed_everything`).

    >>> a = build_model([Dense(3)], input_shape=(4,), seed=1)
    >>> b = build_model([Dense(3)], input_shape=(4,), seed=1)
    >>> bool(torch.equal(a.dense_1.weight, b.dense_1.weight))
    True
    """
    if seed is not None:
        check_integer(seed, "build_model: seed must be an integer")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(layers, input_shape)
    if isinstance(layers, ModelSpec):
        spec = layers
    else:
        if input_shape is None:
            raise ConfigError("build_model needs input_shape, e.g. (28, 28) for Fashion-MNIST images")
        specs = [layer_from_dict(layer, where=f"model.layers[{i}]") for i, layer in enumerate(layers)]
        spec = ModelSpec(input_shape=tuple(input_shape), layers=tuple(specs))
    names = _layer_names(spec.layers)
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    output_shapes: dict[str, Shape] = {}
    shape: Shape = spec.input_shape
    for name, layer in zip(names, spec.layers):
        module, shape = layer.build(shape)
        modules[name] = module
        output_shapes[name] = shape
    model = Model(modules, spec=spec)
    model.output_shapes = output_shapes
    model.layer_specs = dict(zip(names, spec.layers))
    return model


def _layer_names(layers: Sequence[LayerSpec]) -> list[str]:
    totals: dict[str, int] = {}
    for layer in layers:
        totals[layer.type] = totals.get(layer.type, 0) + 1
    counters: dict[str, int] = {}
    names = []
    for layer in layers:
        if layer.name:
            name = layer.name
        else:
            counters[layer.type] = counters.get(layer.type, 0) + 1
            name = layer.type if totals[layer.type] == 1 and layer.type == "flatten" else f"{layer.type}_{counters[layer.type]}"
        if name in names:
            raise ConfigError(f"model.layers: the layer name {name!r} is used twice")
        names.append(name)
    return names
