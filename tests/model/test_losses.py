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
    with pytest.raises(ConfigError, match="allowed: sparse_categorical_crossentropy, binary_crossentropy"):
        get_loss("mse")


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
