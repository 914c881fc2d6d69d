"""The epoch's sums: what the steps add, the buffered accuracy tallied, a saved state restored, one process's all_reduce."""

import pytest
import torch

from trainwell.model.losses import get_loss
from trainwell.train.meter import Meter
from trainwell.train.step import StepResult


def meter(y, *, buffered=True, penalties=False):
    loss = get_loss("sparse_categorical_crossentropy")
    predicted = torch.empty(len(y), dtype=torch.long) if buffered else None
    return Meter(y, device=torch.device("cpu"), penalties=penalties, count_correct=True, correct=loss.correct,
                 predicted=predicted)


@pytest.mark.parametrize("buffered", [True, False])
def test_the_sums_of_an_epoch(buffered):
    y = torch.tensor([0, 1, 2, 1, 0])
    indices = torch.tensor([4, 3, 2, 1, 0])
    m = meter(y, buffered=buffered, penalties=True)
    m.start(indices)
    assert m.running_loss() != m.running_loss()  # nan before any step
    logits = torch.eye(3)[[0, 1, 0]] * 5  # right on samples 4 and 3, wrong on 2
    m.add(StepResult(logits, torch.tensor(0.5), torch.tensor(0.1)), y[indices[:3]], 0, 3)
    m.add(StepResult(torch.eye(3)[[1, 1]], torch.tensor(1.0), torch.tensor(0.2)), y[indices[3:]], 3, 2)
    m.end_epoch()
    results = m.results(accuracy=True)
    assert results["loss"] == pytest.approx((0.5 * 3 + 1.0 * 2) / 5)
    assert results["penalty"] == pytest.approx((0.1 * 3 + 0.2 * 2) / 5)
    assert results["data_loss"] == pytest.approx(results["loss"] - results["penalty"])
    assert results["accuracy"] == pytest.approx(3 / 5)  # 4, 3 and 1 right


def test_a_saved_state_continues_the_sums():
    y = torch.tensor([0, 1, 2, 1])
    indices = torch.arange(4)
    m = meter(y)
    m.start(indices)
    m.add(StepResult(torch.eye(3)[[0, 1]], torch.tensor(0.25), None), y[:2], 0, 2)
    state = m.state_dict()  # tallied: the buffered predictions so far are in the sums
    assert state["samples"] == 2 and int(state["sums"][2]) == 2
    resumed = meter(y)
    resumed.start(indices, state, first=2)
    resumed.add(StepResult(torch.eye(3)[[0, 1]], torch.tensor(0.75), None), y[2:], 2, 2)
    resumed.end_epoch()
    assert resumed.results(accuracy=True) == {"loss": pytest.approx(0.5), "accuracy": pytest.approx(3 / 4)}


def test_all_reduce_in_one_process_keeps_the_sums():
    y = torch.tensor([0, 1])
    m = meter(y, buffered=False)
    m.sharded = True
    m.start(torch.arange(2))
    m.add(StepResult(torch.eye(3)[[0, 0]], torch.tensor(2.0), None), y, 0, 2)
    m.end_epoch()
    assert m.samples == 2 and m.results(accuracy=True) == {"loss": 2.0, "accuracy": 0.5}
