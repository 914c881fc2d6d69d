"""The builder that turns a list of layer specs into a plain ``nn.Sequential``, and the config form
of such a list: presets (named defaults for a layer type) and repeats, checked against a size limit.

The specs themselves (Dense, BatchNormalization, Dropout, ...) live in
:mod:`trainwell.model.specs` (the image layers, Conv2D, MaxPool2D, ..., in
:mod:`trainwell.model.conv_specs`) and are importable from here too; :func:`build_model` infers
their shapes from the input shape. The same specs come from Python and from config files
(``{"type": "dense", "units": 300}``), so both describe models identically.

>>> model = build_model([Flatten(), Dense(300, activation="relu"), Dense(10, activation="softmax")], input_shape=(28, 28))
>>> [name for name, _ in model.named_children()]
['flatten', 'dense_1', 'dense_2']
>>> model(torch.zeros(2, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch  # noqa: F401  (the module docstring's example uses it)
from torch import nn

from trainwell.checks import check_integer, is_integer
from trainwell.errors import ConfigError
from trainwell.model.specs import (LAYER_TYPES, Activation, AlphaDropout, BatchNormalization, Dense, Dropout, Flatten,
                                   LayerSpec, Shape, layer_from_dict)
from trainwell.model.conv_specs import (AveragePool2D, Conv2D, GlobalAveragePool2D, MaxPool2D, Reshape,  # registers them
                                        SpatialDropout2D)

__all__ = ["LayerSpec", "Dense", "BatchNormalization", "Dropout", "AlphaDropout", "Flatten", "Activation",
           "Conv2D", "MaxPool2D", "AveragePool2D", "GlobalAveragePool2D", "Reshape", "SpatialDropout2D",
           "LAYER_TYPES", "layer_from_dict", "check_presets", "expand_presets", "expand_repeats", "MAX_LAYERS",
           "MAX_PARAMETERS", "check_model_size", "ModelSpec", "Model", "build_model", "Shape"]


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
        if not shape or not all(is_integer(d) and d > 0 for d in shape):
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


def layer_places(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers as ``(name, module)`` at each of their places, in order: ``named_children()`` yields
    a module used twice (one ReLU at two places of an ``nn.Sequential``) once, which would drop its second
    place from a summary and shift the layer indices after it away from ``model[i]``."""
    return [(name, module) for name, module in model.named_modules(remove_duplicate=False) if name and "." not in name]


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
