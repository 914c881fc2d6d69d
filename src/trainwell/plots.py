"""Figures of a fit: its learning curves (and :class:`TrainingCurves`, the callback that redraws them
after every epoch), a learning-rate schedule over a run, and the LR finder's sweep.

Drawn with :mod:`trainwell.figures`' helpers (matplotlib's object API, no pyplot, no change
to a notebook user's backend); each figure is written atomically. The callback lives here, not
in :mod:`trainwell.callbacks`, because it draws: callbacks sit below the figures of a fit.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from trainwell.callbacks import Callback
from trainwell.callbacks.loggers import on_rank_zero
from trainwell.errors import ConfigError
from trainwell.figures import check_figure_path, legend, new_figure, save_figure, whole_number_ticks

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from trainwell.lr_finder import LRFinderResult
    from trainwell.train.history import History
    from trainwell.train.trainer import Trainer


# ----------------------------------------------------------------- the schedule and the LR finder
def schedule_figure(lrs: Sequence[float], *, steps_per_epoch: int | None = None,
                    momentum: Sequence[float] | None = None, title: str = "learning-rate schedule",
                    log: bool = False) -> "Figure":
    """The rate at each step (x in epochs when ``steps_per_epoch`` is given), and the momentum below it."""
    rows = 2 if momentum is not None else 1
    figure, axes = new_figure(rows, 1, height=3.2 + 2.2 * (rows - 1), sharex=True)
    axes = axes[:, 0]
    scale = steps_per_epoch or 1
    x = [t / scale for t in range(len(lrs))]
    axes[0].plot(x, lrs, color="tab:blue", linewidth=1.5)
    axes[0].set_ylabel("learning rate")
    if log:
        axes[0].set_yscale("log")
    axes[0].set_title(title)
    if momentum is not None:
        axes[1].plot(x, momentum, color="tab:orange", linewidth=1.5)
        axes[1].set_ylabel("momentum")
    axes[-1].set_xlabel("epoch" if steps_per_epoch else "step")
    axes[-1].set_xlim(0, max(x[-1], 1e-9) if x else 1)
    whole_number_ticks(axes[-1])
    return figure


def plot_schedule(lrs: Sequence[float], path: str | os.PathLike, *, steps_per_epoch: int | None = None,
                  momentum: Sequence[float] | None = None, title: str = "learning-rate schedule",
                  log: bool = False) -> Path:
    """Write :func:`schedule_figure` as a PNG."""
    return save_figure(schedule_figure(lrs, steps_per_epoch=steps_per_epoch, momentum=momentum, title=title, log=log),
                    path)


def lr_find_figure(result: "LRFinderResult", *, title: str = "LR finder") -> "Figure":
    """Loss against learning rate (log x): raw and smoothed, the suggestion and the turning point marked."""
    figure, ((axis,),) = new_figure(width=8.5)
    axis.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    axis.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
    axis.set_xscale("log")
    axis.axvline(result.suggestion, color="tab:red", linestyle="--",
                 label=f"suggestion {result.suggestion:.3g}\n(turning point / 10)")
    axis.axvline(result.min_loss_lr, color="gray", linestyle=":",
                 label=f"lowest smoothed loss\nat {result.min_loss_lr:.3g}")
    finite = [v for v in [*result.losses, *result.smoothed] if math.isfinite(v)]
    if finite:  # keep the falling part readable: the divergence runs off the top
        low, start = min(finite), max(v for v in (result.losses[0], result.smoothed[0]) if math.isfinite(v))
        margin = 0.08 * (start - low) + 1e-12
        axis.set_ylim(low - margin, max(start, low * 1.5) + margin)
    axis.set_xlabel("learning rate (log scale)")
    axis.set_ylabel("training loss")
    axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    legend(axis)
    return figure


def plot_lr_find(result: "LRFinderResult", path: str | os.PathLike, *, title: str = "LR finder") -> Path:
    """Write :func:`lr_find_figure` as a PNG."""
    return save_figure(lr_find_figure(result, title=title), path)


# ----------------------------------------------------------------- a fit's history
#: History keys that are not curves of the fit: its bookkeeping, and the rates (the schedule's own figure).
NOT_CURVES = ("epoch", "time", "lr", "momentum", "skipped_batches")


def curve_names(history: "History") -> list[str]:
    """The quantities :func:`history_figure` draws, one panel each: the loss and every metric (with
    its ``val_`` twin on the same panel), then any validation figure that has no training twin."""
    keys = [key for key in history.keys() if key not in NOT_CURVES]
    names = [key for key in keys if not key.startswith("val_")]
    return names + [key for key in keys if key.startswith("val_") and key[4:] not in names]


def _values(history: "History", key: str) -> list[float]:
    """A figure of every epoch as floats, nan where it is missing or not finite (a gap in the line)."""
    values = []
    for value in history[key]:
        number = float(value) if isinstance(value, (int, float)) else math.nan
        values.append(number if math.isfinite(number) else math.nan)
    return values


def history_figure(history: "History", *, title: str | None = "training curves", columns: int = 3) -> "Figure":
    """The learning curves of a fit: one panel per quantity (the loss, each metric), training and validation
    per epoch on the same panel, as the book draws ``pd.DataFrame(history.history).plot()``."""
    names = curve_names(history) or ["loss"]
    cols = max(1, min(len(names), columns))
    rows = math.ceil(len(names) / cols)
    figure, axes = new_figure(rows, cols, width=2.9 * cols + 1.6, height=2.6 * rows + 0.4, title=title)
    epochs = history["epoch"] if "epoch" in history.keys() else list(range(1, len(history) + 1))
    marker = "o" if len(history) < 30 else None
    for index, axis in enumerate(axes.flat):
        if index >= len(names):
            axis.set_visible(False)
            continue
        name = names[index]
        base = name[4:] if name.startswith("val_") else name
        for key, label, color, style in ((base, "training", "tab:blue", "-"),
                                         (f"val_{base}", "validation", "tab:orange", "--")):
            if key in history.keys():
                axis.plot(epochs, _values(history, key), style, color=color, marker=marker, markersize=3,
                          linewidth=1.5, label=label)
        axis.set_title(base, fontsize=10)
        if index + cols >= len(names):  # the lowest panel of its column
            axis.set_xlabel("epoch")
        whole_number_ticks(axis)
        if len(epochs) == 1:  # one epoch: its tick alone (a range under 1 has no whole numbers but it)
            axis.set_xticks(epochs)
    legend(axes[0, cols - 1])
    return figure


def plot_history(history: "History", path: str | os.PathLike, *, title: str | None = "training curves") -> Path:
    """Write :func:`history_figure` (``curves.png``), atomically."""
    return save_figure(history_figure(history, title=title), path)


class TrainingCurves(Callback):
    """Redraw the fit's learning curves (:func:`history_figure`) into ``path`` after every epoch, atomically,
    so a long run can be watched while it trains (on rank 0 only under torchrun).

    Drawing takes about half a second. So that short epochs are not slowed down by it, the
    figure is redrawn after an epoch only while the time spent drawing stays within
    ``max_overhead`` (a tenth) of the time spent training; it is always drawn at the end of a
    fit. ``max_overhead=None`` redraws after every epoch, whatever it costs.
    """

    affects_fit = False
    rank_zero_only = True  # it writes files: under torchrun, rank 0 alone runs it
    FIRST_ESTIMATE = 0.5  # seconds a drawing takes, until one has been timed

    def __init__(self, path: str | os.PathLike, *, title: str | None = "training curves",
                 max_overhead: float | None = 0.1):
        self.path = check_figure_path(path, what="training curves")
        if max_overhead is not None and (isinstance(max_overhead, bool) or not isinstance(max_overhead, (int, float))
                                         or not max_overhead > 0):
            raise ConfigError(f"max_overhead: must be a positive number or None, got {max_overhead!r}")
        self.title, self.max_overhead = title, max_overhead
        self.drawn: int | None = None  # how many epochs the figure at ``path`` shows (None: not drawn by this one)
        self._cost = self.FIRST_ESTIMATE
        self.on_fit_begin(None)

    def on_fit_begin(self, trainer: "Trainer | None") -> None:
        self._started, self._drawing = time.perf_counter(), 0.0

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        training = time.perf_counter() - self._started - self._drawing
        if self.max_overhead is None or self._drawing + self._cost <= self.max_overhead * training:
            self._draw(trainer)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.drawn != len(trainer.history):
            self._draw(trainer)

    def shows(self, history: "History") -> bool:
        """Whether the figure at ``path`` is this callback's drawing of ``history`` as it is now."""
        return self.drawn == len(history) and self.path.is_file()

    def _draw(self, trainer: "Trainer") -> None:
        if not on_rank_zero() or not len(trainer.history):
            return
        started = time.perf_counter()
        plot_history(trainer.history, self.path, title=self.title)
        self._cost = time.perf_counter() - started
        self._drawing += self._cost
        self.drawn = len(trainer.history)
