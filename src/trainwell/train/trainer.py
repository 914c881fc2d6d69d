"""The one training loop: ``Trainer(model, ...).fit(x, y, epochs=...)`` returns a History.

Arrays held in memory are moved to the device once and batched by index slicing, so
a step costs what the model costs and no more: no per-sample Dataset calls, no host
sync per step (loss and accuracy accumulate on the device and are read once per
epoch, or when a progress display asks: :mod:`trainwell.train.meter`). A torch Dataset or
DataLoader streams instead, a batch at a time (:mod:`trainwell.train.streamed`).

One step: set the learning rate and momentum (:mod:`trainwell.train.rates`), batch-begin
callbacks, the fit's step (:mod:`trainwell.train.step`: forward, loss plus penalties,
backward, clipping, optimizer step, constraints; autograd's or the fused one), the
meter, batch-end callbacks, and a save every ``save_every_steps`` steps
(:mod:`trainwell.train.resume`). One epoch: the steps, then validation, then the record
into History, then the epoch-end callbacks, which may set ``stop_training``. What a fit
is made of (its batches, under torchrun this rank's share: :mod:`trainwell.train.batches`;
the outputs of frozen lowest layers, cached: :mod:`trainwell.train.frozen`) is built once
before its first step.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from trainwell.callbacks import Callback, ReduceLROnPlateau
from trainwell.checks import check_seed
from trainwell.errors import ConfigError
from trainwell.metrics import check_metrics, default_metrics
from trainwell.model.losses import Loss, get_loss, logits_model
from trainwell.model.synced_batchnorm import check_sync_batchnorm, synchronized_batchnorm
from trainwell.model.transfer import apply_frozen_modes
from trainwell.optim import OptimizerFactory, make_optimizer, momentum_setter
from trainwell.schedules import Schedule, check_schedule
from trainwell.train import distributed
from trainwell.train.compiled import check_compile
from trainwell.train.devices import move_to_rank_device, resolve_device
from trainwell.train.history import History
from trainwell.train.meter import Meter
from trainwell.train.precision import Precision, check_precision
from trainwell.train.inputs import checked_data, inputs_for, logits_in_batches, logits_shape, loss_and_metrics
from trainwell.train.resume import capture, save_state
from trainwell.data.streams import is_stream
from trainwell.train.setup import Fit, check_settings, evaluate_stream, prediction_logits, prepare_fit
from trainwell.train.threads import auto_threads, using_threads
from trainwell.train.weights import check_class_weight

ArrayLike = Any  # numpy array or torch tensor
Data = Any  # arrays, or a torch Dataset or DataLoader (streamed: trainwell.train.streamed)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators."""
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Fits any ``nn.Module`` on in-memory arrays, or a torch Dataset or DataLoader read a batch at a time.
    ``loss``: a name or ``get_loss("huber", delta=2.0)``; ``metrics``: :mod:`trainwell.metrics`' names
    (default: accuracy, none for regression); ``class_weight``. ``device``: under torchrun a CUDA device is
    the local rank's GPU (:mod:`trainwell.train.devices`); ``sync_batchnorm``: BatchNormalization statistics
    over every rank's batch (:mod:`trainwell.model.synced_batchnorm`).

    >>> from trainwell.model.layers import build_model, Dense
    >>> model = build_model([Dense(3, activation="softmax")], input_shape=(4,))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> history = Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0).fit(x, y, epochs=2, verbose=False)
    >>> len(history), sorted(history.last)
    (2, ['accuracy', 'epoch', 'loss', 'lr', 'time'])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss: str | Loss = "sparse_categorical_crossentropy",
        optimizer: str | Mapping[str, Any] | OptimizerFactory | torch.optim.Optimizer = "sgd",
        metrics: Sequence[str] | None = None,
        clipvalue: float | None = None,
        clipnorm: float | None = None,
        global_clipnorm: float | None = None,
        schedule: Schedule | Mapping[str, Any] | str | None = None,
        momentum_schedule: Schedule | None = None,
        callbacks: Iterable[Callback] = (),
        device: str | torch.device | None = None,
        seed: int | None = None,
        skip_nonfinite: bool = False,
        threads: int | None = None,
        fused: bool = True, compile: bool = False,
        label_smoothing: float | None = None,
        class_weight: Mapping[Any, float] | None = None,
        precision: str = "32", sync_batchnorm: bool = False,
    ):
        clipping = {"clipvalue": clipvalue, "clipnorm": clipnorm, "global_clipnorm": global_clipnorm}
        check_settings(metrics, clipping, threads)
        if seed is not None:
            check_seed(seed)
        self.device_setting, self.device = device, resolve_device(device)  # resolved again when a fit starts
        self.model = model.to(self.device)
        self.sync_batchnorm = check_sync_batchnorm(sync_batchnorm, model)  # BN statistics over all ranks' batches
        # CPU threads while fitting: None picks by the model's shape (see trainwell.train.threads).
        self.threads = threads
        self.loss = get_loss(loss, label_smoothing=label_smoothing)
        self.metrics = check_metrics(default_metrics(self.loss) if metrics is None else metrics, self.loss)
        self.class_weight = check_class_weight(class_weight, self.loss)
        self.class_names: Sequence[str] | None = None  # the data's class names, when known: class_weight's keys
        self.clipping = clipping  # the gradient clipping settings: None each where not set
        self.callbacks = list(callbacks)
        self.seed = seed
        # Skipping a batch whose loss is nan/inf costs one host sync per step, so it is opt-in;
        # without it, TerminateOnNaN stops the run at the first such batch.
        self.skip_nonfinite = bool(skip_nonfinite)
        self.skipped_batches = 0
        # Whether a fit may take the fused step (trainwell.train.fused) where it applies.
        self.fused = bool(fused)
        # The fused step through torch.compile (trainwell.train.compiled); its compiled pass, kept across fits.
        self.compile, self.compiled_pass = check_compile(compile), {}
        # Mixed precision of the training step: "32", "bf16" or "fp16" (trainwell.train.precision).
        self.precision = check_precision(precision, self.device)
        self.mixed_precision = Precision(self.precision, self.device)
        self.set_optimizer(optimizer)
        self._set_schedules(schedule, momentum_schedule)
        self.lr_scale = 1.0
        self.last_loss: torch.Tensor | None = None  # the last batch's loss, on the device (reading it syncs)
        self.forward_logits = logits_model(self.model, self.loss)
        self.history = History()
        # State that callbacks read during fit.
        self.epoch = self.epochs = self.step = self.step_in_epoch = self.steps_per_epoch = 0
        self.stop_training = False
        self.failure: Exception | None = None  # a callback's verdict (TerminateOnNaN), raised when fit ends
        self._meter: Meter | None = None  # the sums of the epoch under way, or of the last one

    def _set_schedules(self, schedule: Schedule | Mapping[str, Any] | str | None,
                       momentum_schedule: Schedule | None) -> None:
        """Check the schedules against the optimizer now (a table is built at fit time, for the run's length)."""
        if isinstance(schedule, (Mapping, str)):
            check_schedule(schedule, lr0=self.optimizer.param_groups[0]["base_lr"], make_plateau=ReduceLROnPlateau)
        elif schedule is not None and not callable(schedule):
            raise ConfigError(f"schedule: expected a function of the step or a {{'name': ...}} table, got {schedule!r}")
        if momentum_schedule is not None:
            momentum_setter(self.optimizer)  # fails now if the optimizer has no momentum
        self.schedule = schedule
        self.momentum_schedule = momentum_schedule

    # ----------------------------------------------------------------- data
    def _data(self, x: ArrayLike, y: ArrayLike, what: str, *, finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets checked against each other and the model (see trainwell.train.inputs)."""
        return checked_data(self.model, self.forward_logits, self.loss, self.device, x, y, what, finite=finite)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: Data, y: ArrayLike | None = None,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        shuffle: bool = True,
        verbose: bool = True,
        eval_batch_size: int = 1024,
        cache_frozen: bool = True,
        resume_dir: str | os.PathLike | None = None,
        save_every_steps: int | None = None,
        sample_weight: ArrayLike | None = None,
        num_workers: int = 0,
    ) -> History:
        """Train for ``epochs`` epochs and return the History (also ``self.history``).

        ``x, y``: arrays or tensors (on the device once: the fastest), or ``x`` a torch Dataset or DataLoader
        of ``(x, y)`` items, no ``y``, read a batch at a time so data larger than memory trains
        (:mod:`trainwell.train.streamed`): a Dataset batched by ``batch_size`` in the arrays' order, read by
        ``num_workers`` processes; a DataLoader as given. ``validation_data``: ``(x, y)``, a Dataset or DataLoader.

        With ``cache_frozen`` (the default), when the model's lowest layers are frozen
        and deterministic, their outputs are computed once and only the layers above
        them run each step; the results are the same, only faster.

        With ``resume_dir``, the complete training state is saved there atomically at
        every epoch end (and every ``save_every_steps`` steps); if the folder already
        holds the state of an interrupted fit, training continues from it, to the same
        result as a fit that was never interrupted (:mod:`trainwell.train.resume`; streamed: :mod:`~.streamed`).

        On the CPU the fit runs on ``threads`` intra-op threads (the Trainer's setting;
        by default one for a deep narrow model, see :mod:`trainwell.train.threads`), and the
        process's setting is restored afterwards. ``sample_weight``: see :mod:`trainwell.train.weights`.
        """
        self.device = move_to_rank_device(self.device_setting, self.device, self.model, self.optimizer)
        threads = self.threads if self.threads is not None else auto_threads(self.model, self.device)
        with using_threads(threads), synchronized_batchnorm(self.model, self.sync_batchnorm):
            return self._fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                             shuffle=shuffle, verbose=verbose, eval_batch_size=eval_batch_size,
                             cache_frozen=cache_frozen, resume_dir=resume_dir, save_every_steps=save_every_steps,
                             sample_weight=sample_weight, num_workers=num_workers)

    def _fit(self, x, y, **options) -> History:
        """Set up, then the epochs, with the weights stored as the step computes fastest (see weights_laid_out)."""
        fit = prepare_fit(self, x, y, **options)
        with fit.step.weights_laid_out(fit.batches.batch_size):
            return self._fit_epochs(fit)

    def _fit_epochs(self, fit: Fit) -> History:
        """The loop itself: epochs (steps, logs, callbacks, saves) until the target or a stop."""
        self.failure = None
        for callback in fit.callbacks:
            callback.on_fit_begin(self)
        resumed = fit.saves.restore(self)
        fit.rates.start(self.history.steps)
        while len(self.history) < fit.target and not self.stop_training:
            self.epoch = len(self.history) + 1
            for callback in fit.callbacks:
                callback.on_epoch_begin(self, self.epoch)
            started = time.perf_counter()
            self._run_epoch(fit, resumed)
            resumed = None
            logs = self._epoch_logs(fit, started)
            self.history.append(logs)
            for callback in fit.callbacks:
                callback.on_epoch_end(self, self.epoch, logs)
            if self.failure is None:
                fit.saves.save(self)
        for callback in fit.callbacks:
            callback.on_fit_end(self)
        if self.failure is not None:  # set by a callback (TerminateOnNaN); raised once every callback has ended
            raise self.failure
        return self.history

    def _run_epoch(self, fit: Fit, resumed: dict[str, Any] | None) -> None:
        """One epoch's steps, from a saved mid-epoch position if given; the meter keeps its sums."""
        indices = fit.batches.start_epoch()  # the epoch's order
        self.model.train()
        apply_frozen_modes(self.model)  # frozen BatchNormalization layers stay in inference mode
        first = 0 if resumed is None else resumed["step_in_epoch"] * fit.batches.batch_size
        self._meter = fit.meter
        fit.meter.start(indices, resumed, first)
        for start, xb, yb, count, weight, wb in fit.batches(first):
            self.step_in_epoch = start // fit.batches.batch_size
            fit.rates.apply(self.step, self.lr_scale)
            for callback in fit.batch_begin:
                callback.on_batch_begin(self, self.step)
            fit.rates.record()
            result = fit.step(xb, yb, weight) if wb is None else fit.step(xb, yb, weight, wb)
            self.step += 1
            if result is None:  # a skipped batch (non-finite loss) still counts as a step, and only that
                self.skipped_batches += 1
                continue
            self.last_loss = result.loss
            fit.meter.add(result, yb, start, count)
            self.step_in_epoch += 1
            for callback in fit.batch_end:
                callback.on_batch_end(self, self.step)
            if self.stop_training:
                break
            if fit.saves.due(self.step) and fit.batches.more_after(start):
                fit.saves.save(self, mid_epoch={"epoch_order": fit.batches.epoch_order,
                                                "step_in_epoch": self.step_in_epoch, **fit.meter.state_dict()})
        fit.meter.end_epoch()

    def _epoch_logs(self, fit: Fit, started: float) -> dict[str, Any]:
        """The epoch's record for History and the callbacks: loss, metrics, validation, rate, time."""
        logs: dict[str, Any] = {"epoch": self.epoch, **fit.meter.results(accuracy="accuracy" in self.metrics)}
        if fit.validate is not None:
            logs.update({f"val_{key}": value for key, value in fit.validate().items()})
        if self.skip_nonfinite:
            logs["skipped_batches"] = self.skipped_batches
        logs.update(fit.rates.logs())  # the last step's rate, and momentum
        logs["time"] = time.perf_counter() - started
        return logs

    def _save(self, directory, callbacks: list[Callback], order: torch.Generator, target: int,
              mid_epoch: dict[str, Any] | None = None, source: Any = None) -> None:
        """Save everything the rest of this fit depends on (see trainwell.train.resume): the one place a fit
        writes its state (only the main process does)."""
        if distributed.is_main_process():
            save_state(directory, capture(self, callbacks, order, target, mid_epoch, source), step=self.step)

    def set_optimizer(self, optimizer: str | Mapping[str, Any] | OptimizerFactory | torch.optim.Optimizer) -> None:
        """Use a new optimizer from now on (like recompiling a Keras model between phases).

        Each parameter group remembers its starting rate as ``base_lr``: the rate with no
        schedule, and the reference a group's ``lr_scale`` (e.g. from ``unfreeze``) applies to.
        """
        self.optimizer = make_optimizer(optimizer, self.model.parameters())
        for group in self.optimizer.param_groups:
            group.setdefault("base_lr", float(group["lr"]))

    def running_loss(self) -> float:
        """Mean training loss of the current epoch so far (reads the device once)."""
        return float("nan") if self._meter is None else self._meter.running_loss()

    # ------------------------------------------------------------ evaluate
    def _logits(self, x: torch.Tensor, batch_size: int, forward: nn.Module | None = None) -> torch.Tensor:
        return logits_in_batches(self.model, forward or self.forward_logits, x, batch_size)

    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
                          forward: nn.Module | None = None) -> dict[str, float]:
        return loss_and_metrics(self.loss, self.metrics, self._logits(x, batch_size, forward), y)

    def evaluate(self, x: Data, y: ArrayLike | None = None, *, batch_size: int = 1024) -> dict[str, float]:
        """Loss and metrics on ``(x, y)``, or a Dataset or DataLoader of ``(x, y)`` items, in evaluation mode."""
        if is_stream(x):
            return evaluate_stream(self, x, batch_size, forward=self.forward_logits, what="evaluation data", y=y)
        x, y = self._data(x, y, "evaluation data")
        return self._evaluate_tensors(x, y, batch_size=batch_size)

    def _prediction_logits(self, x: Data, batch_size: int) -> torch.Tensor:
        """The logits of arrays ``x`` checked as ``_data`` checks inputs, or of a Dataset's or DataLoader's inputs."""
        if is_stream(x):
            return prediction_logits(self, x, batch_size)
        x = inputs_for(self.model, self.device, x, "prediction inputs x")
        logits_shape(self.model, self.forward_logits, x, "prediction inputs x")  # also refuses an empty array
        return self._logits(x, batch_size)

    def predict(self, x: Data, *, batch_size: int = 1024) -> torch.Tensor:
        """Class probabilities (softmax, or sigmoid for a binary loss), on the CPU; a regression loss's
        predicted values, ``(n, outputs)``. ``x``: arrays, or a Dataset's items (x, y) or x."""
        return self.loss.probabilities(self._prediction_logits(x, batch_size)).cpu()

    def predict_classes(self, x: Data, *, batch_size: int = 1024) -> torch.Tensor:
        """The predicted class of each input, on the CPU (refused for a regression loss: use predict)."""
        return self.loss.predicted_classes(self._prediction_logits(x, batch_size)).cpu()
