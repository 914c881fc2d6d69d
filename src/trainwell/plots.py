"""PNG figures: a learning-rate schedule over a run, and the LR finder's sweep.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no display, and no
change to the backend a notebook user has chosen); each figure is written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.lr_finder import LRFinderResult


def _figure(rows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2 + 2.2 * (rows - 1)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, axes


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    figure.savefig(partial, dpi=120, format="png")
    os.replace(partial, path)
    return path


def plot_schedule(lrs: Sequence[float], path: str | os.PathLike, *, steps_per_epoch: int | None = None,
                  momentum: Sequence[float] | None = None, title: str = "learning-rate schedule",
                  log: bool = False) -> Path:
    """The rate at each step (x in epochs when ``steps_per_epoch`` is given), and the momentum below it."""
    figure, axes = _figure(2 if momentum is not None else 1)
    scale = steps_per_epoch or 1
    x = [t / scale for t in range(len(lrs))]
    axes[0].plot(x, lrs, color="tab:blue", linewidth=1.5)
    axes[0].set_ylabel("learning rate")
    if log:
        axes[0].set_yscale("log")
    axes[0].set_title(title)
    axes[0].grid(alpha=0.3)
    if momentum is not None:
        axes[1].plot(x, momentum, color="tab:orange", linewidth=1.5)
        axes[1].set_ylabel("momentum")
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel("epoch" if steps_per_epoch else "step")
    axes[-1].set_xlim(0, max(x[-1], 1e-9) if x else 1)
    return _save(figure, path)


def plot_lr_find(result: "LRFinderResult", path: str | os.PathLike, *, title: str = "LR finder") -> Path:
    """Loss against learning rate (log x): raw and smoothed, the suggestion and the turning point marked."""
    figure, (axis,) = _figure()
    axis.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    axis.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
    axis.set_xscale("log")
    axis.axvline(result.suggestion, color="tab:red", linestyle="--",
                 label=f"suggestion {result.suggestion:.3g} (turning point / 10)")
    axis.axvline(result.min_loss_lr, color="gray", linestyle=":",
                 label=f"lowest smoothed loss at {result.min_loss_lr:.3g}")
    finite = [v for v in [*result.losses, *result.smoothed] if math.isfinite(v)]
    if finite:  # keep the falling part readable: the divergence runs off the top
        low, start = min(finite), max(v for v in (result.losses[0], result.smoothed[0]) if math.isfinite(v))
        margin = 0.08 * (start - low) + 1e-12
        axis.set_ylim(low - margin, max(start, low * 1.5) + margin)
    axis.set_xlabel("learning rate (log scale)")
    axis.set_ylabel("training loss")
    axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower left", fontsize=8)
    return _save(figure, path)
