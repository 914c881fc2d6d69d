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


def test_a_small_cnn_counts_and_shapes_as_keras():
    from trainwell.model.conv_specs import Conv2D, GlobalAveragePool2D, MaxPool2D, Reshape, SpatialDropout2D

    layers = [Conv2D(8, 3, padding="same", activation="relu"), BatchNormalization(),
              Conv2D(16, [3, 5], strides=2), MaxPool2D(2, padding="same"), SpatialDropout2D(0.1), Reshape([-1]),
              Dense(10, activation="softmax")]
    s = summary(build_model(layers, input_shape=(28, 28)))
    # Keras' formulas: a conv has kh * kw * in_channels * filters + filters; BN 4 per channel, half of them the
    # moving statistics; "same": ceil(n / s); "valid": (n - k) // s + 1; pooling, dropout and reshape have none.
    rows_2, cols_2 = (28 - 3) // 2 + 1, (28 - 5) // 2 + 1
    pooled = (-(-rows_2 // 2), -(-cols_2 // 2))
    expected = [
        ("conv2d_1", "Conv2D", (8, 28, 28), 3 * 3 * 1 * 8 + 8, 0),
        ("batch_normalization_1", "BatchNormalization", (8, 28, 28), 2 * 8, 2 * 8),
        ("conv2d_2", "Conv2D", (16, rows_2, cols_2), 3 * 5 * 8 * 16 + 16, 0),
        ("max_pool2d_1", "MaxPool2D", (16, *pooled), 0, 0),
        ("spatial_dropout2d_1", "SpatialDropout2D", (16, *pooled), 0, 0),
        ("reshape_1", "Reshape", (16 * pooled[0] * pooled[1],), 0, 0),
        ("dense_1", "Dense", (10,), 16 * pooled[0] * pooled[1] * 10 + 10, 0),
    ]
    assert [(r.name, r.kind, r.output_shape, r.trainable, r.non_trainable) for r in s.rows] == expected
    assert s.total == sum(row[3] + row[4] for row in expected) and s.non_trainable == 16
    assert "conv2d_2 (Conv2D)" in str(s) and "(None, 16, 13, 12)" in str(s)
    gap = summary(build_model([Conv2D(4, 3), GlobalAveragePool2D(), Dense(2)], input_shape=(3, 9, 9)))
    assert [(r.output_shape, r.params) for r in gap.rows] == [((4, 7, 7), 3 * 3 * 3 * 4 + 4), ((4,), 0),
                                                             ((2,), 4 * 2 + 2)]


def test_a_cnn_config_through_the_summary_command(tmp_path, capsys):
    from trainwell.cli import main

    config = tmp_path / "cnn.toml"
    config.write_text('[data]\nname = "digits"\n[model]\nlayers = [{type = "conv2d", filters = 4, kernel_size = 3},\n'
                      '  {type = "batch_normalization"}, {type = "global_average_pool2d"},\n'
                      '  {type = "dense", units = 10, activation = "softmax"}]\n')
    assert main(["summary", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "conv2d_1 (Conv2D)" in printed and "(None, 4, 6, 6)" in printed
    assert f"Total params: {9 * 4 + 4 + 16 + 4 * 10 + 10:,}" in printed and "Non-trainable params: 8" in printed


def test_a_module_used_at_two_places_has_a_row_at_each_with_its_parameters_counted_once():
    """named_children() yields a module used twice once: the summary lost the second ReLU's row, and gave the
    first the second's output shape."""
    relu, shared = nn.ReLU(), nn.Linear(3, 3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), relu, nn.Linear(8, 3), relu, shared, shared)
    s = summary(model, input_shape=(2, 2))
    assert [row.name for row in s.rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert [row.output_shape for row in s.rows] == [(4,), (8,), (8,), (3,), (3,), (3,), (3,)]
    assert [row.kind for row in s.rows][4:] == ["ReLU, again: 2", "Linear", "Linear, again: 5"]
    assert s.total == sum(p.numel() for p in model.parameters()) == 40 + 27 + 12
    assert [row.params for row in s.rows] == [0, 40, 0, 27, 0, 12, 0]
