"""The static SELU checks: each self-normalization condition broken is named, on the spec."""

import pytest
import torch

import trainwell as tw
from helpers import selu_stack, train_and_record
from trainwell.config import load_config
from trainwell.doctor.selfnorm import check_self_normalization
from trainwell.model.regularization import l2, max_norm
from trainwell.recipes.build import build_from_config


def codes(spec, scaling="standardize", **kwargs):
    return [f.code.split(".")[1] for f in check_self_normalization(spec, scaling=scaling, **kwargs)]


def test_selu_stack_with_standardized_inputs_passes():
    assert codes(selu_stack()) == []
    assert codes(selu_stack(tw.AlphaDropout(0.2))) == []
    assert codes(selu_stack(init={"name": "variance_scaling", "scale": 1.0})) == []


@pytest.mark.parametrize("spec, scaling, expected", [
    (selu_stack(), "unit", ["inputs"]),
    (selu_stack(tw.Dropout(0.2)), "standardize", ["dropout"]),
    (selu_stack(tw.BatchNormalization()), "standardize", ["batch_norm"]),
    (selu_stack(init="he_normal"), "standardize", ["init"]),
    (selu_stack(kernel_regularizer=l2(0.01)), "standardize", ["regularization"]),
    (selu_stack(kernel_constraint=max_norm(1.0)), "standardize", ["max_norm"]),
    (selu_stack(tw.Dense(16, activation="relu", init="lecun_normal")), "standardize", ["architecture"]),
])
def test_each_broken_condition_is_named(spec, scaling, expected):
    assert codes(spec, scaling) == expected


def test_weight_decay_is_an_l2_penalty_and_measured_inputs_decide_without_a_scaling():
    assert codes(selu_stack(), optimizer={"name": "sgd", "weight_decay": 1e-4}) == ["regularization"]
    model, recording = train_and_record([tw.Dense(16, activation="selu", init="lecun_normal"),
                                         tw.Dense(3, activation="softmax")], standardized=False)
    (finding,) = check_self_normalization(model, recording=recording)
    assert finding.code == "self_normalization.inputs" and "mean 0.5" in finding.detail
    assert check_self_normalization(tw.build_model([tw.Dense(3, activation="relu")], input_shape=(4,)),
                                    scaling="unit") == []


@pytest.mark.parametrize("name, activation, init", [("selu_100", "selu", "lecun_normal"),
                                                    ("relu_100", "relu", "he_normal")])
def test_chapter_100_layer_examples(name, activation, init):
    config = load_config(f"examples/{name}.toml")
    model = build_from_config(config, (28, 28))
    dense = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert len(dense) == 101 and [d.out_features for d in dense[:3]] == [300, 100, 100]
    assert list(model.named_children())[-1][0] == "dense_101"
    assert {spec.activation for spec in model.spec.layers[1:-1]} == {activation}
    assert {spec.init for spec in model.spec.layers[1:-1]} == {init}
    assert codes(model.spec, config.data.scaling) == []  # selu_100 meets every condition; relu_100 has no SELU
