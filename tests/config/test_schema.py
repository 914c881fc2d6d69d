"""The config's sections (trainwell.config.schema): defaults, and errors that name the key."""

import pytest

from helpers import MINIMAL, with_
from trainwell.config import load_config, validate_config
from trainwell.errors import ConfigError


def test_defaults_are_the_books():
    config = validate_config(MINIMAL)
    assert config.seed == 42 and config.data.name == "fashion_mnist" and config.data.validation_size == 5000
    assert config.train.epochs == 10 and config.train.batch_size == 32
    assert config.optimizer == {"name": "sgd"}


@pytest.mark.parametrize("data, message", [
    (with_(train={"epochs": -3}), "'train.epochs' = -3: must be greater than 0"),
    (with_(train={"epochs": "ten"}), "'train.epochs' = 'ten'"),
    (with_(train={"epoch": 3}), "unknown key 'train.epoch'; allowed keys here: epochs, batch_size"),
    (with_(trian={}), "unknown key 'trian'"),
    (with_(data={"scaling": "minmax"}), "'data.scaling' = 'minmax': must be 'unit', 'standardize' or 'none'"),
    (with_(train={"loss": "mse"}), "'train.loss' = 'mse'"),
    (with_(optimizer={"name": "sgd", "lr": -0.1}), "optimizer.lr"),
    (with_(optimizer={"name": "sgdd"}), "unknown optimizer 'sgdd'"),
    (with_(optimizer={"lr": 0.1}), "optimizer.name: missing"),
    ({"model": {"layers": []}}, "'model.layers'"),
    ({}, "'model' is missing"),
    ({"model": {"layers": [{"type": "dense", "units": -1}]}}, "model.layers[0]: dense: 'units' must be a positive integer"),
    ([1, 2], "top level must be a table"),
])
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError) as error:
        validate_config(data, source="cfg.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("cfg.toml")


def test_an_empty_input_shape_is_refused_rather_than_read_as_the_default(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\ninput_shape = []\nlayers = [{type = \"dense\", units = 2}]\n")
    with pytest.raises(ConfigError, match="'model.input_shape' = \\[\\]: .*at least 1 item"):
        load_config(path)
