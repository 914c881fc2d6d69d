"""The doctor: measured rules on recordings, static SELU checks on specs, the CLI and the config keys."""

import json

import pytest
import torch
from helpers import tiny_digits

import trainwell as tw
from trainwell.cli import main
from trainwell.config import load_config, validate_config
from trainwell.doctor.record import Diagnostics, LayerInfo, Recording, Sample
from trainwell.doctor.findings import Diagnosis, diagnose, run_doctor
from trainwell.recipes.train import build_from_config
from trainwell.model.layers import ModelSpec
from trainwell.model.regularization import l2, max_norm
from trainwell.doctor.selfnorm import check_self_normalization


def train_and_record(layers, *, features=20, optimizer=None, steps=40, every=4, standardized=True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, features, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    if not standardized:
        x = x.abs() * 0.3 + 0.3
    tw.seed_everything(0)
    model = tw.build_model(layers, input_shape=(features,))
    recorder = Diagnostics(every)
    trainer = tw.Trainer(model, optimizer=optimizer or {"name": "sgd", "lr": 0.01}, callbacks=[recorder], seed=0)
    trainer.fit(x, y, epochs=max(1, steps * 16 // len(x)), batch_size=16, verbose=False)
    return model, recorder.recording


def synthetic(stat_rows, activation="relu"):
    """A recording whose every sample has the given per-layer statistics."""
    names = [f"dense_{i + 1}" for i in range(len(stat_rows))]
    layers = [LayerInfo(name, activation, 100) for name in names]
    samples = [Sample(step=10 * k, epoch=1, layers={n: dict(row) for n, row in zip(names, stat_rows)})
               for k in range(5)]
    return Recording(every=10, layers=layers, samples=samples)


# ---------------------------------------------------------------------- measured rules


def test_deep_sigmoid_stack_is_flagged_vanishing_with_layers_and_numbers():
    init = {"name": "random_normal", "stddev": 0.05}
    model, recording = train_and_record([tw.Dense(32, activation="sigmoid", init=init) for _ in range(12)]
                                        + [tw.Dense(3, activation="softmax")])
    diagnosis = diagnose(recording, model=model)
    (finding,) = [f for f in diagnosis.findings if f.code == "vanishing_gradients"]
    assert finding.layers == ("dense_1", "dense_2", "dense_3")
    assert finding.numbers["bottom_to_top_grad_rms"] < 1e-2
    assert "dense_1" in finding.detail and "x smaller" in finding.detail and "He initialization" in finding.advice
    assert all(sample.layers[name]["backward_rms"] > 0 for sample in recording.samples
               for name in ("dense_1", "dense_6", "dense_12"))


def test_a_vanishing_backward_signal_is_named_even_when_weight_gradients_look_level():
    rows = [{"grad_rms": 1e-3, "backward_rms": 10.0 ** (i - 6), "std": 1.0} for i in range(6)]
    (finding,) = diagnose(synthetic(rows)).findings
    assert finding.code == "vanishing_gradients"
    assert "backward signal" in finding.detail and "weights' gradient RMS" not in finding.detail
    assert finding.numbers["bottom_to_top_backward_rms"] < 1e-2


def test_the_gradient_ratios_are_shown_whether_or_not_a_rule_fires():
    rows = [{"std": 1.0 / 2 ** i, "grad_rms": 1e-3, "backward_rms": 2e-3} for i in range(6)]
    diagnosis = diagnose(synthetic(rows))
    (finding,) = diagnosis.findings
    assert finding.code == "fading_signal" and "the gradients stay within 1x" in finding.detail
    assert "weights' gradient RMS 1x, backward signal 1x" in diagnosis.measured()
    assert diagnosis.measured() in diagnosis.to_text() and diagnosis.measured() in diagnosis.to_markdown()
    assert Diagnosis.from_dict(json.loads(json.dumps(diagnosis.to_dict()))).measured() == diagnosis.measured()


def test_healthy_small_model_raises_no_alarm():
    layers = [tw.Dense(32, activation="relu", init="he_normal"), tw.Dense(32, activation="elu", init="he_normal"),
              tw.Dense(3, activation="softmax")]
    model, recording = train_and_record(layers, optimizer={"name": "adam", "lr": 0.01}, steps=80)
    diagnosis = diagnose(recording, model=model)
    assert diagnosis.healthy, diagnosis.to_text()
    assert diagnosis.to_text() == "no problems found"


def test_dead_relus_are_reported():
    layers = [tw.Dense(32, activation="relu", init="he_normal", bias_init={"name": "constant", "value": -10.0}),
              tw.Dense(3, activation="softmax")]
    _, recording = train_and_record(layers)
    (finding,) = diagnose(recording).findings
    assert finding.code == "dead_relus" and finding.layers == ("dense_1",) and "100%" in finding.detail
    assert "leaky_relu" in finding.advice


def test_saturated_sigmoids_are_reported():
    layers = [tw.Dense(32, activation="sigmoid", init={"name": "random_normal", "stddev": 3.0}),
              tw.Dense(3, activation="softmax")]
    _, recording = train_and_record(layers)
    codes = diagnose(recording).codes()
    assert codes == ["saturation"]


def test_exploding_gradients_and_large_updates_from_a_recording():
    rows = [{"grad_rms": 10.0 ** (4 - i), "update_ratio": 0.5 if i == 0 else 1e-3, "std": 1.0} for i in range(5)]
    diagnosis = diagnose(synthetic(rows))
    assert diagnosis.codes() == ["exploding_gradients", "large_updates"]
    assert diagnosis.findings[0].layers == ("dense_1",)
    assert diagnosis.findings[1].layers == ("dense_1",)


def test_non_finite_loss_is_an_error():
    recording = synthetic([{"grad_norm": 1.0}] * 2)
    recording.samples[-1].loss = float("nan")
    (finding,) = diagnose(recording).findings
    assert finding.severity == "error" and finding.code == "exploding_gradients"


def test_fading_signal_from_a_recording():
    rows = [{"std": 1.0 / 2 ** i, "grad_rms": 1e-3} for i in range(6)]
    (finding,) = diagnose(synthetic(rows)).findings
    assert finding.code == "fading_signal" and finding.layers == ("dense_1", "dense_5")


def test_selu_drift_is_reported_with_the_worst_layer():
    rows = [{"mean": 0.0, "std": 1.0}, {"mean": 2.0, "std": 9.0}, {"mean": 0.1, "std": 1.1}, {"mean": 0.0, "std": 1.0}]
    (finding,) = diagnose(synthetic(rows, "selu")).findings
    assert finding.code == "self_normalization.drift" and finding.layers == ("dense_2",)
    assert finding.numbers == {"worst_mean": 2.0, "worst_std": 9.0}


# ---------------------------------------------------------------------- static SELU checks


def selu_stack(*extra, init="lecun_normal", **dense):
    hidden = [tw.Dense(16, activation="selu", init=init, **dense) for _ in range(3)]
    return ModelSpec((8,), (tw.Flatten(), hidden[0], *extra, *hidden[1:], tw.Dense(3, activation="softmax")))


def codes(spec, scaling="standardize", **kwargs):
    return [f.code.split(".")[1] for f in check_self_normalization(spec, scaling=scaling, **kwargs)]


def test_selu_stack_with_standardized_inputs_passes():
    assert codes(selu_stack()) == []
    assert codes(selu_stack(tw.AlphaDropout(0.2))) == []
    assert codes(selu_stack(init={"name": "variance_scaling", "scale": 1.0})) == []


@pytest.mark.parametrize("spec, scaling, expected", [
    (selu_stack(), "unit", ["inputs"]),
    (selu_stack(tw.Dropout(0.2)), "standardize", ["dropout"]),
    (selu_stack(tw.BatchNormalization()), "standardize", ["batch_norm"]),
    (selu_stack(init="he_normal"), "standardize", ["init"]),
    (selu_stack(kernel_regularizer=l2(0.01)), "standardize", ["regularization"]),
    (selu_stack(kernel_constraint=max_norm(1.0)), "standardize", ["max_norm"]),
    (selu_stack(tw.Dense(16, activation="relu", init="lecun_normal")), "standardize", ["architecture"]),
])
def test_each_broken_condition_is_named(spec, scaling, expected):
    assert codes(spec, scaling) == expected


def test_weight_decay_is_an_l2_penalty_and_measured_inputs_decide_without_a_scaling():
    assert codes(selu_stack(), optimizer={"name": "sgd", "weight_decay": 1e-4}) == ["regularization"]
    model, recording = train_and_record([tw.Dense(16, activation="selu", init="lecun_normal"),
                                         tw.Dense(3, activation="softmax")], standardized=False)
    (finding,) = check_self_normalization(model, recording=recording)
    assert finding.code == "self_normalization.inputs" and "mean 0.5" in finding.detail
    assert check_self_normalization(tw.build_model([tw.Dense(3, activation="relu")], input_shape=(4,)),
                                    scaling="unit") == []


def test_diagnosis_serializes():
    diagnosis = Diagnosis(check_self_normalization(selu_stack(tw.Dropout(0.2)), scaling="unit"), {"name": "x"})
    again = Diagnosis.from_dict(json.loads(json.dumps(diagnosis.to_dict())))
    assert again == diagnosis
    markdown = diagnosis.to_markdown()
    assert markdown.count("\n") == 3 and "Dropout instead of AlphaDropout" in markdown and "input" in markdown


# ---------------------------------------------------------------------- config, examples, CLI

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


@pytest.mark.parametrize("name, activation, init", [("selu_100", "selu", "lecun_normal"),
                                                    ("relu_100", "relu", "he_normal")])
def test_chapter_100_layer_examples(name, activation, init):
    config = load_config(f"examples/{name}.toml")
    model = build_from_config(config, (28, 28))
    dense = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert len(dense) == 101 and [d.out_features for d in dense[:3]] == [300, 100, 100]
    assert list(model.named_children())[-1][0] == "dense_101"
    assert {spec.activation for spec in model.spec.layers[1:-1]} == {activation}
    assert {spec.init for spec in model.spec.layers[1:-1]} == {init}
    assert codes(model.spec, config.data.scaling) == []  # selu_100 meets every condition; relu_100 has no SELU


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
