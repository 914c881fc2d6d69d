"""Layer specs: Keras' defaults, what each builds, and bad specs that name the problem."""

import pytest
import torch

from trainwell.errors import ConfigError
from trainwell.model.modules import BatchNorm
from trainwell.model.specs import BatchNormalization, Dense, layer_from_dict


def test_dense_defaults_follow_keras():
    torch.manual_seed(0)
    layer, shape = Dense(400).build((1000,))
    assert shape == (400,)
    assert torch.all(layer.bias == 0)
    limit = (6 / (1000 + 400)) ** 0.5  # glorot uniform
    assert layer.weight.abs().max() <= limit
    assert layer.weight.abs().max() > 0.95 * limit


def test_dense_without_bias_and_with_init():
    layer, _ = Dense(100, use_bias=False, init="zeros").build((10,))
    assert layer.bias is None and torch.all(layer.weight == 0)


def test_batchnorm_maps_keras_momentum_and_epsilon():
    module, _ = BatchNormalization().build((7,))
    assert isinstance(module, BatchNorm)
    assert module.momentum == pytest.approx(0.01) and module.eps == pytest.approx(1e-3)
    # Keras: moving = 0.99 * moving + 0.01 * batch; after one batch of mean 5, moving mean 0.05
    module.train()
    module(torch.full((4, 7), 5.0) + torch.randn(4, 7) * 1e-3)
    assert torch.allclose(module.running_mean, torch.full((7,), 0.05), atol=1e-4)


def test_batchnorm_normalizes_last_axis_for_higher_rank_inputs():
    module, _ = BatchNormalization().build((3, 5))
    x = torch.randn(8, 3, 5) * 4 + 2
    y = module.train()(x)
    flat = y.reshape(-1, 5)
    assert torch.allclose(flat.mean(0), torch.zeros(5), atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    ({"type": "dense"}, "needs 'units'"),
    ({"type": "dense", "units": 0}, "positive integer"),
    ({"type": "dense", "units": 3.5}, "positive integer"),
    ({"type": "dense", "units": 3, "unit": 4}, "unknown key 'unit'"),
    ({"type": "dense", "units": 3, "activation": "relux"}, "relux"),
    ({"type": "dense", "units": 3, "init": "he_nromal"}, "he_nromal"),
    ({"type": "dropout", "rate": 1.5}, "'rate' must be in [0, 1)"),
    ({"type": "batch_normalization", "momentum": 2}, "'momentum' must be in [0, 1)"),
    ({"type": "conv"}, "unknown layer type 'conv'"),
    ("dense", "expected a table"),
])
def test_bad_layer_specs_name_the_problem(bad, message):
    with pytest.raises(ConfigError) as error:
        layer_from_dict(bad, where="model.layers[2]")
    assert message in str(error.value)
    assert "model.layers[2]" in str(error.value)
