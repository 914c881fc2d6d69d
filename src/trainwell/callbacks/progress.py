"""ProgressDisplay: one line per epoch, as Keras prints it, and a live bar on a terminal."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trainwell.callbacks.base import Callback, format_logs

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


class ProgressDisplay(Callback):
    """One line per epoch (like Keras' ``verbose=2``) and a live bar on a terminal.

    The bar's loss is read from the device at most ``refresh`` times a second, so the
    display does not force a host sync on every step.
    """

    affects_fit = False
    rank_zero_only = True  # it prints: under torchrun, rank 0 alone runs it

    def __init__(self, *, live: bool | None = None, refresh: float = 5.0, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal if live is None else live
        self.interval = 1.0 / refresh
        self._progress: Progress | None = None
        self._task = None
        self._next_refresh = 0.0

    def on_fit_begin(self, trainer: "Trainer") -> None:
        if self.live:
            self._progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=True)
            self._progress.start()

    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task("", total=trainer.steps_per_epoch,
                                                 epoch=f"{epoch}/{trainer.epochs}", loss="")

    def on_batch_end(self, trainer: "Trainer", step: int) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self.interval
            loss = trainer.running_loss()
            self._progress.update(self._task, completed=trainer.step_in_epoch, loss=f"loss: {loss:.4f}")

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
        line = f"Epoch {epoch}/{trainer.epochs} - {logs.get('time', 0.0):.1f}s - {format_logs(logs)}"
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
