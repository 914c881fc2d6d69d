"""How good are a classifier's probabilities? NLL, Brier score, calibration error, reliability diagram;
and MC dropout (``mc_predict``), which makes them better and tells how unsure the model is.

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

import contextlib
import itertools
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

from trainwell.checks import check_integer, check_seed
from trainwell.data.arrays import as_tensor, model_dtype, model_inputs, output_shape
from trainwell.data.streams import batch_parts, is_stream, ordered_batches
from trainwell.errors import ArrayError, ConfigError
from trainwell.figures import LEGEND_FONT, check_figure_path, new_figure, save_figure
from trainwell.model.losses import final_activation

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
    check_integer(bins, "bins: must be a positive integer", minimum=1)
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


# ------------------------------------------------------------ MC dropout
# Monte-Carlo dropout (Gal & Ghahramani, 2016) keeps dropout active at prediction time and averages many
# stochastic passes: better probabilities, and their spread is the model's uncertainty.

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class MCPrediction(NamedTuple):
    """What :func:`mc_predict` returns, per instance (all on the CPU)."""

    mean: torch.Tensor     # (n, classes): the mean of the sampled probabilities
    std: torch.Tensor      # (n, classes): their standard deviation over the samples
    entropy: torch.Tensor  # (n,): the predictive entropy of the mean, in nats


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode everywhere except dropout layers, which sample; restored on exit.

    BatchNormalization stays in evaluation mode, so it uses (and never updates) its
    moving statistics.
    """
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        for module in model.modules():
            if isinstance(module, DROPOUT_TYPES):
                module.train()
        yield model
    finally:
        for module, training in modes.items():
            module.training = training


# MC dropout's samples per instance: each pass holds samples x (a chunk of) the inputs, and the
# estimate's error shrinks as 1/sqrt(samples): the chapter's 100 are plenty, 10,000 a generous cap.
MAX_MC_SAMPLES = 10_000


def mc_predict(model: nn.Module, x: Any, *, samples: int = 100, batch_size: int = 32768,
               seed: int | None = None) -> MCPrediction:
    """Monte-Carlo dropout: ``samples`` stochastic passes with only dropout active.

    Instances are repeated ``samples`` times inside one forward pass of about
    ``batch_size`` rows, so 100 samples cost a few large passes rather than 100 Python
    loops over the data. A model ending in softmax gives probabilities as they are;
    a sigmoid with one unit gives two columns (``1 - p``, ``p``); any other output is
    taken as logits and goes through a softmax. ``seed`` makes the masks repeatable
    without touching the global random state. ``x``: an array, or a torch Dataset or
    DataLoader whose items are ``(x, y)`` or ``x`` alone, read a batch at a time.

    >>> from trainwell.model.layers import build_model, Dense, Dropout
    >>> model = build_model([Dropout(0.5), Dense(3, activation="softmax")], input_shape=(4,))
    >>> result = mc_predict(model, torch.randn(5, 4), samples=10, seed=0)
    >>> result.mean.shape, result.std.shape, result.entropy.shape
    (torch.Size([5, 3]), torch.Size([5, 3]), torch.Size([5]))
    """
    check_integer(samples, f"samples: must be an integer from 1 to {MAX_MC_SAMPLES:,}", minimum=1,
                  maximum=MAX_MC_SAMPLES, shown=_huge_shown)
    if seed is not None:
        check_seed(seed)
    check_integer(batch_size, "batch_size: must be a positive integer", minimum=1)
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    chunk = max(1, batch_size // samples)
    chunks = _input_chunks(model, x, chunk, device)
    to_probabilities = _output_to_probabilities(model)
    means, stds = [], []
    rng_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices, enabled=seed is not None), torch.no_grad(), \
            mc_dropout_mode(model):
        if seed is not None:
            torch.manual_seed(seed)
        for xb in chunks:
            xb = xb.to(device)
            repeated = xb.unsqueeze(0).expand(samples, *xb.shape).reshape(samples * len(xb), *xb.shape[1:])
            probabilities = to_probabilities(model(repeated)).reshape(samples, len(xb), -1).double()
            means.append(probabilities.mean(dim=0).float().cpu())
            stds.append(probabilities.std(dim=0, correction=0).float().cpu())
    mean = torch.cat(means) if means else torch.empty(0)
    return MCPrediction(mean=mean, std=torch.cat(stds) if stds else torch.empty(0), entropy=entropy(mean))


def _input_chunks(model: nn.Module, x: Any, chunk: int, device: torch.device) -> Iterator[torch.Tensor]:
    """The inputs ``x`` in pieces of at most ``chunk`` rows, checked (dtype, values, fit to the model) before
    the first is given: arrays at once, a Dataset or DataLoader a batch at a time (its items ``(x, y)`` or ``x``)."""
    dtype, check = model_dtype(model), lambda two, what: output_shape(
        model, two, what, forward=lambda batch: _eval_forward(model, batch.to(device)))
    if not is_stream(x):
        inputs = model_inputs(x, dtype=dtype, what="x")
        check(inputs, "x")
        return (inputs[start:start + chunk] for start in range(0, len(inputs), chunk))
    batches = iter(ordered_batches(x, chunk, "x"))
    first = next(batches, None)
    if first is None:
        raise ArrayError("x: no samples")

    def pieces() -> Iterator[torch.Tensor]:
        for number, batch in enumerate(itertools.chain([first], batches)):
            what = f"x batch {number + 1}"
            inputs = model_inputs(batch_parts(batch, what, targets=False)[0], dtype=dtype, what=what)
            if number == 0:  # before any MC pass: the check runs in evaluation mode
                check(inputs, what)
            yield from (inputs[start:start + chunk] for start in range(0, len(inputs), chunk))

    stream = pieces()
    return itertools.chain([next(stream)], stream)


def _huge_shown(value: Any) -> str:
    return repr(value if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer")


def _eval_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's outputs in evaluation mode, without gradients (its mode restored after)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)


def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy ``-sum p log p`` of each row, in nats (``0 log 0 = 0``).

    >>> entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    tensor([0.6931, 0.0000])
    """
    # clamp + 0.0: never a rounding-negative value, nor -0.0, for a one-hot row
    return (-torch.special.xlogy(probabilities, probabilities).sum(dim=-1)).clamp(min=0.0) + 0.0


def _output_to_probabilities(model: nn.Module):
    ending = final_activation(model)
    if ending == "sigmoid":
        return lambda out: torch.cat([1 - out, out], dim=-1) if out.shape[-1] == 1 else out
    if ending == "softmax":
        return lambda out: out
    return lambda out: torch.softmax(out, dim=-1)
