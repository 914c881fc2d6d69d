"""The CLI, called in-process through main(argv) (exit status returned, not raised)."""

import json
from pathlib import Path

import pytest
from helpers import tiny_digits

from trainwell.cli import main
from trainwell.train.history import History
from trainwell.model.saving import load_model, load_model_file

EXAMPLES = Path(__file__).parents[1] / "examples"

DIGITS = tiny_digits()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(DIGITS)
    return path


def test_train_writes_outputs_and_prints_accuracy(config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "val_accuracy: " in printed and "test_accuracy: " in printed
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "history.json", "history.csv", "metrics.json",
                                                "config.json", "curves.png"}  # progress/ goes once the set is in
    history = History.from_json(out / "history.json")
    assert len(history) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_accuracy"] == history.last["val_accuracy"] > 0.8
    model = load_model(out / "model.safetensors")
    assert model.spec.input_shape == (8, 8)

    # evaluate reproduces the test accuracy with the preprocessing stored in the model file
    assert main(["evaluate", str(out / "model.safetensors")]) == 0
    evaluated = capsys.readouterr().out
    assert f"accuracy: {metrics['test_accuracy']:.4f}" in evaluated
    assert main(["evaluate", str(out / "model.safetensors"), "--split", "validation"]) == 0
    assert f"accuracy: {metrics['val_accuracy']:.4f}" in capsys.readouterr().out


def test_same_seed_same_history_through_the_cli(config, tmp_path):
    for run in ("a", "b"):
        assert main(["train", str(config), "-o", str(tmp_path / run), "-q"]) == 0
    a, b = (History.from_json(tmp_path / run / "history.json") for run in ("a", "b"))
    assert [{k: v for k, v in r.items() if k != "time"} for r in a] == [
        {k: v for k, v in r.items() if k != "time"} for r in b]


def test_overrides_and_standardized_inputs(config, tmp_path):
    out = tmp_path / "std"
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1", "--set", "data.scaling=standardize",
                 "--set", "optimizer.name=nadam"]) == 0
    assert len(History.from_json(out / "history.json")) == 1
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["scaling"] == "standardize" and saved["optimizer"]["name"] == "nadam"
    assert main(["evaluate", str(out / "model.safetensors")]) == 0


def test_set_addresses_list_items(config, tmp_path):
    out = tmp_path / "wide"
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1",
                 "--set", "model.layers[1].units=50"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["layers"][1]["units"] == 50
    assert load_model(out / "model.safetensors").spec.layers[1].units == 50


