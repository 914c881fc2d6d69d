"""What a model file records about its inputs: read back exactly, or refused (no key has a default)."""

import math

import numpy as np
import pytest
import torch

from trainwell.errors import ModelFileError
from trainwell.model.layers import Dense, Flatten, build_model
from trainwell.data.preprocessing import Preprocessing
from trainwell.model.saving import save_model


def test_a_preparation_round_trips_through_its_info():
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for scaling in ("unit", "standardize", "none"):
        prep = Preprocessing.fit(scaling, x, pixel_max=16)
        info, tensors = prep.to_info()
        again = Preprocessing.from_info(info, tensors, where="m.safetensors", input_shape=(3, 3))
        assert np.array_equal(again(x), prep(x)), scaling


@pytest.mark.parametrize("info, message", [
    ({"pixel_max": 255}, "does not record its data preparation's 'scaling'"),
    ({"scaling": "unit"}, "does not record its data preparation's 'pixel_max'"),
    ({"scaling": "unis", "pixel_max": 255}, "unknown preprocessing 'unis'"),
    ({"scaling": ["unit"], "pixel_max": 255}, "unknown preprocessing"),
    ({"scaling": "unit", "pixel_max": "abc"}, "pixel_max must be a positive finite number, got 'abc'"),
    ({"scaling": "unit", "pixel_max": None}, "pixel_max must be a positive finite number"),
    ({"scaling": "unit", "pixel_max": True}, "pixel_max must be a positive finite number"),
    ({"scaling": "unit", "pixel_max": math.nan}, "pixel_max must be a positive finite number"),
    ({"scaling": "unit", "pixel_max": 0}, "pixel_max must be a positive finite number"),
    ({"scaling": "standardize", "pixel_max": 16}, "standardized but holds no mean"),
    ([], "must be a JSON object"),
])
def test_a_missing_or_malformed_preparation_is_refused_naming_the_file(info, message):
    with pytest.raises(ModelFileError, match=message) as caught:
        Preprocessing.from_info(info, {}, where="m.safetensors")
    assert str(caught.value).startswith("m.safetensors: ")


def test_standardization_statistics_must_fit_the_model():
    info = {"scaling": "standardize", "pixel_max": 16}
    wrong_shape = {"preprocessing.mean": torch.zeros(3), "preprocessing.std": torch.ones(3)}
    with pytest.raises(ModelFileError, match="'preprocessing.mean' is float32 of shape \\(3,\\); the model needs "
                                             "float32 of shape \\(8, 8\\)"):
        Preprocessing.from_info(info, wrong_shape, input_shape=(8, 8))
    zero_std = {"preprocessing.mean": torch.zeros(8, 8), "preprocessing.std": torch.zeros(8, 8)}
    with pytest.raises(ModelFileError, match="'preprocessing.std' holds values that are not finite or not positive"):
        Preprocessing.from_info(info, zero_std, input_shape=(8, 8))


@pytest.mark.parametrize("change, message", [
    (lambda info: info.pop("loss"), "does not record its loss"),
    (lambda info: info.update(loss="mse_of_doom"), "loss 'mse_of_doom' is not a known loss"),
    (lambda info: info.pop("data"), "does not record how its data was prepared"),
    (lambda info: info["data"].pop("scaling"), "data preparation's 'scaling'"),
    (lambda info: info["data"].update(validation_size=-5), "validation_size must be an integer >= 0"),
    (lambda info: info["data"].update(validation_size=10 ** 12), "leaves no training images"),
    (lambda info: info["data"].update(classes=[0, 99]), "classes \\[0, 99\\] are not all classes of digits"),
    (lambda info: info["data"].update(dataset="nonexistent"), "the model file's dataset: Unknown dataset"),
])
def test_evaluate_needs_every_recorded_key_it_uses(tmp_path, change, message):
    """Before, a missing loss or scaling fell back to a default and evaluate printed wrong numbers with exit 0."""
    from trainwell.recipes.evaluate import evaluate_model_file

    model = build_model([Flatten(), Dense(10, activation="softmax")], input_shape=(8, 8), seed=0)
    info = {"loss": "sparse_categorical_crossentropy",
            "data": {"dataset": "digits", "validation_size": 200, "classes": None, "scaling": "unit", "pixel_max": 16}}
    path = save_model(model, tmp_path / "m.safetensors", info=info)
    assert evaluate_model_file(path)["samples"] > 0
    change(info)
    save_model(model, path, info=info)
    with pytest.raises(ModelFileError, match=message) as caught:
        evaluate_model_file(path)
    assert str(caught.value).startswith(f"{path}: ")
