"""The image layers' specs: Keras' shapes and padding, channels first, BN on channels, config round trips."""

import pytest
import torch
from torch import nn

from trainwell.errors import ConfigError
from trainwell.model.conv_modules import ChannelBatchNorm
from trainwell.model.conv_specs import (AveragePool2D, AveragePooling2D, Conv2D, GlobalAveragePool2D, MaxPool2D,
                                        MaxPooling2D, Reshape, SpatialDropout2D)
from trainwell.model.layers import ModelSpec, build_model
from trainwell.model.saving import load_model, save_model
from trainwell.model.specs import Activation, BatchNormalization, Dense, Flatten, layer_from_dict


def keras_size(size, kernel, stride, padding):
    """Keras' output length, written from its documentation: ceil(n / s) for same, ceil((n - k + 1) / s) for valid."""
    return -(-size // stride) if padding == "same" else -(-(size - kernel + 1) // stride)


@pytest.mark.parametrize("size, kernel, stride, padding", [
    (28, 3, 1, "same"), (28, 3, 2, "same"), (28, 5, 3, "same"), (7, 2, 2, "same"), (28, 3, 1, "valid"),
    (28, 3, 2, "valid"), (9, 4, 3, "valid"), (28, 4, 1, "same")])
def test_conv_and_pool_output_shapes_are_keras(size, kernel, stride, padding):
    conv = Conv2D(4, kernel, strides=stride, padding=padding)
    expected = keras_size(size, kernel, stride, padding)
    assert conv.plan((3, size, size))[1] == (4, expected, expected)
    model = build_model([conv], input_shape=(3, size, size))
    assert tuple(model(torch.zeros(2, 3, size, size)).shape) == (2, 4, expected, expected)
    for pool in (MaxPool2D(kernel, strides=stride, padding=padding), AveragePool2D(kernel, strides=stride,
                                                                                   padding=padding)):
        built = build_model([pool], input_shape=(3, size, size))
        assert list(built.output_shapes.values()) == [(3, expected, expected)]
        assert tuple(built(torch.zeros(2, 3, size, size)).shape) == (2, 3, expected, expected)


def test_same_padding_with_a_stride_pads_the_extra_row_at_the_bottom_and_right_as_tensorflow():
    # A 4x4 image, 3x3 kernel of ones, stride 2: TensorFlow pads 0 rows above, 1 below (and the same for columns),
    # so the first output sums x[0:3, 0:3] and the last one x[2:4, 2:4].
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    model = build_model([Conv2D(1, 3, strides=2, padding="same", init="ones", use_bias=False)], input_shape=(1, 4, 4))
    out = model(x)[0, 0]
    image = x[0, 0].numpy()
    assert out.shape == (2, 2)
    assert out[0, 0].item() == image[0:3, 0:3].sum()
    assert out[0, 1].item() == image[0:3, 2:4].sum()
    assert out[1, 1].item() == image[2:4, 2:4].sum()


def test_same_pooling_never_picks_or_averages_the_padding():
    x = -torch.arange(1.0, 26.0).reshape(1, 1, 5, 5)  # all negative: a zero pad would win a max
    image = x[0, 0].numpy()
    biggest = build_model([MaxPool2D(2, padding="same")], input_shape=(1, 5, 5))(x)[0, 0]
    mean = build_model([AveragePool2D(2, padding="same")], input_shape=(1, 5, 5))(x)[0, 0]
    assert biggest.shape == mean.shape == (3, 3)
    assert biggest[2, 2].item() == image[4, 4] and biggest[0, 2].item() == image[0:2, 4].max()
    assert mean[2, 2].item() == image[4, 4]
    assert mean[0, 2].item() == pytest.approx(image[0:2, 4].mean())
    assert mean[0, 0].item() == pytest.approx(image[0:2, 0:2].mean())
    # symmetric "same" padding (3x3, stride 1) also leaves the padding out of the average
    mean3 = build_model([AveragePool2D(3, strides=1, padding="same")], input_shape=(1, 5, 5))(x)[0, 0]
    assert mean3[0, 0].item() == pytest.approx(image[0:2, 0:2].mean())


def test_a_2d_input_is_one_channel():
    model = build_model([Conv2D(6, 3, activation="relu"), MaxPool2D(), Flatten(), Dense(10)], input_shape=(28, 28))
    assert model.output_shapes["conv2d_1"] == (6, 26, 26)
    assert model.conv2d_1.weight.shape == (6, 1, 3, 3)
    x = torch.rand(3, 28, 28)
    assert torch.equal(model(x), model(x.unsqueeze(1)))  # (N, H, W) reads as (N, 1, H, W)
    assert model.output_shapes["flatten"] == (6 * 13 * 13,)
    assert GlobalAveragePool2D().plan((28, 28)) == (0, (1,))


def test_batch_normalization_after_a_conv_normalizes_each_channel_with_keras_defaults():
    model = build_model([Conv2D(5, 3), BatchNormalization()], input_shape=(2, 9, 9), seed=0)
    bn = model.batch_normalization_1
    assert isinstance(bn, ChannelBatchNorm) and bn.num_features == 5
    assert bn.eps == 1e-3 and bn.momentum == pytest.approx(0.01)  # Keras' epsilon; momentum 0.99 as 1 - 0.99
    x = torch.randn(8, 2, 9, 9) * 3 + 1
    y = model(x)
    per_channel = y.transpose(0, 1).reshape(5, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(5), atol=1e-5)
    assert torch.allclose(per_channel.var(1, unbiased=False), torch.ones(5), atol=1e-2)
    # the moving variance follows Keras: the biased batch variance, weight 0.01
    conv_out = model.conv2d_1(x).detach().transpose(0, 1).reshape(5, -1)
    assert torch.allclose(bn.running_var, 0.99 + 0.01 * conv_out.var(1, unbiased=False), atol=1e-5)
    assert torch.allclose(bn.running_mean, 0.01 * conv_out.mean(1), atol=1e-6)
    # the output equals PyTorch's BatchNorm2d's in training
    reference = nn.BatchNorm2d(5, eps=1e-3)
    assert torch.allclose(y, reference(model.conv2d_1(x)), atol=1e-5)
    model.eval()
    assert model(x).shape == (8, 5, 7, 7)
    assert BatchNormalization().plan((5, 7, 7)) == (20, (5, 7, 7))
    assert BatchNormalization().plan((28, 28)) == (112, (28, 28))  # a 2-D input: the last axis, as before


def test_prelu_on_a_conv_has_one_slope_per_channel():
    model = build_model([Conv2D(4, 3, activation="prelu"), Activation("prelu")], input_shape=(1, 6, 6))
    assert model.conv2d_1.activation.weight.shape == (4,)
    assert model.activation_1.weight.shape == (4,)
    assert Conv2D(4, 3, activation="prelu").plan((1, 6, 6))[0] == 9 * 4 + 4 + 4
    assert Activation("prelu").plan((4, 4, 4))[0] == 4
    assert model(torch.randn(2, 1, 6, 6)).shape == (2, 4, 4, 4)


def test_spatial_dropout_drops_whole_channels():
    torch.manual_seed(0)
    model = build_model([SpatialDropout2D(0.5)], input_shape=(64, 4, 4))
    y = model(torch.ones(2, 64, 4, 4))
    per_channel = y.reshape(2 * 64, 16)
    assert set(per_channel.min(1).values.tolist()) <= {0.0, 2.0}
    assert torch.equal(per_channel.min(1).values, per_channel.max(1).values)  # a channel is all kept or all dropped
    assert 0 < (per_channel[:, 0] == 0).sum() < 128
    model.eval()
    assert torch.equal(model(torch.ones(1, 64, 4, 4)), torch.ones(1, 64, 4, 4))


def test_reshape_keeps_the_batch_axis():
    model = build_model([Reshape([1, 28, 28]), Conv2D(2, 3)], input_shape=(784,))
    assert model.output_shapes == {"reshape_1": (1, 28, 28), "conv2d_1": (2, 26, 26)}
    assert model(torch.zeros(3, 784)).shape == (3, 2, 26, 26)
    assert Reshape([-1, 4]).plan((2, 8)) == (0, (4, 4))


def test_specs_round_trip_through_config_dicts_and_model_files(tmp_path):
    layers = [Conv2D(4, [3, 2], strides=[1, 2], padding="same", activation="elu", init="he_normal",
                     kernel_regularizer="l2", kernel_constraint={"name": "max_norm", "max_value": 1.0}),
              BatchNormalization(), MaxPool2D(3, strides=1, padding="same"), AveragePool2D(), SpatialDropout2D(0.2),
              Conv2D(8, 1), GlobalAveragePool2D(), Reshape([2, 4]), Flatten(), Dense(3, activation="softmax")]
    for layer in layers:
        assert layer_from_dict(layer.to_dict()) == layer
    assert layers[0].to_dict()["kernel_size"] == [3, 2]
    assert layer_from_dict({"type": "max_pool2d"}) == MaxPool2D(pool_size=2, strides=None, padding="valid")
    model = build_model(layers, input_shape=(2, 12, 12), seed=0)
    path = tmp_path / "cnn.safetensors"
    save_model(model, path)
    again = load_model(path)
    assert again.spec == model.spec
    model.eval(), again.eval()
    x = torch.randn(4, 2, 12, 12)
    assert torch.equal(model(x), again(x))
    assert ModelSpec.from_dict(model.spec.to_dict()) == model.spec


def test_keras_aliases():
    assert MaxPooling2D is MaxPool2D and AveragePooling2D is AveragePool2D


@pytest.mark.parametrize("table, message", [
    ({"type": "conv2d", "kernel_size": 3}, "a conv2d layer needs 'filters'"),
    ({"type": "conv2d", "filters": 0, "kernel_size": 3}, "'filters' must be a positive integer, got 0"),
    ({"type": "conv2d", "filters": 2, "kernel_size": [3]}, "'kernel_size' must be a positive integer or a list of two"),
    ({"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"},
     "'padding' must be one of valid, same, got 'full'"),
    ({"type": "conv2d", "filters": 2, "kernel_size": 3, "units": 3}, "unknown key 'units' for a conv2d layer"),
    ({"type": "max_pool2d", "strides": 0}, "'strides' must be a positive integer or a list of two"),
    ({"type": "reshape", "target_shape": [-1, -1]}, "'target_shape' must be a list of positive integers"),
    ({"type": "spatial_dropout2d", "rate": 1.0}, "'rate' must be in [0, 1), got 1.0"),
])
def test_bad_tables_name_the_key(table, message):
    with pytest.raises(ConfigError) as error:
        layer_from_dict(table, where="model.layers[0]")
    assert message in str(error.value) and str(error.value).startswith("model.layers[0]")


@pytest.mark.parametrize("layers, input_shape, message", [
    ([Conv2D(2, 5)], (3, 3), "conv2d: a 5x5 window does not fit an input of 3x3 with padding 'valid'"),
    ([Conv2D(2, 3)], (10,), "conv2d: needs an image input, (channels, height, width) or (height, width)"),
    ([MaxPool2D()], (2, 3, 4, 5), "max_pool2d: needs an image input"),
    ([SpatialDropout2D(0.1)], (28, 28), "spatial_dropout2d: needs channels"),
    ([Reshape([5, 5])], (28, 28), "reshape: cannot reshape (28, 28) (784 values) to [5, 5] (25 values)"),
])
def test_shapes_that_do_not_fit_are_refused_when_planned(layers, input_shape, message):
    with pytest.raises(ConfigError) as error:
        build_model(layers, input_shape=input_shape)
    assert message in str(error.value)


def test_max_norm_of_conv_kernels_keeps_the_axis_check():
    with pytest.raises(ConfigError, match="works on Dense kernels"):
        build_model([Conv2D(2, 3, kernel_constraint={"name": "max_norm", "axis": 1})],
                    input_shape=(1, 5, 5)).conv2d_1.kernel_constraint(torch.ones(2, 1, 3, 3))


def test_the_cnn_example_trains_through_the_cli(needs_real_data, tmp_path, capsys):
    from pathlib import Path

    from trainwell.cli import main

    example = Path(__file__).parents[2] / "examples" / "cnn.toml"
    assert main(["summary", str(example)]) == 0
    printed = capsys.readouterr().out
    conv_1, conv_2 = 3 * 3 * 1 * 16, 3 * 3 * 16 * 32  # no biases: BatchNormalization follows
    assert f"Total params: {conv_1 + 4 * 16 + conv_2 + 4 * 32 + 32 * 14 * 14 * 10 + 10:,}" in printed
    assert "max_pool2d_1 (MaxPool2D)" in printed and "(None, 32, 14, 14)" in printed
    out = tmp_path / "run"
    assert main(["train", str(example), "--epochs", "1", "--set", "data.train_size=256", "--set",
                 "data.validation_size=256", "-o", str(out), "-q"]) == 0
    from trainwell.train.history import History

    history = History.from_json(out / "history.json")
    assert len(history) == 1 and 0.1 < history["val_accuracy"][0] <= 1.0
