"""PNG figures of a diagnostics recording: per-layer statistics against depth and against time.

``depth.png`` is the chapter's picture of the signal through a deep network (the std of
each layer's outputs from the bottom layer to the top, at the first and last recorded
steps), with the gradients and the dead/saturated fractions below it; ``time.png``
follows a few layers over the recorded steps. Drawn on an Agg canvas (no pyplot).
"""

from __future__ import annotations

import os
from pathlib import Path

from trainwell.diagnostics import Recording

__all__ = ["plot_depth", "plot_time", "plot_recording"]


def _figure(rows: int, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 2.6 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    figure.suptitle(title)
    return figure, axes


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    figure.savefig(partial, dpi=110, format="png")
    os.replace(partial, path)
    return path


def _points(values):
    return [(i + 1, v) for i, v in enumerate(values) if v is not None]


def _plot(axis, values, **style) -> None:
    points = _points(values)
    if points:
        axis.plot(*zip(*points), **style)


def plot_depth(recording: Recording, path: str | os.PathLike, *, title: str = "per-layer statistics") -> Path:
    """Std and mean of the outputs, gradient RMS (weights' and backward signal) and dead/saturated fractions."""
    figure, (signal, grads, fractions) = _figure(3, title)
    first, last = recording.samples[0].step, recording.samples[-1].step
    for index, label, style in ((0, f"step {first}", ":"), (-1, f"step {last}", "-")):
        _plot(signal, recording.profile("std", index), color="tab:blue", linestyle=style, label=f"std, {label}")
        _plot(signal, recording.profile("mean", index), color="tab:orange", linestyle=style, label=f"mean, {label}")
        _plot(grads, recording.profile("grad_rms", index), color="tab:red", linestyle=style,
              label=f"weights' gradient, {label}")
        _plot(grads, recording.profile("backward_rms", index), color="tab:green", linestyle=style,
              label=f"backward signal, {label}")
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
    for axis in (signal, grads, fractions):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
    return _save(figure, Path(path))


def plot_time(recording: Recording, path: str | os.PathLike, *, title: str = "statistics over training") -> Path:
    """Std of the outputs and gradient RMS of five layers (bottom to top) at each recorded step."""
    figure, (signal, grads) = _figure(2, title)
    steps = recording.steps
    count = len(recording.layers)
    picks = sorted({0, count // 4, count // 2, (3 * count) // 4, count - 1})
    colors = ["tab:blue", "tab:green", "tab:orange", "tab:red", "tab:purple"]
    for color, index in zip(colors, picks):
        name = recording.layers[index].name
        for axis, stat in ((signal, "std"), (grads, "grad_rms")):
            points = [(s, v) for s, v in zip(steps, recording.series(stat, name)) if v is not None]
            if points:
                axis.plot(*zip(*points), color=color, marker=".", label=f"{name} (layer {index + 1})")
    signal.set_ylabel("std of the outputs")
    grads.set_ylabel("gradient RMS")
    grads.set_yscale("log")
    grads.set_xlabel("step")
    for axis in (signal, grads):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
    return _save(figure, Path(path))


def plot_recording(recording: Recording, directory: str | os.PathLike, *, name: str = "") -> list[Path]:
    """Write ``depth.png`` and ``time.png`` into ``directory``; return their paths."""
    if not recording.samples:
        return []
    directory = Path(directory)
    prefix = f"{name}: " if name else ""
    return [plot_depth(recording, directory / "depth.png", title=f"{prefix}per-layer statistics against depth"),
            plot_time(recording, directory / "time.png", title=f"{prefix}per-layer statistics against time")]
