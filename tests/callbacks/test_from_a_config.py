"""EarlyStopping, Checkpoint and TerminateOnNaN from a config file, through the CLI; bad sections name the key."""

import json

import pytest

from trainwell.callbacks import checkpoint_name
from trainwell.cli import main
from trainwell.config import validate_config
from trainwell.errors import ConfigError
from trainwell.train.history import History


RUN = """
name = "cb"
seed = 1
[data]
name = "digits"
validation_size = 300
[model]
layers = [{type = "flatten"}, {type = "dense", units = 32, activation = "relu", init = "he_normal"},
          {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 12
[callbacks]
terminate_on_nan = true
[callbacks.early_stopping]
monitor = "val_accuracy"
mode = "max"
patience = 1
restore_best_weights = true
[callbacks.checkpoint]
every = 1
keep = 2
save_best = true
"""


def test_callbacks_from_a_config_through_the_cli(tmp_path, capsys):
    config = tmp_path / "cb.toml"
    config.write_text(RUN)
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    history = History.from_json(out / "history.json").records
    assert len(history) < 12 and metrics["stopped_epoch"] == len(history)
    best = max(history, key=lambda r: r["val_accuracy"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["val_accuracy"] == pytest.approx(best["val_accuracy"])  # the restored model's
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["best.safetensors", checkpoint_name(len(history) - 1), checkpoint_name(len(history))]
    # a checkpoint carries the data preparation, so evaluate reads it like the final model
    assert main(["evaluate", str(out / "checkpoints" / "best.safetensors"), "--split", "validation"]) == 0
    assert f"accuracy: {best['val_accuracy']:.4f}" in capsys.readouterr().out


def test_a_diverging_run_prints_one_line_and_keeps_earlier_files(tmp_path, capsys):
    config = tmp_path / "cb.toml"
    config.write_text(RUN.replace('[callbacks.early_stopping]\nmonitor = "val_accuracy"\nmode = "max"\npatience = 1\n'
                                  'restore_best_weights = true\n', ""))
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1"]) == 0
    before = (out / "model.safetensors").read_bytes()
    # an absurd learning rate makes the loss overflow within the first steps
    status = main(["train", str(config), "-o", str(out), "-q", "--overwrite", "--set", "optimizer.lr=1e30",
                   "--set", "optimizer.name=sgd"])
    error = capsys.readouterr().err.strip()
    assert status == 2 and error.count("\n") == 0
    assert error.startswith("error: training diverged: the loss became ") and "epoch 1" in error
    assert (out / "model.safetensors").read_bytes() == before  # the earlier run's files are untouched


@pytest.mark.parametrize("section, message", [
    ({"early_stopping": {"patience": -1}}, "'callbacks.early_stopping.patience' = -1: must be greater than or equal to 0"),
    ({"early_stopping": {"mode": "auto"}}, "'callbacks.early_stopping.mode' = 'auto': must be 'min' or 'max'"),
    ({"early_stopping": {"patiense": 3}}, "unknown key 'callbacks.early_stopping.patiense'; allowed keys here: "
                                          "monitor, mode, patience, min_delta, restore_best_weights"),
    ({"checkpoint": {"keep": 0}}, "'callbacks.checkpoint.keep' = 0: must be greater than or equal to 1"),
    ({"reduce_lr": {}}, "unknown key 'callbacks.reduce_lr'; allowed keys here: early_stopping, checkpoint"),
])
def test_bad_callback_config_names_the_key(section, message):
    data = {"data": {"name": "digits"}, "model": {"layers": [{"type": "dense", "units": 10}]}, "callbacks": section}
    with pytest.raises(ConfigError) as error:
        validate_config(data, source="c.toml")
    assert message in str(error.value)


def test_loggers_from_a_config_write_into_the_output_folder_by_default(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainwell.recipes.train import train_config

    out = tmp_path / "out"
    config = validate_config({
        "name": "loggers", "seed": 0, "output_dir": str(out), "data": {"name": "digits", "validation_size": 300},
        "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]},
        "train": {"epochs": 2}, "callbacks": {"tensorboard": {"histogram_freq": 1}, "csv_logger": {"separator": ";"}}})
    result = train_config(config, verbose=False)
    rows = (out / "training.log").read_text().splitlines()
    assert rows[0].startswith("epoch;loss;accuracy;val_loss") and len(rows) == 3
    events = EventAccumulator(str(out / "tensorboard" / "train"))
    events.Reload()
    assert [e.step for e in events.Scalars("epoch_loss")] == [1, 2]
    assert [e.value for e in events.Scalars("epoch_loss")] == pytest.approx(result.history["loss"])
    assert events.Tags()["histograms"]
    import shutil

    shutil.rmtree(out)
    assert train_config(config, verbose=False, save=False).output_dir is None
    assert not out.exists()  # a run that saves nothing logs nothing either


@pytest.mark.parametrize("section, message", [
    ({"tensorboard": {"update_freq": 0}}, "'callbacks.tensorboard.update_freq' = 0: must be 'epoch' or a number of steps"),
    ({"tensorboard": {"histogram_freq": -1}}, "'callbacks.tensorboard.histogram_freq' = -1"),
    ({"tensorboard": {"logdir": "x"}}, "unknown key 'callbacks.tensorboard.logdir'; allowed keys here: log_dir"),
    ({"csv_logger": {"separator": ";;"}}, "'callbacks.csv_logger.separator' = ';;'"),
])
def test_a_bad_logger_section_names_the_key(section, message):
    with pytest.raises(ConfigError) as error:
        validate_config({"model": {"layers": [{"type": "flatten"}]}, "callbacks": section})
    assert message in str(error.value)
