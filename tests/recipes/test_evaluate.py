"""evaluate/predict a saved model on files (``input=``): prepared as at training time, named by class."""

import numpy as np
import pytest
from file_helpers import image_folder, read_rows, table_files
from helpers import digits_config

from trainwell.config import validate_config
from trainwell.data import load
from trainwell.errors import ConfigError, DataError
from trainwell.recipes.evaluate import evaluate_model_file, model_for_summary, predict_model_file
from trainwell.recipes.train import train_config


def test_a_registered_dataset_s_model_predicts_an_image_folder_with_the_dataset_s_class_names(tmp_path):
    config = digits_config().model_copy(update={"output_dir": str(tmp_path / "run")})
    result = train_config(config, verbose=False)
    digits = load("digits")
    image_folder(tmp_path / "held_out", digits.x_test[:60], digits.y_test[:60], list(digits.class_names))
    # the PNGs hold the dataset's pixels (0..16), scaled as the model's training data were
    predictions = predict_model_file(result.output_dir / "model.safetensors", input=tmp_path / "held_out")
    assert predictions.class_names == tuple(digits.class_names) and len(predictions.labels) == 60
    assert predictions.reports()["deterministic"]["accuracy"] > 0.7  # chance: 0.1
    predictions.to_csv(tmp_path / "p.csv")
    rows = read_rows(tmp_path / "p.csv")
    assert rows[0]["file"].endswith(".png") and rows[0]["label"] in digits.class_names


def test_a_files_model_needs_input_and_input_refuses_data_and_split(tmp_path):
    files = table_files(tmp_path)
    config = validate_config({"seed": 0, "output_dir": str(tmp_path / "run"),
                              "data": {"format": "csv", "path": str(files["train"]), "target": "label"},
                              "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
                              "optimizer": {"name": "adam", "lr": 0.05}, "train": {"epochs": 5}})
    model = train_config(config, verbose=False).output_dir / "model.safetensors"
    with pytest.raises(ConfigError, match="trained on files \\(csv\\); pass --input"):
        evaluate_model_file(model)
    with pytest.raises(ConfigError, match="leave out --data and --split"):
        predict_model_file(model, input=files["new"], split="validation")
    with pytest.raises(DataError, match="holds no targets to evaluate against"):
        evaluate_model_file(model, input=files["new"])
    scores = evaluate_model_file(model, input=files["test"])
    assert scores["samples"] == 40 and scores["accuracy"] > 0.8
    (tmp_path / "narrow.csv").write_text("alcohol\n1.0\n")
    with pytest.raises(DataError, match="has no column 'malic_acid'"):
        predict_model_file(model, input=tmp_path / "narrow.csv")
    assert model_for_summary(tmp_path / "run" / "config.json").spec.input_shape == (13,)


def files_run(tmp_path, files, *, out: str, train: dict):
    config = validate_config({"seed": 0, "output_dir": str(tmp_path / out),
                              "data": {"format": "csv", "path": str(files["train"]), "target": "label"},
                              "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
                              "optimizer": {"name": "adam", "lr": 0.05}, "train": {"epochs": 3, **train}})
    return train_config(config, verbose=False)


def test_evaluate_reports_the_metrics_the_run_reported(tmp_path):
    files = table_files(tmp_path)
    run = files_run(tmp_path, files, out="run", train={"metrics": ["accuracy", "f1", "auc"]})
    assert {"val_f1", "val_auc"} <= set(run.metrics)
    scores = evaluate_model_file(run.output_dir / "model.safetensors", input=files["test"])
    assert {"loss", "accuracy", "f1", "auc"} <= set(scores)


def test_a_model_file_whose_metrics_are_not_metric_names_is_refused(tmp_path):
    from trainwell.errors import ModelFileError
    from trainwell.model.saving import load_model_file, save_model

    files = table_files(tmp_path)
    model = files_run(tmp_path, files, out="run", train={}).output_dir / "model.safetensors"
    loaded = load_model_file(model)
    save_model(loaded.model, tmp_path / "bad.safetensors", info={**loaded.info, "metrics": ["accuracy", "speed"]},
               extra=loaded.extra)
    with pytest.raises(ModelFileError, match="bad.safetensors: the model file's metrics: unknown metric 'speed'"):
        evaluate_model_file(tmp_path / "bad.safetensors", input=files["test"])


def test_class_weight_may_name_a_files_run_s_classes(tmp_path):
    """A CSV's classes are names: class_weight = {"class_1" = 4.0} weighs as the index it was encoded to."""
    files = table_files(tmp_path)
    by_name = files_run(tmp_path, files, out="names", train={"class_weight": {"class_1": 4.0}})
    by_index = files_run(tmp_path, files, out="indices", train={"class_weight": {"1": 4.0}})
    unweighted = files_run(tmp_path, files, out="plain", train={})
    assert by_name.history.records[-1]["loss"] == by_index.history.records[-1]["loss"]
    assert by_name.history.records[-1]["loss"] != unweighted.history.records[-1]["loss"]
    with pytest.raises(ConfigError, match="'class_9' is not a class"):
        files_run(tmp_path, files, out="unknown", train={"class_weight": {"class_9": 4.0}})
