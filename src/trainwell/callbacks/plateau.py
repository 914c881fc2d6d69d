"""ReduceLROnPlateau: performance scheduling, a lower learning rate once the watched figure stops improving."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainwell.callbacks.base import Callback, Monitor
from trainwell.checks import check_integer, check_number

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


class ReduceLROnPlateau(Callback):
    """Performance scheduling: multiply the learning rate by ``factor`` once the monitored
    figure has not improved for ``patience`` epochs (Keras' callback, same defaults).

    It lowers ``trainer.lr_scale``, which the trainer multiplies the schedule's value by,
    so it combines with any schedule. After a reduction it waits ``cooldown`` epochs
    before counting again, and never takes the rate below ``min_lr``.
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        self.watch = Monitor(monitor, mode=mode, min_delta=min_delta)
        check_number(factor, "factor: must be a number in (0, 1)", above=0, below=1)
        for key, value in (("patience", patience), ("cooldown", cooldown)):
            check_integer(value, f"{key}: must be a non-negative integer (epochs)", minimum=0)
        check_number(min_lr, "min_lr: must be a non-negative number", minimum=0)
        self.factor, self.patience, self.cooldown, self.min_lr = float(factor), patience, cooldown, float(min_lr)
        self.wait = self.cooldown_counter = 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.watch.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.watch.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]

    def on_fit_begin(self, trainer: "Trainer") -> None:
        self.watch.reset()
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        value = self.watch.value(logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.watch.update(value):
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                current = float(trainer.optimizer.param_groups[0]["lr"])
                if current > self.min_lr:
                    scheduled = current / trainer.lr_scale
                    trainer.lr_scale = max(current * self.factor, self.min_lr) / scheduled
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
