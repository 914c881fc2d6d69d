"""The loggers: CSVLogger (Keras' options) and TensorBoard (event files read back as TensorBoard reads them)."""

import builtins
import csv
import sys

import pytest
import torch

from helpers import Interrupt, KillAtEpoch, small_model
from trainwell.callbacks import Callback, CSVLogger, HistoryLogger, TensorBoard
from trainwell.errors import ConfigError
from trainwell.train.trainer import Trainer




def _fit(x, y, callbacks, epochs=2, **fit):
    trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.05}, callbacks=callbacks, seed=0)
    trainer.fit(x, y, epochs=epochs, validation_data=(x, y), verbose=False, **fit)
    return trainer


# ----------------------------------------------------------------- CSVLogger
def test_csv_logger_writes_the_history_so_far_after_every_epoch(blobs, tmp_path):
    x, y = blobs
    path = tmp_path / "log" / "training.log"
    seen = []

    class Reads(Callback):
        def on_epoch_begin(self, trainer, epoch):
            seen.append(len(path.read_text().splitlines()) if path.exists() else 0)

    trainer = _fit(x, y, [Reads(), CSVLogger(path)], epochs=3)
    assert seen == [0, 2, 3]  # the header and one row per epoch done
    assert path.read_text() == trainer.history.to_csv()  # the same text as history.csv


def test_csv_logger_separator_and_append(blobs, tmp_path):
    x, y = blobs
    path = tmp_path / "log.tsv"
    first = _fit(x, y, [CSVLogger(path, separator="\t")])
    rows = list(csv.reader(path.read_text().splitlines(), delimiter="\t"))
    assert rows[0][:3] == ["epoch", "loss", "accuracy"] and len(rows) == 3
    assert float(rows[2][1]) == first.history.records[1]["loss"]
    _fit(x, y, [CSVLogger(path, separator="\t", append=True)], epochs=1)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[:3] == ["\t".join(r) for r in rows] and lines[3].startswith("1\t")
    _fit(x, y, [CSVLogger(path, separator="\t")], epochs=1)  # without append: this fit's rows only
    assert len(path.read_text().splitlines()) == 2


def test_an_appending_csv_logger_of_a_resumed_fit_writes_each_epoch_once(blobs, tmp_path):
    x, y = blobs
    path, state = tmp_path / "log.csv", tmp_path / "state"
    path.write_text("epoch,loss\n1,9.0\n")  # an earlier training's rows, kept
    with pytest.raises(Interrupt):
        _fit(x, y, [KillAtEpoch(3), CSVLogger(path, append=True)], epochs=3, resume_dir=state)
    resumed = _fit(x, y, [KillAtEpoch(0), CSVLogger(path, append=True)], epochs=3, resume_dir=state)
    lines = path.read_text().splitlines()
    assert lines[:2] == ["epoch,loss", "1,9.0"]
    assert [line.split(",")[0] for line in lines[2:]] == ["1", "2", "3"]
    assert lines[2:] == resumed.history.to_csv().splitlines()[1:]


@pytest.mark.parametrize("options, message", [({"separator": ";;"}, "one character"),
                                              ({"separator": "\n"}, "one character"),
                                              ({"append": "yes"}, "append: must be true or false")])
def test_csv_logger_refuses_bad_options(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        CSVLogger(tmp_path / "log.csv", **options)


def test_loggers_write_on_rank_zero_only(blobs, tmp_path, monkeypatch):
    x, y = blobs
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    from trainwell.callbacks.loggers import on_rank_zero

    assert not on_rank_zero()
    logger, history = CSVLogger(tmp_path / "a.csv"), HistoryLogger(tmp_path / "b.csv")
    board = TensorBoard(tmp_path / "tb")
    trainer = Trainer(small_model(), callbacks=[logger, history, board], seed=0)
    for callback in trainer.callbacks:  # the hooks as the loop calls them (a real group is not needed)
        callback.on_fit_begin(trainer)
    trainer.history.append({"epoch": 1, "loss": 0.5})
    for callback in trainer.callbacks:
        callback.on_epoch_end(trainer, 1, trainer.history.last)
        callback.on_fit_end(trainer)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- TensorBoard
def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def _scalars(events, tag):
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_tensorboard_writes_every_figure_per_epoch_as_keras_lays_them_out(blobs, tmp_path):
    x, y = blobs
    trainer = _fit(x, y, [TensorBoard(tmp_path / "tb")], epochs=3)
    train, validation = _events(tmp_path / "tb" / "train"), _events(tmp_path / "tb" / "validation")
    records = trainer.history.records
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_time"} <= set(train.Tags()["scalars"])
    assert _scalars(train, "epoch_loss") == [(r["epoch"], pytest.approx(r["loss"])) for r in records]
    assert _scalars(validation, "epoch_accuracy") == [(r["epoch"], pytest.approx(r["val_accuracy"])) for r in records]
    assert [v for _, v in _scalars(train, "epoch_learning_rate")] == [pytest.approx(0.05)] * 3
    assert train.Tags()["histograms"] == [] and "batch_loss" not in train.Tags()["scalars"]


def test_tensorboard_steps_and_histograms_on_request(blobs, tmp_path):
    x, y = blobs  # 600 samples: 19 steps of 32 per epoch
    _fit(x, y, [TensorBoard(tmp_path / "tb", update_freq=2, histogram_freq=2)], epochs=2)
    train = _events(tmp_path / "tb" / "train")
    assert [step for step, _ in _scalars(train, "batch_loss")] == list(range(2, 39, 2))
    assert "dense_1.weight/histogram" in train.Tags()["histograms"]
    assert [e.step for e in train.Histograms("dense_1.weight/histogram")] == [2]


def test_a_resumed_fit_logs_each_epoch_once(blobs, tmp_path):
    x, y = blobs
    state = tmp_path / "state"
    with pytest.raises(Interrupt):
        _fit(x, y, [KillAtEpoch(3), TensorBoard(tmp_path / "tb")], epochs=3, resume_dir=state)
    resumed = _fit(x, y, [KillAtEpoch(0), TensorBoard(tmp_path / "tb")], epochs=3, resume_dir=state)
    steps = [step for step, _ in _scalars(_events(tmp_path / "tb" / "train"), "epoch_loss")]
    assert steps == [1, 2, 3] and len(resumed.history) == 3


def test_tensorboard_without_the_package_says_what_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def without_tensorboard(name, *args, **kwargs):
        if name.startswith(("torch.utils.tensorboard", "tensorboard")):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in [n for n in sys.modules if n.startswith(("torch.utils.tensorboard", "tensorboard"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", without_tensorboard)
    with pytest.raises(ConfigError) as error:
        TensorBoard(tmp_path / "tb")
    assert "pip install 'trainwell[tensorboard]'" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "tb").exists()


@pytest.mark.parametrize("options, message", [({"update_freq": 0}, "update_freq"), ({"update_freq": "batch"}, "'epoch'"),
                                              ({"histogram_freq": -1}, "histogram_freq")])
def test_tensorboard_refuses_bad_options(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        TensorBoard(tmp_path / "tb", **options)
