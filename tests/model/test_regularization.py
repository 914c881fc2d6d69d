"""Penalties, max-norm, layer factories and presets, AlphaDropout."""

import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainwell.model.activations import get_activation
from trainwell.callbacks import Callback
from trainwell.config import load_config, validate_config
from trainwell.errors import ConfigError
from trainwell.recipes.build import build_from_config
from trainwell.model.layers import (AlphaDropout, Dense, Flatten, ModelSpec, build_model,
                              expand_presets, layer_from_dict)
from trainwell.model.losses import get_loss, logits_model
from trainwell.model.regularization import (MaxNorm, Regularizer, get_constraint, get_regularizer,
                                      kernel_constraints, kernel_penalties, l1, l1_l2, l2, max_norm)
from trainwell.model.saving import load_model, save_model
from trainwell.train.trainer import Trainer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHAPTER_CONFIGS = ["l2", "l2_partial", "dropout", "alpha_dropout", "max_norm"]


# ------------------------------------------------------------------ penalties

def test_penalties_match_keras_definitions():
    w = torch.randn(7, 5, dtype=torch.float64)
    # Keras: L1: l1 * sum(|x|); L2: l2 * sum(square(x)) (no 1/2); L1L2: both
    assert torch.allclose(l1(0.01)(w), 0.01 * w.abs().sum())
    assert torch.allclose(l2(0.01)(w), 0.01 * (w ** 2).sum())
    assert torch.allclose(l1_l2(l1=0.001, l2=0.02)(w), 0.001 * w.abs().sum() + 0.02 * (w ** 2).sum())
    assert float(l2(0.5)(torch.tensor([3.0, 4.0]))) == pytest.approx(0.5 * 25)  # closed form


def test_regularizers_by_name_and_table_with_keras_defaults():
    assert get_regularizer("l2") == Regularizer(l2=0.01)
    assert get_regularizer("l1") == Regularizer(l1=0.01)
    assert get_regularizer("l1_l2") == Regularizer(l1=0.01, l2=0.01)
    assert get_regularizer({"name": "l2", "factor": 0.001}) == l2(0.001)
    assert get_regularizer({"name": "l1_l2", "l1": 0.0, "l2": 0.1}).to_dict() == {"name": "l2", "factor": 0.1}


@pytest.mark.parametrize("spec, message", [
    ("l3", "kernel_regularizer: unknown regularizer 'l3'; allowed: l1, l2, l1_l2"),
    ({"name": "l2", "factor": -0.1}, "kernel_regularizer: 'factor' must be a number >= 0, got -0.1"),
    ({"name": "l2", "factor": "big"}, "'factor' must be a number >= 0, got 'big'"),
    ({"name": "l2", "l2": 0.1}, "unknown key 'l2' for l2; allowed: name, factor"),
    ({"factor": 0.1}, "unknown regularizer None"),
    (3, "expected a name or a table with a 'name' key"),
])
def test_bad_regularizers_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_regularizer(spec)


def test_bad_regularizer_in_a_layer_names_the_layer():
    with pytest.raises(ConfigError) as error:
        layer_from_dict({"type": "dense", "units": 3, "kernel_regularizer": {"name": "l2", "factor": -1}},
                        where="model.layers[2]")
    assert str(error.value) == ("model.layers[2]: kernel_regularizer: 'factor' must be a number >= 0, got -1")


def test_history_shows_data_loss_and_penalty_separately(blobs):
    x, y = blobs
    torch.manual_seed(0)
    model = build_model([Dense(8, activation="relu", kernel_regularizer=l2(0.01)),
                         Dense(3, activation="softmax", kernel_regularizer={"name": "l1", "factor": 0.001})],
                        input_shape=(4,))
    with torch.no_grad():
        expected_penalty = float(0.01 * model[0].weight.square().sum() + 0.001 * model[1].weight.abs().sum())
        expected_data = float(get_loss("sparse_categorical_crossentropy")(logits_model(model, get_loss(
            "sparse_categorical_crossentropy"))(torch.as_tensor(x)), torch.as_tensor(y)))
    # a learning rate so small that the weights do not move: the epoch's figures are the initial model's
    trainer = Trainer(model, optimizer={"name": "sgd", "lr": 1e-12}, seed=0)
    record = trainer.fit(x, y, epochs=1, batch_size=50, verbose=False).last
    assert {"loss", "data_loss", "penalty", "accuracy"} <= set(record)
    assert record["penalty"] == pytest.approx(expected_penalty, rel=1e-5)
    assert record["data_loss"] == pytest.approx(expected_data, rel=1e-5)
    assert record["loss"] == pytest.approx(record["data_loss"] + record["penalty"], rel=1e-6)


