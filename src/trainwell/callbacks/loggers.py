"""Loggers that write a fit's History to a file after every epoch, so a long run can be watched:
:class:`HistoryLogger` (JSON or CSV, trainwell's own) and :class:`CSVLogger` (Keras' name and options).

Each file is rewritten whole and atomically after every epoch, from the Trainer's History, so a
reader never sees half a row, and a resumed fit's file starts with the epochs it restored.
Under torchrun only rank 0 writes (:func:`on_rank_zero`).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainwell.callbacks.base import Callback
from trainwell.checks import check_bool
from trainwell.errors import ConfigError
from trainwell.fileio import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


def on_rank_zero() -> bool:
    """Whether this process writes a fit's logs: always in one process; under torchrun, rank 0 only."""
    distributed = torch.distributed
    return not (distributed.is_available() and distributed.is_initialized()) or distributed.get_rank() == 0


class HistoryLogger(Callback):
    """Writes the History to ``path`` (``.json`` or ``.csv``) after every epoch, atomically."""

    affects_fit = False
    rank_zero_only = True  # it writes files: under torchrun, rank 0 alone runs it

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not self.path.endswith((".json", ".csv")):
            raise ConfigError(f"history log {self.path!r}: the file name must end in .json or .csv")

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if not on_rank_zero():
            return
        if self.path.endswith(".json"):
            trainer.history.to_json(self.path)
        else:
            trainer.history.to_csv(self.path)


def csv_text(records: list[dict[str, Any]], *, separator: str = ",", header: bool = True) -> str:
    """Records as CSV, one column per key (in the order they first appear): with the default
    separator, the same text as ``History.to_csv``."""
    columns = list(dict.fromkeys(key for record in records for key in record))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=separator, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


class CSVLogger(Callback):
    """Keras' ``CSVLogger(filename, separator=",", append=False)``: one row per epoch (epoch, loss,
    metrics, validation figures, learning rate, time), the whole History rewritten atomically after
    every epoch, on rank 0 only under torchrun.

    With ``append``, the rows the file held before the fit stay above this fit's (Keras' way of
    logging a second training into the same file; a header is written only into an empty file).
    A resumed fit writes the epochs it restored again, not twice: the rows its killed run left at
    the end of the file are replaced.
    """

    affects_fit = False
    rank_zero_only = True  # it writes files: under torchrun, rank 0 alone runs it

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        self.filename = Path(filename)
        if not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"':
            raise ConfigError(f"csv_logger.separator: must be one character (not a quote or a line break), "
                              f"got {separator!r}")
        self.separator, self.append = separator, check_bool(append, "csv_logger.append: must be true or false")
        self._kept: str | None = None  # the file's earlier text (append), read once
        self._seen = 0  # the epochs of the History this logger saw end (a resumed fit restores others)

    def on_fit_begin(self, trainer: "Trainer") -> None:
        if self._kept is None:
            self._kept = self._earlier_text() if self.append else ""
        self._seen = len(trainer.history)

    def _earlier_text(self) -> str:
        try:
            text = self.filename.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"csv_logger: cannot append to {self.filename}: {error}") from None
        return text if not text or text.endswith("\n") else text + "\n"

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if not on_rank_zero():
            return
        restored = len(trainer.history) - 1 - self._seen  # epochs this logger did not see end
        if restored > 0 and self._kept:  # a resumed fit: its killed run's rows go, the History has them
            self._kept = _without_last_run(self._kept, restored, self.separator)
        self._seen = len(trainer.history)
        text = csv_text(trainer.history.records, separator=self.separator, header=not self._kept)
        atomic_write_text(self.filename, self._kept + text)


def _without_last_run(text: str, restored: int, separator: str) -> str:
    """``text`` without the rows of the run a resumed fit continues: its last rows, numbered 1, 2, ...
    up to ``restored`` (or one more: the killed run may have logged an epoch it did not save)."""
    lines = text.splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        first = lines[index].split(separator, 1)[0].strip()
        if not first.isdigit():
            return text
        if int(first) == 1:
            if len(lines) - index not in (restored, restored + 1):
                return text
            kept = lines[:index]
            if len(kept) == 1 and not kept[0].split(separator, 1)[0].strip().isdigit():
                return ""  # only the killed run's header: the new text writes its own
            return "".join(kept)
    return text
