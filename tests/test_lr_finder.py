"""The LR finder: the sweep, early stop on divergence, exact restoration, the suggestion and the plot."""

import json
import math

import numpy as np
import helpers
import pytest
import torch
from torch import nn

from trainwell.errors import ConfigError
from trainwell.model.layers import Dense
from trainwell.lr_finder import find_lr, suggest_lr, sweep

PNG = b"\x89PNG\r\n\x1a\n"


def small_model():
    return helpers.small_model(Dense(32, activation="relu", init="he_normal"))


def test_sweep_is_exponential_from_min_to_max():
    rates = sweep(min_lr=1e-5, max_lr=10, steps=430)
    assert rates(0) == pytest.approx(1e-5) and rates(429) == pytest.approx(10)
    ratios = [rates(t + 1) / rates(t) for t in range(429)]
    assert max(ratios) == pytest.approx(min(ratios)) == pytest.approx(1e6 ** (1 / 429))


def test_loss_falls_then_the_sweep_stops_on_divergence(blobs):
    x, y = blobs
    result = find_lr(small_model(), x, y, min_lr=1e-4, max_lr=1e4, steps=200, batch_size=32, seed=0)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) < 200
    assert result.stopped_early
    assert result.lrs[0] == pytest.approx(1e-4)
    assert result.lrs == pytest.approx([sweep(min_lr=1e-4, max_lr=1e4, steps=200)(t) for t in range(len(result.lrs))])
    finite = [v for v in result.smoothed if math.isfinite(v)]
    assert min(finite) < 0.7 * result.smoothed[0]  # it learned before diverging
    assert not math.isfinite(result.smoothed[-1]) or result.smoothed[-1] > 4 * min(finite)
    assert result.suggestion == pytest.approx(result.min_loss_lr / 10)
    assert 1e-4 <= result.suggestion <= 1e4


def test_nan_loss_stops_the_sweep(blobs):
    x, y = blobs
    result = find_lr(small_model(), x * 1e3, y, min_lr=1.0, max_lr=1e30, steps=100, batch_size=32, seed=0)
    assert result.stopped_early and len(result.lrs) < 100


def test_weights_optimizer_state_and_rng_are_restored_exactly(blobs):
    x, y = blobs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(3):  # give the optimizer some state (momentum buffers) to restore
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x[:32])), torch.from_numpy(y[:32]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    buffers = {i: s["momentum_buffer"].clone() for i, s in state["state"].items()}
    groups = json.dumps(state["param_groups"])
    model.eval()
    rng = torch.get_rng_state()

    result = find_lr(model, x, y, optimizer=optimizer, min_lr=1e-3, max_lr=1e3, steps=60, batch_size=32, seed=1)
    assert len(result.lrs) > 5

    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    after = optimizer.state_dict()
    assert all(torch.equal(buffers[i], s["momentum_buffer"]) for i, s in after["state"].items())
    assert json.dumps(after["param_groups"]) == groups and optimizer.param_groups[0]["lr"] == 0.01
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng)


def test_suggestion_rule():
    assert suggest_lr([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.0, 0.5, float("nan")]) == (pytest.approx(1e-2), 0.1)
    assert suggest_lr([1e-3, 1e-2], [1.0, 2.0]) == (1e-3, 1e-3)  # never below the sweep's start
    with pytest.raises(ConfigError, match="not finite at any step"):
        suggest_lr([1e-3], [float("nan")])


@pytest.mark.parametrize("options, message", [
    ({"min_lr": -1e-5}, "min_lr: must be a positive number, got -1e-05"),
    ({"min_lr": 1.0, "max_lr": 0.1}, r"max_lr: must be above min_lr \(1.0\), got 0.1"),
    ({"steps": 1}, "steps: must be an integer of at least 2, got 1"),
    ({"stop_factor": 0.5}, "stop_factor: must be a number above 1"),
    ({"smoothing": 1.0}, r"smoothing: must be a number in \[0, 1\)"),
    ({"batch_size": 0}, "batch_size: must be a positive integer"),
])
def test_bad_arguments_name_the_argument(blobs, options, message):
    x, y = blobs
    with pytest.raises(ConfigError, match=message):
        find_lr(small_model(), x, y, **options)


def test_plot_is_written(blobs, tmp_path):
    x, y = blobs
    result = find_lr(small_model(), x, y, min_lr=1e-4, max_lr=1e3, steps=80, batch_size=32, seed=0)
    path = result.plot(tmp_path / "sub" / "finder.png")
    assert path.read_bytes()[:8] == PNG and not list(tmp_path.glob("sub/.*tmp"))


def test_float64_inputs_are_swept_as_float32(blobs):
    x, y = blobs
    results = [find_lr(small_model(), inputs, y, steps=10, batch_size=32, seed=0) for inputs in (x, x.astype(np.float64))]
    assert results[1].losses == pytest.approx(results[0].losses, rel=1e-5)


def test_a_small_dataset_gets_a_sweep_of_at_least_a_hundred_rates_by_default():
    import trainwell as tw
    from trainwell.lr_finder import MIN_DEFAULT_STEPS

    x = torch.randn(150, 4, generator=torch.Generator().manual_seed(0))   # iris-sized: 2 batches of 128
    y = x[:, :3].argmax(dim=1)                                             # learnable labels
    model = tw.build_model([tw.Dense(16, activation="tanh"), tw.Dense(3, activation="softmax")], input_shape=(4,), seed=0)
    result = tw.find_lr(model, x, y, optimizer="sgd", seed=0)
    assert MIN_DEFAULT_STEPS == 100
    assert len(result.lrs) >= 50 and result.lrs[1] > result.lrs[0]
    assert result.suggestion > 1e-5 * 10


def test_the_sweep_draws_its_batches_from_a_dataset_or_a_dataloader(blobs):
    """A Dataset is batched as the arrays are (the same sweep); a DataLoader's own batches are swept."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = blobs
    dataset = TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    on_arrays = find_lr(small_model(), x, y, steps=20, batch_size=32, seed=0)
    on_dataset = find_lr(small_model(), dataset, steps=20, batch_size=32, seed=0)
    assert on_dataset.losses == on_arrays.losses
    on_loader = find_lr(small_model(), DataLoader(dataset, batch_size=16, shuffle=True), steps=20, seed=0)
    assert len(on_loader.losses) == 20 and on_loader.losses != on_arrays.losses


def test_sweeps_a_cnn_and_restores_it():
    from helpers import digit_images, small_cnn

    x, y = digit_images(300)
    model = small_cnn()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, x, y, min_lr=1e-4, max_lr=100.0, steps=50, batch_size=32, seed=0)
    assert 5 < len(result.lrs) <= 50 and result.lrs[0] == pytest.approx(1e-4)
    assert 1e-4 < result.suggestion < 100.0
    assert min(result.smoothed) < result.smoothed[0]  # the loss falls somewhere in the sweep
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # BN statistics included
