"""TensorBoard: a fit's figures as TensorBoard event files (Keras' callback, through PyTorch's SummaryWriter).

Laid out as Keras lays them out, so ``tensorboard --logdir LOG_DIR`` draws training and
validation on one chart: ``LOG_DIR/train`` holds ``epoch_loss``, ``epoch_accuracy`` (every
training figure of the History), ``epoch_learning_rate`` and, with ``update_freq = N``,
``batch_loss`` every N steps; ``LOG_DIR/validation`` holds the ``val_*`` figures under the same
names (``epoch_loss``...). With ``histogram_freq = N``, every N epochs a histogram of each
parameter (``dense_1.weight/histogram``) goes into ``train``. Under torchrun only rank 0 writes.
A resumed fit hides what its killed run logged after the epoch it resumes from
(SummaryWriter's ``purge_step``), so no epoch is drawn twice.

SummaryWriter needs the ``tensorboard`` package, an optional dependency
(``pip install 'trainwell[tensorboard]'``): the callback says so when it is made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.callbacks.base import Callback
from trainwell.callbacks.loggers import on_rank_zero
from trainwell.checks import check_integer, is_integer
from trainwell.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer

NOT_SCALARS = ("epoch",)
RENAMED = {"lr": "learning_rate"}  # Keras' name of the rate's chart


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``; a ConfigError saying what to install when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("the TensorBoard callback needs the tensorboard package: "
                          "pip install 'trainwell[tensorboard]' (or pip install tensorboard)") from None
    return SummaryWriter


class TensorBoard(Callback):
    """Keras' ``TensorBoard(log_dir="logs", histogram_freq=0, update_freq="epoch")``.

    Every epoch: each figure of the History (loss, metrics, ``val_*``, the learning rate, the
    momentum when scheduled, the epoch's time), at the epoch's number. ``update_freq = N`` also
    logs the training loss every N steps (reading it from the device then), at the step's number;
    ``histogram_freq = N`` logs histograms of the weights every N epochs (0: never).
    """

    affects_fit = False
    rank_zero_only = True  # it writes files: under torchrun, rank 0 alone runs it

    def __init__(self, log_dir: str | os.PathLike = "logs", *, histogram_freq: int = 0,
                 update_freq: str | int = "epoch"):
        self.writer_class = summary_writer_class()
        self.log_dir = Path(log_dir)
        self.histogram_freq = check_integer(histogram_freq, "tensorboard.histogram_freq: must be an integer >= 0 "
                                            "(epochs between histograms of the weights; 0: none)", minimum=0)
        if update_freq != "epoch" and not (is_integer(update_freq) and update_freq >= 1):
            raise ConfigError(f"tensorboard.update_freq: must be 'epoch' or a number of steps >= 1, got {update_freq!r}")
        self.update_freq = update_freq
        self._writers: dict[str, Any] = {}

    def _writer(self, trainer: "Trainer", run: str):
        """The ``train`` or ``validation`` writer, made at the first figure of a fit."""
        if run not in self._writers:
            # a fit that resumes after epoch k (or steps on from k epochs) hides what was logged after them
            done = len(trainer.history) - 1 if trainer.history else 0
            purge = None if done == 0 or self.update_freq != "epoch" else done + 1
            self._writers[run] = self.writer_class(str(self.log_dir / run), purge_step=purge)
        return self._writers[run]

    def on_batch_end(self, trainer: "Trainer", step: int) -> None:
        if self.update_freq == "epoch" or step % self.update_freq or not on_rank_zero():
            return
        if trainer.last_loss is not None:
            self._writer(trainer, "train").add_scalar("batch_loss", float(trainer.last_loss), step)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if not on_rank_zero():
            return
        for key, value in logs.items():
            if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            run, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(trainer, run).add_scalar(f"epoch_{RENAMED.get(name, name)}", float(value), epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer(trainer, "train")
            for name, parameter in trainer.model.named_parameters():
                writer.add_histogram(f"{name}/histogram", parameter.detach().float().cpu(), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_fit_end(self, trainer: "Trainer") -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
