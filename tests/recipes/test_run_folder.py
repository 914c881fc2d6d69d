"""The output folder of a run: its saved state is kept for the same fit, whatever happens after training."""

from helpers import digits_config
from trainwell.config import validate_config
from trainwell.recipes.build import build_from_config, prepare_data
from trainwell.recipes.fingerprint import fit_fingerprint
from trainwell.recipes.run_folder import resume_folder


def fingerprint_of(config):
    prepared = prepare_data(config)
    return fit_fingerprint(config, prepared, build_from_config(config, prepared.input_shape))


def test_a_killed_run_resumes_with_overwrite_set(tmp_path):
    """train.overwrite and train.allow_nonfinite_loss decide what happens after training: not part of the fit."""
    out = tmp_path / "run"
    config = digits_config().model_copy(update={"output_dir": str(out)})
    (out / "resume").mkdir(parents=True)
    resume_folder(config, out, fingerprint_of(config))
    again = validate_config({**config.to_dict(), "train": {**config.to_dict()["train"], "overwrite": True,
                                                           "allow_nonfinite_loss": True}})
    assert resume_folder(again, out, fingerprint_of(again)) == out / "resume"


# ----------------------------------------------------------------- the progress written after every epoch
import csv

import pytest

from trainwell.callbacks import Callback
from trainwell.errors import ConfigError
from trainwell.recipes.run_folder import PROGRESS
from trainwell.recipes.train import train_config


class ReadsProgress(Callback):
    """Reads progress/history.csv at each epoch's start (what the epochs before it wrote); kills the run if asked."""

    def __init__(self, out, kill_at=None):
        self.out, self.kill_at, self.rows, self.curves = out, kill_at, {}, {}

    def on_epoch_begin(self, trainer, epoch):
        path = self.out / PROGRESS / "history.csv"
        self.rows[epoch] = list(csv.DictReader(path.open())) if path.exists() else None
        self.curves[epoch] = (self.out / PROGRESS / "curves.png").is_file()
        if epoch == self.kill_at:
            raise RuntimeError("killed")


def _config(out, epochs=3, **train):
    config = digits_config()
    return validate_config({**config.to_dict(), "output_dir": str(out), "train": {"epochs": epochs, **train}})


def test_the_history_so_far_is_in_progress_after_every_epoch_and_the_set_holds_the_same(tmp_path):
    out = tmp_path / "run"
    reader = ReadsProgress(out)
    result = train_config(_config(out), verbose=False, callbacks=[reader])
    assert reader.rows[1] is None
    assert [[row["epoch"] for row in reader.rows[epoch]] for epoch in (2, 3)] == [["1"], ["1", "2"]]
    assert reader.rows[3][1]["val_loss"] == repr(result.history.records[1]["val_loss"])
    assert not (out / PROGRESS).exists()  # the finished set holds them
    assert (out / "history.csv").read_text() == result.history.to_csv()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_progress_nothing_is_written_while_it_trains_and_the_set_is_the_same(tmp_path):
    reader = ReadsProgress(tmp_path / "quiet")
    quiet = train_config(_config(tmp_path / "quiet"), verbose=False, callbacks=[reader], progress=False)
    assert reader.rows == {1: None, 2: None, 3: None} and not any(reader.curves.values())
    loud = train_config(_config(tmp_path / "loud"), verbose=False)
    untimed = [[{k: v for k, v in r.items() if k != "time"} for r in run.history.records] for run in (quiet, loud)]
    assert untimed[0] == untimed[1] and sorted(p.name for p in (tmp_path / "quiet").iterdir()) == \
        sorted(p.name for p in (tmp_path / "loud").iterdir())
    assert (tmp_path / "quiet" / "curves.png").read_bytes() == (tmp_path / "loud" / "curves.png").read_bytes()


def test_a_killed_run_leaves_its_progress_and_the_resumed_run_goes_on_from_the_restored_history(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        train_config(_config(out), verbose=False, callbacks=[ReadsProgress(out, kill_at=3)])
    left = (out / PROGRESS / "history.csv").read_text()
    assert [row["epoch"] for row in csv.DictReader(left.splitlines())] == ["1", "2"]
    assert not (out / "history.csv").exists() and not (out / "model.safetensors").exists()
    reader = ReadsProgress(out)
    result = train_config(_config(out), verbose=False, callbacks=[reader])  # resumes at epoch 3
    assert list(reader.rows) == [3] and reader.rows[3] is not None and len(reader.rows[3]) == 2
    assert (out / "history.csv").read_text() == result.history.to_csv()
    assert [r["epoch"] for r in result.history.records] == [1, 2, 3]


def test_a_killed_run_that_saved_no_state_is_not_taken_for_a_finished_one(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        train_config(_config(out, resumable=False), verbose=False, callbacks=[ReadsProgress(out, kill_at=2)])
    assert (out / PROGRESS / "history.csv").is_file()
    result = train_config(_config(out, resumable=False), verbose=False)  # not refused: it starts over
    assert len(result.history) == 3 and not (out / PROGRESS).exists()
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train_config(_config(out, resumable=False), verbose=False)


def test_overwriting_a_finished_run_leaves_its_files_until_the_new_set_is_whole(tmp_path):
    out = tmp_path / "run"
    train_config(_config(out, epochs=1), verbose=False)
    before = {name: (out / name).read_bytes() for name in ("history.csv", "curves.png", "model.safetensors")}
    with pytest.raises(RuntimeError, match="killed"):
        train_config(_config(out), verbose=False, overwrite=True, callbacks=[ReadsProgress(out, kill_at=3)])
    assert {name: (out / name).read_bytes() for name in before} == before
    assert (out / PROGRESS / "history.csv").is_file()
