"""EarlyStopping: stop once the watched figure has not improved for a while, optionally back to the best weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from trainwell.callbacks.base import Callback, Monitor, monitored
from trainwell.checks import check_bool, check_integer

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


class EarlyStopping(Callback):
    """Stop once the monitored figure has not improved for ``patience`` epochs (Keras' callback).

    With ``restore_best_weights`` the model ends the fit with the weights (and
    BatchNormalization statistics) of its best epoch, whether the fit stopped early or
    ran to its last epoch; ``best_epoch`` and ``stopped_epoch`` say what happened.
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min", patience: int = 0, min_delta: float = 0.0,
                 restore_best_weights: bool = False):
        self.watch = Monitor(monitor, mode=mode, min_delta=min_delta)
        self.patience = check_integer(patience, "early_stopping.patience: must be an integer >= 0", minimum=0)
        self.restore_best_weights = check_bool(restore_best_weights,
                                               "early_stopping.restore_best_weights: must be true or false")
        self._reset()

    def on_fit_begin(self, trainer: "Trainer") -> None:
        self._reset()

    def _reset(self) -> None:
        self.watch.reset()
        self.wait = 0
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.restored = False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.watch.best, "wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.watch.best, self.wait = state["best"], state["wait"]
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        self.best_weights = state["best_weights"]

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self.watch.update(monitored(self.watch, logs, "early_stopping")):
            self.wait, self.best_epoch = 0, epoch
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.best_weights is not None and self.best_epoch != trainer.epoch:
            trainer.model.load_state_dict(self.best_weights)
            self.restored = True
        self.best_weights = None  # a copy of the model is not worth keeping past the fit
