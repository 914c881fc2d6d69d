import numpy as np
import pytest
import torch
from torch import nn

from trainwell.errors import ArrayError, ConfigError
from trainwell.model.layers import Dense, build_model
from trainwell.model.losses import get_loss, logits_model


def test_softmax_model_loss_is_computed_from_logits():
    model = build_model([Dense(3, activation="softmax")], input_shape=(2,))
    with torch.no_grad():
        model.dense_1.weight.copy_(torch.tensor([[200.0, 0], [0, 0], [-200.0, 0]]))
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([2])
    loss = get_loss("sparse_categorical_crossentropy")
    logits = logits_model(model, loss)(x)
    value = loss(logits, y)
    # the probability of class 2 underflows to 0, so log(prob) would be inf; logits give the exact 400
    assert torch.isfinite(value) and value.item() == pytest.approx(400.0, rel=1e-5)
    assert torch.allclose(model(x), torch.softmax(logits, -1))


def test_the_logits_of_a_stack_that_uses_one_module_twice_run_it_twice():
    """One ReLU instance at two places of an nn.Sequential ending in a softmax: the logits the loss trains on
    come from the same network as the model's own forward (model.children() yields that ReLU once)."""
    torch.manual_seed(0)
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 5), relu, nn.Linear(5, 5), relu, nn.Linear(5, 3), nn.Softmax(dim=1))
    x = torch.randn(16, 4) * 3
    logits = logits_model(model, get_loss("sparse_categorical_crossentropy"))(x)
    torch.testing.assert_close(torch.softmax(logits, -1), model(x))


def test_plain_module_is_taken_as_logits_and_nn_softmax_tail_is_stripped():
    loss = get_loss("sparse_categorical_crossentropy")
    plain = nn.Linear(2, 3)
    assert logits_model(plain, loss) is plain
    with_tail = nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=-1))
    x = torch.randn(4, 2)
    assert torch.allclose(logits_model(with_tail, loss)(x), with_tail[0](x))


def test_binary_loss_with_sigmoid_output():
    model = build_model([Dense(1, activation="sigmoid")], input_shape=(2,))
    loss = get_loss("binary_crossentropy")
    x = torch.randn(5, 2)
    y = loss.prepare_targets(torch.tensor([0, 1, 1, 0, 1]))
    logits = logits_model(model, loss)(x)
    expected = nn.functional.binary_cross_entropy(model(x), y)
    assert loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.correct(logits, y).item() == int(((model(x) > 0.5).float() == y).sum())


def test_mismatched_output_and_loss_and_unknown_loss():
    model = build_model([Dense(1, activation="sigmoid")], input_shape=(2,))
    with pytest.raises(ConfigError, match="binary_crossentropy"):
        logits_model(model, get_loss("sparse_categorical_crossentropy"))
    with pytest.raises(ConfigError, match="allowed: sparse_categorical_crossentropy, binary_crossentropy, "
                                          "categorical_crossentropy, mse, mae, huber"):
        get_loss("mean_squared_error")


def test_class_index_targets_are_checked_against_the_outputs():
    loss = get_loss("sparse_categorical_crossentropy")
    targets = loss.prepare_targets(np.array([[0.0], [2.0], [1.0]]), "y")  # a column of whole floats
    assert targets.dtype == torch.long and targets.tolist() == [0, 2, 1]
    loss.check_targets(targets, (3,))
    with pytest.raises(ArrayError, match=r"y: label 2 is out of range: the model has 2 output units, so labels must be 0\.\.1"):
        loss.check_targets(targets, (2,))
    with pytest.raises(ArrayError, match=r"outputs of shape \(n, 8, 3\).*Flatten"):
        loss.check_targets(targets, (8, 3))
    with pytest.raises(ArrayError, match=r"labels y: labels must be class indices 0, 1, \.\.\.; got 1\.5 \(sample 1\)"):
        loss.prepare_targets(torch.tensor([0.0, 1.5]), "labels y")


def test_binary_targets_are_checked_against_the_outputs():
    loss = get_loss("binary_crossentropy")
    targets = loss.prepare_targets([0, 1, 1], "y")
    assert targets.shape == (3, 1) and targets.dtype == torch.float32
    loss.check_targets(targets, (1,))
    with pytest.raises(ArrayError, match=r"y: labels of shape \(3, 1\), but the model gives outputs of shape \(n, 2\)"):
        loss.check_targets(targets, (2,))
    with pytest.raises(ArrayError, match="y: label -1 is not a binary_crossentropy label"):
        loss.check_targets(loss.prepare_targets([0, -1], "y"), (1,))


# ------------------------------------------------------------------ regression losses, options, weights
def test_regression_losses_are_the_formulas():
    outputs, targets = torch.tensor([[0.5], [2.0], [-1.0], [4.0]]), torch.tensor([0.0, 0.0, 0.0, 1.0])
    error = outputs.reshape(-1) - targets
    cases = {"mse": (error ** 2).mean(), "mae": error.abs().mean()}
    # Keras' Huber: 0.5 x^2 where |x| <= delta, delta (|x| - 0.5 delta) beyond
    for delta in (1.0, 2.0):
        huber = torch.where(error.abs() <= delta, 0.5 * error ** 2, delta * (error.abs() - 0.5 * delta)).mean()
        cases[f"huber_{delta}"] = huber
    for name, expected in cases.items():
        loss = get_loss("huber", delta=float(name.split("_")[1])) if name.startswith("huber") else get_loss(name)
        y = loss.prepare_targets(targets.numpy(), "y")
        assert y.shape == (4, 1) and loss.regression
        assert loss(outputs, y).item() == pytest.approx(expected.item(), rel=1e-6), name
    assert get_loss("huber", delta=1.0) is get_loss("huber") and get_loss("huber", delta=2.0).title == "huber (delta=2)"