def test_the_penalty_shrinks_the_weights(blobs):
    x, y = blobs

    def kernel_norm(regularizer):
        torch.manual_seed(0)
        model = build_model([Dense(16, activation="relu", kernel_regularizer=regularizer),
                             Dense(3, activation="softmax")], input_shape=(4,))
        Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, seed=0).fit(x, y, epochs=3, verbose=False)
        return float(model[0].weight.detach().norm())

    assert kernel_norm(l2(0.1)) < 0.8 * kernel_norm(None)


def test_models_without_penalties_log_no_penalty(blobs):
    x, y = blobs
    model = build_model([Dense(3, activation="softmax")], input_shape=(4,))
    assert kernel_penalties(model) == [] and kernel_constraints(model) == []
    record = Trainer(model, optimizer="sgd", seed=0).fit(x, y, epochs=1, verbose=False).last
    assert "penalty" not in record and "data_loss" not in record


def test_any_module_can_carry_a_penalty(blobs):
    x, y = blobs
    model = nn.Sequential(nn.Linear(4, 3))
    model[0].kernel_regularizer = l2(0.01)
    record = Trainer(model, optimizer="sgd", seed=0).fit(x, y, epochs=1, verbose=False).last
    assert record["penalty"] > 0


# ---------------------------------------------------------------- max-norm

def keras_max_norm(kernel, max_value, axis, eps=1e-7):
    """Keras' MaxNorm on a Keras kernel (inputs, units), written out from its definition."""
    norms = np.sqrt(np.sum(kernel ** 2, axis=axis, keepdims=True))
    return kernel * np.clip(norms, 0, max_value) / (eps + norms)


@pytest.mark.parametrize("axis", [0, 1, (0, 1)])
def test_max_norm_matches_keras_on_the_transposed_kernel(axis):
    weight = torch.randn(6, 9, dtype=torch.float64)  # PyTorch: (units, inputs)
    expected = keras_max_norm(weight.numpy().T.copy(), 1.5, axis).T
    assert np.allclose(max_norm(1.5, axis=axis)(weight.clone()).numpy(), expected, rtol=1e-12, atol=0)


def test_max_norm_default_axis_bounds_each_units_incoming_weights():
    weight = torch.full((4, 10), 3.0)  # each of the 4 units has 10 incoming weights
    MaxNorm(max_value=1.0)(weight)
    assert torch.allclose(weight.norm(dim=1), torch.ones(4))
    assert MaxNorm().max_value == 2.0 and MaxNorm().axis == 0  # Keras' defaults


class NormWatcher(Callback):
    """Records the largest unit norm of every constrained layer after every step."""

    def __init__(self):
        self.largest = []

    def on_batch_end(self, trainer, step):
        self.largest.append(max(float(m.weight.detach().norm(dim=1).max()) for m in trainer.model.modules()
                                if getattr(m, "kernel_constraint", None) is not None))


def test_every_units_norm_stays_below_c_after_every_step(blobs):
    x, y = blobs
    torch.manual_seed(0)
    MaxNormDense = partial(Dense, activation="selu", init="lecun_normal", kernel_constraint=max_norm(0.5))
    model = build_model([MaxNormDense(32), MaxNormDense(16), Dense(3, activation="softmax")], input_shape=(4,))
    watcher = NormWatcher()
    Trainer(model, optimizer={"name": "adam", "lr": 0.05}, callbacks=[watcher], seed=0).fit(
        x, y, epochs=2, batch_size=32, verbose=False)
    assert len(watcher.largest) == 2 * math.ceil(len(x) / 32)
    assert max(watcher.largest) <= 0.5
    assert max(watcher.largest) > 0.49  # the constraint was active, not trivially met


@pytest.mark.parametrize("spec, message", [
    ({"name": "max_norm", "axis": 2}, "kernel_constraint: 'axis' = 2 is not allowed; allowed: 0"),
    ({"name": "max_norm", "axis": [0, 0]}, "'axis' = [0, 0] is not allowed"),
    ({"name": "max_norm", "max_value": 0}, "kernel_constraint: 'max_value' must be a number > 0, got 0"),
    ({"name": "unit_norm"}, "kernel_constraint: unknown constraint 'unit_norm'; allowed: max_norm"),
    ({"name": "max_norm", "maxvalue": 1}, "unknown key 'maxvalue' for max_norm; allowed: name, max_value, axis"),
])
def test_bad_constraints_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        get_constraint(spec)


