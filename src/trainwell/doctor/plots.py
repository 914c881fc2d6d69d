"""PNG figures of a diagnostics recording: per-layer statistics against depth and against time.

``depth.png`` is the chapter's picture of the signal through a deep network (the std of
each layer's outputs from the bottom layer to the top, at the first and last recorded
steps), with the gradients and the dead/saturated fractions below it; ``time.png``
follows a few layers over the recorded steps. Drawn on an Agg canvas (no pyplot), with
:mod:`trainwell.figures`' helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainwell.doctor.record import Recording
from trainwell.figures import legend, new_figure, save_figure, whole_number_ticks

__all__ = ["depth_figure", "time_figure", "plot_depth", "plot_time", "plot_recording"]


def _figure(rows: int, title: str):
    figure, axes = new_figure(rows, 1, width=9.5, height=2.6 * rows + 0.4, sharex=True, title=title)
    return figure, axes[:, 0]


def _points(values):
    return [(i + 1, v) for i, v in enumerate(values) if v is not None]


def _plot(axis, values, **style) -> None:
    points = _points(values)
    if points:
        axis.plot(*zip(*points), **style)


def depth_figure(recording: Recording, *, title: str = "per-layer statistics"):
    """Std and mean of the outputs, gradient RMS (weights' and backward signal) and dead/saturated fractions."""
    figure, (signal, grads, fractions) = _figure(3, title)
    first, last = recording.samples[0].step, recording.samples[-1].step
    for index, label, style in ((0, f"step {first}", ":"), (-1, f"step {last}", "-")):
        _plot(signal, recording.profile("std", index), color="tab:blue", linestyle=style, label=f"std, {label}")
        _plot(signal, recording.profile("mean", index), color="tab:orange", linestyle=style, label=f"mean, {label}")
        _plot(grads, recording.profile("grad_rms", index), color="tab:red", linestyle=style,
              label=f"weights' gradient,\n{label}")
        _plot(grads, recording.profile("backward_rms", index), color="tab:green", linestyle=style,
              label=f"backward signal,\n{label}")
    signal.axhline(1.0, color="gray", linewidth=0.8)
    signal.axhline(0.0, color="gray", linewidth=0.8)
    signal.set_ylabel("layer outputs")
    grads.set_yscale("log")
    grads.set_ylabel("gradient RMS")
    _plot(fractions, recording.profile("dead", -1), color="black", marker=".", label="dead units")
    _plot(fractions, recording.profile("saturated", -1), color="tab:purple", marker=".", label="saturated outputs")
    fractions.set_ylim(-0.02, 1.02)
    fractions.set_ylabel(f"fraction, step {last}")
    fractions.set_xlabel("layer (1 = bottom, next to the inputs)")
    whole_number_ticks(fractions)
    for axis in (signal, grads, fractions):
        legend(axis)
    return figure


def plot_depth(recording: Recording, path: str | os.PathLike, *, title: str = "per-layer statistics") -> Path:
    """Write :func:`depth_figure` as a PNG."""
    return save_figure(depth_figure(recording, title=title), path, dpi=110)


def time_figure(recording: Recording, *, title: str = "statistics over training"):
    """Std of the outputs and gradient RMS of five layers (bottom to top) at each recorded step."""
    figure, (signal, grads) = _figure(2, title)
    steps = recording.steps
    count = len(recording.layers)
    picks = sorted({0, count // 4, count // 2, (3 * count) // 4, count - 1})
    colors = ["tab:blue", "tab:green", "tab:orange", "tab:red", "tab:purple"]
    handles = []  # one per layer, from whichever panel draws it first (a layer may have only one series)
    for color, index in zip(colors, picks):
        name = recording.layers[index].name
        drawn = None
        for axis, stat in ((signal, "std"), (grads, "grad_rms")):
            points = [(s, v) for s, v in zip(steps, recording.series(stat, name)) if v is not None]
            if points:
                line, = axis.plot(*zip(*points), color=color, marker=".")
                drawn = drawn or line
        if drawn is not None:
            drawn.set_label(f"{name} (layer {index + 1})")
            handles.append(drawn)
    signal.set_ylabel("std of the outputs")
    grads.set_ylabel("gradient RMS")
    grads.set_yscale("log")
    grads.set_xlabel("step")
    whole_number_ticks(grads)
    if handles:
        legend(signal, handles=handles, title="layer (both panels)", title_fontsize=8.5)
    return figure


def plot_time(recording: Recording, path: str | os.PathLike, *, title: str = "statistics over training") -> Path:
    """Write :func:`time_figure` as a PNG."""
    return save_figure(time_figure(recording, title=title), path, dpi=110)


def plot_recording(recording: Recording, directory: str | os.PathLike, *, name: str = "") -> list[Path]:
    """Write ``depth.png`` and ``time.png`` into ``directory``; return their paths."""
    if not recording.samples:
        return []
    directory = Path(directory)
    prefix = f"{name}: " if name else ""
    return [plot_depth(recording, directory / "depth.png", title=f"{prefix}per-layer statistics against depth"),
            plot_time(recording, directory / "time.png", title=f"{prefix}per-layer statistics against time")]