def test_a_weighted_loss_is_the_mean_of_weight_times_each_samples_loss():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])
    y = torch.tensor([0, 2, 2])
    weights = torch.tensor([1.0, 3.0, 0.5])
    per_sample = -torch.log_softmax(logits, dim=1)[torch.arange(3), y]
    expected = (weights * per_sample).sum() / 3  # Keras' sum_over_batch_size: divided by the batch's size
    loss = get_loss("sparse_categorical_crossentropy")
    assert loss(logits, y, weights).item() == pytest.approx(expected.item(), rel=1e-6)
    # several outputs: sample i's loss is the mean over its outputs, then weighted
    mse = get_loss("mse")
    outputs, targets = torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert mse(outputs, targets, torch.tensor([2.0, 1.0])).item() == pytest.approx((2 * 5.0 + 1 * 1.0) / 2)
    assert loss(logits, y, torch.ones(3)).item() == pytest.approx(loss(logits, y).item(), rel=1e-6)


def test_label_smoothing_is_keras_formula():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    one_hot = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    ls, k = 0.2, 3
    smoothed = one_hot * (1 - ls) + ls / k
    expected = -(smoothed * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    categorical = get_loss("categorical_crossentropy", label_smoothing=ls)
    assert categorical(logits, one_hot).item() == pytest.approx(expected.item(), rel=1e-6)
    sparse = get_loss("sparse_categorical_crossentropy", label_smoothing=ls)  # PyTorch's: the categorical meaning
    assert sparse(logits, torch.tensor([1, 0])).item() == pytest.approx(expected.item(), rel=1e-6)
    assert sparse is not get_loss("sparse_categorical_crossentropy")
    assert get_loss("sparse_categorical_crossentropy", label_smoothing=0.0) is get_loss("sparse_categorical_crossentropy")
    # binary: y * (1 - ls) + 0.5 * ls
    z, y = torch.tensor([[0.3], [-2.0], [1.5]]), torch.tensor([[1.0], [0.0], [1.0]])
    target = y * (1 - ls) + 0.5 * ls
    p = torch.sigmoid(z)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    assert get_loss("binary_crossentropy", label_smoothing=ls)(z, y).item() == pytest.approx(bce.item(), rel=1e-5)
    # without smoothing categorical on one-hot rows is the sparse loss on their indices
    plain = get_loss("categorical_crossentropy")
    assert plain(logits, one_hot).item() == pytest.approx(get_loss("sparse_categorical_crossentropy")(
        logits, torch.tensor([1, 0])).item(), rel=1e-6)


@pytest.mark.parametrize("name, options, message", [
    ("mse", {"label_smoothing": 0.1}, "label_smoothing: the loss mse has no such option; it applies to "
                                      "sparse_categorical_crossentropy, binary_crossentropy, categorical_crossentropy"),
    ("sparse_categorical_crossentropy", {"delta": 2.0}, "delta: the loss sparse_categorical_crossentropy has no such option; it applies to huber"),
    ("huber", {"delta": 0}, "delta: huber's delta must be a positive number"),
    ("categorical_crossentropy", {"label_smoothing": 1.0}, r"label_smoothing: must be in \[0, 1\)"),
    ("huber", {"alpha": 1.0}, "unknown loss option 'alpha'"),
])
def test_bad_loss_options_are_refused(name, options, message):
    with pytest.raises(ConfigError, match=message):
        get_loss(name, **options)


def test_a_regression_loss_refuses_a_softmax_or_sigmoid_ending_and_takes_a_linear_one():
    for ending in ("softmax", "sigmoid"):
        model = build_model([Dense(1, activation=ending)], input_shape=(2,))
        with pytest.raises(ConfigError, match=f"the model ends in {ending} but mse is a regression loss: its model "
                                              "ends in a linear unit"):
            logits_model(model, get_loss("mse"))
    linear = build_model([Dense(1)], input_shape=(2,))
    assert logits_model(linear, get_loss("mse")) is linear


def test_categorical_and_regression_targets_are_checked_against_the_outputs():
    categorical = get_loss("categorical_crossentropy")
    rows = categorical.prepare_targets(np.eye(3)[[0, 2]], "y")
    categorical.check_targets(rows, (3,))
    assert categorical.true_classes(rows).tolist() == [0, 2]
    with pytest.raises(ArrayError, match=r"y: labels of shape \(2, 3\), but the model gives outputs of shape \(n, 4\)"):
        categorical.check_targets(rows, (4,))
    with pytest.raises(ArrayError, match=r"one-hot rows .* for class indices use sparse_categorical_crossentropy"):
        categorical.prepare_targets([0, 2], "y")
    mse = get_loss("mse")
    with pytest.raises(ArrayError, match=r"y: targets of shape \(3, 1\), but the model gives outputs of shape \(n, 2\)"):
        mse.check_targets(mse.prepare_targets([0.5, 1.0, 2.0], "y"), (2,))
    with pytest.raises(ArrayError, match="y: 1 value is NaN or infinite .*targets must be finite numbers"):
        mse.prepare_targets([0.5, float("nan")], "y")
