"""HistoryLogger: the History written to a file after every epoch, so a long run can be watched."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from trainwell.callbacks.base import Callback
from trainwell.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


class HistoryLogger(Callback):
    """Writes the History to ``path`` (``.json`` or ``.csv``) after every epoch, atomically."""

    affects_fit = False

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not self.path.endswith((".json", ".csv")):
            raise ConfigError(f"history log {self.path!r}: the file name must end in .json or .csv")

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self.path.endswith(".json"):
            trainer.history.to_json(self.path)
        else:
            trainer.history.to_csv(self.path)
