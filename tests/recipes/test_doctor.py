"""trainwell doctor: the brief checkup of a config's model, the CLI, and the [diagnostics] section of a run."""

import json

import pytest

import trainwell as tw
from trainwell.cli import main
from trainwell.config import load_config, validate_config
from trainwell.recipes.doctor import run_doctor
from helpers import tiny_digits


def write(tmp_path, activation="relu", init="he_normal", scaling="", extra=""):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_digits(epochs=2, activation=activation, init=init, data=scaling, extra=extra))
    return path


def test_doctor_cli_healthy_model(tmp_path, capsys):
    config = write(tmp_path)
    assert main(["doctor", str(config), "--steps", "60", "--every", "6", "--json", str(tmp_path / "d.json"),
                 "--plot", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert "60 steps of adam" in printed and "10 recorded steps (every 6)" in printed
    assert "no problems found" in printed
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["diagnosis"]["healthy"] and len(saved["recording"]["samples"]) == 10
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"depth.png", "time.png"}


def test_doctor_cli_reports_unscaled_selu_inputs(tmp_path, capsys):
    config = write(tmp_path, activation="selu", init="lecun_normal", scaling='scaling = "unit"')
    assert main(["doctor", str(config), "--steps", "20"]) == 0
    printed = capsys.readouterr().out
    assert "broken self-normalization: inputs are not standardized" in printed
    assert "data.scaling is 'unit' (measured: mean" in printed and 'scaling = "standardize"' in printed


def test_diagnostics_section_records_during_train(tmp_path, capsys):
    config = write(tmp_path, extra="[diagnostics]\nevery = 10")
    assert main(["train", str(config), "-o", str(tmp_path / "run"), "-q"]) == 0
    assert "diagnostics: no problems found" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    assert saved["recording"]["every"] == 10 and saved["diagnosis"]["findings"] == []


def test_diagnostics_section_is_validated(tmp_path):
    with pytest.raises(tw.ConfigError, match="diagnostics.every"):
        load_config(write(tmp_path, extra="[diagnostics]\nevery = 0"))
    with pytest.raises(tw.ConfigError, match="diagnostics.often"):
        load_config(write(tmp_path, extra="[diagnostics]\noften = 3"))


def test_run_doctor_defaults_to_about_twenty_samples(tmp_path):
    checkup = run_doctor(load_config(write(tmp_path)), steps=40)
    assert checkup.recording.every == 2 and len(checkup.recording.samples) == 20
    assert checkup.diagnosis.context["steps"] == 40


def test_repeat_key_errors_name_the_layer():
    base = {"model": {"layers": [{"type": "dense", "units": 4, "repeat": 0}]}}
    with pytest.raises(tw.ConfigError, match=r"model.layers\[0\].repeat: must be an integer >= 1"):
        validate_config(base)
    named = {"model": {"layers": [{"type": "dense", "units": 4, "repeat": 2, "name": "x"}]}}
    with pytest.raises(tw.ConfigError, match="a repeated layer cannot have a name"):
        validate_config(named)


def test_doctor_lines_stay_whole_when_piped(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from trainwell import cli

    monkeypatch.setattr(cli.out, "_width", 80)  # what rich falls back to when the output is not a terminal
    config = write(tmp_path, activation="selu", init="lecun_normal", scaling='scaling = "unit"')
    plots = tmp_path / ("plots_" + "x" * 80)
    result = CliRunner().invoke(cli.app, ["doctor", str(config), "--steps", "10", "--plot", str(plots)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"saved: {plots / 'depth.png'}" in lines
    assert "WARNING: broken self-normalization: inputs are not standardized" in lines


def test_doctor_cli_on_a_cnn(tmp_path, capsys):
    from helpers import DIGITS_CNN

    config = tmp_path / "cnn.toml"
    config.write_text(DIGITS_CNN)
    assert main(["doctor", str(config), "--steps", "30", "--every", "5", "--json", str(tmp_path / "d.json")]) == 0
    printed = capsys.readouterr().out
    assert "30 steps of adam" in printed and "6 recorded steps (every 5)" in printed
    saved = json.loads((tmp_path / "d.json").read_text())
    assert [layer["name"] for layer in saved["recording"]["layers"]] == ["conv2d_1", "conv2d_2", "dense_1"]
    assert [layer["activation"] for layer in saved["recording"]["layers"]] == ["relu", "relu", "softmax"]
    last = saved["recording"]["samples"][-1]["layers"]["conv2d_2"]
    assert last["grad_norm"] > 0 and last["std"] > 0
