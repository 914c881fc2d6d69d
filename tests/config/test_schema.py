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
    (with_(train={"loss": "mean_squared_error"}), "'train.loss' = 'mean_squared_error'"),
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


LINEAR = {"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}}


def test_loss_options_metrics_and_class_weights_from_the_config(tmp_path):
    from trainwell.config import loss_of
    from trainwell.recipes.build import trainer_options

    path = tmp_path / "run.toml"
    path.write_text('[model]\nlayers = [{ type = "flatten" }, { type = "dense", units = 10, activation = "softmax" }]\n'
                    '[train]\nloss = "categorical_crossentropy"\nlabel_smoothing = 0.1\n'
                    'metrics = ["accuracy", "auc", "top_3_accuracy"]\nclass_weight = { "0" = 1.0, "3" = 5 }\n')
    config = load_config(path)
    assert config.train.metrics == ["accuracy", "auc", "top_3_accuracy"]
    assert config.train.class_weight == {"0": 1.0, "3": 5.0}
    loss = loss_of(config.train)
    assert loss.name == "categorical_crossentropy" and loss.label_smoothing == 0.1
    options = trainer_options(config)
    assert options["loss"] == loss and options["class_weight"] == {"0": 1.0, "3": 5.0}
    default = validate_config(MINIMAL)
    assert loss_of(default.train) is loss_of(validate_config(with_(train={"label_smoothing": 0.0})).train)
    assert "label_smoothing" not in default.to_dict()["train"]  # an unset option leaves the config as it was


def test_a_regression_loss_has_no_default_metric_and_takes_huber_delta():
    from trainwell.config import loss_of

    config = validate_config({**LINEAR, "train": {"loss": "huber", "huber_delta": 2.0}})
    assert config.train.metrics == [] and loss_of(config.train).delta == 2.0
    assert validate_config({**LINEAR, "train": {"loss": "mse", "metrics": ["rmse", "r2"]}}).train.metrics == ["rmse", "r2"]


@pytest.mark.parametrize("data, message", [
    (with_(train={"metrics": ["roc"]}), "train.metrics: unknown metric 'roc'; allowed: accuracy, top_k_accuracy"),
    (with_(train={"metrics": ["r2"]}), "train.metrics: 'r2' does not fit the loss sparse_categorical_crossentropy"),
    ({**LINEAR, "train": {"loss": "mse", "metrics": ["auc"]}}, "train.metrics: 'auc' does not fit the loss mse"),
    ({**LINEAR, "train": {"loss": "mse", "metrics": ["accuracy"]}}, "train.metrics: 'accuracy' does not fit"),
    ({**LINEAR, "train": {"loss": "mse", "label_smoothing": 0.1}},
     "train.label_smoothing: the loss mse has no such option"),
    (with_(train={"huber_delta": 2.0}), "train.huber_delta: the loss sparse_categorical_crossentropy has no such"),
    (with_(train={"label_smoothing": 1.5}), "'train.label_smoothing' = 1.5: must be less than 1"),
    (with_(train={"class_weight": {"0": -1.0}}), "train.class_weight: the weight of class '0' must be a finite"),
    ({**LINEAR, "train": {"loss": "mse", "class_weight": {"0": 1.0}}}, "train.class_weight: the loss mse is a "
                                                                       "regression loss"),
    (with_(train={"loss": "mae"}), "model.layers: the last layer's activation is softmax, but train.loss = 'mae' "
                                   "is a regression loss"),
    (with_(callbacks={"early_stopping": {"monitor": "val_auc"}}), "callbacks.early_stopping.mode: 'val_auc' is "
                                                                  "better when higher, so mode must be 'max', got 'min'"),
    (with_(callbacks={"checkpoint": {"monitor": "val_rmse", "mode": "max"}}), "callbacks.checkpoint.mode: 'val_rmse'"),
])
def test_bad_loss_and_metric_keys_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        validate_config(data)


def test_the_readmes_losses_and_metrics_config_is_a_valid_train_section(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Losses and metrics"):readme.index("### Where Keras and PyTorch differ")]
    snippet = re.findall(r"```toml\n(.*?)```", section, flags=re.S)[0]
    path = tmp_path / "run.toml"
    path.write_text('[model]\nlayers = [{ type = "flatten" }, { type = "dense", units = 10, activation = "softmax" }]\n'
                    + snippet)
    config = load_config(path)
    assert config.train.label_smoothing == 0.1 and config.callbacks.early_stopping.monitor == "val_auc"


def test_sync_batchnorm_and_the_process_group_timeout_are_train_keys():
    from trainwell.recipes.build import trainer_options

    config = validate_config(MINIMAL)
    assert config.train.sync_batchnorm is False and config.train.process_group_timeout is None
    config = validate_config(with_(train={"sync_batchnorm": True, "process_group_timeout": 90}))
    assert config.train.sync_batchnorm is True and config.train.process_group_timeout == 90.0
    assert trainer_options(config)["sync_batchnorm"] is True  # the Trainer gets it; the timeout is the group's


@pytest.mark.parametrize("train, message", [
    ({"sync_batchnorm": "yes"}, "'train.sync_batchnorm' = 'yes': must be a valid boolean"),
    ({"process_group_timeout": 0}, "'train.process_group_timeout' = 0: must be greater than 0"),
    ({"process_group_timeout": -5.0}, "'train.process_group_timeout' = -5.0: must be greater than 0"),
    ({"process_group_timeout": float("inf")}, "'train.process_group_timeout' = inf: numbers in a config must be finite"),
    ({"process_group_timeout": "60"}, "'train.process_group_timeout' = '60'"),
    ({"process_group_timeout": True}, "'train.process_group_timeout' = True"),
])
def test_bad_sync_batchnorm_and_timeout_values_name_the_key(train, message):
    with pytest.raises(ConfigError) as error:
        validate_config(with_(train=train), source="cfg.toml")
    assert message in str(error.value)
