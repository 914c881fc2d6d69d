import pytest
from torch import nn

from trainwell.errors import ConfigError
from trainwell.model.layers import BatchNormalization, Dense, Flatten, build_model
from trainwell.model.summary import summary

BN_AFTER = [Flatten(), BatchNormalization(), Dense(300, activation="relu"), BatchNormalization(),
            Dense(100, activation="relu"), BatchNormalization(), Dense(10, activation="softmax")]


def test_bn_after_counts_match_keras():
    s = summary(build_model(BN_AFTER, input_shape=(28, 28)))
    assert (s.total, s.trainable, s.non_trainable) == (271_346, 268_978, 2_368)
    text = str(s)
    assert "Total params: 271,346" in text and "Non-trainable params: 2,368" in text
    assert "batch_normalization_1 (BatchNormalization)" in text


def test_frozen_parameters_count_as_non_trainable():
    model = build_model([Dense(10), Dense(2)], input_shape=(3,))
    for p in model.dense_1.parameters():
        p.requires_grad_(False)
    s = summary(model)
    assert s.non_trainable == 40 and s.trainable == 22


def test_plain_torch_module_needs_input_shape():
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    s = summary(model, input_shape=(2, 3))
    assert [r.output_shape for r in s.rows] == [(6,), (4,), (4,), (2,)]
    assert s.total == 6 * 4 + 4 + 4 * 2 + 2
    with pytest.raises(ConfigError, match="input_shape"):
        summary(model)