@pytest.mark.parametrize("args, message", [
    (["--set", "train.epochs=0"], "'train.epochs' = 0: must be greater than 0"),
    (["--set", "optimizer.name=sgdd"], "unknown optimizer 'sgdd'"),
    (["--set", "model.layers[0]=1"], "'model.layers[0]' = 1: must be a valid dictionary"),
    (["--set", "model.layers[3].units=5"], "model.layers has 3 entries (allowed indices: 0..2)"),
    (["--set", "data.name=imagenet"], "imagenet"),
    (["--set", "data.validation_size=5000"], "data.validation_size: 5000 leaves no training images"),
    (["--set", "data.classes=[0, 42]"], "data.classes"),
])
def test_bad_config_one_line_exit_2_nothing_overwritten(config, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["train", str(config), "-o", str(out), "-q", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err
    assert "Traceback" not in captured.err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_model_output_size_must_fit_the_data(config, tmp_path, capsys):
    assert main(["train", str(config), "-o", str(tmp_path / "x"), "--set",
                 'model.layers=[{type: flatten}, {type: dense, units: 3, activation: softmax}]']) == 2
    assert "the last layer has 3 units but the data has 10 classes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_files_and_arguments(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such model file" in capsys.readouterr().err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    assert main(["evaluate", str(junk)]) == 2
    assert "not a readable safetensors" in capsys.readouterr().err
    assert main(["train"]) == 2  # click: missing argument
    assert main(["trian"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_evaluate_rejects_unknown_split(config, tmp_path, capsys):
    out = tmp_path / "out"
    main(["train", str(config), "-o", str(out), "-q", "--epochs", "1"])
    assert main(["evaluate", str(out / "model.safetensors"), "--split", "dev"]) == 2
    assert "allowed: test, validation, train" in capsys.readouterr().err


def test_summary_of_config_and_model(config, tmp_path, capsys):
    assert main(["summary", str(config)]) == 0
    text = capsys.readouterr().out
    assert "dense_1 (Dense)" in text and "Total params: 2,410" in text
    main(["train", str(config), "-o", str(tmp_path / "m"), "-q", "--epochs", "1"])
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "m" / "model.safetensors")]) == 0
    assert "Total params: 2,410" in capsys.readouterr().out


@pytest.fixture
def no_dataset_files(monkeypatch, tmp_path):
    """No dataset can be read: TRAINWELL_DATA points nowhere, downloads are off, and loading fails."""
    import trainwell.data

    def unavailable(name, **_):
        raise AssertionError(f"{name} was loaded")

    monkeypatch.setenv("TRAINWELL_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("TRAINWELL_OFFLINE", "1")
    monkeypatch.setattr(trainwell.data, "load", unavailable)


def test_summary_of_a_config_needs_no_dataset_files(no_dataset_files, capsys):
    assert main(["summary", str(EXAMPLES / "bn_after.yaml")]) == 0
    assert "Total params: 271,346" in capsys.readouterr().out


def test_plot_schedule_counts_the_steps_from_the_registry(no_dataset_files, tmp_path, capsys):
    # one_cycle: 55,000 training images (60,000 less the 5,000 for validation), batches of 128, 25 epochs
    assert main(["plot-schedule", str(EXAMPLES / "one_cycle.toml"), "-o", str(tmp_path / "s.png")]) == 0
    assert f"({25 * 430} steps)" in capsys.readouterr().out
    assert main(["plot-schedule", str(EXAMPLES / "one_cycle.toml"), "-o", str(tmp_path / "s.png"),
                 "--set", "data.train_size=1000", "--set", "train.epochs=1"]) == 0
    assert "(8 steps)" in capsys.readouterr().out


def test_digits_without_validation_size_uses_its_default(tmp_path, capsys):
    config = tmp_path / "digits.toml"
    config.write_text(DIGITS.replace("validation_size = 200\n", ""))
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1"]) == 0
    assert json.loads((out / "config.json").read_text())["data"]["validation_size"] == 300
    assert load_model_file(out / "model.safetensors").info["data"]["validation_size"] == 300
    assert main(["evaluate", str(out / "model.safetensors"), "--split", "validation"]) == 0
    assert "samples: 300" in capsys.readouterr().out


def test_epochs_on_a_phased_config_points_at_the_phases(capsys):
    assert main(["train", str(EXAMPLES / "transfer_b_on_a.toml"), "--epochs", "2"]) == 2
    message = capsys.readouterr().err
    assert "(phases[0].epochs = 4, phases[1].epochs = 16); set those instead, e.g. --set phases[1].epochs=2" in message
    assert "remove train.epochs" not in message


def test_datasets_lists_each_dataset(capsys):
    assert main(["datasets"]) == 0
    text = capsys.readouterr().out
    for name in ("digits", "fashion_mnist", "mnist"):
        assert name in text


def test_help(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("train", "evaluate", "summary", "datasets"):
        assert command in text


def test_datasets_verify_fails_for_a_missing_dataset(tmp_path, monkeypatch, capsys):
    from trainwell.data import locations

    monkeypatch.setenv("TRAINWELL_DATA", str(tmp_path / "nonexistent"))
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(locations, "SYSTEM_DIRS", ())
    assert main(["datasets"]) == 0  # listing only: where each one is (or is not)
    assert "not found" in capsys.readouterr().out
    assert main(["datasets", "--verify"]) == 1
    assert "not found" in capsys.readouterr().out
    assert main(["datasets", "--verify", "digits"]) == 0  # bundled with scikit-learn: always there
    assert main(["datasets", "--verify", "mnist"]) == 1
    assert main(["datasets", "imagenet"]) == 2
    assert "Unknown dataset 'imagenet'" in capsys.readouterr().err


def test_datasets_piped_prints_whole_tab_separated_lines(tmp_path, monkeypatch, capsys):
    from trainwell.data import locations

    long = tmp_path / ("a-folder-with-a-long-name-" * 4) / "cache"
    monkeypatch.setenv("TRAINWELL_DATA", str(tmp_path / "nonexistent"))
    monkeypatch.setenv("TRAINWELL_CACHE", str(long))
    monkeypatch.setattr(locations, "SYSTEM_DIRS", ())
    assert main(["datasets", "--verify", "fashion_mnist"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "dataset\twhere\tstatus"
    name, where, status = lines[1].split("\t")
    assert name == "fashion_mnist" and str(long) in where and status == "not found"


def test_datasets_verify_passes_with_the_data(needs_real_data, capsys):
    assert main(["datasets", "--verify", "fashion_mnist", "mnist"]) == 0
    assert capsys.readouterr().out.count("verified") == 2


def test_a_diverged_run_exits_non_zero_with_one_line(config, tmp_path, capsys):
    out = tmp_path / "nan"
    assert main(["train", str(config), "-o", str(out), "-q", "--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e6",
                 "--set", 'model.layers=[{type: flatten}, {type: dense, units: 32, activation: leaky_relu}, '
                          '{type: dense, units: 32, activation: leaky_relu}, {type: dense, units: 10, activation: softmax}]'
                 ]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: training diverged") and captured.err.count("\n") == 1
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()


def test_train_refuses_to_overwrite_a_finished_run(config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1"]) == 0
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    capsys.readouterr()
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(out) in err and "--overwrite" in err and err.count("\n") == 1
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1", "--overwrite"]) == 0
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1", "--set", "train.overwrite=true"]) == 0

def _interrupt_after_each_save(monkeypatch):
    """Make Trainer._save raise KeyboardInterrupt once the state is written (a Ctrl-C at an epoch end);
    returns the real _save, to put back."""
    from trainwell.train.trainer import Trainer

    save = Trainer._save

    def save_then_interrupt(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save", save_then_interrupt)
    return save


def test_ctrl_c_in_train_says_where_the_state_is_and_the_rerun_resumes(config, tmp_path, monkeypatch, capsys):
    from trainwell.train.trainer import Trainer

    out = tmp_path / "interrupted"
    save = _interrupt_after_each_save(monkeypatch)
    assert main(["train", str(config), "-o", str(out), "-q"]) == 130
    assert (f"interrupted: the training state is kept in {out / 'resume'}; run the same command again to resume"
            in capsys.readouterr().err)
    monkeypatch.setattr(Trainer, "_save", save)
    assert main(["train", str(config), "-o", str(out), "-q"]) == 0
    assert "resuming at epoch 2" in capsys.readouterr().err


def test_a_run_that_failed_in_its_first_epoch_does_not_block_the_corrected_one(config, tmp_path, capsys):
    out = tmp_path / "diverged"
    assert main(["train", str(config), "-o", str(out), "-q", "--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e30",
                 "--set", "callbacks.terminate_on_nan=true"]) == 2
    assert "diverged" in capsys.readouterr().err
    assert main(["train", str(config), "-o", str(out), "-q"]) == 0   # the advice followed, in the same folder


def test_a_run_that_diverged_after_saving_states_does_not_block_the_corrected_one(config, tmp_path, capsys):
    """TerminateOnNaN stops phase 2 after phase 1 saved its states: they are dropped with the diverged fit."""
    config = tmp_path / "phases.toml"
    config.write_text(DIGITS.replace("epochs = 3\n", ""))
    out = tmp_path / "diverged"
    phases = ["--set", "callbacks.terminate_on_nan=true", "--set", "phases=[{epochs: 1}, {epochs: 1, optimizer: "
              "{name: sgd, lr: LR}}]"]
    diverging = [arg.replace("LR", "1.0e+30") for arg in phases]
    assert main(["train", str(config), "-o", str(out), "-q", *diverging]) == 2
    assert "diverged" in capsys.readouterr().err and not (out / "resume").exists()
    assert main(["train", str(config), "-o", str(out), "-q", *[arg.replace("LR", "0.01") for arg in phases]]) == 0
    assert "resuming" not in capsys.readouterr().err


def test_another_configs_interrupted_run_is_refused_unless_restart(config, tmp_path, monkeypatch, capsys):
    """The refusal says what differs and how to start over; --restart (or --overwrite, which replaces
    what another run left in the folder) drops that state and trains from epoch 1."""
    from trainwell.train.trainer import Trainer

    save = _interrupt_after_each_save(monkeypatch)
    for out in (tmp_path / "two", tmp_path / "three"):
        assert main(["train", str(config), "-o", str(out), "-q"]) == 130
    monkeypatch.setattr(Trainer, "_save", save)
    capsys.readouterr()
    for out, start_over in ((tmp_path / "two", "--restart"), (tmp_path / "three", "--overwrite")):
        other = ["train", str(config), "-o", str(out), "-q", "--set", "optimizer.lr=0.002"]
        assert main(other) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds an interrupted run of a different fit (1 epoch(s) done" in err
        assert "optimizer.lr 0.01 -> 0.002" in err and "--restart" in err
        assert main([*other, start_over]) == 0
        err = capsys.readouterr().err
        assert "resuming" not in err and f"starting over: dropped the saved state of 1 epoch(s) in {out / 'resume'}" in err


def test_restart_trains_the_same_config_from_epoch_1(config, tmp_path, monkeypatch, capsys):
    from trainwell.train.trainer import Trainer

    out, clean = tmp_path / "out", tmp_path / "clean"
    assert main(["train", str(config), "-o", str(clean), "-q"]) == 0
    save = _interrupt_after_each_save(monkeypatch)
    assert main(["train", str(config), "-o", str(out), "-q"]) == 130
    monkeypatch.setattr(Trainer, "_save", save)
    capsys.readouterr()
    assert main(["train", str(config), "-o", str(out), "-q", "--restart"]) == 0
    assert "resuming" not in capsys.readouterr().err and not (out / "resume").exists()
    strip = lambda path: [{k: v for k, v in r.items() if k != "time"} for r in History.from_json(path)]  # noqa: E731
    assert strip(out / "history.json") == strip(clean / "history.json")


@pytest.mark.parametrize("argv, names", [
    (["report", "nowhere", "--tol-long", "nan"], "tol-long"),
    (["report", "nowhere", "--tol-short", "2"], "tol-short"),
    (["reproduce", "--seeds", "100000", "--list"], "--seeds"),
    (["reproduce", "--jobs", "99999", "--list"], "--jobs"),
    (["tune", "x.toml", "--trials", "0"], "--trials"),
])
def test_numeric_options_out_of_range_are_one_line(argv, names, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    printed = capsys.readouterr().err
    assert names in printed and printed.count("\n") == 1 and "Traceback" not in printed


def test_train_logs_to_tensorboard_and_csv_from_the_flags(config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, log = tmp_path / "out", tmp_path / "logs" / "epochs.csv"
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "2", "--tensorboard", "--csv-log", str(log)]) == 0
    events = EventAccumulator(str(out / "tensorboard" / "validation"))
    events.Reload()
    assert [e.step for e in events.Scalars("epoch_accuracy")] == [1, 2]
    assert log.read_text() == (out / "history.csv").read_text()
    board = tmp_path / "elsewhere"
    assert main(["train", str(config), "-o", str(tmp_path / "b"), "-q", "--epochs", "1", "--tensorboard", str(board)]) == 0
    assert (board / "train").is_dir() and not (tmp_path / "b" / "tensorboard").exists()
    through_set = tmp_path / "set"
    assert main(["train", str(config), "-o", str(tmp_path / "c"), "-q", "--epochs", "1",
                 "--set", f"callbacks.tensorboard.log_dir={through_set}", "--set", "callbacks.tensorboard.update_freq=5"]) == 0
    events = EventAccumulator(str(through_set / "train"))
    events.Reload()
    assert "batch_loss" in events.Tags()["scalars"]


@pytest.mark.parametrize("flag, key", [("--tensorboard", "callbacks.tensorboard.log_dir"),
                                       ("--csv-log", "callbacks.csv_logger.filename")])
def test_a_logger_that_cannot_write_fails_before_training_and_keeps_the_finished_run(config, tmp_path, capsys, flag, key):
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    (tmp_path / "a_file").write_text("")
    capsys.readouterr()
    assert main(["train", str(config), "-o", str(out), "-q", "--epochs", "1", "--overwrite",
                 flag, str(tmp_path / "a_file" / "log")]) == 2
    printed = capsys.readouterr().err
    assert printed.startswith(f"error: {key}: cannot write in") and "a_file is a file, not a folder" in printed
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no progress/, no resume/


def test_train_refuses_a_bad_logger_setting_in_one_line(config, tmp_path, capsys):
    assert main(["train", str(config), "-o", str(tmp_path / "x"), "-q",
                 "--set", "callbacks.tensorboard.update_freq=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'callbacks.tensorboard.update_freq' = 0: must be 'epoch' or a number" in err
    assert main(["train", str(config), "-o", str(tmp_path / "x"), "-q", "--set", "train.precision=fp16",
                 "--set", "train.device=cpu"]) == 2
    assert "use precision 'bf16' on the CPU" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_the_readmes_logger_commands_run_as_written(tmp_path, monkeypatch):
    import re
    import shlex

    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Seeing training"):text.index("### Mixed precision")]
    commands = [line.split("  #")[0] for line in re.findall(r"^trainwell train .*$", section, flags=re.M)]
    assert len(commands) == 2
    (tmp_path / "examples").symlink_to(EXAMPLES)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        assert main(shlex.split(command)[1:] + ["-q"]) == 0, command
    assert (tmp_path / "runs/digits_quick/tensorboard/train").is_dir()
    assert (tmp_path / "runs/digits_quick.csv").read_text() == (tmp_path / "runs/digits_quick/history.csv").read_text()
    assert (tmp_path / "runs/tb_logs/validation").is_dir() and (tmp_path / "runs/tb/curves.png").is_file()