def test_nan_is_neither_a_penalty_factor_nor_a_max_norm():
    """nan fails every comparison, so a check written ``value < 0`` let it through (and the loss became nan)."""
    nan = float("nan")
    for make in (lambda: l2(nan), lambda: l1_l2(l1=nan), lambda: Regularizer(l2=nan)):
        with pytest.raises(ConfigError, match="must be a number >= 0, got nan"):
            make()
    with pytest.raises(ConfigError, match="'max_value' must be a number > 0, got nan"):
        max_norm(nan)


# ------------------------------------------------- factories, presets, saving

def test_partial_layer_factory_and_saving_round_trip(tmp_path):
    RegularizedDense = partial(Dense, activation="elu", init="he_normal", kernel_regularizer=l2(0.01))
    model = build_model([Flatten(), RegularizedDense(30), RegularizedDense(10, activation="softmax"),
                         ], input_shape=(4, 4))
    assert model[1].kernel_regularizer == l2(0.01) and model[2].kernel_regularizer == l2(0.01)
    assert model.spec.layers[2].activation == "softmax" and model.spec.layers[2].init == "he_normal"
    assert ModelSpec.from_dict(model.spec.to_dict()) == model.spec
    constrained = build_model([Dense(5, kernel_constraint="max_norm")], input_shape=(3,))
    assert constrained[0].kernel_constraint == MaxNorm(2.0, 0)
    assert "kernel_constraint=MaxNorm(max_value=2.0, axis=0)" in repr(constrained)
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.spec == model.spec and loaded[1].kernel_regularizer == l2(0.01)


def test_presets_expand_with_the_layers_own_keys_winning():
    presets = {"max_norm_dense": {"type": "dense", "activation": "selu", "init": "lecun_normal",
                                  "kernel_constraint": {"name": "max_norm", "max_value": 1.0}}}
    layers = expand_presets([{"type": "flatten"}, {"type": "max_norm_dense", "units": 5},
                             {"type": "max_norm_dense", "units": 3, "activation": "softmax"}], presets)
    specs = [layer_from_dict(layer) for layer in layers]
    assert specs[1] == Dense(5, activation="selu", init="lecun_normal", kernel_constraint=max_norm(1.0))
    assert specs[2].activation == "softmax" and specs[2].kernel_constraint == {"name": "max_norm", "max_value": 1.0,
                                                                               "axis": 0}


def config_with(presets, layers):
    return {"data": {"name": "digits"}, "model": {"layers": layers, "presets": presets}}


@pytest.mark.parametrize("presets, layers, message", [
    ({"dense": {"type": "dense"}}, [{"type": "dense", "units": 1}],
     "model.presets.dense: a preset cannot reuse the built-in layer type 'dense'"),
    ({"reg": {"type": "conv3d"}}, [{"type": "reg", "units": 1}],
     "model.presets.reg.type: 'conv3d' is not a built-in layer type; allowed: dense"),
    ({"reg": {"type": "dense", "kernel_regulariser": "l2"}}, [{"type": "reg", "units": 1}],
     "model.presets.reg: unknown key 'kernel_regulariser' for a dense layer"),
    ({"reg": {"type": "dense"}}, [{"type": "reg"}], "model.layers[0]: a dense layer needs 'units'"),
    ({"reg": {"type": "dense"}}, [{"type": "regg", "units": 2}], "model.layers[0].type: unknown layer type 'regg'"),
])
def test_bad_presets_name_the_key(presets, layers, message):
    with pytest.raises(ConfigError) as error:
        validate_config(config_with(presets, layers), source="c.toml")
    assert f"c.toml: {message}" in str(error.value)


@pytest.mark.parametrize("name", CHAPTER_CONFIGS)
def test_chapter_configs_build_and_train_a_step(name):
    config = load_config(EXAMPLES / f"{name}.toml")
    assert config.data.scaling == "standardize" and config.train.batch_size == 32
    model = build_from_config(config, (28, 28))
    assert model.output_shapes[list(model.output_shapes)[-1]] == (10,)
    penalties, constraints = kernel_penalties(model), kernel_constraints(model)
    assert len(penalties) == (3 if name.startswith("l2") else 0)
    assert len(constraints) == (2 if name == "max_norm" else 0)
    x, y = torch.randn(64, 28, 28), torch.randint(0, 10, (64,))
    record = Trainer(model, optimizer=dict(config.optimizer), seed=0).fit(x, y, epochs=1, verbose=False).last
    assert math.isfinite(record["loss"]) and (("penalty" in record) == bool(penalties))


