"""The learning-rate finder: sweep the rate up exponentially, watch the loss, put everything back.

Train for a few hundred steps while the rate grows from ``min_lr`` to ``max_lr``
(the chapter: 1e-5 to 10 over one epoch at batch 128). The loss first falls, then,
once the rate is too large, shoots up; the sweep stops there (the smoothed loss above
``stop_factor`` times its minimum, or not finite). The model's weights, the
optimizer's state and the random number generators are restored afterwards, bit
for bit, so the sweep leaves no trace.

The suggestion is the rate at the lowest smoothed loss divided by 10: the chapter's
rule ("about 10 times lower than the turning point"), and more stable than picking
the steepest slope, which follows the noise of a single sweep.

>>> from trainwell.model.layers import build_model, Dense
>>> model = build_model([Dense(3, activation="softmax")], input_shape=(4,))
>>> x, y = torch.randn(512, 4), torch.randint(0, 3, (512,))
>>> result = find_lr(model, x, y, steps=40, batch_size=32, seed=0)
>>> 1e-5 <= result.suggestion <= 10 and len(result.lrs) == len(result.losses) <= 40
True
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainwell.callbacks import Callback
from trainwell.checks import check_integer, check_number
from trainwell.data.streams import is_stream, stream_length
from trainwell.errors import ConfigError
from trainwell.model.losses import Loss
from trainwell.optim import OptimizerFactory
from trainwell.schedules import Schedule, exponential

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


@dataclass
class LRFinderResult:
    """The sweep: each step's rate, raw loss and smoothed loss, and the suggested rate."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    min_loss_lr: float  # the rate at the lowest smoothed loss (the "turning point")
    stopped_early: bool  # the loss diverged before the last step

    def plot(self, path: str | os.PathLike) -> Path:
        """A PNG of loss against rate (log x axis) with the suggestion marked."""
        from trainwell.plots import plot_lr_find

        return plot_lr_find(self, path)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep(*, min_lr: float, max_lr: float, steps: int) -> Schedule:
    """The finder's schedule: ``min_lr`` at step 0 growing exponentially to ``max_lr`` at ``steps - 1``.

    >>> rates = sweep(min_lr=1e-5, max_lr=10, steps=7)
    >>> [f"{rates(t):.0e}" for t in range(7)]
    ['1e-05', '1e-04', '1e-03', '1e-02', '1e-01', '1e+00', '1e+01']
    """
    _check_sweep(min_lr=min_lr, max_lr=max_lr, steps=steps)
    return exponential(lr0=min_lr, s=steps - 1, rate=max_lr / min_lr)


def suggest_lr(lrs: list[float], smoothed: list[float]) -> tuple[float, float]:
    """(suggestion, turning point): the rate at the lowest smoothed loss, and a tenth of it.

    >>> suggest_lr([0.001, 0.01, 0.1, 1.0], [2.0, 1.0, 0.5, 9.0])
    (0.01, 0.1)
    """
    finite = [(loss, i) for i, loss in enumerate(smoothed) if math.isfinite(loss)]
    if not finite:
        raise ConfigError("lr_find: the loss was not finite at any step; lower min_lr")
    turning = lrs[min(finite)[1]]
    return max(turning / 10, lrs[0]), turning


def _check_sweep(*, min_lr: Any, max_lr: Any, steps: Any) -> None:
    for key, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        check_number(value, f"{key}: must be a positive number", above=0, below=math.inf)
    if max_lr <= min_lr:
        raise ConfigError(f"max_lr: must be above min_lr ({min_lr!r}), got {max_lr!r}")
    check_integer(steps, "steps: must be an integer of at least 2", minimum=2)


class _Recorder(Callback):
    """Reads each step's loss (one device sync per step, which the sweep needs) and stops on divergence."""

    def __init__(self, *, steps: int, stop_factor: float, smoothing: float):
        self.steps, self.stop_factor, self.smoothing = steps, stop_factor, smoothing
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.stopped_early = False
        self._average = 0.0

    def on_batch_end(self, trainer: "Trainer", step: int) -> None:
        loss = float(trainer.last_loss)
        self.lrs.append(trainer.history.steps["lr"][-1])
        self.losses.append(loss)
        # An exponential moving average, bias-corrected so the first steps are not pulled towards 0.
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** len(self.losses))
        self.smoothed.append(smoothed)
        best = min(self.smoothed)
        if not math.isfinite(smoothed) or smoothed > self.stop_factor * best:
            self.stopped_early = len(self.losses) < self.steps
            trainer.stop_training = True
        elif len(self.losses) >= self.steps:
            trainer.stop_training = True


