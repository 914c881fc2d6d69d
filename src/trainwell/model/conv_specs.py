"""Layer specs of convolutional nets, with Keras' names and meanings: Conv2D, MaxPool2D, AveragePool2D,
GlobalAveragePool2D, Reshape and SpatialDropout2D (config types ``conv2d``, ``max_pool2d``,
``average_pool2d``, ``global_average_pool2d``, ``reshape``, ``spatial_dropout2d``).

Shapes are channels-first, as PyTorch's: an image is ``(C, H, W)``. An image layer given a
2-D input ``(H, W)`` (Fashion-MNIST's images as trainwell loads them) reads it as one
channel, so ``[Conv2D(32, 3), ...]`` on ``input_shape=(28, 28)`` needs no Reshape (Keras,
channels-last, writes ``Reshape((28, 28, 1))`` first). A BatchNormalization after a Conv2D
normalizes its channels; Flatten flattens ``(C, H, W)``; a PReLU after (or inside) a Conv2D
has one slope per channel.

>>> from trainwell.model.layers import build_model
>>> from trainwell.model.specs import Dense, Flatten
>>> model = build_model([Conv2D(8, 3, padding="same", activation="relu"), MaxPool2D(), Flatten(), Dense(10)],
...                     input_shape=(28, 28))
>>> model.output_shapes
{'conv2d_1': (8, 28, 28), 'max_pool2d_1': (8, 14, 14), 'flatten': (1568,), 'dense_1': (10,)}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from torch import nn

from trainwell.checks import is_integer, is_number
from trainwell.model.conv_modules import (PADDINGS, ActivatedConv2d, GlobalAveragePool2d, Pool2d, Reshape as
                                          ReshapeModule, output_size)
from trainwell.model.init import get_initializer
from trainwell.model.regularization import ConstraintSpec, RegularizerSpec, get_constraint, get_regularizer
from trainwell.model.specs import (ActivationSpec, InitSpec, LayerSpec, Shape, _activation_module,
                                   _activation_parameters, _check, check_kernel_options, register_layer_type)

Size = Union[int, tuple[int, int]]

__all__ = ["Conv2D", "MaxPool2D", "AveragePool2D", "GlobalAveragePool2D", "Reshape", "SpatialDropout2D",
           "Convolution2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D"]


def _size(value: Any, layer: str, key: str) -> Size:
    """An int or an (h, w) pair, as Keras takes ``kernel_size``, ``strides`` and ``pool_size``; lists become tuples."""
    pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(is_integer(v) and v > 0 for v in value)
    _check(pair or (is_integer(value) and value > 0), layer,
           f"'{key}' must be a positive integer or a list of two, [height, width]; got {value!r}")
    return (int(value[0]), int(value[1])) if pair else int(value)


def _pair(value: Size) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def _image(layer: str, input_shape: Shape) -> tuple[int, int, int]:
    """(channels, height, width) of an image input; a 2-D (H, W) input is one channel."""
    _check(len(input_shape) in (2, 3), layer, f"needs an image input, (channels, height, width) or (height, width) "
                                              f"for one channel; got shape {input_shape}")
    return (1, *input_shape) if len(input_shape) == 2 else tuple(input_shape)  # type: ignore[return-value]


def _padding(value: Any, layer: str) -> None:
    _check(value in PADDINGS, layer, f"'padding' must be one of {', '.join(PADDINGS)}, got {value!r}")


def _spatial(layer: str, size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
             padding: str) -> tuple[int, int]:
    if padding == "valid":
        _check(size[0] >= kernel[0] and size[1] >= kernel[1], layer,
               f"a {kernel[0]}x{kernel[1]} window does not fit an input of {size[0]}x{size[1]} with padding "
               "'valid'; use padding = \"same\" or a smaller window")
    return (output_size(size[0], kernel[0], strides[0], padding), output_size(size[1], kernel[1], strides[1], padding))


@register_layer_type
@dataclass(frozen=True)
class Conv2D(LayerSpec):
    """A 2-D convolution with an optional activation (Keras' ``Conv2D``), on channels-first images.

    ``kernel_size`` and ``strides`` are an int or ``[height, width]``; ``padding`` is
    ``"valid"`` (no padding) or ``"same"`` (Keras' meaning for any stride: ``ceil(size / stride)``
    outputs per axis). ``init`` defaults to ``glorot_uniform`` as in Keras, with Keras' fans
    for a kernel (``fan_in = kh * kw * in_channels``, ``fan_out = kh * kw * filters``);
    ``kernel_regularizer`` and ``kernel_constraint`` are Dense's (``max_norm`` bounds each
    filter's weights, as Keras' ``MaxNorm(axis=[0, 1, 2])`` on a Conv2D kernel).
    Parameters: ``kh * kw * in_channels * filters + filters``.

    >>> Conv2D(32, 3).plan((28, 28))      # one input channel
    (320, (32, 26, 26))
    >>> Conv2D(64, [3, 3], strides=2, padding="same").plan((32, 28, 28))
    (18496, (64, 14, 14))
    """

    filters: int
    kernel_size: Size
    strides: Size = 1
    padding: str = "valid"
    activation: ActivationSpec = None
    init: InitSpec = "glorot_uniform"
    bias_init: InitSpec = "zeros"
    use_bias: bool = True
    name: str | None = None
    kernel_regularizer: RegularizerSpec | None = None
    kernel_constraint: ConstraintSpec | None = None
    type: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        _check(is_integer(self.filters) and self.filters > 0,
               "conv2d", f"'filters' must be a positive integer, got {self.filters!r}")
        object.__setattr__(self, "kernel_size", _size(self.kernel_size, "conv2d", "kernel_size"))
        object.__setattr__(self, "strides", _size(self.strides, "conv2d", "strides"))
        _padding(self.padding, "conv2d")
        _check(isinstance(self.use_bias, bool), "conv2d", f"'use_bias' must be true or false, got {self.use_bias!r}")
        check_kernel_options(self, self.filters)

    def _output(self, input_shape: Shape) -> tuple[int, Shape]:
        channels, height, width = _image("conv2d", input_shape)
        rows, columns = _spatial("conv2d", (height, width), _pair(self.kernel_size), _pair(self.strides), self.padding)
        return channels, (self.filters, rows, columns)

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        channels, shape = self._output(input_shape)
        kh, kw = _pair(self.kernel_size)
        weights = kh * kw * channels * self.filters + self.filters * self.use_bias
        return weights + _activation_parameters(self.activation, self.filters), shape

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        channels, shape = self._output(input_shape)
        module = ActivatedConv2d(
            channels, self.filters, _pair(self.kernel_size), strides=_pair(self.strides), padding=self.padding,
            bias=self.use_bias, activation=_activation_module(self.activation, self.filters),
            kernel_regularizer=None if self.kernel_regularizer is None else get_regularizer(self.kernel_regularizer),
            kernel_constraint=None if self.kernel_constraint is None else get_constraint(self.kernel_constraint))
        get_initializer(self.init)(module.weight)
        if module.bias is not None:
            get_initializer(self.bias_init)(module.bias)
        return module, shape


@dataclass(frozen=True)
class _Pooling(LayerSpec):
    """The keys of both poolings: ``pool_size`` 2 by default, ``strides`` the pool size unless given,
    ``padding`` "valid" (Keras' default) or "same". No parameters; the channels stay."""

    pool_size: Size = 2
    strides: Size | None = None
    padding: str = "valid"
    name: str | None = None
    kind: ClassVar[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_size", _size(self.pool_size, self.type, "pool_size"))
        if self.strides is not None:
            object.__setattr__(self, "strides", _size(self.strides, self.type, "strides"))
        _padding(self.padding, self.type)

    def _strides(self) -> tuple[int, int]:
        return _pair(self.pool_size if self.strides is None else self.strides)

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        _, height, width = _image(self.type, input_shape)
        rows, columns = _spatial(self.type, (height, width), _pair(self.pool_size), self._strides(), self.padding)
        return 0, (*input_shape[:-2], rows, columns)

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        _, shape = self.plan(input_shape)
        return Pool2d(self.kind, _pair(self.pool_size), self._strides(), self.padding), shape


@register_layer_type
@dataclass(frozen=True)
class MaxPool2D(_Pooling):
    """Max pooling (Keras' ``MaxPooling2D``): ``pool_size`` 2 by default, ``strides`` the pool size
    unless given, ``padding`` "valid" (Keras' default) or "same". No parameters; the channels stay.

    >>> MaxPool2D().plan((32, 28, 28)), MaxPool2D(3, strides=2, padding="same").plan((8, 7, 7))
    ((0, (32, 14, 14)), (0, (8, 4, 4)))
    """

    type: ClassVar[str] = "max_pool2d"
    kind: ClassVar[str] = "max"


@register_layer_type
@dataclass(frozen=True)
class AveragePool2D(_Pooling):
    """Average pooling (Keras' ``AveragePooling2D``), with MaxPool2D's keys; with "same", the padding
    is left out of each average, as in Keras."""

    type: ClassVar[str] = "average_pool2d"
    kind: ClassVar[str] = "average"


@register_layer_type
@dataclass(frozen=True)
class GlobalAveragePool2D(LayerSpec):
    """The mean of each channel over the image (Keras' ``GlobalAveragePooling2D``): (C, H, W) -> (C,).

    >>> GlobalAveragePool2D().plan((64, 7, 7))
    (0, (64,))
    """

    name: str | None = None
    type: ClassVar[str] = "global_average_pool2d"

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        channels, _, _ = _image(self.type, input_shape)
        return 0, (channels,)

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        return GlobalAveragePool2d(), self.plan(input_shape)[1]


@register_layer_type
@dataclass(frozen=True)
class Reshape(LayerSpec):
    """Reshape each sample to ``target_shape`` (without the batch axis), as Keras' ``Reshape``;
    one entry may be -1 (what is left). Channels come first: ``Reshape([1, 28, 28])``.

    >>> Reshape([1, -1]).plan((28, 28))
    (0, (1, 784))
    """

    target_shape: tuple[int, ...]
    name: str | None = None
    type: ClassVar[str] = "reshape"

    def __post_init__(self) -> None:
        shape = self.target_shape
        _check(isinstance(shape, (list, tuple)) and len(shape) > 0
               and all(is_integer(d) and (d > 0 or d == -1) for d in shape)
               and sum(d == -1 for d in shape) <= 1, "reshape",
               f"'target_shape' must be a list of positive integers (one may be -1), got {shape!r}")
        object.__setattr__(self, "target_shape", tuple(int(d) for d in shape))

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        size, known = math.prod(input_shape), math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            _check(size % known == 0, "reshape", f"cannot reshape {input_shape} ({size} values) to "
                                                 f"{list(self.target_shape)}")
            return 0, tuple(size // known if d == -1 else d for d in self.target_shape)
        _check(size == known, "reshape", f"cannot reshape {input_shape} ({size} values) to "
                                         f"{list(self.target_shape)} ({known} values)")
        return 0, self.target_shape

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        _, shape = self.plan(input_shape)
        return ReshapeModule(shape), shape


@register_layer_type
@dataclass(frozen=True)
class SpatialDropout2D(LayerSpec):
    """Dropout of whole channels (Keras' ``SpatialDropout2D``, PyTorch's ``Dropout2d``): each channel
    of each image is zeroed with probability ``rate`` while training. MC dropout samples it too."""

    rate: float
    name: str | None = None
    type: ClassVar[str] = "spatial_dropout2d"

    def __post_init__(self) -> None:
        _check(is_number(self.rate) and 0.0 <= self.rate < 1.0, self.type, f"'rate' must be in [0, 1), got {self.rate!r}")

    def plan(self, input_shape: Shape) -> tuple[int, Shape]:
        _check(len(input_shape) == 3, self.type, f"needs channels, (channels, height, width); got shape "
                                                 f"{input_shape} (use dropout on other inputs)")
        return 0, input_shape

    def build(self, input_shape: Shape) -> tuple[nn.Module, Shape]:
        self.plan(input_shape)
        return nn.Dropout2d(self.rate), input_shape


# Keras' other names for the same layers.
Convolution2D = Conv2D
MaxPooling2D = MaxPool2D
AveragePooling2D = AveragePool2D
GlobalAveragePooling2D = GlobalAveragePool2D
