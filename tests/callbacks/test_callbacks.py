"""EarlyStopping, Checkpoint and TerminateOnNaN, in Python and from a config."""

import json

import pytest
import helpers
import torch

from trainwell.callbacks import Callback, Checkpoint, EarlyStopping, Monitor, TerminateOnNaN, checkpoint_name
from trainwell.cli import main
from trainwell.config import validate_config
from trainwell.errors import ConfigError, TrainingDiverged
from trainwell.train.history import History
from trainwell.model.layers import BatchNormalization, Dropout
from trainwell.model.saving import load_model, load_model_file
from trainwell.train.trainer import Trainer


def small_model():  # with a BatchNormalization: Checkpoint must save and restore its statistics too
    return helpers.small_model(16, BatchNormalization(), Dropout(0.1))


class Script(Callback):
    """Replaces the monitored figure by a scripted series and snapshots the weights of every epoch.

    It must come first in the callback list, so the callbacks after it see the scripted value.
    """

    def __init__(self, values, key="val_loss"):
        self.values, self.key, self.weights = values, key, {}

    def on_epoch_end(self, trainer, epoch, logs):
        logs[self.key] = self.values[epoch - 1]
        self.weights[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(blobs):
    x, y = blobs
    script = Script([1.0, 0.5, 0.6, 0.55, 0.7, 0.1, 0.1, 0.1])
    stopper = EarlyStopping("val_loss", patience=3, restore_best_weights=True)
    trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.1}, callbacks=[script, stopper], seed=0)
    history = trainer.fit(x, y, epochs=8, verbose=False)
    assert len(history) == 5  # best at epoch 2, then 3 epochs without improvement
    assert (stopper.best_epoch, stopper.stopped_epoch, stopper.restored) == (2, 5, True)
    assert isinstance(stopper.watch, Monitor)
    assert same_state(trainer.model.state_dict(), script.weights[2])
    assert not same_state(script.weights[2], script.weights[5])


def test_early_stopping_min_delta_mode_max_and_no_restore(blobs):
    x, y = blobs
    script = Script([0.80, 0.805, 0.809, 0.9], key="val_accuracy")
    stopper = EarlyStopping("val_accuracy", mode="max", patience=2, min_delta=0.01)
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[script, stopper], seed=0)
    trainer.fit(x, y, epochs=4, verbose=False)
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1 and not stopper.restored
    assert same_state(trainer.model.state_dict(), script.weights[3])


def test_early_stopping_on_a_figure_that_is_not_logged_names_it(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[EarlyStopping("val_acc")], seed=0)
    with pytest.raises(ConfigError) as error:
        trainer.fit(x, y, epochs=2, verbose=False)
    assert str(error.value).startswith("early_stopping.monitor: 'val_acc' is not logged; available: epoch, loss")


@pytest.mark.parametrize("make, message", [
    (lambda: EarlyStopping(patience=-1), "early_stopping.patience: must be an integer >= 0, got -1"),
    (lambda: EarlyStopping(mode="auto"), "mode: must be 'min' or 'max', got 'auto'"),
    (lambda: EarlyStopping(restore_best_weights="yes"), "early_stopping.restore_best_weights: must be true or false"),
    (lambda: Checkpoint("d", keep=0), "checkpoint.keep: must be an integer >= 1, got 0"),
    (lambda: Checkpoint("d", every=1.5), "checkpoint.every: must be an integer >= 0, got 1.5"),
])
def test_bad_callback_arguments_name_the_key(make, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make()


def test_checkpoint_written_mid_run_loads_back_into_an_identical_model(blobs, tmp_path):
    x, y = blobs
    script = Script([3.0, 2.0, 2.5, 1.0, 1.5])
    checkpoint = Checkpoint(tmp_path / "ckpt", every=2, save_best=True, info={"loss": "sparse_categorical_crossentropy"})
    trainer = Trainer(small_model(), optimizer={"name": "adam"}, callbacks=[script, checkpoint], seed=0)
    trainer.fit(x, y, epochs=5, verbose=False)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["best.safetensors", "checkpoint-epoch002.safetensors", "checkpoint-epoch004.safetensors",
                     "final.safetensors"]
    loaded = load_model_file(tmp_path / "ckpt" / checkpoint_name(2))
    assert loaded.info == {"loss": "sparse_categorical_crossentropy", "epoch": 2}
    assert same_state(loaded.model.state_dict(), script.weights[2])  # BN statistics included
    rebuilt = small_model()
    rebuilt.load_state_dict(script.weights[2])
    probe = torch.randn(20, 4)
    assert torch.equal(loaded.model.eval()(probe), rebuilt.eval()(probe))  # identical outputs
    assert same_state(load_model(tmp_path / "ckpt" / "best.safetensors").state_dict(), script.weights[4])
    assert same_state(load_model(tmp_path / "ckpt" / "final.safetensors").state_dict(), script.weights[5])
    assert checkpoint.last_saved == tmp_path / "ckpt" / "final.safetensors"


def test_checkpoint_keeps_the_last_k_and_best_only(blobs, tmp_path):
    x, y = blobs
    keep = Checkpoint(tmp_path / "keep", keep=2, save_final=False)
    best = Checkpoint(tmp_path / "best", every=0, save_best=True, monitor="val_accuracy", mode="max",
                      save_final=False)
    Trainer(small_model(), optimizer="sgd", callbacks=[keep, best], seed=0).fit(
        x[:500], y[:500], epochs=5, validation_data=(x[500:], y[500:]), verbose=False)
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == [checkpoint_name(4), checkpoint_name(5)]
    assert [p.name for p in (tmp_path / "best").iterdir()] == ["best.safetensors"]


class Poison(Callback):
    """Puts a nan into the first layer's weights when an epoch begins."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            with torch.no_grad():
                trainer.model[0].weight[0, 0] = float("nan")


def test_terminate_on_nan_stops_and_names_the_last_good_checkpoint(blobs, tmp_path):
    x, y = blobs
    checkpoint = Checkpoint(tmp_path / "ckpt")
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[Poison(3), checkpoint, TerminateOnNaN()], seed=0)
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit(x, y, epochs=5, batch_size=100, verbose=False)
    good = tmp_path / "ckpt" / checkpoint_name(2)
    assert str(error.value) == (
        f"training diverged: the loss became nan at step 13 (epoch 3, batch 1 of 6); the last good checkpoint is "
        f"{good}; try a lower learning rate or gradient clipping")
    assert len(trainer.history) == 3
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [checkpoint_name(1), checkpoint_name(2)]
    assert all(torch.isfinite(t).all() for t in load_model(good).state_dict().values() if t.is_floating_point())


def test_terminate_on_nan_without_checkpoints_says_so(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[Poison(1), TerminateOnNaN()], seed=0)
    with pytest.raises(TrainingDiverged, match="at step 1 .*; no checkpoint was written"):
        trainer.fit(x, y, epochs=2, verbose=False)


# ------------------------------------------------------------------- config

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


def test_a_callback_asks_for_no_autograd_step_by_default():
    assert Callback().needs_autograd(None, 0) is False