def test_l2_partial_matches_the_books_factory():
    model = build_from_config(load_config(EXAMPLES / "l2_partial.toml"), (28, 28))
    last = model.spec.layers[-1]
    assert last == Dense(10, activation="softmax", init="he_normal", kernel_regularizer=l2(0.01))


# ------------------------------------------------------------------ dropout

def test_alpha_dropout_keeps_selus_mean_and_variance():
    torch.manual_seed(0)
    x = get_activation("selu")(torch.randn(2_000_000, dtype=torch.float64))  # SELU's fixed point: mean 0, var 1
    assert abs(float(x.mean())) < 0.005 and abs(float(x.var()) - 1) < 0.005
    rate = 0.2
    dropped = AlphaDropout(rate).build((1,))[0].train()(x)
    assert abs(float(dropped.mean())) < 0.005 and abs(float(dropped.var()) - 1) < 0.005
    # The SELU paper's affine transform: dropped units get a*alpha' + b, kept ones a*x + b, with
    # alpha' = -lambda*alpha, q = 1 - rate, a = (q + alpha'^2 q (1 - q))^(-1/2), b = -a (1 - q) alpha'.
    alpha_p = -1.0507009873554805 * 1.6732632423543772
    q = 1 - rate
    a = (q + alpha_p ** 2 * q * (1 - q)) ** -0.5
    b = -a * (1 - q) * alpha_p
    kept = torch.isclose(dropped, a * x + b, rtol=0, atol=1e-9)
    assert torch.allclose(dropped[~kept], torch.tensor(a * alpha_p + b, dtype=torch.float64))
    assert abs(float((~kept).double().mean()) - rate) < 0.002


# ------------------------------------------------------------ on conv kernels

def _cnn(**conv):
    from trainwell.model.conv_specs import Conv2D

    torch.manual_seed(0)
    return build_model([Conv2D(6, 3, activation="relu", **conv), Flatten(), Dense(10, activation="softmax")],
                       input_shape=(8, 8))


def test_l2_on_a_conv_kernel_is_a_loss_term_that_shrinks_it():
    from helpers import digit_images
    from trainwell.model.regularization import kernel_penalties, total_penalty
    from trainwell.train.trainer import Trainer

    model = _cnn(kernel_regularizer=l2(0.1))
    (weight, regularizer), = kernel_penalties(model)
    assert weight is model.conv2d_1.weight
    assert torch.allclose(total_penalty(kernel_penalties(model)), 0.1 * weight.square().sum())
    x, y = digit_images(256)
    norms = []
    for current in (model, _cnn()):
        Trainer(current, optimizer={"name": "sgd", "lr": 0.05}, seed=0).fit(x, y, epochs=2, verbose=False)
        norms.append(current.conv2d_1.weight.norm().item())
    assert norms[0] < 0.9 * norms[1]


def test_max_norm_on_a_conv_kernel_is_keras_per_filter():
    weight = torch.randn(6, 3, 3, 2, dtype=torch.float64) * 2  # PyTorch: (filters, in, kh, kw)
    keras_kernel = weight.permute(2, 3, 1, 0).numpy()  # Keras: (kh, kw, in, filters)
    expected = keras_max_norm(keras_kernel, 1.5, (0, 1, 2)).transpose(3, 2, 0, 1)
    for constraint in (max_norm(1.5), max_norm(1.5, axis=[0, 1, 2])):
        assert np.allclose(constraint(weight.clone()).numpy(), expected, rtol=1e-12, atol=0)
    with pytest.raises(ConfigError, match="axis \\[0, 1, 2\\] works on Dense kernels \\(2-D\\), got a weight"):
        max_norm(1.0, axis=[0, 1, 2])(torch.ones(3, 4))


def test_max_norm_bounds_each_filter_after_every_step():
    from helpers import digit_images
    from trainwell.train.trainer import Trainer

    model = _cnn(kernel_constraint=max_norm(0.3))
    assert model.conv2d_1.weight.detach().flatten(1).norm(dim=1).min().item() > 0.3  # glorot_uniform's filters
    x, y = digit_images(256)
    Trainer(model, optimizer={"name": "sgd", "lr": 0.5}, seed=0).fit(x, y, epochs=1, verbose=False)
    norms = model.conv2d_1.weight.detach().flatten(1).norm(dim=1)
    assert norms.max().item() <= 0.3 + 1e-6
