"""The checks across sections (trainwell.config.validate): the dataset's sizes, the phases."""

import pytest

from helpers import PHASED, with_
from trainwell.config import apply_overrides, validate_config
from trainwell.errors import ConfigError


def test_validation_size_defaults_to_the_datasets_own():
    assert validate_config(with_(data={"name": "digits"})).data.validation_size == 300
    assert validate_config(with_(data={"name": "mnist"})).data.validation_size == 5000
    assert validate_config(with_(data={"name": "digits", "validation_size": 0})).data.validation_size == 0
    assert validate_config(with_(data={"name": "digits"})).to_dict()["data"]["validation_size"] == 300


@pytest.mark.parametrize("data, message", [
    ({"name": "digits", "validation_size": 1500},
     "data.validation_size: 1500 leaves no training images (digits has 1500; its default is 300)"),
    ({"name": "imagenet"}, "data.name: Unknown dataset 'imagenet'; allowed: digits, fashion_mnist, mnist"),
])
def test_data_section_is_checked_against_the_registry(data, message):
    with pytest.raises(ConfigError) as error:
        validate_config(with_(data=data), source="cfg.toml")
    assert str(error.value) == f"cfg.toml: {message}"


def test_epochs_on_a_phased_config_says_to_set_the_phases():
    with pytest.raises(ConfigError) as error:
        validate_config(apply_overrides(PHASED, ["train.epochs=2"]), source="cfg.toml")
    assert str(error.value) == (
        "cfg.toml: train.epochs = 2: this config trains in [[phases]], each with its own epochs "
        "(phases[0].epochs = 2, phases[1].epochs = 3); set those instead, e.g. --set phases[1].epochs=2 "
        "(and leave out --epochs and train.epochs)")
