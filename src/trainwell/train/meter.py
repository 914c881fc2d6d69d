"""The epoch's sums: loss, penalty, correct predictions and samples, kept on the device.

Each step adds to them with one op apiece (no host sync); they are read once per epoch,
or when a progress display asks for the running loss. For one process's categorical fit
the predicted classes go into an epoch-long buffer and are compared with the targets
only when the sums are read (:meth:`Meter.tally`); the fused step's logits (fresh tensors
no one writes to again) are kept a few dozen steps at a time and take one ``argmax``
together (:data:`PENDING_STEPS`), the autograd step's take theirs at once. Metrics that
need the whole epoch's outputs (auc, f1, rmse...: :mod:`trainwell.metrics`) are computed once
at the epoch's end from the detached logits and targets the meter then keeps, step by step
(only when such a metric is asked for: the outputs cost memory). A saved
mid-epoch state holds the sums (:meth:`Meter.state_dict`), and a data-parallel fit adds
them over the ranks at the epoch's end (:meth:`Meter.all_reduce`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from trainwell import metrics as named_metrics
from trainwell.model.losses import Loss
from trainwell.train import distributed

#: How many fused steps' logits wait for one ``argmax`` together: an ``argmax`` into the buffer
#: per step costs about 5-10 us, most of an epoch of leaky_relu's 1719 steps' meter (measured:
#: 15-20 ms an epoch against 3-5 ms chunked); 64 batches of 32 samples and 10 classes are 80 KiB.
PENDING_STEPS = 64


class Meter:
    """The sums of one fit's epochs.

    ``correct`` counts the right predictions of a batch (the loss's own), used unless the
    fit has the ``predicted`` buffer; ``count_correct=False`` counts none (no accuracy metric).
    ``sharded``: a data-parallel fit, whose sums are added over the ranks at each epoch's end.
    ``metrics``: the metrics computed on the epoch's outputs (all but accuracy) with ``loss``'s
    meaning of them; empty: the meter keeps no outputs.
    """

    def __init__(self, y_train: torch.Tensor, *, device: torch.device, penalties: bool, count_correct: bool,
                 correct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], predicted: torch.Tensor | None = None,
                 sharded: bool = False, metrics: Sequence[str] = (), loss: Loss | None = None):
        self.y_train, self.device, self.sharded = y_train, device, sharded
        self.penalties, self.count_correct, self.correct_of = penalties, count_correct, correct
        self.predicted = predicted  # the epoch's predicted classes, when accuracy is counted that way
        self.loss_sum: torch.Tensor | None = None
        self.samples = 0
        self.metrics, self.loss = tuple(m for m in metrics if m != "accuracy"), loss
        self.outputs: list[torch.Tensor] = []  # the epoch's detached logits and targets, when metrics need them
        self.targets: list[torch.Tensor] = []
        self.epoch_metrics: dict[str, float] = {}
        self.pending: list[torch.Tensor] = []  # logits whose predictions are not in the buffer yet
        self.pending_start = self.pending_end = 0  # the epoch positions they span

    def start(self, indices: torch.Tensor, resumed: dict[str, Any] | None = None, first: int = 0) -> None:
        """Zero the sums for an epoch in the order ``indices``, or take a saved state's from sample ``first`` on."""
        self.indices = indices
        self.loss_sum = torch.zeros((), device=self.device)
        self.penalty_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.samples = 0
        self.first = self.position = first
        self.outputs, self.targets, self.epoch_metrics = [], [], {}
        self.pending = []
        if resumed is not None:
            self.load_state_dict(resumed)

    def add(self, result: Any, yb: torch.Tensor, start: int, count: int) -> None:
        """A step's loss, penalty and predictions, for its ``count`` samples from position ``start`` of the epoch."""
        logits, loss, penalty, fresh = result
        if logits.requires_grad or loss.requires_grad:  # the autograd step's: the sums must not join its graph
            with torch.no_grad():
                self._add(logits, loss, penalty, yb, start, count, fresh)
        else:  # the fused step's, made without autograd (no_grad's context costs a microsecond a step)
            self._add(logits, loss, penalty, yb, start, count, fresh)
        self.position = start + count
        self.samples += count

    def _add(self, logits: torch.Tensor, loss: torch.Tensor, penalty: torch.Tensor | None, yb: torch.Tensor,
             start: int, count: int, fresh: bool) -> None:
        self.loss_sum.add_(loss, alpha=count)
        if self.penalties:
            self.penalty_sum.add_(penalty, alpha=count)
        if self.predicted is not None:
            if fresh:
                self._keep_pending(logits, start, count)
            else:  # the model's own output, which it may write to again
                self._predict_pending()
                torch.argmax(logits, dim=-1, out=self.predicted[start:start + count])
        elif count and self.count_correct:  # 0: a rank left out of a short last batch ran one sample with weight 0
            self.correct += self.correct_of(logits, yb)
        if self.metrics and count:
            self.outputs.append(logits.detach())
            self.targets.append(yb)

    def _keep_pending(self, logits: torch.Tensor, start: int, count: int) -> None:
        """Keep a fused step's logits for a later ``argmax`` of many; take it when enough wait."""
        if self.pending and start != self.pending_end:  # not where the kept ones end (an epoch's steps always are)
            self._predict_pending()
        if not self.pending:
            self.pending_start = start
        self.pending.append(logits)
        self.pending_end = start + count
        if len(self.pending) >= PENDING_STEPS:
            self._predict_pending()

    def _predict_pending(self) -> None:
        """The predicted classes of the logits kept so far, into the buffer."""
        if not self.pending:
            return
        logits = self.pending[0] if len(self.pending) == 1 else torch.cat(self.pending)
        torch.argmax(logits, dim=-1, out=self.predicted[self.pending_start:self.pending_end])
        self.pending = []

    def tally(self) -> None:
        """Add the right predictions the buffer holds for the samples since the last tally."""
        self._predict_pending()
        if self.predicted is None or self.position <= self.first:
            return
        self.correct = self.correct + (self.predicted[self.first:self.position] == self.y_train.index_select(
            0, self.indices[self.first:self.position])).sum()
        self.first = self.position

    def state_dict(self) -> dict[str, Any]:
        """The sums so far (tallied), as a saved mid-epoch state holds them."""
        self.tally()
        state = {"samples": self.samples, "sums": [self.loss_sum, self.penalty_sum, self.correct]}
        if self.metrics:  # the outputs so far, so that a resumed epoch's metrics are the whole epoch's
            state["outputs"] = self._collected()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.samples = state["samples"]
        self.loss_sum, self.penalty_sum, self.correct = (t.to(self.device) for t in state["sums"])
        if self.metrics and state.get("outputs") is not None:
            logits, targets = state["outputs"]
            self.outputs, self.targets = [logits.to(self.device)], [targets.to(self.device)]

    def _collected(self) -> list[torch.Tensor] | None:
        """The epoch's outputs and targets so far, each one tensor (None before the first step)."""
        if not self.outputs:
            return None
        return [torch.cat(self.outputs), torch.cat(self.targets)]

    def all_reduce(self) -> None:
        """The epoch's sums over every rank's shard (one collective)."""
        totals = distributed.sum_over_ranks(self.loss_sum, self.penalty_sum, self.correct, self.samples)
        self.loss_sum.fill_(totals[0])
        self.penalty_sum.fill_(totals[1])
        self.correct.fill_(int(totals[2]))
        self.samples = int(totals[3])

    def end_epoch(self) -> None:
        """Tally, and under torchrun (``sharded``) add the sums over the ranks; the epoch's metrics
        on its outputs (every rank's, gathered under torchrun)."""
        self.tally()
        if self.sharded:
            self.all_reduce()
        if self.metrics:
            collected = self._collected()
            if self.sharded:
                collected = distributed.gather_over_ranks(collected)
            self.epoch_metrics = ({} if collected is None else
                                  named_metrics.compute(self.metrics, self.loss, *collected))

    def running_loss(self) -> float:
        """Mean training loss of the epoch so far (reads the device once)."""
        if self.loss_sum is None or self.samples == 0:
            return float("nan")
        return self.loss_sum.item() / self.samples

    def results(self, *, accuracy: bool) -> dict[str, float]:
        """The epoch's mean loss, and its penalty, data loss, accuracy and other metrics where the fit has them."""
        logs = {"loss": self.running_loss()}
        if self.penalties:  # "loss" is their sum, as Keras reports it; val_loss is the data loss alone
            logs["penalty"] = self.penalty_sum.item() / max(self.samples, 1)
            logs["data_loss"] = logs["loss"] - logs["penalty"]
        if accuracy:
            logs["accuracy"] = self.correct.item() / max(self.samples, 1)
        for metric in self.metrics:  # computed at end_epoch; nan for an epoch with no step
            logs[metric] = self.epoch_metrics.get(metric, float("nan"))
        return logs
