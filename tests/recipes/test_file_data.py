"""A run on files: the validation rows, the labels, the scaling and what the model file records about them."""

import numpy as np
import pytest
from file_helpers import table_files

from trainwell.config import validate_config
from trainwell.errors import ConfigError, DataError
from trainwell.recipes import file_data
from trainwell.recipes.build import build_from_config, prepare_data
from trainwell.recipes.fingerprint import fit_fingerprint

LAYERS = [{"type": "dense", "units": 3, "activation": "softmax"}]


def files_config(train=None, layers=LAYERS, **data):
    return validate_config({"seed": 3, "data": {"format": "csv", "target": "label", **data},
                            "model": {"layers": layers}, "train": {"epochs": 1, **(train or {})}})


@pytest.fixture
def wine(tmp_path):
    return table_files(tmp_path)


def test_tables_are_standardized_on_the_training_rows_and_validate_on_seeded_random_rows(wine):
    config = files_config(path=str(wine["train"]))
    assert config.data.scaling == "standardize" and config.data.name is None
    prepared = prepare_data(config)
    assert len(prepared.x_val) == round(0.1 * 138) and len(prepared.x_train) == 138 - len(prepared.x_val)
    assert np.allclose(prepared.x_train.mean(axis=0), 0, atol=1e-5) and prepared.x_test is None
    assert prepared.num_classes == 3 and prepared.info["class_names"] == ["class_0", "class_1", "class_2"]
    assert prepared.info["features"][0] == "alcohol" and prepared.input_shape == (13,)
    assert np.array_equal(prepare_data(config).x_val, prepared.x_val)  # the same seed, the same rows
    other = prepare_data(files_config(path=str(wine["train"]), validation_size=30))
    assert len(other.x_val) == 30
    assert validate_config(config.to_dict()) == config  # the defaults, filled in once, stay put


def test_scaling_set_in_the_config_is_kept_and_a_registered_dataset_keeps_its_default(wine):
    assert files_config(path=str(wine["train"]), scaling="none").data.scaling == "none"
    assert validate_config({"data": {"name": "digits"}, "model": {"layers": LAYERS}}).data.scaling == "unit"
    split = validate_config({"data": {"name": "digits", "validation_split": 0.25}, "model": {"layers": LAYERS}})
    assert split.data.validation_size == round(0.25 * 1500) and split.data.validation_split is None


def test_a_regression_loss_keeps_the_target_as_float_values(wine, tmp_path):
    (tmp_path / "r.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.5}\n" for i in range(20)))
    prepared = prepare_data(files_config(path=str(tmp_path / "r.csv"), target="y", train={"loss": "mse"},
                                         layers=[{"type": "dense", "units": 1}]))
    assert prepared.y_train.dtype == np.float32 and prepared.y_train.shape[1] == 1 and prepared.num_classes == 1
    assert prepared.info["class_names"] is None and prepared.info["regression"] is True
    assert sorted(np.concatenate([prepared.y_train, prepared.y_val]).ravel().tolist()) == [i * 0.5 for i in range(20)]


def test_the_losses_say_which_are_regression_losses():
    assert [file_data.is_regression(name) for name in ("mse", "mae", "huber")] == [True] * 3
    assert not file_data.is_regression("sparse_categorical_crossentropy")


def test_validation_that_leaves_nothing_to_train_on_is_refused(wine):
    with pytest.raises(ConfigError, match="data.validation_size: 138 of the 138 examples"):
        prepare_data(files_config(path=str(wine["train"]), validation_size=138))


def test_an_npz_with_its_own_validation_arrays_refuses_a_split_too(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 3)), y=np.arange(10) % 3, x_val=np.zeros((2, 3)), y_val=[0, 5])
    config = validate_config({"data": {"format": "npz", "path": str(tmp_path / "d.npz")}, "model": {"layers": LAYERS}})
    with pytest.raises(DataError, match="label '5' \\(row 2\\) was not seen in training"):
        prepare_data(config)
    with pytest.raises(ConfigError, match="holds its own validation arrays"):
        prepare_data(config.model_copy(update={"data": config.data.model_copy(update={"validation_split": 0.5})}))


def test_changing_the_file_changes_the_fingerprint_and_moving_it_does_not(wine, tmp_path):
    def fingerprint(path):
        config = files_config(path=str(path))
        prepared = prepare_data(config)
        return fit_fingerprint(config, prepared, build_from_config(config, prepared.input_shape))

    before = fingerprint(wine["train"])
    moved = tmp_path / "moved.csv"
    moved.write_bytes(wine["train"].read_bytes())
    assert fingerprint(moved) == before
    lines = moved.read_text().splitlines()
    lines[5] = "99," + lines[5].split(",", 1)[1]
    moved.write_text("\n".join(lines) + "\n")
    assert fingerprint(moved) != before


def test_a_table_of_one_class_is_refused_by_what_it_lacks(tmp_path):
    (tmp_path / "one.csv").write_text("a,b,label\n1,2,x\n3,4,x\n")
    with pytest.raises(DataError, match=r"one.csv: every training label is 'x'; a classifier needs examples of at "
                                        "least two classes"):
        prepare_data(files_config(path=str(tmp_path / "one.csv")))