#: The fewest steps a sweep takes by default: fewer rates than this cannot show where the loss turns.
MIN_DEFAULT_STEPS = 100


def find_lr(model: nn.Module, x: Any, y: Any = None, *, loss: str | Loss = "sparse_categorical_crossentropy",
            optimizer: str | Mapping[str, Any] | OptimizerFactory | torch.optim.Optimizer = "sgd",
            min_lr: float = 1e-5, max_lr: float = 10.0, steps: int | None = None, batch_size: int = 128,
            stop_factor: float = 4.0, smoothing: float = 0.98, clipping: Mapping[str, float | None] | None = None,
            device: str | torch.device | None = None, seed: int | None = None) -> LRFinderResult:
    """Sweep the learning rate exponentially from ``min_lr`` to ``max_lr`` over ``steps`` steps
    (default: one epoch of ``x`` at ``batch_size``, and at least :data:`MIN_DEFAULT_STEPS`: a small
    dataset is gone through several times, since a sweep of a dozen steps says nothing) and
    record the loss; then restore the model's
    weights, the optimizer's state and the random generators exactly as they were.

    ``optimizer`` is anything the Trainer takes; its own learning rate is overridden by the sweep.
    ``x`` may be a torch Dataset or DataLoader of ``(x, y)`` items instead of arrays (and no ``y``):
    the sweep draws its batches from it as ``Trainer.fit`` does (a DataLoader's own batch size).
    """
    check_integer(batch_size, "batch_size: must be a positive integer", minimum=1)
    if is_stream(x):
        steps_per_epoch = stream_length(x, "training data")
        steps_per_epoch = steps_per_epoch if isinstance(x, DataLoader) else -(-steps_per_epoch // batch_size)
    else:
        steps_per_epoch = -(-len(x) // batch_size)
    steps = max(steps_per_epoch, MIN_DEFAULT_STEPS) if steps is None else steps
    _check_sweep(min_lr=min_lr, max_lr=max_lr, steps=steps)
    check_number(stop_factor, "stop_factor: must be a number above 1", above=1)
    check_number(smoothing, "smoothing: must be a number in [0, 1)", minimum=0, below=1)

    from trainwell.train.trainer import Trainer

    saved = _Snapshot(model, optimizer if isinstance(optimizer, torch.optim.Optimizer) else None)
    recorder = _Recorder(steps=steps, stop_factor=float(stop_factor), smoothing=float(smoothing))
    try:
        rates = sweep(min_lr=min_lr, max_lr=max_lr, steps=steps)
        trainer = Trainer(model, loss=loss, optimizer=optimizer, schedule=rates, callbacks=[recorder], device=device,
                          seed=seed, **(clipping or {}))
        trainer.fit(x, y, epochs=-(-steps // steps_per_epoch), batch_size=batch_size, verbose=False)
    finally:
        saved.restore()
    suggestion, turning = suggest_lr(recorder.lrs, recorder.smoothed)
    return LRFinderResult(lrs=recorder.lrs, losses=recorder.losses, smoothed=recorder.smoothed,
                          suggestion=suggestion, min_loss_lr=turning, stopped_early=recorder.stopped_early)


class _Snapshot:
    """Copies of everything a sweep changes: weights and buffers, optimizer state, RNG states, device, mode."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None):
        self.model, self.optimizer = model, optimizer
        self.weights = copy.deepcopy(model.state_dict())
        self.optimizer_state = None if optimizer is None else copy.deepcopy(optimizer.state_dict())
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.device = next(iter(model.parameters()), torch.empty(0)).device
        self.training = model.training

    def restore(self) -> None:
        self.model.to(self.device)
        self.model.load_state_dict(self.weights)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(self.optimizer_state)
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        self.model.train(self.training)

