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


@pytest.mark.parametrize("steps", [1, 5, 64, 65, 130])
def test_fresh_logits_kept_for_one_argmax_count_as_each_steps_own(steps):
    """The fused step's logits wait for one argmax of many (PENDING_STEPS): the same accuracy as one a step,
    also when a state is saved mid-way (the pending ones are read first) and for a short last batch."""
    g = torch.Generator().manual_seed(0)
    n = steps * 4 - 1  # the last batch is short
    y = torch.randint(0, 3, (n,), generator=g)
    indices = torch.randperm(n, generator=g)
    logits = torch.randn(n, 3, generator=g)
    expected = (logits.argmax(1) == y[indices]).sum().item()
    m = meter(y)
    m.start(indices)
    for start in range(0, n, 4):
        chunk = logits[start:start + 4].clone()
        m.add(StepResult(chunk, torch.tensor(1.0), None, fresh=True), y[indices[start:start + 4]], start, len(chunk))
        if start == 8:
            state = m.state_dict()
            assert int(state["sums"][2]) == (logits[:12].argmax(1) == y[indices[:12]]).sum().item()
    m.end_epoch()
    assert m.results(accuracy=True)["accuracy"] == pytest.approx(expected / n)
    assert not m.pending


def test_a_models_own_logits_are_read_at_once_even_when_it_writes_to_them_again():
    """An autograd step's logits are the model's output, which a model may write to again on its next
    forward: their predictions go into the buffer at the step (fresh ones after them still wait)."""
    y = torch.tensor([0, 1, 2, 1])
    m = meter(y)
    m.start(torch.arange(4))
    fresh = torch.eye(3)[[0, 1]]
    m.add(StepResult(fresh, torch.tensor(1.0), None, fresh=True), y[:2], 0, 2)
    reused = torch.eye(3)[[2, 1]]  # right on both
    m.add(StepResult(reused, torch.tensor(1.0), None), y[2:], 2, 2)
    reused.copy_(torch.eye(3)[[0, 0]])  # the model's next forward, into the same buffer
    m.end_epoch()
    assert m.results(accuracy=True)["accuracy"] == 1.0


def test_all_reduce_in_one_process_keeps_the_sums():
    y = torch.tensor([0, 1])
    m = meter(y, buffered=False)
    m.sharded = True
    m.start(torch.arange(2))
    m.add(StepResult(torch.eye(3)[[0, 0]], torch.tensor(2.0), None), y, 0, 2)
    m.end_epoch()
    assert m.samples == 2 and m.results(accuracy=True) == {"loss": 2.0, "accuracy": 0.5}


def auc_meter(y):
    loss = get_loss("sparse_categorical_crossentropy")
    return Meter(y, device=torch.device("cpu"), penalties=False, count_correct=True, correct=loss.correct,
                 metrics=("accuracy", "auc", "f1"), loss=loss)


def test_metrics_on_the_epochs_outputs_are_computed_once_at_its_end_and_survive_a_saved_state():
    from sklearn.metrics import f1_score, roc_auc_score

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (12,), generator=g)
    logits = torch.randn(12, 3, generator=g)
    whole = auc_meter(y)
    whole.start(torch.arange(12))
    for start in range(0, 12, 4):
        whole.add(StepResult(logits[start:start + 4], torch.tensor(1.0), None), y[start:start + 4], start, 4)
    assert whole.epoch_metrics == {}  # nothing computed per step
    whole.end_epoch()
    results = whole.results(accuracy=True)
    probabilities = torch.softmax(logits.double(), dim=1).numpy()
    assert results["auc"] == pytest.approx(roc_auc_score(y.numpy(), probabilities, multi_class="ovr"))
    assert results["f1"] == pytest.approx(f1_score(y.numpy(), logits.argmax(1).numpy(), average="macro"))
    assert list(results) == ["loss", "accuracy", "auc", "f1"]
    # killed after the first batch, resumed from the saved state: the same epoch figures
    first = auc_meter(y)
    first.start(torch.arange(12))
    first.add(StepResult(logits[:4], torch.tensor(1.0), None), y[:4], 0, 4)
    state = first.state_dict()
    resumed = auc_meter(y)
    resumed.start(torch.arange(12), state, first=4)
    for start in (4, 8):
        resumed.add(StepResult(logits[start:start + 4], torch.tensor(1.0), None), y[start:start + 4], start, 4)
    resumed.end_epoch()
    assert resumed.results(accuracy=True) == pytest.approx(results)


def test_a_meter_without_such_metrics_keeps_no_outputs():
    y = torch.tensor([0, 1, 2, 1])
    m = meter(y)
    m.start(torch.arange(4))
    m.add(StepResult(torch.eye(3)[[0, 1, 2, 0]], torch.tensor(0.5), None), y, 0, 4)
    assert m.outputs == [] and "outputs" not in m.state_dict()


def test_the_sums_of_an_autograd_steps_results_stay_out_of_its_graph():
    y = torch.tensor([0, 1, 2, 1])
    m = meter(y, buffered=False)
    m.start(torch.arange(4))
    logits = (torch.eye(3)[[0, 1, 2, 0]] * 5).requires_grad_()
    loss = logits.sum() / 100  # an undetached loss, too
    m.add(StepResult(logits * 1.0, loss, None), y, 0, 4)
    assert not m.loss_sum.requires_grad and not m.correct.requires_grad
    assert m.results(accuracy=True) == pytest.approx({"loss": loss.item(), "accuracy": 3 / 4})
