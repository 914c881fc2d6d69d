"""Resumable training: interrupted and resumed fits end exactly where uninterrupted ones do."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import trainwell as tw
from helpers import Interrupt, KillAt

from trainwell.callbacks import Callback, EarlyStopping, ReduceLROnPlateau
from trainwell.train.resume import ResumeError, read_state, state_files




def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    x = (np.eye(3)[y] * 2 + rng.normal(size=(240, 3))).astype(np.float32)
    return x, y


def make_trainer(extra_callbacks=()):
    torch.manual_seed(0)
    model = tw.build_model([tw.Dense(16, activation="relu"), tw.Dropout(0.3), tw.Dense(3, activation="softmax")],
                           input_shape=(3,))
    callbacks = [ReduceLROnPlateau("val_loss", patience=1, factor=0.5),
                 EarlyStopping("val_loss", patience=50, restore_best_weights=True), *extra_callbacks]
    return tw.Trainer(model, optimizer={"name": "adam", "lr": 0.05},
                      schedule=tw.schedules.exponential(lr0=0.05, s=40), callbacks=callbacks, seed=3)


def run(trainer, resume_dir=None, every=None):
    x, y = data()
    return trainer.fit(x, y, epochs=6, batch_size=16, validation_data=(x[:60], y[:60]), verbose=False,
                       resume_dir=resume_dir, save_every_steps=every)


def without_time(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history], history.steps


@pytest.mark.parametrize("every, kill_steps", [(None, [20, 47]), (7, [20, 47, 48, 80])])
def test_interrupted_fits_resume_to_the_identical_result(tmp_path, every, kill_steps):
    reference = make_trainer()
    expected = run(reference)
    for kill in kill_steps:
        with pytest.raises(Interrupt):
            run(make_trainer([KillAt(kill)]), tmp_path, every)
        assert state_files(tmp_path)
    resumed = make_trainer([KillAt(-1)])
    history = run(resumed, tmp_path, every)
    assert without_time(history) == without_time(expected)
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert resumed.lr_scale == reference.lr_scale


def test_a_finished_fit_is_not_trained_again(tmp_path):
    first = make_trainer()
    run(first, tmp_path)
    again = make_trainer()
    history = run(again, tmp_path)
    assert len(history) == 6 and again.step == first.step
    assert torch.equal(again.model.dense_1.weight, first.model.dense_1.weight)


def test_a_corrupted_state_falls_back_to_the_previous_one(tmp_path, caplog):
    with pytest.raises(Interrupt):
        run(make_trainer([KillAt(60)]), tmp_path)
    newest, previous = state_files(tmp_path)[:2]
    raw = bytearray(newest.read_bytes())
    raw[-5] ^= 0xFF
    newest.write_bytes(bytes(raw))
    with pytest.raises(ResumeError, match="checksum"):
        read_state(newest)
    expected = run(make_trainer())
    history = run(make_trainer([KillAt(-1)]), tmp_path)
    assert without_time(history) == without_time(expected)
    assert "trying the previous state" in caplog.text


def test_a_state_of_another_fit_is_refused(tmp_path):
    with pytest.raises(Interrupt):
        run(make_trainer([KillAt(20)]), tmp_path)
    other = make_trainer()
    other.callbacks = other.callbacks[:1]
    with pytest.raises(ResumeError, match="different fit"):
        run(other, tmp_path)
    with pytest.raises(tw.ConfigError, match="save_every_steps"):
        run(make_trainer(), None, 5)


CONFIG = """
name = "killed"
seed = 5
[data]
name = "digits"
validation_size = 300
[model]
layers = [{type = "flatten"}, {type = "dense", units = 64, activation = "relu"}, {type = "dropout", rate = 0.2},
          {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
[schedule]
name = "exponential"
s = 200
[callbacks.early_stopping]
monitor = "val_loss"
patience = 100
[train]
epochs = 12
batch_size = 8
save_every_steps = 25
"""


def _cli(config, out, env):
    return [sys.executable, "-m", "trainwell.cli", "train", str(config), "-q", "-o", str(out)]


def _wait_for_new_state(out, process, timeout=120.0):
    """Wait until the running process saves a state newer than the ones on disk; False if it ends first."""
    folder = out / "resume"
    before = {p.name for p in folder.rglob("state-*.safetensors")} if folder.exists() else set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        now = {p.name for p in folder.rglob("state-*.safetensors")} if folder.exists() else set()
        if now - before:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigkill_and_rerun_the_same_command_until_done(tmp_path):
    config = tmp_path / "killed.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    clean = subprocess.run(_cli(config, tmp_path / "clean", env), env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "killed"
    rng = np.random.default_rng(7)
    kills = 0
    while True:
        # A kill that landed after the run had finished leaves a finished run: the next start replaces it.
        finished = (out / "model.safetensors").exists() and not (out / "resume").exists()
        command = _cli(config, out, env) + (["--overwrite"] if finished else [])
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 4 and _wait_for_new_state(out, process):
            time.sleep(float(rng.uniform(0.0, 0.15)))  # in the next steps: an idle machine runs an epoch in ~0.1 s
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                continue
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()
        break
    assert kills >= 3, kills
    assert not (out / "resume").exists()
    clean_history = tw.History.from_json(tmp_path / "clean" / "history.json")
    killed_history = tw.History.from_json(out / "history.json")
    assert without_time(killed_history) == without_time(clean_history)
    a, b = tw.load_model(tmp_path / "clean" / "model.safetensors"), tw.load_model(out / "model.safetensors")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_skipped_batches_are_counted_across_a_resume(tmp_path):
    """Trainer(skip_nonfinite=True)'s running count of skipped batches is part of the state: History's
    skipped_batches after a resume equals an uninterrupted fit's."""
    x, y = data()
    x[np.random.default_rng(1).choice(len(x), 20, replace=False), 0] = np.nan

    def fit(resume_dir, kill):
        torch.manual_seed(0)
        model = tw.build_model([tw.Dense(8, activation="relu"), tw.Dense(3, activation="softmax")], input_shape=(3,))
        trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, callbacks=[kill], seed=1,
                             skip_nonfinite=True)
        return trainer.fit(x, y, epochs=3, batch_size=8, verbose=False, resume_dir=resume_dir)

    class KillInEpoch(Callback):
        def __init__(self, epoch):
            self.at = epoch

        def on_epoch_begin(self, trainer, epoch):
            if epoch == self.at:
                raise Interrupt

    expected = fit(None, KillInEpoch(-1))
    assert expected.records[0]["skipped_batches"] > 0
    for epoch in (2, 3):
        with pytest.raises(Interrupt):
            fit(tmp_path, KillInEpoch(epoch))
    resumed = fit(tmp_path, KillInEpoch(-1))
    assert [r["skipped_batches"] for r in resumed] == [r["skipped_batches"] for r in expected]
    assert without_time(resumed) == without_time(expected)


def test_the_progress_display_does_not_make_a_state_belong_to_another_fit(tmp_path):
    """A display-only callback (affects_fit = False) is neither recorded nor required: a fit killed while
    showing progress resumes quietly, and the other way round, to the uninterrupted result."""
    from trainwell.callbacks import HistoryLogger, ProgressDisplay

    expected = run(make_trainer([KillAt(-1)]))
    for first, second in ((True, False), (False, True)):
        folder = tmp_path / str(first)
        display = [ProgressDisplay(live=False), HistoryLogger(tmp_path / "log.json")]
        with pytest.raises(Interrupt):
            run(make_trainer([*(display if first else []), KillAt(20)]), folder)
        history = run(make_trainer([KillAt(-1), *(display if second else [])]), folder)
        assert without_time(history) == without_time(expected)


@pytest.mark.parametrize("damage", ["drop optimizer", "model not a dict", "history records not a list", "bad shape"])
def test_a_signed_state_that_is_not_a_whole_state_is_refused(tmp_path, damage):
    """A state whose checksum matches (it was written, or crafted, with one) but whose contents are
    not a state of this fit: one ResumeError naming the folder, not a KeyError from deep in the trainer."""
    from trainwell.train.resume import save_state

    with pytest.raises(Interrupt):
        run(make_trainer([KillAt(20)]), tmp_path)
    newest = state_files(tmp_path)[0]
    state = read_state(newest)
    if damage == "drop optimizer":
        del state["optimizer"]
    elif damage == "model not a dict":
        state["model"] = [1, 2]
    elif damage == "history records not a list":
        state["history"] = 3
    else:
        state["model"] = {k: torch.zeros(7) for k in state["model"]}
    for path in state_files(tmp_path):
        path.unlink()
    save_state(tmp_path, state, step=20)
    with pytest.raises(ResumeError, match="incomplete or malformed.*--restart") as refused:
        run(make_trainer([KillAt(-1)]), tmp_path)
    assert "\n" not in str(refused.value)


def test_when_no_state_is_usable_the_error_says_how_to_start_over(tmp_path):
    with pytest.raises(Interrupt):
        run(make_trainer([KillAt(20)]), tmp_path)
    for path in state_files(tmp_path):
        path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ResumeError, match="no usable training state: .*pass --restart"):
        run(make_trainer([KillAt(-1)]), tmp_path)


