"""Whole runs from config files, including the book's leaky_relu experiment on Fashion-MNIST."""

from pathlib import Path

import numpy as np
import pytest

from helpers import tiny_digits, digits_config
from trainwell.config import load_config, validate_config
from trainwell.errors import ConfigError
from trainwell.recipes.train import train_config


EXAMPLES = Path(__file__).parents[2] / "examples"


def test_train_config_without_saving():
    result = train_config(digits_config(), verbose=False, save=False)
    assert result.output_dir is None and len(result.history) == 2
    assert result.metrics["val_accuracy"] > 0.8 and "test_accuracy" in result.metrics


def test_leaky_relu_matches_the_book(needs_real_data, tmp_path):
    """The chapter's leaky_relu run: 10 epochs of SGD 1e-3; the book reaches 0.8430."""
    config = load_config(EXAMPLES / "leaky_relu.toml", [f"output_dir={tmp_path}"])
    result = train_config(config, verbose=False)
    assert result.metrics["val_accuracy"] >= 0.83
    assert (tmp_path / "model.safetensors").exists()


def diverging_config(out, **train):
    """Two hidden leaky ReLU layers and SGD at lr 1e6: the loss is nan within the first epoch."""
    hidden = {"type": "dense", "units": 32, "activation": "leaky_relu", "init": "he_normal"}
    return validate_config({
        "name": "diverging", "seed": 0, "output_dir": str(out),
        "data": {"name": "digits", "validation_size": 300},
        "model": {"layers": [{"type": "flatten"}, hidden, hidden, {"type": "dense", "units": 10, "activation": "softmax"}]},
        "optimizer": {"name": "sgd", "lr": 1e6},
        "train": {"epochs": 2, **train},
    })


def test_a_diverged_run_fails_and_writes_nothing(tmp_path):
    from trainwell.errors import TrainingDiverged

    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as error:
        train_config(diverging_config(out), verbose=False)
    message = str(error.value)
    assert "\n" not in message
    assert "diverged" in message and "epoch 1" in message
    assert "optimizer.lr" in message and "lr-find" in message and "allow_nonfinite_loss" in message
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []  # no model, no metrics, no resume state


def test_a_diverged_run_is_kept_when_asked_and_its_files_are_valid_json(tmp_path):
    from helpers import strict_json

    kept = train_config(diverging_config(tmp_path / "kept", allow_nonfinite_loss=True), verbose=False)
    assert np.isnan(kept.metrics["val_loss"])
    assert strict_json((tmp_path / "kept" / "metrics.json").read_text())["val_loss"] is None
    strict_json((tmp_path / "kept" / "history.json").read_text())
    again = train_config(diverging_config(tmp_path / "api"), verbose=False, allow_nonfinite_loss=True)
    assert np.isnan(again.history.last["loss"])


def test_a_finished_run_is_not_overwritten_unless_asked(tmp_path):
    out = tmp_path / "run"
    config = digits_config().model_copy(update={"output_dir": str(out)})
    train_config(config, verbose=False)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    with pytest.raises(ConfigError) as error:
        train_config(config, verbose=False)
    assert str(out) in str(error.value) and "--overwrite" in str(error.value) and "train.overwrite" in str(error.value)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    train_config(config, verbose=False, overwrite=True)
    assert (out / "metrics.json").stat().st_mtime_ns != before["metrics.json"][1]


def test_a_resumed_run_says_where_it_resumes(tmp_path, capsys):
    from trainwell.callbacks import Callback

    class KillAtEpoch2(Callback):
        def __init__(self, armed):
            self.armed = armed

        def on_epoch_begin(self, trainer, epoch):
            if self.armed and epoch == 2:
                raise RuntimeError("killed")

    out = tmp_path / "run"
    config = digits_config().model_copy(update={"output_dir": str(out)})
    with pytest.raises(RuntimeError, match="killed"):
        train_config(config, verbose=False, callbacks=[KillAtEpoch2(True)])
    capsys.readouterr()
    train_config(config, verbose=False, callbacks=[KillAtEpoch2(False)])
    steps = -(-1200 // 32)  # one epoch of the 1,200 training images at batch 32
    assert f"resuming at epoch 2, step {steps:,} from {out / 'resume'}" in capsys.readouterr().err
    train_config(config.model_copy(update={"output_dir": str(tmp_path / "fresh")}), verbose=False)
    assert "resuming" not in capsys.readouterr().err


# smaller than the command line tests' config: 300 training images, 16 units, 1 epoch
DIGITS_TINY = tiny_digits(units=16, init=None, validation_size=100, data="train_size = 300", epochs=1,
                          train="batch_size = 64")


def _tiny(tmp_path, **train):
    import tomllib

    data = tomllib.loads(DIGITS_TINY)
    data["train"].update(train)
    data["output_dir"] = str(tmp_path / "out")
    return validate_config(data)


def test_a_diagnostics_json_already_in_the_folder_is_refused_not_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "diagnostics.json").write_text("my notes\n")
    with pytest.raises(ConfigError, match="already holds a finished run.*diagnostics.json"):
        train_config(_tiny(tmp_path), verbose=False)
    assert (out / "diagnostics.json").read_text() == "my notes\n"


