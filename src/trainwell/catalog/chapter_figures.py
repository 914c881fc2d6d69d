"""The report's figures: learning curves, the seeds' spread, and the chapter's own figures (activation
curves, SELU's statistics over depth, schedules, the LR finder, MC dropout's spread, the randomized
search, the transfer error-rate ratio), each a matplotlib Figure with its caption."""

from __future__ import annotations

import base64
import math
from typing import Any

from trainwell.catalog.formatting import verdict
from trainwell.catalog.results import EntryReport, first_series
from trainwell.store import RunStore


def png(figure) -> str:
    from trainwell.figures import png_bytes

    return base64.b64encode(png_bytes(figure, dpi=90)).decode("ascii")


def new_axes(ncols: int = 1, width: float = 8.0, height: float = 3.2):
    from trainwell.figures import new_figure

    figure, axes = new_figure(1, ncols, width=width, height=height)
    return figure, axes[0]


def _curve(phases: dict[str, list[dict[str, Any]]], key: str) -> tuple[list[float], list[str]]:
    values, labels = [], []
    for phase, records in phases.items():
        for record in records:
            values.append(record.get(key, math.nan))
            labels.append(phase)
    return values, labels


def learning_curves_figure(store: RunStore, report: EntryReport, others: dict[str, EntryReport]):
    """Validation (solid) and training (dashed) accuracy per epoch; thin lines per seed, thick the mean."""
    from trainwell.figures import legend, whole_number_ticks

    series: list[tuple[str, list[dict[str, list[dict[str, Any]]]]]] = [
        (report.entry.id, [store.epochs(run["id"]) for run in report.runs])]
    for other in report.entry.compare_curves:
        if other in others:
            series.append((other, [store.epochs(run["id"]) for run in others[other].runs]))
    if not any(any(p for p in runs) for _, runs in series):
        return None
    figure, (axis,) = new_axes()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    boundaries = set()
    for (name, runs), color in zip(series, colors):
        for key, style in (("val_accuracy", "-"), ("accuracy", "--")):
            curves = []
            for phases in runs:
                values, labels = _curve(phases, key)
                if values and not all(math.isnan(v) for v in values):
                    curves.append(values)
                    boundaries.update(i + 0.5 for i in range(1, len(labels)) if labels[i] != labels[i - 1])
            if not curves:
                continue
            for values in curves if len(curves) > 1 else []:
                axis.plot(range(1, len(values) + 1), values, style, color=color, alpha=0.25, linewidth=0.8)
            length = min(len(c) for c in curves)
            mean = [sum(c[i] for c in curves) / len(curves) for i in range(length)]
            axis.plot(range(1, length + 1), mean, style, color=color, linewidth=1.8, marker="o" if length < 30 else None,
                      markersize=3, label=f"{name}\n{'validation' if key.startswith('val') else 'training'}")
    for boundary in sorted(boundaries):
        axis.axvline(boundary, color="gray", linestyle=":", linewidth=1)
    axis.set_xlabel("epoch (all phases in a row)" if boundaries else "epoch")
    whole_number_ticks(axis)
    axis.set_ylabel("accuracy")
    axis.set_title(f"{report.entry.id}: learning curves")
    legend(axis)
    return figure


def _setting(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(params.items()))


