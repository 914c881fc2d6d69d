"""Metrics by name, computed on a whole epoch's (or set's) predictions with scikit-learn.

``accuracy``, ``top_k_accuracy`` (k = 5, as Keras' sparse top-k; ``top_3_accuracy`` names
another k), ``precision``, ``recall``, ``f1``, ``auc`` for classification losses, and ``mae``,
``rmse``, ``r2`` for regression losses. Each is computed once on all the samples, never as a
mean of per-batch values (the mean of per-batch AUCs is not the AUC of the epoch).

Binary (one sigmoid unit, binary_crossentropy): the positive class is 1, a sample is
predicted positive when its logit is above 0 (probability above 0.5), and soft labels count
as 1 from 0.5 up; AUC ranks the probabilities. Several sigmoid units are several labels:
each metric is the macro average over them. Multiclass (softmax: sparse or categorical
cross-entropy): precision, recall and f1 are macro averages over the classes the model has
(a class never predicted counts 0), AUC is one-vs-rest, macro averaged. A figure that is not
defined on the set (AUC where only one class is present) is nan. Regression with several
outputs: the uniform average over the outputs (scikit-learn's default).

scikit-learn computes them because it is already a dependency and its metrics are the
reference implementations these are checked against; torchmetrics would add a package
and keep state on the device that an epoch-end computation does not need.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Sequence

import numpy as np
import torch

from trainwell.errors import ConfigError
from trainwell.model.losses import Loss

CLASSIFICATION = ("accuracy", "top_k_accuracy", "precision", "recall", "f1", "auc")
REGRESSION = ("mae", "rmse", "r2")
METRICS = CLASSIFICATION + REGRESSION
TOP_K = 5  # Keras' default k
_TOP_K_NAME = re.compile(r"top_([1-9][0-9]*)_accuracy")

# What counts as better, for monitors and tune's direction; "loss" (and data_loss) are minimized.
HIGHER_IS_BETTER = ("accuracy", "top_k_accuracy", "precision", "recall", "f1", "auc", "r2")
LOWER_IS_BETTER = ("loss", "data_loss", "mae", "rmse")


def base_name(metric: str) -> str:
    """``top_3_accuracy`` -> ``top_k_accuracy``; any other name as it is."""
    return "top_k_accuracy" if _TOP_K_NAME.fullmatch(metric) else metric


def top_k(metric: str) -> int:
    match = _TOP_K_NAME.fullmatch(metric)
    return int(match.group(1)) if match else TOP_K


def check_metrics(metrics: Sequence[str], loss: Loss | None = None) -> tuple[str, ...]:
    """The metric names, checked: known (one ConfigError listing the allowed ones) and, given the
    ``loss``, fit for it (no auc on a regression loss, no r2 on a classification one)."""
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise ConfigError(f"metrics: expected a list of metric names, got {metrics!r}")
    for metric in metrics:
        if not isinstance(metric, str) or base_name(metric) not in METRICS:
            raise ConfigError(f"metrics: unknown metric {metric!r}; allowed: {', '.join(METRICS)} "
                              "(top_k_accuracy is top-5; top_3_accuracy names another k)")
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"metrics: {list(metrics)} names a metric twice")
    if loss is not None:
        kind = REGRESSION if loss.regression else CLASSIFICATION
        for metric in metrics:
            if base_name(metric) not in kind:
                what = "a regression" if loss.regression else "a classification"
                raise ConfigError(f"metrics: {metric!r} does not fit the loss {loss.name}, {what} loss; "
                                  f"its metrics: {', '.join(kind)}")
            if base_name(metric) == "top_k_accuracy" and not loss.classes_per_output:
                raise ConfigError(f"metrics: {metric!r} needs a score per class (a softmax loss); the loss "
                                  f"{loss.name} has one sigmoid per output unit")
    return tuple(metrics)


def default_metrics(loss: Loss) -> tuple[str, ...]:
    """The metrics of a Trainer that names none: accuracy for classification, none for regression (as Keras' loss)."""
    return () if loss.regression else ("accuracy",)


def needs_outputs(metrics: Sequence[str]) -> bool:
    """Whether any metric needs the epoch's outputs (all but accuracy, which a meter counts on the device)."""
    return any(metric != "accuracy" for metric in metrics)


def direction(figure: str) -> str | None:
    """"max" or "min" for a logged figure (``val_auc``, ``test_rmse``, ``loss``), None when not known."""
    name = base_name(re.sub(r"^(val_|test_)", "", figure))
    if name in HIGHER_IS_BETTER:
        return "max"
    if name in LOWER_IS_BETTER:
        return "min"
    return None


def compute(metrics: Sequence[str], loss: Loss, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Each metric (but accuracy) of ``logits`` against ``targets`` (the loss's own), on all the samples at once."""
    wanted = [metric for metric in metrics if metric != "accuracy"]
    if not wanted:
        return {}
    outputs = logits.detach().to("cpu", torch.float64)
    if loss.regression:
        truth = targets.detach().to("cpu", torch.float64).reshape(outputs.shape).numpy()
        return {metric: _regression_metric(metric, truth, outputs.numpy()) for metric in wanted}
    probabilities = loss.probabilities(outputs).numpy()
    if loss.binary:
        truth = (targets.detach().cpu().reshape(outputs.shape) >= 0.5).to(torch.long).numpy()
        predicted = (outputs > 0).to(torch.long).numpy()
        if truth.shape[1] == 1:
            truth, predicted, probabilities = truth[:, 0], predicted[:, 0], probabilities[:, 0]
    else:
        truth = loss.true_classes(targets.detach().cpu()).numpy()
        predicted = outputs.argmax(dim=-1).numpy()
    return {metric: _classification_metric(metric, truth, predicted, probabilities, binary=loss.binary)
            for metric in wanted}


def _classification_metric(metric: str, truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray, *,
                           binary: bool) -> float:
    from sklearn import metrics as sk

    name = base_name(metric)
    labels = list(range(probabilities.shape[1])) if probabilities.ndim == 2 and not binary else None
    average = "binary" if truth.ndim == 1 and binary else "macro"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k >= classes (a perfect score), a class absent from the set
        if name == "top_k_accuracy":  # two classes: scikit-learn takes the second class's probability
            scores = probabilities[:, 1] if len(labels) == 2 else probabilities
            return float(sk.top_k_accuracy_score(truth, scores, k=min(top_k(metric), len(labels)), labels=labels))
        if name in ("precision", "recall", "f1"):
            score = {"precision": sk.precision_score, "recall": sk.recall_score, "f1": sk.f1_score}[name]
            return float(score(truth, predicted, average=average, labels=labels, zero_division=0))
        try:  # auc
            if labels is None:
                return float(sk.roc_auc_score(truth, probabilities, average="macro"))
            if len(labels) == 2:
                return float(sk.roc_auc_score(truth, probabilities[:, 1]))
            return float(sk.roc_auc_score(truth, probabilities, multi_class="ovr", average="macro", labels=labels))
        except ValueError:  # only one class in the set: AUC is not defined there
            return math.nan


def _regression_metric(metric: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn import metrics as sk

    if metric == "mae":
        return float(sk.mean_absolute_error(truth, predicted))
    if metric == "rmse":  # sklearn's root_mean_squared_error is 1.4+; this is the same for one output
        return float(np.sqrt(sk.mean_squared_error(truth, predicted, multioutput="raw_values")).mean())
    if len(truth) < 2:
        return math.nan
    return float(sk.r2_score(truth, predicted))
