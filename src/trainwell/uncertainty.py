"""How good are a classifier's probabilities? NLL, Brier score, calibration error, reliability diagram.

Accuracy only looks at the top class. These metrics judge the probabilities
themselves, which is what MC dropout improves (the chapter: "it provides a much better
measure of the model's uncertainty"):

* negative log-likelihood: the mean of ``-log p(true class)``, clipped at 1e-7 as Keras'
  cross-entropy does, so one confident mistake costs about 16 rather than infinity;
* Brier score: the mean over instances of ``sum_k (p_k - onehot_k)**2`` (Brier's
  original multi-class form, between 0 and 2);
* expected calibration error (Guo et al., 2017): instances binned by confidence (the top
  probability) into 15 equal-width bins; the bin-size-weighted mean of
  ``|accuracy - mean confidence|`` per bin.

All take probabilities of shape ``(n, classes)`` and integer labels ``(n,)``.

>>> p = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> y = torch.tensor([0, 1, 1])
>>> round(negative_log_likelihood(p, y), 4), round(brier_score(p, y), 4)
(0.4149, 0.2733)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from trainwell.data.arrays import as_tensor
from trainwell.errors import ConfigError

CLIP = 1e-7
ECE_BINS = 15


def _tensors(probabilities: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    p = as_tensor(probabilities, "probabilities")
    y = as_tensor(labels, "labels", expected="class indices 0, 1, ...").reshape(-1).long()
    if p.dim() != 2 or len(p) != len(y) or len(y) == 0:
        raise ConfigError(f"probabilities of shape (n, classes) and n labels are needed, got shapes "
                          f"{tuple(p.shape)} and {tuple(y.shape)}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ConfigError(f"labels must be classes 0..{p.shape[1] - 1}, got {int(y.min())}..{int(y.max())}")
    return p.double(), y


def accuracy(probabilities: Any, labels: Any) -> float:
    """The share of instances whose most probable class is the true one."""
    p, y = _tensors(probabilities, labels)
    return float((p.argmax(dim=1) == y).double().mean())


def negative_log_likelihood(probabilities: Any, labels: Any) -> float:
    """Mean ``-log p(true class)``, probabilities clipped to ``[1e-7, 1 - 1e-7]`` (Keras' epsilon)."""
    p, y = _tensors(probabilities, labels)
    return float(-p.gather(1, y[:, None]).clamp(CLIP, 1 - CLIP).log().mean())


def brier_score(probabilities: Any, labels: Any) -> float:
    """Mean squared distance between the probabilities and the one-hot labels, summed over classes.

    >>> brier_score(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    2.0
    """
    p, y = _tensors(probabilities, labels)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).double()
    return float((p - onehot).square().sum(dim=1).mean())


def calibration_bins(probabilities: Any, labels: Any, *, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per confidence bin ``(lo, hi]``: edges, instance count, accuracy and mean confidence.

    Empty bins have count 0 and nan accuracy and confidence.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ConfigError(f"bins: must be a positive integer, got {bins!r}")
    p, y = _tensors(probabilities, labels)
    confidence, predicted = p.max(dim=1)
    correct = (predicted == y).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    # bucketize(right=False) puts c in bin i when edges[i] < c <= edges[i+1]: bins are (lo, hi]
    index = (torch.bucketize(confidence, edges) - 1).clamp(0, bins - 1)
    count = torch.bincount(index, minlength=bins).double()
    hits = torch.bincount(index, weights=correct, minlength=bins)
    sure = torch.bincount(index, weights=confidence, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"edges": edges.numpy(), "count": count.numpy().astype(np.int64),
                "accuracy": (hits / count).numpy(), "confidence": (sure / count).numpy()}


def expected_calibration_error(probabilities: Any, labels: Any, *, bins: int = ECE_BINS) -> float:
    """``sum_b (n_b / n) |accuracy_b - confidence_b|`` over equal-width confidence bins (15 by default).

    >>> p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    >>> round(expected_calibration_error(p, torch.tensor([0, 1, 0, 0])), 4)   # |0.5-0.9|/2 + |1-0.6|/2
    0.4
    """
    table = calibration_bins(probabilities, labels, bins=bins)
    used = table["count"] > 0
    weights = table["count"][used] / table["count"].sum()
    return float(np.sum(weights * np.abs(table["accuracy"][used] - table["confidence"][used])))


def calibration_report(probabilities: Any, labels: Any, *, bins: int = ECE_BINS) -> dict[str, float]:
    """Accuracy, NLL, Brier score and ECE in one table.

    >>> sorted(calibration_report(torch.tensor([[0.7, 0.3]]), torch.tensor([0])))
    ['accuracy', 'brier', 'ece', 'nll']
    """
    return {"accuracy": accuracy(probabilities, labels),
            "nll": negative_log_likelihood(probabilities, labels),
            "brier": brier_score(probabilities, labels),
            "ece": expected_calibration_error(probabilities, labels, bins=bins)}


def reliability_diagram(predictions: Mapping[str, Any], labels: Any, path: str | os.PathLike, *,
                        bins: int = ECE_BINS) -> Path:
    """Write :func:`reliability_figure`, atomically, in the format the file name's suffix says
    (PNG, JPEG, PDF, SVG or EPS)."""
    from trainwell.plots import check_figure_path, save_figure

    if not predictions:
        raise ConfigError("reliability_diagram: no predictions to draw")
    target = check_figure_path(path, what="reliability diagram")
    return save_figure(reliability_figure(predictions, labels, bins=bins), target, dpi=110)


def reliability_figure(predictions: Mapping[str, Any], labels: Any, *, bins: int = ECE_BINS):
    """One reliability diagram per set of predictions, side by side.

    ``predictions`` maps a title (e.g. "deterministic", "MC dropout (100)") to
    probabilities. Each panel shows the accuracy of each confidence bin as a bar
    against the diagonal of perfect calibration, the gap shaded, the share of
    instances per bin underneath, and the ECE in the title.
    """
    from trainwell.plots import LEGEND_FONT, new_figure

    figure, axes = new_figure(2, len(predictions), width=max(4.2 * len(predictions), 6.0), height=5.8,
                              sharex=True, height_ratios=[3, 1])
    for column, (title, probabilities) in enumerate(predictions.items()):
        table = calibration_bins(probabilities, labels, bins=bins)
        ece = expected_calibration_error(probabilities, labels, bins=bins)
        lo, hi = table["edges"][:-1], table["edges"][1:]
        width, centers = hi - lo, (lo + hi) / 2
        used = table["count"] > 0
        top, bottom = axes[0, column], axes[1, column]
        top.bar(centers[used], table["accuracy"][used], width=width[used], color="#4c72b0", edgecolor="white",
                label="accuracy")
        # the gap each bin adds to the ECE: between its accuracy and its mean confidence
        accuracy_, confidence_ = table["accuracy"][used], table["confidence"][used]
        top.bar(centers[used], np.abs(accuracy_ - confidence_), bottom=np.minimum(accuracy_, confidence_),
                width=width[used], facecolor="none", edgecolor="#c44e52", hatch="///", linewidth=1,
                label="gap to mean confidence")
        top.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=1, label="perfect calibration")
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title}\nECE = {ece:.4f}")
        bottom.bar(centers, table["count"] / table["count"].sum(), width=width, color="0.55", edgecolor="white")
        bottom.set(xlim=(0, 1), xlabel="confidence (top probability)", ylabel="share")
    handles, names = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncol=3, fontsize=LEGEND_FONT, frameon=False)
    return figure
