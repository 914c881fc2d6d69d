"""NLL, Brier score, ECE and the reliability diagram against hand computations; `trainwell predict`; MC dropout."""

import csv
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from trainwell.cli import main
from trainwell.errors import ConfigError
from trainwell.recipes.evaluate import evaluate_model_file, predict_model_file
from trainwell.model.saving import load_model_file, save_model
from trainwell.model.layers import AlphaDropout, BatchNormalization, Dense, Dropout, Flatten, build_model
from trainwell.uncertainty import (accuracy, brier_score, calibration_bins, calibration_report, entropy,
                                   expected_calibration_error, mc_dropout_mode, mc_predict, negative_log_likelihood,
                                   reliability_diagram)


def random_predictions(n=500, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, classes))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p, rng.integers(0, classes, size=n)


def test_nll_and_brier_against_hand_computations():
    p, y = random_predictions()
    nll = np.mean([-math.log(p[i, y[i]]) for i in range(len(y))])
    brier = np.mean([sum((p[i, k] - (k == y[i])) ** 2 for k in range(p.shape[1])) for i in range(len(y))])
    assert negative_log_likelihood(p, y) == pytest.approx(nll, rel=1e-12)
    assert brier_score(p, y) == pytest.approx(brier, rel=1e-12)
    assert accuracy(p, y) == pytest.approx(np.mean(p.argmax(1) == y))
    # a confident mistake costs -log(1e-7), not infinity
    assert negative_log_likelihood(torch.tensor([[1.0, 0.0]]), torch.tensor([1])) == pytest.approx(-math.log(1e-7))


def test_ece_against_a_loop_over_15_bins():
    p, y = random_predictions(n=1000)
    confidence, predicted = p.max(1), p.argmax(1)
    ece = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs((predicted[inside] == y[inside]).mean() - confidence[inside].mean())
    assert expected_calibration_error(p, y) == pytest.approx(ece, rel=1e-9)
    table = calibration_bins(p, y)
    assert len(table["count"]) == 15 and table["count"].sum() == 1000


def test_ece_bins_are_right_closed_and_a_calibrated_model_scores_zero():
    # a confidence exactly on the edge 9/15 = 0.6 belongs to the bin (8/15, 9/15], index 8
    edge = calibration_bins(torch.tensor([[0.6, 0.4]]), torch.tensor([0]))["edges"][9]
    table = calibration_bins(torch.tensor([[edge, 1 - edge]], dtype=torch.float64), torch.tensor([0]))
    assert table["count"][8] == 1
    assert calibration_bins(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))["count"][14] == 1
    p = torch.tensor([[0.5, 0.5]] * 4)   # 50% confident, right half of the time
    assert expected_calibration_error(p, torch.tensor([0, 1, 0, 1])) == 0.0
    assert calibration_report(p, torch.tensor([0, 0, 0, 0]))["ece"] == pytest.approx(0.5)


