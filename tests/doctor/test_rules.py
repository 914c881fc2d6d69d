"""The doctor's measured rules on recordings: vanishing and exploding gradients, fading signal, dead and
saturated units, large updates, SELU drift."""

import json

import trainwell as tw
from helpers import train_and_record
from trainwell.doctor.findings import Diagnosis
from trainwell.doctor.record import LayerInfo, Recording, Sample
from trainwell.doctor.rules import diagnose


def synthetic(stat_rows, activation="relu"):
    """A recording whose every sample has the given per-layer statistics."""
    names = [f"dense_{i + 1}" for i in range(len(stat_rows))]
    layers = [LayerInfo(name, activation, 100) for name in names]
    samples = [Sample(step=10 * k, epoch=1, layers={n: dict(row) for n, row in zip(names, stat_rows)})
               for k in range(5)]
    return Recording(every=10, layers=layers, samples=samples)


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
