"""TerminateOnNaN: stop at the first step whose loss is not finite, naming the last good checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from trainwell.callbacks.checkpoint import Checkpoint
from trainwell.callbacks.base import Callback
from trainwell.callbacks.ranks import from_rank_zero, sum_over_ranks
from trainwell.errors import TrainingDiverged

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


class TerminateOnNaN(Callback):
    """Stop at the first step whose loss is nan or infinite; fit then raises TrainingDiverged.

    The message names the step and epoch and the last good checkpoint a Checkpoint
    callback wrote. It reads the loss from the device after every step (one host sync
    per step, negligible on the CPU).

    Under torchrun every rank stops at the same step with the same error: the loss is added over
    the ranks (one all-reduce per step), so a non-finite loss on any rank stops them all, and the
    checkpoint named is rank 0's (which alone writes them).
    """

    def on_batch_end(self, trainer: "Trainer", step: int) -> None:
        loss = trainer.last_loss
        if loss is None:
            return
        loss = sum_over_ranks(loss)
        if bool(torch.isfinite(loss)):
            return
        trainer.stop_training = True
        saved = from_rank_zero([c.last_saved for c in trainer.callbacks
                                if isinstance(c, Checkpoint) and c.last_saved is not None])
        where = (f"the last good checkpoint is {saved[-1]}" if saved else
                 "no checkpoint was written (a Checkpoint callback, [callbacks.checkpoint], keeps one)")
        trainer.failure = TrainingDiverged(
            f"training diverged: the loss became {float(loss)} at step {step} (epoch {trainer.epoch}, batch "
            f"{trainer.step_in_epoch} of {trainer.steps_per_epoch}); {where}; try a lower learning rate or "
            "gradient clipping")
