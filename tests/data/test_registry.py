"""The registry knows each dataset's shape, sizes, classes and default validation size without its files."""

import pytest

from trainwell.data import get_spec, load


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_registered_figures_match_the_real_files(real_data, name):
    spec, data = get_spec(name), load(name, offline=True)
    assert spec.image_shape == data.image_shape and spec.num_classes == data.num_classes
    assert (spec.train_size, spec.test_size) == (len(data.x_train), len(data.x_test))


def test_registered_figures_match_the_bundled_digits():
    spec, data = get_spec("digits"), load("digits")
    assert spec.image_shape == data.image_shape == (8, 8) and spec.num_classes == data.num_classes == 10
    assert (spec.train_size, spec.test_size) == (len(data.x_train), len(data.x_test)) == (1500, 297)


@pytest.mark.parametrize("name, default", [("fashion_mnist", 5000), ("mnist", 5000), ("digits", 300)])
def test_each_dataset_has_a_validation_size_that_suits_it(name, default):
    spec = get_spec(name)
    assert spec.default_validation_size == default < spec.train_size / 4


def test_shapes_are_known_with_no_files_anywhere(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINWELL_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("TRAINWELL_OFFLINE", "1")
    assert get_spec("fashion_mnist").image_shape == (28, 28)