@pytest.mark.parametrize("p, y, message", [
    (np.ones((3, 2)) / 2, np.zeros(2), "shapes (3, 2) and (2,)"),
    (np.ones((2, 2)) / 2, np.array([0, 2]), "labels must be classes 0..1, got 0..2"),
    (np.ones((2, 2)) / 2, np.array(["cat", "dog"]), "labels: holds strings ('cat', 'dog'...)"),
])
def test_bad_inputs(p, y, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        brier_score(p, y)


def test_reliability_diagram_writes_a_png(tmp_path):
    p, y = random_predictions()
    path = reliability_diagram({"deterministic": p, "MC dropout": p ** 0.5 / (p ** 0.5).sum(1, keepdims=True)}, y,
                               tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match=r"reliability diagram: '.*r.xyz' must end in one of .*\.png.*\.svg"):
        reliability_diagram({"x": p}, y, tmp_path / "r.xyz")
    assert reliability_diagram({"x": p}, y, tmp_path / "r.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert reliability_diagram({"x": p}, y, tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")


DIGITS = """
name = "mc"
seed = 0
[data]
name = "digits"
validation_size = 300
scaling = "standardize"
[model]
layers = [{type = "flatten"}, {type = "dense", units = 64, activation = "selu", init = "lecun_normal"},
          {type = "alpha_dropout", rate = 0.1}, {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "nadam"
[train]
epochs = 4
"""


def test_predict_cli_with_mc_dropout_and_csv(tmp_path, capsys):
    config = tmp_path / "mc.toml"
    config.write_text(DIGITS)
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.safetensors")]) == 0
    evaluated = dict(line.split(": ") for line in capsys.readouterr().out.splitlines())
    model = str(out / "model.safetensors")
    assert main(["predict", model, "--mc", "20", "--csv", str(tmp_path / "p.csv"),
                 "--reliability", str(tmp_path / "r.png")]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # the model has dropout: no warning
    lines = captured.out.splitlines()
    assert lines[0] == "samples: 297"
    assert lines[1].split() == ["deterministic", "mc_dropout(20)"]
    table = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[2:6]}
    assert list(table) == ["accuracy", "nll", "brier", "ece"]
    assert table["accuracy"][0] == pytest.approx(float(evaluated["accuracy"]), abs=1e-4)
    assert abs(table["accuracy"][1] - table["accuracy"][0]) < 0.05
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 297
    assert list(rows[0]) == ["index", "label", "predicted", *(f"p{k}" for k in range(10)),
                             *(f"std{k}" for k in range(10)), "entropy"]
    assert sum(float(rows[0][f"p{k}"]) for k in range(10)) == pytest.approx(1.0, abs=1e-4)
    assert (tmp_path / "r.png").exists()
    # without --mc: one column, no std
    assert main(["predict", model, "--split", "validation", "--csv", str(tmp_path / "d.csv")]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["deterministic"]
    assert "std0" not in open(tmp_path / "d.csv").readline()


def test_predict_cli_errors_name_the_option(tmp_path, capsys):
    config = tmp_path / "mc.toml"
    config.write_text(DIGITS.replace("epochs = 4", "epochs = 1"))
    assert main(["train", str(config), "-o", str(tmp_path / "out"), "-q"]) == 0
    model = str(tmp_path / "out" / "model.safetensors")
    capsys.readouterr()
    assert main(["predict", model, "--mc", "-1"]) == 2
    assert "error: --mc: must be a number of samples from 0 to 10,000" in capsys.readouterr().err
    assert main(["predict", model, "--split", "dev"]) == 2
    assert "error: --split: 'dev' is not a split; allowed: test, validation, train" in capsys.readouterr().err


@pytest.fixture
def plain_model(tmp_path, capsys):
    """A digits model without dropout, trained for one epoch."""
    config = tmp_path / "plain.toml"
    config.write_text(DIGITS.replace('{type = "alpha_dropout", rate = 0.1}, ', "").replace("epochs = 4", "epochs = 1"))
    assert main(["train", str(config), "-o", str(tmp_path / "plain"), "-q"]) == 0
    capsys.readouterr()
    return tmp_path / "plain" / "model.safetensors"


NO_DROPOUT = ("MC dropout (5 samples) needs Dropout or AlphaDropout layers, and this model has none: "
              "its MC predictions equal the deterministic ones")


def test_mc_dropout_on_a_model_without_dropout_warns(plain_model, capsys):
    assert main(["predict", str(plain_model), "--mc", "5"]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"warning: {NO_DROPOUT}\n"
    accuracy_row = next(line for line in captured.out.splitlines() if line.startswith("accuracy"))
    assert accuracy_row.split()[1] == accuracy_row.split()[2]
    with pytest.warns(UserWarning, match=re.escape(NO_DROPOUT)):
        predict_model_file(plain_model, mc=5)
    assert main(["predict", str(plain_model)]) == 0 and capsys.readouterr().err == ""


@pytest.mark.parametrize("option, name, message", [
    ("--reliability", "r.xyz", "error: --reliability: '{path}' must end in one of .png, .jpg, "),
    ("--reliability", "folder", "error: --reliability: '{path}' is a folder"),
    ("--csv", "folder", "error: --csv: '{path}' is a folder"),
    ("--csv", "a_file/p.csv", "error: --csv: cannot write '{path}': '{parent}' is a file, not a folder"),
])
def test_output_paths_are_checked_before_any_prediction(plain_model, tmp_path, capsys, monkeypatch, option, name,
                                                        message):
    import trainwell.recipes.evaluate

    def no_work(*args, **kwargs):
        raise AssertionError("predicted before checking the output paths")

    monkeypatch.setattr(trainwell.recipes.evaluate, "predict_model_file", no_work)
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("")
    path = tmp_path / name
    assert main(["predict", str(plain_model), option, str(path)]) == 2
    assert capsys.readouterr().err.startswith(message.format(path=path, parent=path.parent))


def test_predict_writes_the_diagram_in_the_format_its_name_says(plain_model, tmp_path):
    assert main(["predict", str(plain_model), "--reliability", str(tmp_path / "new" / "r.jpg")]) == 0
    assert (tmp_path / "new" / "r.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_a_model_evaluated_on_other_data_than_it_was_trained_on_warns(plain_model, tmp_path, capsys):
    saved = load_model_file(plain_model)
    saved.info["data"]["dataset"] = "mnist"  # as if trained on 8x8 MNIST images
    relabelled = save_model(saved.model, tmp_path / "mnist.safetensors", info=saved.info, extra=saved.extra)
    other = ("the model was trained on MNIST ('mnist') and is evaluated on scikit-learn digits ('digits'), "
             "data it was not trained on")
    for command in ("evaluate", "predict"):
        assert main([command, str(relabelled), "--data", "digits"]) == 0
        assert capsys.readouterr().err == f"warning: {other}\n"
    with pytest.warns(UserWarning, match=re.escape(other)):
        evaluate_model_file(relabelled, data="digits")
    assert main(["evaluate", str(plain_model), "--data", "digits"]) == 0 and capsys.readouterr().err == ""


# ------------------------------------------------------------ MC dropout

def bn_dropout_model(rate=0.3):
    torch.manual_seed(0)
    model = build_model([Flatten(), Dense(20, activation="relu"), BatchNormalization(), Dropout(rate),
                         Dense(10, activation="relu"), AlphaDropout(rate), Dense(3, activation="softmax")],
                        input_shape=(2, 2))
    model.train()
    with torch.no_grad():  # give BN non-trivial moving statistics
        for _ in range(3):
            model(torch.randn(64, 2, 2) * 3 + 1)
    model.eval()
    return model


def test_mc_predict_leaves_batch_norm_statistics_and_modes_untouched():
    model = bn_dropout_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    result = mc_predict(model, torch.randn(50, 2, 2), samples=30, batch_size=128, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert float(result.std.max()) > 0  # dropout did sample
    assert torch.allclose(result.mean.sum(dim=1), torch.ones(50), atol=1e-5)


def test_only_dropout_layers_sample():
    model = bn_dropout_model()
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, m.training))
             for name, m in model.named_children()]
    mc_predict(model, torch.randn(4, 2, 2), samples=3)
    for hook in hooks:
        hook.remove()
    assert seen == {"flatten": False, "dense_1": False, "batch_normalization_1": False, "dropout_1": True,
                    "dense_2": False, "alpha_dropout_1": True, "dense_3": False}
    with mc_dropout_mode(model.train()):
        assert not model[2].training and model[3].training
    assert model[2].training  # restored


def test_with_rate_zero_the_mc_mean_is_the_deterministic_prediction():
    model = bn_dropout_model(rate=0.0)
    x = torch.randn(300, 2, 2)
    with torch.no_grad():
        deterministic = model.eval()(x)
    result = mc_predict(model, x, samples=20, batch_size=1000)  # several chunks of 50 instances
    assert torch.allclose(result.mean, deterministic, atol=1e-6, rtol=0)
    assert float(result.std.max()) < 1e-6
    assert torch.allclose(result.entropy, entropy(deterministic), atol=1e-5)


def test_mc_predict_is_repeatable_with_a_seed_and_averages_the_samples():
    model = bn_dropout_model()
    x = torch.randn(10, 2, 2)
    first, second = mc_predict(model, x, samples=50, seed=3), mc_predict(model, x, samples=50, seed=3)
    assert torch.equal(first.mean, second.mean) and torch.equal(first.std, second.std)
    state = torch.random.get_rng_state()
    mc_predict(model, x, samples=5, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # a seed does not disturb the global generator
    # the same thing by hand, one pass per sample
    many = mc_predict(model, x[:4], samples=800, batch_size=4000, seed=3)
    torch.manual_seed(3)
    with torch.no_grad(), mc_dropout_mode(model):
        by_hand = torch.stack([model(x[:4]) for _ in range(800)])
    # different masks, same distribution: the means agree to a few standard errors
    assert torch.allclose(by_hand.mean(0), many.mean, atol=0.05)
    assert torch.allclose(by_hand.std(0, correction=0), many.std, atol=0.05)


def test_mc_predict_applies_softmax_to_logit_models_and_checks_samples():
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.0))
    result = mc_predict(model, np.ones((2, 4), dtype=np.float32), samples=2)
    assert torch.allclose(result.mean, torch.softmax(model(torch.ones(2, 4)), dim=1).detach(), atol=1e-6)
    with pytest.raises(ConfigError, match="samples: must be an integer from 1 to 10,000, got 0"):
        mc_predict(model, torch.ones(2, 4), samples=0)


def test_mc_predict_takes_float64_inputs_and_names_bad_ones():
    """``x / 255.0`` is float64: cast to the model's dtype at the edge, as the Trainer does."""
    model = bn_dropout_model()
    x = torch.randn(20, 2, 2, dtype=torch.float64)
    result = mc_predict(model, x, samples=5, seed=0)
    assert torch.equal(result.mean, mc_predict(model, x.float(), samples=5, seed=0).mean)
    x[3, 0, 0] = float("nan")
    with pytest.raises(ConfigError, match="x: 1 value is NaN or infinite"):
        mc_predict(model, x, samples=5)


@pytest.mark.parametrize("x,message", [
    (np.zeros((5, 7)), r"x: samples of shape \(7,\) \(the array's shape is \(5, 7\)\); the model expects \(4,\)"),
    (np.zeros((5, 2, 4)), r"x: samples of shape \(2, 4\)"),
    (np.zeros((0, 4)), r"x: no samples"),
])
def test_mc_predict_names_inputs_that_do_not_fit(x, message):
    import trainwell as tw

    model = tw.build_model([tw.Dropout(0.5), tw.Dense(3, activation="softmax")], input_shape=(4,), seed=0)
    with pytest.raises(tw.ArrayError, match=message):
        tw.mc_predict(model, x, samples=3)


def test_mc_predict_reads_a_dataset_or_a_dataloader_a_batch_at_a_time():
    """Items (x, y) or x alone; a Dataset gives the arrays' result exactly, a DataLoader's batches are its own."""
    from torch.utils.data import DataLoader, TensorDataset

    from trainwell.errors import ArrayError

    torch.manual_seed(0)
    model = build_model([Dense(16, activation="relu"), Dropout(0.3), Dense(3, activation="softmax")], input_shape=(4,))
    x, y = torch.randn(300, 4), torch.randint(0, 3, (300,))
    expected = mc_predict(model, x, samples=8, seed=0)
    for data in (TensorDataset(x), TensorDataset(x, y)):
        result = mc_predict(model, data, samples=8, seed=0)
        assert torch.equal(result.mean, expected.mean) and torch.equal(result.entropy, expected.entropy)
    batched = mc_predict(model, DataLoader(TensorDataset(x), batch_size=50), samples=8, seed=0)
    assert batched.mean.shape == (300, 3) and not torch.equal(batched.mean, expected.mean)  # other masks
    assert model.training  # the model's mode is restored
    with pytest.raises(ArrayError, match=r"x batch 1: samples of shape \(3,\)"):
        mc_predict(model, TensorDataset(x[:, :3]), samples=2)


def test_mc_dropout_samples_a_cnns_spatial_dropout():
    from helpers import digit_images, small_cnn
    from trainwell.model.conv_specs import SpatialDropout2D
    from trainwell.uncertainty import DROPOUT_TYPES, mc_predict

    x, _ = digit_images(64)
    model = small_cnn(SpatialDropout2D(0.3), seed=0)
    assert isinstance(model.spatial_dropout2d_1, DROPOUT_TYPES)
    model.eval()
    deterministic = model(x)
    sampled = mc_predict(model, x, samples=20, seed=0)
    assert sampled.mean.shape == (64, 10) and torch.allclose(sampled.mean.sum(1), torch.ones(64), atol=1e-5)
    assert sampled.std.max() > 0.01  # the channels' masks differ from sample to sample
    assert not torch.allclose(sampled.mean, deterministic, atol=1e-4)
    assert torch.equal(mc_predict(model, x, samples=20, seed=0).mean, sampled.mean)
    assert not model.training and not model.spatial_dropout2d_1.training  # modes restored
    without = small_cnn(seed=0).eval()
    assert torch.allclose(mc_predict(without, x, samples=5, seed=0).std, torch.zeros(64, 10))


def test_predict_cli_with_mc_dropout_on_a_cnn(tmp_path, capsys):
    from helpers import DIGITS_CNN

    config = tmp_path / "cnn.toml"
    config.write_text(DIGITS_CNN)
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["predict", str(out / "model.safetensors"), "--mc", "10", "--csv", str(tmp_path / "p.csv")]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # spatial dropout counts as dropout: no warning
    lines = captured.out.splitlines()
    assert lines[0] == "samples: 297" and lines[1].split() == ["deterministic", "mc_dropout(10)"]
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 297 and max(float(row["std0"]) for row in rows) > 0