def chapter_figures(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """(caption, Figure) of the chapter's own figures for this entry: those its series (or results) hold."""
    return [drawn for draw in CHAPTER_FIGURES for drawn in draw(store, report, others)]


def _activation_curves(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """The chapter's activation functions, with SELU's and ELU's floors."""
    from trainwell.figures import legend

    found = []
    for data in first_series(store, report, "activation_curves")[:1]:
        figure, (axis,) = new_axes()
        for name, values in data.items():
            if name != "z":
                axis.plot(data["z"], values, label=name, linewidth=1.8)
        axis.axhline(-1.0, color="gray", linestyle=":", linewidth=1)
        axis.axhline(-1.7581, color="gray", linestyle="--", linewidth=1)
        axis.set_ylim(-2.2, 2.5)
        axis.set_xlabel("z")
        legend(axis)
        axis.set_title("activation functions (dotted: -1, dashed: -1.758)")
        found.append(("The chapter's activation curves.", figure))
    return found


def _selu_depth(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """SELU's per-layer mean and std through 1,000 layers, one line per seed."""
    from trainwell.figures import legend, whole_number_ticks

    found = []
    depth = first_series(store, report, "selu_depth")
    if depth:
        figure, (axis,) = new_axes()
        for i, data in enumerate(depth):
            axis.plot(data["layer"], data["mean"], color="tab:blue", alpha=0.8, linewidth=1, label="mean" if not i else None)
            axis.plot(data["layer"], data["std"], color="tab:orange", alpha=0.8, linewidth=1, label="std" if not i else None)
        axis.axhspan(0.83, 1.0, color="tab:orange", alpha=0.1, label="book's std\nrange")
        axis.axhspan(-0.02, 0.05, color="tab:blue", alpha=0.1, label="book's mean\nrange")
        axis.set_xlabel("layer")
        whole_number_ticks(axis)
        axis.set_title("SELU through 1,000 layers: per-layer mean and std (one line per seed)")
        legend(axis)
        found.append(("Self-normalization: the signal keeps mean ~0 and std ~1 at every depth.", figure))
    return found


def _schedule(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """The learning rate at each step, as the run used it."""
    from trainwell.figures import whole_number_ticks

    found = []
    lrs = first_series(store, report, "lr")
    if lrs:
        figure, (axis,) = new_axes()
        axis.plot(lrs[0]["step"], lrs[0]["value"], color="tab:blue", linewidth=1.5)
        axis.set_xlabel("step")
        whole_number_ticks(axis)
        axis.set_ylabel("learning rate")
        axis.set_title(f"{report.entry.id}: the rate at each step (seed {report.runs[0]['seed']})")
        found.append(("The learning-rate schedule as the run used it.", figure))
    return found


def _lr_finder(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """The LR finder's sweep and its suggestion."""
    from trainwell.figures import legend

    found = []
    for data in first_series(store, report, "lr_find")[:1]:
        figure, (axis,) = new_axes()
        axis.plot(data["lrs"], data["losses"], color="tab:blue", alpha=0.3, linewidth=1, label="loss")
        axis.plot(data["lrs"], data["smoothed"], color="tab:blue", linewidth=2, label="smoothed loss")
        axis.axvline(data["suggestion"], color="tab:red", linestyle="--", label=f"suggestion\n{data['suggestion']:.3g}")
        axis.set_xscale("log")
        finite = [v for v in data["smoothed"] if math.isfinite(v)]
        if finite:
            axis.set_ylim(min(finite) * 0.9, max(finite[0] * 1.5, min(finite) * 2))
        axis.set_xlabel("learning rate (log scale)")
        axis.set_ylabel("training loss")
        axis.set_title("LR finder")
        legend(axis)
        found.append(("The LR finder: the loss falls, then shoots up as the rate grows.", figure))
    return found


def _mc_dropout(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """MC dropout's spread over the test set, and one image the passes disagree on."""
    from trainwell.figures import legend

    found = []
    for data in first_series(store, report, "mc_dropout")[:1]:
        figure, axes = new_axes(2, width=10)
        axes[0].hist(data["spread"], bins=40, color="tab:blue")
        axes[0].set_xlabel("largest per-class std over 100 passes")
        axes[0].set_ylabel("test images")
        axes[0].set_title("MC dropout spread")
        classes = list(range(len(data["plain"])))
        axes[1].bar([c - 0.2 for c in classes], data["plain"], width=0.4, label="one deterministic\npass")
        axes[1].bar([c + 0.2 for c in classes], data["mc_mean"], width=0.4, yerr=data["mc_std"],
                    label="MC mean ± std")
        axes[1].set_xticks(classes)
        axes[1].set_xlabel("class")
        axes[1].set_title(f"test image {data['image']} (label {data['label']})")
        legend(axes[1])
        found.append(("MC dropout: the spread over the test set, and one image the plain model is sure of "
                      "while the stochastic passes disagree.", figure))
    return found


def _search(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """The randomized search: each candidate's cross-validated accuracy."""
    from trainwell.figures import legend

    found = []
    for data in first_series(store, report, "search")[:1]:
        figure, (axis,) = new_axes()
        lrs = [c["params"]["lr"] for c in data["candidates"]]
        scores = [c["score"] for c in data["candidates"]]
        axis.scatter(lrs, scores, color="tab:blue", label="a candidate")
        best = data["best"]
        axis.scatter([best["params"]["lr"]], [best["score"]], color="tab:red", s=80, label="the best")
        axis.set_xscale("log")
        axis.set_xlabel("learning rate")
        axis.set_ylabel("mean cross-validation accuracy")
        legend(axis)
        axis.set_title("randomized search")
        found.append((f"Each candidate's cross-validated accuracy; best: {_setting(best['params'])}.", figure))
    return found


def _transfer_ratio(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """The transfer error-rate ratio: model B against B on A, trainwell's and the book's."""
    found = []
    if report.entry.id == "transfer_b_on_a" and report.results and "transfer_model_b" in others and others["transfer_model_b"].results:
        error_b = [1 - r["test_accuracy"] for r in others["transfer_model_b"].results]
        error_ba = [1 - r["test_accuracy"] for r in report.results]
        mean_b, mean_ba = sum(error_b) / len(error_b), sum(error_ba) / len(error_ba)
        figure, (axis,) = new_axes(width=5.5)
        axis.bar(["model B\n(scratch)", "B on A"], [mean_b, mean_ba], color=["tab:gray", "tab:green"])
        axis.bar(["book B", "book\nB on A"], [1 - 0.9705, 1 - 0.9925], color=["silver", "lightgreen"])
        ratio = mean_b / mean_ba if mean_ba > 0 else math.inf
        axis.set_ylabel("test error rate")
        axis.set_title(f"error-rate ratio: trainwell {ratio:.2f}x, book {(1 - 0.9705) / (1 - 0.9925):.2f}x")
        found.append(("Transfer learning: test error rates of model B and of B on A.", figure))
    return found


CHAPTER_FIGURES = (_activation_curves, _selu_depth, _schedule, _lr_finder, _mc_dropout, _search, _transfer_ratio)


def spread_figures(report: EntryReport) -> list[tuple[str, Any]]:
    """For a figure judged by its spread: one dot per seed (last epoch; best epoch below), the
    seeds' range shaded and the book's value as a line, so the verdict can be seen."""
    from trainwell.figures import legend

    judged = [o for o in report.outcomes if o.by_spread and o.values]
    best = {o.target.metric.split(",")[0]: o for o in report.outcomes if o.status == "shown"}
    drawn = []
    for outcome in judged:
        rows = [("last epoch", outcome.values)]
        if outcome.target.metric in best:
            rows.append(("best epoch", best[outcome.target.metric].values))
        figure, (axis,) = new_axes(height=1.2 + 0.55 * len(rows))
        low, high = outcome.band
        axis.axvspan(low, high, color="tab:blue", alpha=0.1, label="seeds' range\n(last epoch)")
        for y, (_, values) in enumerate(rows):
            axis.scatter(values, [y] * len(values), color="tab:blue", alpha=0.7, s=28,
                         label="a seed" if y == 0 else None)
        axis.axvline(outcome.target.book, color="tab:red", linewidth=1.5, label=f"book {outcome.target.book:g}")
        axis.set_yticks(range(len(rows)), [name for name, _ in rows])
        axis.set_ylim(-0.6, len(rows) - 0.4)
        axis.set_xlabel(outcome.target.metric)
        legend(axis)
        drawn.append((f"The book's figure against trainwell's {len(outcome.values)} seeds: each dot is one seed's "
                      f"{outcome.target.metric} (at the last epoch, and at its best epoch); the verdict is "
                      f"{verdict(outcome)}, the book's value against the seeds' range.", figure))
    return drawn


def figures(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """(caption, Figure) of every figure the report draws for this entry: the seeds' spread and
    the learning curves first."""
    curves = learning_curves_figure(store, report, others)
    return spread_figures(report) + (
        [("Learning curves (mean over seeds; thin lines: each seed).", curves)] if curves is not None else []) \
        + chapter_figures(store, report, others)
