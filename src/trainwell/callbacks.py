"""Callbacks: code that runs at clear points of training, with the trainer's state at hand.

Subclass :class:`Callback` and override only the hooks you need; each receives the
:class:`~trainwell.train.trainer.Trainer` (``trainer.model``, ``trainer.optimizer``,
``trainer.history``, ``trainer.epoch``, ``trainer.step``...). A callback asks the loop
to stop by setting ``trainer.stop_training = True``. Batch hooks are only called for
callbacks that override them, so the per-step path stays cheap. A callback that needs
autograd's step on some steps (hooks, gradients in ``.grad``) says so through
:meth:`Callback.needs_autograd`.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trainwell.errors import ConfigError, TrainingDiverged

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


class Callback:
    """Base class with a no-op for every hook.

    ``affects_fit = False`` marks a callback that only reports (shows progress, writes a
    log): it changes nothing the fit computes and keeps no state, so a saved training
    state neither records it nor requires it, and a fit resumes whether or not it is
    there (``trainwell train -q`` after a run without it). Any other callback may steer
    the fit, so resuming requires the same ones (see ``Trainer._restore``).
    """

    affects_fit = True

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


class ProgressDisplay(Callback):
    """One line per epoch (like Keras' ``verbose=2``) and a live bar on a terminal.

    The bar's loss is read from the device at most ``refresh`` times a second, so the
    display does not force a host sync on every step.
    """

    affects_fit = False

    def __init__(self, *, live: bool | None = None, refresh: float = 5.0, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal if live is None else live
        self.interval = 1.0 / refresh
        self._progress: Progress | None = None
        self._task = None
        self._next_refresh = 0.0

    def on_fit_begin(self, trainer: "Trainer") -> None:
        if self.live:
            self._progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=True)
            self._progress.start()

    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task("", total=trainer.steps_per_epoch,
                                                 epoch=f"{epoch}/{trainer.epochs}", loss="")

    def on_batch_end(self, trainer: "Trainer", step: int) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self.interval
            loss = trainer.running_loss()
            self._progress.update(self._task, completed=trainer.step_in_epoch, loss=f"loss: {loss:.4f}")

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
        line = f"Epoch {epoch}/{trainer.epochs} - {logs.get('time', 0.0):.1f}s - {format_logs(logs)}"
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class HistoryLogger(Callback):
    """Writes the History to ``path`` (``.json`` or ``.csv``) after every epoch, atomically."""

    affects_fit = False

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not self.path.endswith((".json", ".csv")):
            from trainwell.errors import ConfigError
            raise ConfigError(f"history log {self.path!r}: the file name must end in .json or .csv")

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self.path.endswith(".json"):
            trainer.history.to_json(self.path)
        else:
            trainer.history.to_csv(self.path)


class Monitor:
    """One logged figure to watch and what counts as better: the piece ReduceLROnPlateau,
    EarlyStopping and Checkpoint share.

    ``mode`` is said, never guessed: "min" for losses, "max" for accuracies. A value
    improves on the best so far only by more than ``min_delta``; nan never improves.

    >>> watch = Monitor("val_loss", mode="min", min_delta=0.01)
    >>> watch.update(0.50), watch.update(0.495), watch.update(0.48), watch.best
    (True, False, True, 0.48)
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min", min_delta: float = 0.0):
        from trainwell.errors import ConfigError

        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"monitor: must be the name of a logged figure such as 'val_loss', got {monitor!r}")
        if mode not in ("min", "max"):
            raise ConfigError(f"mode: must be 'min' or 'max', got {mode!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ConfigError(f"min_delta: must be a non-negative number, got {min_delta!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self.reset()

    def reset(self) -> None:
        self.best = float("inf") if self.mode == "min" else float("-inf")

    def value(self, logs: dict[str, Any]) -> float:
        """The watched figure in an epoch's logs; a ConfigError naming what is logged if it is absent."""
        if self.monitor not in logs:
            from trainwell.errors import ConfigError

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


class ReduceLROnPlateau(Callback):
    """Performance scheduling: multiply the learning rate by ``factor`` once the monitored
    figure has not improved for ``patience`` epochs (Keras' callback, same defaults).

    It lowers ``trainer.lr_scale``, which the trainer multiplies the schedule's value by,
    so it combines with any schedule. After a reduction it waits ``cooldown`` epochs
    before counting again, and never takes the rate below ``min_lr``.
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        from trainwell.errors import ConfigError

        self.watch = Monitor(monitor, mode=mode, min_delta=min_delta)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ConfigError(f"factor: must be a number in (0, 1), got {factor!r}")
        for key, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key}: must be a non-negative integer (epochs), got {value!r}")
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or not min_lr >= 0:
            raise ConfigError(f"min_lr: must be a non-negative number, got {min_lr!r}")
        self.factor, self.patience, self.cooldown, self.min_lr = float(factor), patience, cooldown, float(min_lr)
        self.wait = self.cooldown_counter = 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.watch.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.watch.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]

    def on_fit_begin(self, trainer: "Trainer") -> None:
        self.watch.reset()
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        value = self.watch.value(logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.watch.update(value):
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                current = float(trainer.optimizer.param_groups[0]["lr"])
                if current > self.min_lr:
                    scheduled = current / trainer.lr_scale
                    trainer.lr_scale = max(current * self.factor, self.min_lr) / scheduled
                    self.cooldown_counter = self.cooldown
                    self.wait = 0



def _monitored(watch: Monitor, logs: dict[str, Any], section: str) -> float:
    """The watched figure; an unknown key names the callback's config section."""
    try:
        return watch.value(logs)
    except ConfigError as error:
        raise ConfigError(f"{section}.{error}") from None


def _count(value: Any, key: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return value


class EarlyStopping(Callback):
    """Stop once the monitored figure has not improved for ``patience`` epochs (Keras' callback).

    With ``restore_best_weights`` the model ends the fit with the weights (and
    BatchNormalization statistics) of its best epoch, whether the fit stopped early or
    ran to its last epoch; ``best_epoch`` and ``stopped_epoch`` say what happened.
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min", patience: int = 0, min_delta: float = 0.0,
                 restore_best_weights: bool = False):
        self.watch = Monitor(monitor, mode=mode, min_delta=min_delta)
        self.patience = _count(patience, "early_stopping.patience", minimum=0)
        if not isinstance(restore_best_weights, bool):
            raise ConfigError(f"early_stopping.restore_best_weights: must be true or false, got {restore_best_weights!r}")
        self.restore_best_weights = restore_best_weights
        self._reset()

    def on_fit_begin(self, trainer: "Trainer") -> None:
        self._reset()

    def _reset(self) -> None:
        self.watch.reset()
        self.wait = 0
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.restored = False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.watch.best, "wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.watch.best, self.wait = state["best"], state["wait"]
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        self.best_weights = state["best_weights"]

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self.watch.update(_monitored(self.watch, logs, "early_stopping")):
            self.wait, self.best_epoch = 0, epoch
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.best_weights is not None and self.best_epoch != trainer.epoch:
            trainer.model.load_state_dict(self.best_weights)
            self.restored = True
        self.best_weights = None  # a copy of the model is not worth keeping past the fit


def checkpoint_name(epoch: int) -> str:
    """``checkpoint-epoch007.safetensors``: names that sort in epoch order."""
    return f"checkpoint-epoch{epoch:03d}.safetensors"


class Checkpoint(Callback):
    """Save the model while it trains, so a long run can be resumed or rolled back.

    * every ``every`` epochs, ``checkpoint-epoch{N:03d}.safetensors``, keeping the last
      ``keep`` of them (all when None); ``every=0`` turns these off;
    * with ``save_best``, ``best.safetensors`` whenever ``monitor`` improves
      (``every=0, save_best=True`` is Keras' ``save_best_only``);
    * with ``save_final``, ``final.safetensors`` when fit ends.

    Files are trainwell model files (``save_model``; ``save_weights`` for a module not
    built from specs), written atomically, with ``info`` and ``extra`` (the data
    preparation) and the epoch, so ``trainwell evaluate`` reads them. Weights that are
    not finite are never written, so ``last_saved`` is always a good state.
    """

    def __init__(self, directory: str | os.PathLike, *, every: int = 1, keep: int | None = None,
                 save_best: bool = False, monitor: str = "val_loss", mode: str = "min", min_delta: float = 0.0,
                 save_final: bool = True, info: dict[str, Any] | None = None,
                 extra: dict[str, torch.Tensor] | None = None):
        from pathlib import Path

        self.directory = Path(directory)
        self.every = _count(every, "checkpoint.every", minimum=0)
        self.keep = None if keep is None else _count(keep, "checkpoint.keep", minimum=1)
        for key, value in (("save_best", save_best), ("save_final", save_final)):
            if not isinstance(value, bool):
                raise ConfigError(f"checkpoint.{key}: must be true or false, got {value!r}")
        self.save_best, self.save_final = save_best, save_final
        self.watch = Monitor(monitor, mode=mode, min_delta=min_delta)
        self.info, self.extra = dict(info or {}), dict(extra or {})
        self._reset()

    def on_fit_begin(self, trainer: "Trainer") -> None:
        self._reset()

    def _reset(self) -> None:
        self.watch.reset()
        self.written: list = []  # this fit's periodic files, oldest first (only these are ever deleted)
        self.last_saved = None
        self.best_path = None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.watch.best, "written": [str(p) for p in self.written],
                "last_saved": None if self.last_saved is None else str(self.last_saved),
                "best_path": None if self.best_path is None else str(self.best_path)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from pathlib import Path

        self.watch.best = state["best"]
        self.written = [Path(p) for p in state["written"]]
        self.last_saved = None if state["last_saved"] is None else Path(state["last_saved"])
        self.best_path = None if state["best_path"] is None else Path(state["best_path"])

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self.save_best and self.watch.update(_monitored(self.watch, logs, "checkpoint")):
            self.best_path = self._save(trainer, "best.safetensors", epoch) or self.best_path
        if self.every and epoch % self.every == 0:
            path = self._save(trainer, checkpoint_name(epoch), epoch)
            if path is not None:
                if path in self.written:
                    self.written.remove(path)
                self.written.append(path)
                while self.keep is not None and len(self.written) > self.keep:
                    self.written.pop(0).unlink(missing_ok=True)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.save_final:
            self._save(trainer, "final.safetensors", trainer.epoch)

    def _save(self, trainer: "Trainer", name: str, epoch: int):
        from trainwell.model.layers import ModelSpec
        from trainwell.model.saving import save_model, save_weights

        model = trainer.model
        state = [t for t in model.state_dict().values() if t.is_floating_point()]
        if state and not bool(torch.stack([torch.isfinite(t).all() for t in state]).all()):
            return None
        path = self.directory / name
        if isinstance(getattr(model, "spec", None), ModelSpec):
            save_model(model, path, info={**self.info, "epoch": epoch}, extra=self.extra)
        else:
            save_weights(model, path)
        self.last_saved = path
        return path


class TerminateOnNaN(Callback):
    """Stop at the first step whose loss is nan or infinite; fit then raises TrainingDiverged.

    The message names the step and epoch and the last good checkpoint a Checkpoint
    callback wrote. It reads the loss from the device after every step (one host sync
    per step, negligible on the CPU).
    """

    def on_batch_end(self, trainer: "Trainer", step: int) -> None:
        loss = trainer.last_loss
        if loss is None or bool(torch.isfinite(loss)):
            return
        trainer.stop_training = True
        saved = [c.last_saved for c in trainer.callbacks if isinstance(c, Checkpoint) and c.last_saved is not None]
        where = (f"the last good checkpoint is {saved[-1]}" if saved else
                 "no checkpoint was written (a Checkpoint callback, [callbacks.checkpoint], keeps one)")
        trainer.failure = TrainingDiverged(
            f"training diverged: the loss became {float(loss)} at step {step} (epoch {trainer.epoch}, batch "
            f"{trainer.step_in_epoch} of {trainer.steps_per_epoch}); {where}; try a lower learning rate or "
            "gradient clipping")
