"""Every figure trainwell draws is legible: integer ticks on epoch/step/layer axes, legends in a
readable size that cover no data and are not cut off, tick labels that do not overlap; and no
figure changes matplotlib's backend (a notebook user's choice)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from trainwell.doctor.record import LayerInfo, Recording, Sample
from trainwell.lr_finder import LRFinderResult
from trainwell.store import RunStore, store_path

INTEGER_AXES = ("epoch", "step", "layer")
MIN_LEGEND_POINTS = 8


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def _shown_labels(axis, which: str):
    """The tick labels drawn on one axis: visible, non-empty, at a tick inside the view."""
    ticks = axis.get_major_ticks() + (axis.get_minor_ticks() if which == "both" else [])
    low, high = sorted(axis.get_view_interval())
    return [t.label1 for t in ticks if t.label1.get_visible() and t.label1.get_text()
            and low - 1e-9 * abs(high - low) <= t.get_loc() <= high + 1e-9 * abs(high - low)]


def _data_points(axes, renderer) -> np.ndarray:
    """Display coordinates of what an axes shows: line points (and along each segment), bars, markers."""
    points = []
    for line in axes.get_lines():
        xy = line.get_transform().transform(np.column_stack(line.get_data()).astype(float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) > 1:  # a segment can cross a legend between two points
            t = np.linspace(0, 1, 12)[:, None, None]
            xy = (xy[:-1] * (1 - t) + xy[1:] * t).reshape(-1, 2)
        points.append(xy)
    for patch in axes.patches:
        if patch.get_visible() and patch is not axes.patch:
            box = patch.get_window_extent(renderer)
            if box.width > 1 and box.height > 1:
                xs, ys = np.linspace(box.x0, box.x1, 5), np.linspace(box.y0, box.y1, 5)
                points.append(np.array([(x, y) for x in xs for y in ys]))
    for collection in axes.collections:
        offsets = collection.get_offsets()
        if len(offsets):
            points.append(collection.get_offset_transform().transform(np.asarray(offsets, dtype=float)))
    points = [p for p in points if len(p)]
    if not points:
        return np.zeros((0, 2))
    inside = np.concatenate(points)
    box = axes.get_window_extent(renderer)
    keep = (inside[:, 0] >= box.x0) & (inside[:, 0] <= box.x1) & (inside[:, 1] >= box.y0) & (inside[:, 1] <= box.y1)
    return inside[keep]


def problems(figure) -> list[str]:
    """What makes a drawn figure hard to read; empty when it is fine."""
    from trainwell.figures import finish

    finish(figure)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    found = []
    frame = figure.bbox
    legends = [a.get_legend() for a in figure.axes if a.get_legend()] + list(figure.legends)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        size = min(text.get_fontsize() for text in legend.get_texts())
        if size < MIN_LEGEND_POINTS:
            found.append(f"legend text {size}pt < {MIN_LEGEND_POINTS}pt")
        if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1 or box.y1 > frame.y1 + 1:
            found.append(f"legend cut off at the figure's edge: {box} outside {frame}")
        for axes in figure.axes:
            points = _data_points(axes, renderer)
            covered = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0)
                       & (points[:, 1] < box.y1))
            if covered.any():
                found.append(f"legend {[t.get_text() for t in legend.get_texts()]} covers "
                             f"{int(covered.sum())} data point(s) of {axes.get_title() or axes.get_ylabel()!r}")
    for axes in figure.axes:
        for name, axis in (("x", axes.xaxis), ("y", axes.yaxis)):
            labels = _shown_labels(axis, "both")
            boxes = sorted((label.get_window_extent(renderer) for label in labels),
                           key=lambda b: b.x0 if name == "x" else b.y0)
            for a, b in zip(boxes, boxes[1:]):
                if _boxes_overlap(a, b):
                    found.append(f"{name} tick labels overlap on {axes.get_xlabel()!r}: "
                                 + ", ".join(repr(label.get_text()) for label in labels))
                    break
        label = axes.get_xlabel()
        if label.split(" ")[0] in INTEGER_AXES and axes.get_xscale() == "linear":
            shown = _shown_labels(axes.xaxis, "major")
            fractional = [t.get_loc() for t in axes.xaxis.get_major_ticks()
                          if t.label1 in shown and not float(t.get_loc()).is_integer()]
            if fractional:
                found.append(f"{label!r} has fractional ticks {fractional}")
    return found


# ----------------------------------------------------------------- the report's figures
def _epochs(store, run, phases):
    epoch = 0
    for phase, count in phases:
        for k in range(1, count + 1):
            epoch += 1
            store.log_epoch(run, phase, k, {"accuracy": 0.5 + 0.45 * (1 - math.exp(-epoch / 3)),
                                            "val_accuracy": 0.48 + 0.44 * (1 - math.exp(-epoch / 4))})


@pytest.fixture(scope="module")
def report_store(tmp_path_factory):
    """A store holding every kind of series the report draws."""
    out = tmp_path_factory.mktemp("figures")
    rng = random.Random(0)
    with RunStore(store_path(out)) as store:
        store.set_meta("budget", "quick")

        def run(entry_id, seed=42, results=None, phases=(), **series):
            run_id = store.start_run(entry_id, seed, "quick", config={"name": entry_id})
            _epochs(store, run_id, phases)
            store.log_results(run_id, results or {"val_accuracy": 0.8})
            for name, data in series.items():
                store.log_series(run_id, name, data)
            store.finish(run_id)

        for seed in (42, 43, 44):
            run("relu_100", seed, phases=[("train", 5)])
        run("ex8_2", phases=[("train", 3)])
        run("ex8_4", phases=[("train", 3)])
        run("transfer_model_b", results={"val_accuracy": 0.98, "test_accuracy": 0.982}, phases=[("train", 20)])
        run("transfer_b_on_a", results={"val_accuracy": 0.99, "test_accuracy": 0.988},
            phases=[("frozen", 4), ("fine-tune", 16)])
        z = [i / 20 for i in range(-100, 101)]
        run("activation_curves", results={"elu_floor": -1.0},
            activation_curves={"z": z, "sigmoid": [1 / (1 + math.exp(-v)) for v in z],
                               "elu": [v if v > 0 else math.exp(v) - 1 for v in z]})
        run("selu_self_normalization", results={"max_abs_mean": 0.06},
            selu_depth={"layer": list(range(1000)), "mean": [rng.gauss(0, 0.03) for _ in range(1000)],
                        "std": [rng.gauss(0.97, 0.03) for _ in range(1000)]})
        run("piecewise", phases=[("train", 25)],
            lr={"step": list(range(0, 43000, 100)), "value": [0.01 if s < 8600 else 0.005 if s < 25800 else 0.001
                                                               for s in range(0, 43000, 100)]})
        lrs = [1e-5 * 10 ** (5 * i / 299) for i in range(300)]
        losses = [2.3 - 0.9 * i / 250 + (0 if i < 250 else (i - 250) ** 2 / 100) + rng.gauss(0, 0.05) for i in range(300)]
        run("lr_finder", results={"diverges": 1}, lr_find={"lrs": lrs, "losses": losses, "smoothed": losses,
                                                           "suggestion": lrs[200]})
        run("mc_dropout", results={"test_accuracy": 0.87},
            mc_dropout={"spread": [rng.random() * 0.3 for _ in range(2000)], "image": 1872, "label": 8,
                        "plain": [0.0] * 8 + [1.0, 0.0], "mc_mean": [0.01] * 5 + [0.13, 0, 0.18, 0.63, 0.05],
                        "mc_std": [0.01] * 5 + [0.15, 0, 0.22, 0.31, 0.07]})
        candidates = [{"params": {"lr": lr, "units": 200, "batch_size": 32, "hidden_layers": 2}, "score": score}
                      for lr, score in ((1.2967e-4, 0.574), (2.0513e-4, 0.933), (8.289e-4, 0.894), (7.969e-3, 0.871))]
        run("ex8_3", results={"best_cv_accuracy": 0.93}, search={"candidates": candidates, "best": candidates[1]})
    return out


def _report_figures(out):
    from trainwell.catalog import get_budget
    from trainwell.catalog.chapter_figures import figures
    from trainwell.catalog.results import collect

    with RunStore(store_path(out)) as store:
        reports = collect(store, get_budget("quick"))
        by_id = {r.entry.id: r for r in reports}
        drawn = [(r.entry.id, caption, figure) for r in reports if r.runs for caption, figure in figures(store, r, by_id)]
    return drawn


def test_every_figure_of_the_report_is_legible(report_store):
    drawn = _report_figures(report_store)
    kinds = {entry_id for entry_id, _, _ in drawn}
    assert {"relu_100", "ex8_4", "transfer_b_on_a", "activation_curves", "selu_self_normalization", "piecewise",
            "lr_finder", "mc_dropout", "ex8_3"} <= kinds
    assert len(drawn) >= 12
    found = {f"{entry_id}: {caption}": problems(figure) for entry_id, caption, figure in drawn}
    assert not {k: v for k, v in found.items() if v}


def test_the_search_figure_names_the_best_setting_in_its_caption_not_in_a_wide_legend(report_store):
    drawn = _report_figures(report_store)
    caption, figure = next((c, f) for entry_id, c, f in drawn if entry_id == "ex8_3")
    assert "best: batch_size 32, hidden_layers 2, lr 0.000205, units 200" in caption
    assert all(len(t.get_text()) < 40 for a in figure.axes if a.get_legend() for t in a.get_legend().get_texts())


# ----------------------------------------------------------------- the library's PNGs
def _recording(layers=100, steps=20) -> Recording:
    infos = [LayerInfo(f"dense_{i}", "relu", 100) for i in range(1, layers + 1)]
    samples = [Sample(step=k * 100, epoch=1, layers={
        info.name: {"std": 0.8 / (1 + j / 30) + 0.01 * k, "mean": 0.3, "grad_rms": 1e-3 * (1 + j / 50),
                    "backward_rms": 1e-4, "dead": min(1.0, j / 150), "saturated": 0.0}
        for j, info in enumerate(infos)}) for k in range(steps)]
    return Recording(100, infos, samples)


def test_the_doctors_figures_are_legible():
    from trainwell.doctor.plots import depth_figure, time_figure

    recording = _recording()
    assert problems(depth_figure(recording, title="relu_100")) == []
    assert problems(time_figure(recording, title="relu_100")) == []


def test_the_time_figure_names_every_layer_it_draws_even_one_with_only_gradients():
    from trainwell.doctor.plots import time_figure

    recording = _recording()
    for sample in recording.samples:  # the output layer: no std recorded, its gradient RMS is
        sample.layers["dense_100"]["std"] = None
    figure = time_figure(recording, title="relu_100")
    lines = [line for axis in figure.axes for line in axis.get_lines() if line.get_xdata().size]
    named = {t.get_text() for t in figure.axes[0].get_legend().get_texts()}
    assert len(lines) == 9 and len(named) == 5 and "dense_100 (layer 100)" in named


def test_the_schedule_and_lr_finder_figures_are_legible():
    from trainwell.plots import lr_find_figure, schedule_figure

    lrs = [0.005 + 0.045 * min(t / 400, (800 - t) / 400) if t < 800 else 0.005 * (1 - (t - 800) / 100)
           for t in range(900)]
    assert problems(schedule_figure(lrs, steps_per_epoch=90, momentum=[0.95 - 2 * v for v in lrs])) == []
    assert problems(schedule_figure(lrs[:45], steps_per_epoch=10)) == []  # a few epochs: no 0.5 ticks
    rates = [3e-3 * 10 ** (0.8 * i / 99) for i in range(100)]  # less than a decade: minor tick labels
    losses = [2.3 - 0.5 * i / 80 + (0 if i < 80 else (i - 80) ** 2 / 20) for i in range(100)]
    result = LRFinderResult(rates, losses, losses, suggestion=rates[60], min_loss_lr=rates[80], stopped_early=False)
    assert problems(lr_find_figure(result)) == []


def test_the_reliability_diagram_is_legible(tmp_path):
    import torch

    from trainwell.uncertainty import reliability_figure

    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(500, 10, generator=g) * 3, dim=1)
    y = torch.randint(0, 10, (500,), generator=g)
    assert problems(reliability_figure({"deterministic": p, "MC dropout": p ** 0.5 / (p ** 0.5).sum(1, keepdims=True)},
                                       y)) == []


def test_the_png_writers_still_write_pngs(tmp_path):
    from trainwell.doctor.plots import plot_recording
    from trainwell.plots import plot_schedule

    written = [plot_schedule([0.1, 0.05, 0.01], tmp_path / "s.png"), *plot_recording(_recording(4, 3), tmp_path / "d")]
    for path in written:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob(".*tmp*"))


# ----------------------------------------------------------------- a fit's learning curves
def _history(epochs=12, metrics=("accuracy", "auc", "f1"), validation=True, nan_at=None):
    from trainwell.train.history import History

    records = []
    for epoch in range(1, epochs + 1):
        record = {"epoch": epoch, "loss": 2.0 / epoch}
        record.update({m: 1 - 0.5 / epoch for m in metrics})
        if validation:
            record.update({"val_loss": 2.2 / epoch, **{f"val_{m}": 1 - 0.6 / epoch for m in metrics}})
        record.update({"lr": 0.01, "time": 0.5})
        if epoch == nan_at:
            record["loss"] = float("nan")
        records.append(record)
    return History(records)


def test_the_learning_curves_have_one_legible_panel_per_quantity():
    from trainwell.plots import curve_names, history_figure

    history = _history()
    assert curve_names(history) == ["loss", "accuracy", "auc", "f1"]  # not lr, time or epoch
    figure = history_figure(history)
    shown = [a for a in figure.axes if a.get_visible()]
    assert [a.get_title() for a in shown] == ["loss", "accuracy", "auc", "f1"]
    assert all(len(a.get_lines()) == 2 for a in shown)  # training and validation
    assert list(shown[0].get_lines()[1].get_ydata()) == history["val_loss"]
    assert problems(figure) == []
    for drawn in (_history(1, metrics=(), validation=False), _history(40, nan_at=3)):
        assert problems(history_figure(drawn)) == []


def test_training_curves_are_redrawn_after_every_epoch(blobs, tmp_path):
    from helpers import small_model
    from trainwell.callbacks import Callback
    from trainwell.plots import TrainingCurves
    from trainwell.train.trainer import Trainer

    x, y = blobs
    path = tmp_path / "curves.png"
    seen = []

    class Looks(Callback):
        def on_epoch_begin(self, trainer, epoch):
            seen.append(path.stat().st_mtime_ns if path.exists() else None)

    curves = TrainingCurves(path, max_overhead=None)
    trainer = Trainer(small_model(), callbacks=[Looks(), curves], seed=0)
    trainer.fit(x, y, epochs=3, verbose=False)
    assert seen[0] is None and None not in seen[1:] and seen[1] <= seen[2]
    assert curves.drawn == 3 and curves.shows(trainer.history) and path.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*"))


def test_training_curves_of_short_epochs_are_drawn_at_the_end_only(blobs, tmp_path):
    from helpers import small_model
    from trainwell.plots import TrainingCurves
    from trainwell.train.trainer import Trainer

    x, y = blobs
    curves = TrainingCurves(tmp_path / "curves.png", max_overhead=1e-6)  # epochs far shorter than a drawing
    drawn = []
    curves._draw = lambda trainer, draw=curves._draw: (drawn.append(trainer.epoch), draw(trainer))
    Trainer(small_model(), callbacks=[curves], seed=0).fit(x, y, epochs=3, verbose=False)
    assert drawn == [3] and curves.drawn == 3


def test_training_curves_refuse_a_path_that_is_no_figure(tmp_path):
    from trainwell.errors import ConfigError
    from trainwell.plots import TrainingCurves

    with pytest.raises(ConfigError, match="must end in one of .png"):
        TrainingCurves(tmp_path / "curves.txt")
    with pytest.raises(ConfigError, match="max_overhead"):
        TrainingCurves(tmp_path / "curves.png", max_overhead=0)
