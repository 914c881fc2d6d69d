"""Figures of a fit: a learning-rate schedule over a run, and the LR finder's sweep.

Drawn with :mod:`trainwell.figures`' helpers (matplotlib's object API, no pyplot, no change
to a notebook user's backend); each figure is written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from trainwell.figures import legend, new_figure, save_figure, whole_number_ticks

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from trainwell.lr_finder import LRFinderResult


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
