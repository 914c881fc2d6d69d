"""Figures, the way every figure of trainwell is drawn: a new figure, its legend, whole-number ticks,
legible tick labels, a checked path, an atomic save.

Drawn with matplotlib's object API (:class:`matplotlib.figure.Figure` on an Agg canvas): no
pyplot, no display, and no change to the backend a notebook user has chosen. The helpers keep
figures legible the same way everywhere: legends beside the axes (so they never cover data) in
a readable size, whole-number ticks on epoch, step and layer axes, and tick labels thinned or
turned when they would overlap. matplotlib is imported when a figure is made, not when
trainwell is.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from trainwell.errors import ConfigError
from trainwell.fileio import atomic_write_bytes, check_writable_folder

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["LEGEND_FONT", "FIGURE_SUFFIXES", "new_figure", "legend", "whole_number_ticks", "finish",
           "check_figure_path", "save_figure", "png_bytes"]

LEGEND_FONT = 8.5


def new_figure(rows: int = 1, cols: int = 1, *, width: float = 7.5, height: float = 3.2, sharex: bool = False,
               title: str | None = None, height_ratios: Sequence[float] | None = None, grid: bool = True):
    """A constrained-layout Figure on an Agg canvas and its axes as a ``rows x cols`` array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, sharex=sharex, squeeze=False,
                           gridspec_kw={"height_ratios": list(height_ratios)} if height_ratios else None)
    if title:
        figure.suptitle(title)
    if grid:
        for axis in axes.flat:
            axis.grid(alpha=0.3)
    return figure, axes


def legend(axis, **options: Any):
    """The axes' legend beside it, on the right: it takes room from the plot, never covers data."""
    if not options.get("handles") and not axis.get_legend_handles_labels()[0]:
        return None
    return axis.legend(**{"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0,
                          "fontsize": LEGEND_FONT, "frameon": False, **options})


def whole_number_ticks(axis, which: str = "x") -> None:
    """Ticks only at whole numbers (epochs, steps, layers): no "epoch 1.5"."""
    from matplotlib.ticker import MaxNLocator

    target = axis.xaxis if which == "x" else axis.yaxis
    target.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))


def _shown_labels(axis, which: str = "both") -> list[Any]:
    ticks = axis.get_major_ticks() + (axis.get_minor_ticks() if which == "both" else [])
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * abs(high - low)
    return [t.label1 for t in ticks if t.label1.get_visible() and t.label1.get_text()
            and low - slack <= t.get_loc() <= high + slack]


def _overlap(axis, renderer, vertical: bool) -> bool:
    boxes = sorted((label.get_window_extent(renderer) for label in _shown_labels(axis)),
                   key=lambda box: box.y0 if vertical else box.x0)
    return any(a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5
               for a, b in zip(boxes, boxes[1:]))


def _every(formatter, keep: int):
    """A formatter that labels one major tick in ``keep`` (the others stay, unlabelled)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, position: formatter(value, position)
                         if position is None or position % keep == 0 else "")


def finish(figure: "Figure") -> "Figure":
    """Make overlapping tick labels legible: drop minor labels, then turn the labels, then
    label every 2nd (3rd, ...) tick, drawing again after each step until none overlap."""
    from matplotlib.ticker import NullFormatter

    figure.draw_without_rendering()  # the layout and the labels' places, without painting any pixel
    renderer = figure.canvas.get_renderer()
    for axes in figure.axes:
        for axis, vertical in ((axes.xaxis, False), (axes.yaxis, True)):
            original = axis.get_major_formatter()
            fixes = [lambda: axis.set_minor_formatter(NullFormatter())]
            if not vertical:
                fixes.append(lambda: axes.tick_params(axis="x", which="both", labelrotation=30))
            fixes += [lambda keep=keep: axis.set_major_formatter(_every(original, keep)) for keep in (2, 3, 4, 5)]
            for fix in fixes:
                if not _overlap(axis, renderer, vertical):
                    break
                fix()
                figure.draw_without_rendering()
    return figure


#: The formats trainwell writes figures in, by file name suffix: those matplotlib writes by itself (Pillow, one of its dependencies, for JPEG), so none fails for a missing tool.
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".eps")


def check_figure_path(path: str | os.PathLike, *, what: str = "figure") -> Path:
    """``path`` as a Path if its suffix names a format in :data:`FIGURE_SUFFIXES` and its folder can be
    written (else a ConfigError or an OSError naming it).

    Cheap, so callers check before computing what the figure shows (an LR sweep, a schedule).
    """
    target = Path(path)
    if target.suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError(f"{what}: {str(target)!r} must end in one of {', '.join(FIGURE_SUFFIXES)}")
    check_writable_folder(target.parent)
    return target


def save_figure(figure: "Figure", path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write the finished figure, atomically, in the format the file name's suffix names
    (:data:`FIGURE_SUFFIXES`); return the path.

    The figure is drawn into memory and written by trainwell, not by matplotlib: its JPEG
    writer ignores a full disk (a truncated file, no error) and its PDF writer turns one into
    an AttributeError; written here, every failure is an OSError naming ``path``.
    """
    path = check_figure_path(path)
    finish(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format=path.suffix.lower().lstrip(".") or "png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def png_bytes(figure: "Figure", *, dpi: int = 90) -> bytes:
    """The finished figure as PNG bytes (for pages that embed their images)."""
    buffer = io.BytesIO()
    finish(figure)
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