def test_a_finished_run_leaves_no_saved_state_even_one_an_earlier_killed_run_left(tmp_path):
    """A state left by a killed run, then the run finished with resumable = false: the state must go,
    or the next plain `train` would take the folder for an unfinished run and replace the finished one."""
    stale = tmp_path / "out" / "resume" / "phase-0"
    stale.mkdir(parents=True)
    (stale / "state-000000001.safetensors").write_bytes(b"x")
    train_config(_tiny(tmp_path, resumable=False), verbose=False)
    assert not (tmp_path / "out" / "resume").exists()
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train_config(_tiny(tmp_path), verbose=False)


def test_an_unwritable_output_folder_fails_before_training(tmp_path, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    config = _tiny(tmp_path, resumable=False)
    config.output_dir = str(blocker / "run")
    fits = []
    monkeypatch.setattr("trainwell.train.trainer.Trainer.fit", lambda *a, **k: fits.append(1))
    with pytest.raises(OSError, match="afile"):
        train_config(config, verbose=False)
    assert fits == [] and blocker.read_text() == "x"


def test_an_empty_output_dir_is_refused(tmp_path):
    import tomllib

    data = tomllib.loads(DIGITS_TINY)
    data["output_dir"] = ""
    with pytest.raises(ConfigError, match="output_dir: is empty"):
        validate_config(data)


def test_a_run_config_made_directly_trains_as_the_validated_one(tmp_path):
    """The README's ``tw.train_config(tw.RunConfig(**config))``: a RunConfig made without validate_config
    has no validation size yet; train_config fills in the dataset's default, as loading a file does."""
    import trainwell as tw

    data = {"name": "direct", "seed": 0, "output_dir": str(tmp_path / "run"),
            "data": {"name": "digits", "train_size": 200},
            "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]},
            "train": {"epochs": 1}}
    direct = tw.train_config(tw.RunConfig(**data), verbose=False, save=False)
    validated = tw.train_config(validate_config(data), verbose=False, save=False)
    assert direct.history.records[-1]["val_accuracy"] == validated.history.records[-1]["val_accuracy"]


def test_metrics_json_holds_every_metric_of_validation_and_test(tmp_path):
    import json

    config = digits_config().model_copy(update={"output_dir": str(tmp_path / "run")})
    config.train = config.train.model_copy(update={"metrics": ["accuracy", "auc", "f1", "top_3_accuracy"],
                                                   "label_smoothing": 0.1, "class_weight": {"0": 2.0}})
    result = train_config(config, verbose=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for metric in ("loss", "accuracy", "auc", "f1", "top_3_accuracy"):
        assert saved[f"val_{metric}"] == pytest.approx(result.history.last[f"val_{metric}"]), metric
        assert f"test_{metric}" in saved, metric
    assert 0.5 < saved["test_auc"] <= 1 and saved["test_accuracy"] <= saved["test_top_3_accuracy"]


def _a_last_batch_of_one_under_batch_norm(out):
    """A config that fit refuses before its first step: 1,200 training images by 109 leave a last batch of one."""
    data = digits_config().to_dict()
    data["model"]["layers"] = [{"type": "flatten"}, {"type": "dense", "units": 16}, {"type": "batch_normalization"},
                               {"type": "dense", "units": 10, "activation": "softmax"}]
    data["train"]["batch_size"] = 109
    return validate_config({**data, "output_dir": str(out)})


def test_a_run_that_fails_before_its_first_saved_epoch_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="holds one sample"):
        train_config(_a_last_batch_of_one_under_batch_norm(out), verbose=False)
    assert not out.exists()  # before: resume/config.json, a state with nothing to resume


def test_a_failed_run_keeps_the_users_own_empty_folder_and_an_earlier_runs_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    with pytest.raises(ConfigError, match="holds one sample"):
        train_config(_a_last_batch_of_one_under_batch_norm(out), verbose=False)
    assert out.is_dir() and list(out.iterdir()) == []
    train_config(digits_config().model_copy(update={"output_dir": str(out)}), verbose=False)
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ConfigError, match="holds one sample"):
        train_config(_a_last_batch_of_one_under_batch_norm(out), verbose=False, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished
