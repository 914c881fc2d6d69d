"""The builder: shapes inferred, names readable, specs round-tripped, sizes checked before building."""

import pytest
import torch
from torch import nn

import trainwell as tw

from trainwell.errors import ConfigError
from trainwell.model.layers import (Activation, AlphaDropout, BatchNormalization, Dense, Dropout, Flatten, ModelSpec,
                              build_model)
from trainwell.model.modules import ActivatedLinear


def test_shapes_are_inferred_and_names_are_readable():
    model = build_model([Flatten(), Dense(300, activation="relu"), BatchNormalization(), Dense(10)], input_shape=(28, 28))
    assert isinstance(model, nn.Sequential)
    assert [n for n, _ in model.named_children()] == ["flatten", "dense_1", "batch_normalization_1", "dense_2"]
    assert model.dense_1.in_features == 784 and model.dense_2.in_features == 300
    assert model.output_shapes["dense_2"] == (10,)
    assert model(torch.zeros(5, 28, 28)).shape == (5, 10)


def test_dropout_layers():
    model = build_model([Dropout(0.5), AlphaDropout(0.2), Activation("selu")], input_shape=(4,))
    assert isinstance(model[0], nn.Dropout) and isinstance(model[1], nn.AlphaDropout)
    model.eval()
    x = torch.randn(3, 4)
    assert torch.equal(model[0](x), x)


def test_prelu_gets_one_slope_per_unit():
    model = build_model([Dense(30, activation="prelu")], input_shape=(4,))
    slopes = [p for n, p in model.named_parameters() if "activation" in n]
    assert slopes and slopes[0].numel() == 30


def test_spec_round_trips_through_dicts():
    spec = ModelSpec((28, 28), (Flatten(), Dense(300, activation={"name": "leaky_relu", "alpha": 0.2}, init="he_normal"),
                                BatchNormalization(momentum=0.9), Dropout(0.1), Dense(10, activation="softmax")))
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_duplicate_names_and_missing_input_shape_are_errors():
    with pytest.raises(ConfigError, match="used twice"):
        build_model([Dense(3, name="a"), Dense(3, name="a")], input_shape=(2,))
    with pytest.raises(ConfigError, match="input_shape"):
        build_model([Dense(3)])
    with pytest.raises(ConfigError, match="input_shape"):
        ModelSpec((0,), (Dense(3),))


def test_activated_linear_logits_skip_activation():
    layer = ActivatedLinear(3, 2, activation=nn.Softmax(dim=-1))
    x = torch.randn(4, 3)
    assert torch.allclose(layer(x), torch.softmax(layer.forward_logits(x), -1))


def test_sizes_are_checked_from_the_spec_before_anything_is_built():
    from trainwell.model.layers import MAX_LAYERS, ModelSpec, expand_repeats

    with pytest.raises(ConfigError, match=r"model: 785,000,000,000 parameters .* at most 1,000,000,000"):
        ModelSpec(input_shape=(28, 28), layers=(Flatten(), Dense(1_000_000_000)))
    with pytest.raises(ConfigError, match=rf"model.layers\[1\].repeat = 1000000000: a model has at most {MAX_LAYERS:,}"):
        expand_repeats([{"type": "flatten"}, {"type": "dense", "units": 4, "repeat": 10**9}])
    assert len(expand_repeats([{"type": "dense", "units": 4, "repeat": 99}])) == 99


@pytest.mark.parametrize("layers", [
    [tw.Flatten(), tw.Dense(7, activation="relu"), tw.Dense(3, activation="softmax")],
    [tw.Flatten(), tw.Dense(7, activation="prelu", use_bias=False), tw.BatchNormalization(), tw.Dense(3)],
    [tw.Flatten(), tw.Dense(5, activation="selu"), tw.AlphaDropout(0.1), tw.Dense(4, use_bias=False)],
])
def test_the_size_counted_from_the_spec_is_the_built_models(layers):
    """The parameter bound counts from the spec, before building: it must count what a build makes
    (weights, biases only where there are biases, PReLU's slopes; BatchNorm's moving statistics too)."""
    model = tw.build_model(layers, input_shape=(4, 2))
    built = sum(t.numel() for t in model.state_dict().values() if t.dtype.is_floating_point)
    shape, counted = (4, 2), 0
    for layer in layers:
        params, shape = layer.plan(shape)
        counted += params
    assert counted == built
