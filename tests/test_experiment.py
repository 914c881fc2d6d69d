"""Whole runs from config files, including the book's leaky_relu experiment on Fashion-MNIST."""

from pathlib import Path

import numpy as np
import pytest

from trainwell.config import load_config, validate_config
from trainwell.errors import ConfigError
from trainwell.experiment import prepare_data, train_config

EXAMPLES = Path(__file__).parents[1] / "examples"


def digits_config(**data):
    return validate_config({
        "name": "digits", "seed": 0,
        "data": {"name": "digits", "validation_size": 300, **data},
        "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2},
    })


def test_standardization_is_fitted_on_the_training_part_only():
    prepared = prepare_data(digits_config(scaling="standardize"))
    flat = prepared.x_train.reshape(len(prepared.x_train), -1)
    varying = flat.std(axis=0) > 0
    assert np.allclose(flat.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(flat.std(axis=0)[varying], 1, atol=1e-4)
    assert abs(prepared.x_val.mean()) > 1e-4  # the validation part was not used to fit
    assert prepared.x_val.shape[0] == 300 and prepared.x_train.shape[0] == 1200


def test_class_filtering_relabels():
    prepared = prepare_data(digits_config(classes=[5, 6, 7]))
    assert set(np.unique(prepared.y_train)) == {0, 1, 2} and prepared.num_classes == 3


def test_unknown_class_is_a_config_error():
    with pytest.raises(ConfigError, match="data.classes"):
        prepare_data(digits_config(classes=[3, 11]))


def test_train_config_without_saving():
    result = train_config(digits_config(), verbose=False, save=False)
    assert result.output_dir is None and len(result.history) == 2
    assert result.metrics["val_accuracy"] > 0.8 and "test_accuracy" in result.metrics


def test_leaky_relu_matches_the_book(needs_real_data, tmp_path):
    """The chapter's leaky_relu run: 10 epochs of SGD 1e-3; the book reaches 0.8430."""
    config = load_config(EXAMPLES / "leaky_relu.toml", [f"output_dir={tmp_path}"])
    result = train_config(config, verbose=False)
    assert result.metrics["val_accuracy"] >= 0.83
    assert (tmp_path / "model.safetensors").exists()


def test_small_training_sets_per_class_and_first_n():
    prepared = prepare_data(digits_config(per_class=20))
    assert np.bincount(prepared.y_train).tolist() == [20] * 10
    again = prepare_data(digits_config(per_class=20))
    assert np.array_equal(prepared.x_train, again.x_train)
    assert len(prepare_data(digits_config(train_size=50)).x_train) == 50
    with pytest.raises(ConfigError, match="data.per_class"):
        prepare_data(digits_config(per_class=1000))
    with pytest.raises(ConfigError, match="data.train_size"):
        prepare_data(digits_config(train_size=100000))