def test_an_epochs_metrics_and_sample_weights_survive_a_mid_epoch_resume(tmp_path):
    """The epoch's outputs so far are part of a mid-epoch state: a resumed epoch's auc is the whole epoch's."""
    x, y = data()
    weights = np.random.default_rng(2).uniform(0.2, 2.0, len(y))

    def fit(callbacks=(), resume_dir=None):
        torch.manual_seed(0)
        model = tw.build_model([tw.Dense(8, activation="relu"), tw.Dense(3, activation="softmax")], input_shape=(3,))
        trainer = tw.Trainer(model, optimizer={"name": "adam", "lr": 0.05}, metrics=["accuracy", "auc", "f1"],
                             class_weight={0: 2.0}, callbacks=list(callbacks), seed=3)
        return trainer.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:60], y[:60]), verbose=False,
                           sample_weight=weights, resume_dir=resume_dir, save_every_steps=None if resume_dir is None
                           else 4)

    expected = fit()
    with pytest.raises(Interrupt):
        fit([KillAt(21)], tmp_path)  # in the second epoch, after the state of step 20
    assert without_time(fit([KillAt(-1)], tmp_path)) == without_time(expected)


STREAMED_SCRIPT = """
import json, sys, time
import numpy as np, torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
import trainwell as tw

kind, folder, out = sys.argv[1:4]
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 1200)
x = np.eye(3)[y] * 2 + rng.normal(size=(1200, 3))

class Rows(Dataset):  # read a row at a time, slowly enough that a kill lands mid-fit
    def __len__(self):
        return len(x)
    def __getitem__(self, index):
        time.sleep(0.0004)
        return x[index], int(y[index])

data = Rows() if kind == "dataset" else DataLoader(Rows(), batch_size=8, shuffle=True)
torch.manual_seed(0)
model = tw.build_model([tw.Dense(16, activation="relu"), tw.Dropout(0.3), tw.Dense(3, activation="softmax")],
                       input_shape=(3,))
trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, seed=3)
history = trainer.fit(data, epochs=4, batch_size=8, verbose=False, resume_dir=None if folder == "-" else folder,
                      save_every_steps=None if folder == "-" else 20)
save_file(trainer.model.state_dict(), out + ".safetensors")
with open(out + ".json", "w") as handle:
    json.dump([{k: v for k, v in r.items() if k != "time"} for r in history], handle)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dataset", "loader"])
def test_a_streamed_fit_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, kind):
    """A fit on a Dataset (or a shuffling DataLoader) with resume_dir, SIGKILLed at random moments and started
    again until it finishes, ends with the weights and History of a fit that was never interrupted."""
    from safetensors.torch import load_file

    script = tmp_path / "fit.py"
    script.write_text(STREAMED_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    clean = subprocess.run([sys.executable, str(script), kind, "-", str(tmp_path / "clean")], env=env,
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-3000:]
    folder, rng, kills = tmp_path / "states", np.random.default_rng(11), 0
    command = [sys.executable, str(script), kind, str(folder), str(tmp_path / "killed")]
    while True:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = {p.name for p in state_files(folder)}
        deadline = time.monotonic() + 120
        while kills < 3 and process.poll() is None and time.monotonic() < deadline:
            if {p.name for p in state_files(folder)} - before:  # a new state: kill somewhere in the next steps
                time.sleep(float(rng.uniform(0.0, 0.5)))
                break
            time.sleep(0.02)
        if kills < 3 and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            continue
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-3000:]
        break
    assert kills == 3
    assert json.loads((tmp_path / "killed.json").read_text()) == json.loads((tmp_path / "clean.json").read_text())
    expected, resumed = load_file(tmp_path / "clean.safetensors"), load_file(tmp_path / "killed.safetensors")
    for key, value in expected.items():
        assert torch.equal(value, resumed[key]), key
