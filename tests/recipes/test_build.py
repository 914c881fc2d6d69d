"""A config's data and model: splits, class filtering, small training sets, standardization."""

import numpy as np
import pytest

from helpers import digits_config
from trainwell.errors import ConfigError
from trainwell.recipes.build import prepare_data


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
