"""What every callback builds on: the :class:`Callback` hooks, the :class:`Monitor` of a logged figure
(what ReduceLROnPlateau, EarlyStopping and Checkpoint watch), and the loop's helpers ``overrides``
and ``format_logs``.

Subclass :class:`Callback` and override only the hooks you need; each receives the
:class:`~trainwell.train.trainer.Trainer` (``trainer.model``, ``trainer.optimizer``,
``trainer.history``, ``trainer.epoch``, ``trainer.step``...). A callback asks the loop
to stop by setting ``trainer.stop_training = True``. Batch hooks are only called for
callbacks that override them, so the per-step path stays cheap. A callback that needs
autograd's step on some steps (hooks, gradients in ``.grad``) says so through
:meth:`Callback.needs_autograd`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainwell.checks import check_choice, check_number
from trainwell.errors import ConfigError
from trainwell.metrics import direction

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


class Callback:
    """Base class with a no-op for every hook.

    ``affects_fit = False`` marks a callback that only reports (shows progress, writes a
    log): it changes nothing the fit computes and keeps no state, so a saved training
    state neither records it nor requires it, and a fit resumes whether or not it is
    there (``trainwell train -q`` after a run without it). Any other callback may steer
    the fit, so resuming requires the same ones (see ``Trainer._restore``).

    ``rank_zero_only = True`` marks a callback that writes files or prints (loggers, checkpoints,
    progress): under torchrun the Trainer runs it on rank 0 alone, in one process as always. Such a
    callback must not change the fit (weights, ``stop_training``, rates): the other ranks would not,
    and would fall out of step. Every other callback runs on every rank and decides from what is
    the same on every rank (the epoch's logs; a batch's loss through :mod:`trainwell.callbacks.ranks`).
    """

    affects_fit = True
    rank_zero_only = False

    def on_fit_begin(self, trainer: "Trainer") -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...
    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_begin(self, trainer: "Trainer", step: int) -> None: ...
    def on_batch_end(self, trainer: "Trainer", step: int) -> None: ...

    def needs_autograd(self, trainer: "Trainer", step: int) -> bool:
        """Whether training step ``step`` must run the autograd step rather than the fused one.

        Asked after ``on_batch_begin``, on each step the fused step (:mod:`trainwell.train.fused`)
        would otherwise take. Override it to return True on the steps where the callback
        reads what only autograd gives: hooks of its own, ``.grad`` of every parameter
        (the fused step with plain SGD stores no gradient), the autograd graph.
        """
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs to continue this callback exactly (counters, bests)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned."""


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` defines its own ``hook`` (so the loop must call it)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


def format_logs(logs: dict[str, Any]) -> str:
    """``loss: 0.4312 - accuracy: 0.8511 - ...`` as Keras prints an epoch."""
    parts = []
    for key, value in logs.items():
        if key in ("epoch", "time"):
            continue
        if isinstance(value, float):
            parts.append(f"{key}: {value:.4g}" if key == "lr" else f"{key}: {value:.4f}")
    return " - ".join(parts)


class Monitor:
    """One logged figure to watch and what counts as better: the piece ReduceLROnPlateau,
    EarlyStopping and Checkpoint share.

    ``mode`` is said, never guessed: "min" for losses, "max" for accuracies. A mode that
    contradicts a figure whose direction is known (:func:`trainwell.metrics.direction`: max for
    accuracy, top_k_accuracy, precision, recall, f1, auc, r2; min for loss, mae, rmse; their
    ``val_`` figures alike) is refused: ``Monitor("val_auc")`` needs ``mode="max"``. A value
    improves on the best so far only by more than ``min_delta``; nan never improves.

    >>> watch = Monitor("val_loss", mode="min", min_delta=0.01)
    >>> watch.update(0.50), watch.update(0.495), watch.update(0.48), watch.best
    (True, False, True, 0.48)
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min", min_delta: float = 0.0):
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"monitor: must be the name of a logged figure such as 'val_loss', got {monitor!r}")
        check_choice(mode, ("min", "max"), "mode: must be 'min' or 'max'")
        check_number(min_delta, "min_delta: must be a non-negative number", minimum=0)
        known = direction(monitor)
        if known is not None and mode != known:
            raise ConfigError(f"mode: {monitor!r} is better when {'higher' if known == 'max' else 'lower'}, "
                              f"so mode must be {known!r}, got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self.reset()

    def reset(self) -> None:
        self.best = float("inf") if self.mode == "min" else float("-inf")

    def value(self, logs: dict[str, Any]) -> float:
        """The watched figure in an epoch's logs; a ConfigError naming what is logged if it is absent."""
        if self.monitor not in logs:
            raise ConfigError(f"monitor: {self.monitor!r} is not logged; available: {', '.join(logs)} "
                              "(val_* figures need validation data)")
        return float(logs[self.monitor])

    def is_improvement(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float) -> bool:
        """Whether ``value`` improves on the best so far (which it then becomes)."""
        improved = self.is_improvement(value)
        if improved:
            self.best = value
        return improved


def monitored(watch: Monitor, logs: dict[str, Any], section: str) -> float:
    """The watched figure; an unknown key names the callback's config section."""
    try:
        return watch.value(logs)
    except ConfigError as error:
        raise ConfigError(f"{section}.{error}") from None
