"""The one training loop: ``Trainer(model, ...).fit(x, y, epochs=...)`` returns a History.

Arrays held in memory are moved to the device once and batched by index slicing, so
a step costs what the model costs and no more: no per-sample Dataset calls, no host
sync per step (loss and accuracy accumulate on the device and are read once per
epoch, or when a progress display asks).

One step: set the learning rate (the schedule's value times ``lr_scale``, which
ReduceLROnPlateau lowers) and momentum, batch-begin callbacks, forward, loss plus
the kernel penalties (l1/l2), backward, clip, optimizer step, kernel constraints
(max-norm), batch-end callbacks. The rate each step used is kept
in ``history.steps["lr"]``; an epoch's ``lr`` is its last step's.
One epoch: the steps, then validation, then the record into History, then the
epoch-end callbacks, which may set ``stop_training``.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from trainwell.train import distributed
from trainwell.callbacks import Callback, ProgressDisplay, ReduceLROnPlateau, overrides
from trainwell.data.arrays import model_dtype, model_inputs, output_shape
from trainwell.errors import ArrayError, ConfigError
from trainwell.train.history import History
from trainwell.train.fused import fused_step
from trainwell.model.losses import LOSSES, Loss, get_loss, logits_model
from trainwell.model.transfer import apply_frozen_modes, split_frozen_prefix
from trainwell.train.resume import ResumeError, load_latest_state, rng_states, save_state, set_rng_states
from trainwell.optim import OptimizerFactory, clip_gradients, make_optimizer, momentum_setter
from trainwell.model.regularization import apply_constraints, kernel_constraints, kernel_penalties, total_penalty
from trainwell.schedules import Schedule, build_schedule, check_schedule
from trainwell.train.threads import auto_threads, check_threads, using_threads

ArrayLike = Any  # numpy array or torch tensor


SEED_MAX = 2**63 - 1  # seeds are stored as 64-bit integers (the run store, the saved configs)


def check_seed(seed: object, *, what: str = "seed") -> int:
    """A seed is an integer from 0 to 2**63 - 1: PyTorch refuses seeds beyond 64 bits, and
    Python's random module folds a negative seed onto its absolute value (-3 seeds as 3)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        shown = seed if not isinstance(seed, int) or abs(seed) < 10**30 else f"a {len(str(abs(seed)))}-digit integer"
        raise ConfigError(f"{what}: must be an integer from 0 to 2**63 - 1, got {shown!r}")
    return seed


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators."""
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DEVICES = "auto, cpu, cuda, cuda:N, mps"
_DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:[0-9]{1,4})?")


def check_device_name(device: object) -> None:
    """Refuse a device name trainwell does not train on (``meta``, ``xla``, ``cpu:7``, ...), by its
    spelling alone: whether the device is on this machine is :func:`resolve_device`'s question."""
    name = str(device) if isinstance(device, torch.device) else device
    if not isinstance(name, str) or not _DEVICE_NAME.fullmatch(name):
        raise ConfigError(f"device: {device!r} is not a device trainwell trains on; allowed: {DEVICES}")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for a ``device`` setting, refused unless this machine has it."""
    if device is None or device == "auto":
        return default_device()
    check_device_name(device)
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' was asked for but no CUDA device is available; use 'auto' or 'cpu'")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(f"device: {str(device)!r}, but this machine has {count} CUDA device"
                              f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device: 'mps' was asked for but no MPS (Apple GPU) device is available; use 'auto' or 'cpu'")
    return resolved


METRICS = ("accuracy",)


@dataclass
class _FitSetup:
    """What one fit's loop reads, built once by ``Trainer._prepare`` so each step looks nothing up."""

    x_train: torch.Tensor  # the inputs, or the cached outputs of the frozen lowest layers
    y_train: torch.Tensor
    validation: tuple[torch.Tensor, torch.Tensor] | None
    forward: nn.Module  # the logits of inputs like x_train (above any cached layers), for validation
    train_forward: nn.Module  # the same, wrapped for data parallelism under torchrun
    batch_size: int
    shuffle: bool
    eval_batch_size: int
    order: torch.Generator  # draws each epoch's order of the samples
    sharding: distributed.Context | None
    target: int  # the number of epochs in History when the fit ends
    callbacks: list[Callback]
    batch_begin: list[Callback]  # only those that override the hook: the rest cost nothing per step
    batch_end: list[Callback]
    autograd_askers: list[Callback]  # those that override needs_autograd: asked on each step the fused step could take
    lr_schedule: Schedule | None
    momentum_schedule: Schedule | None
    set_momentum: Any
    params: list[nn.Parameter]  # the trainable ones, for clipping
    penalties: list
    constraints: list
    fused: Any  # the hand-written step (trainwell.train.fused), or None
    resume_dir: str | os.PathLike | None
    save_every_steps: int | None
    # Set by _fit once a saved state, if any, is loaded:
    step_lrs: list[float] = field(default_factory=list)
    step_momenta: list[float] | None = None
    count_correct: bool = False
    predicted: torch.Tensor | None = None  # the epoch's predicted classes, when accuracy is counted that way


def _fit_callbacks(callbacks: Sequence[Callback]) -> dict[str, Callback]:
    """The callbacks a saved training state records, by position and class ("0:EarlyStopping"): all but
    those that only report (``affects_fit = False``, the progress display), which a resumed fit may add or drop."""
    kept = [c for c in callbacks if getattr(c, "affects_fit", True)]
    return {f"{i}:{type(c).__name__}": c for i, c in enumerate(kept)}


class Trainer:
    """Fits any ``nn.Module`` on in-memory arrays.

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
        metrics: Sequence[str] = ("accuracy",),
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
        fused: bool = True,
    ):
        for metric in metrics:
            if metric not in METRICS:
                raise ConfigError(f"metrics: unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        for key, value in (("clipvalue", clipvalue), ("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ConfigError(f"{key}: must be a positive number, got {value!r}")
        check_threads(threads)
        if seed is not None:
            check_seed(seed)
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        # CPU threads while fitting: None picks by the model's shape (see trainwell.train.threads).
        self.threads = threads
        self.loss = get_loss(loss)
        self.metrics = tuple(metrics)
        self.clipping = {"clipvalue": clipvalue, "clipnorm": clipnorm, "global_clipnorm": global_clipnorm}
        self.clip = any(v is not None for v in self.clipping.values())
        self.callbacks = list(callbacks)
        self.seed = seed
        # Skipping a batch whose loss is nan/inf costs one host sync per step, so it is opt-in;
        # without it, TerminateOnNaN stops the run at the first such batch.
        self.skip_nonfinite = bool(skip_nonfinite)
        self.skipped_batches = 0
        # The hand-written forward/backward step for plain dense stacks, where it applies (trainwell.train.fused).
        self.fused = bool(fused)
        self.set_optimizer(optimizer)
        if isinstance(schedule, (Mapping, str)):  # a table: checked now, built at fit time for the run's length
            check_schedule(schedule, lr0=self.optimizer.param_groups[0]["base_lr"], make_plateau=ReduceLROnPlateau)
        elif schedule is not None and not callable(schedule):
            raise ConfigError(f"schedule: expected a function of the step or a {{'name': ...}} table, got {schedule!r}")
        if momentum_schedule is not None:
            momentum_setter(self.optimizer)  # fails now if the optimizer has no momentum
        self.schedule = schedule
        self.momentum_schedule = momentum_schedule
        self.lr_scale = 1.0
        self.last_loss: torch.Tensor | None = None  # the last batch's loss, on the device (reading it syncs)
        self.forward_logits = logits_model(self.model, self.loss)
        self.history = History()
        # State that callbacks read during fit.
        self.epoch = 0
        self.epochs = 0
        self.step = 0
        self.step_in_epoch = 0
        self.steps_per_epoch = 0
        self.stop_training = False
        self.failure: Exception | None = None  # a callback's verdict (TerminateOnNaN), raised when fit ends
        self._loss_sum: torch.Tensor | None = None
        self._samples = 0

    # ----------------------------------------------------------------- data
    def _inputs(self, x: ArrayLike, what: str, *, finite: bool = True) -> torch.Tensor:
        """``x`` as the model's inputs: its dtype (so ``x / 255.0``, float64, works), on the device, finite
        (unless ``finite=False``)."""
        return model_inputs(x, dtype=model_dtype(self.model), device=self.device, what=what, finite=finite)

    def _targets(self, y: ArrayLike, what: str) -> torch.Tensor:
        return self.loss.prepare_targets(y, what).to(self.device)

    def _data(self, x: ArrayLike, y: ArrayLike, what: str, *, finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets checked against each other and against the model (``what``: "training data"...);
        ``finite=False`` lets non-finite inputs through (to batches that ``skip_nonfinite`` skips)."""
        x, y = self._inputs(x, f"{what} x", finite=finite), self._targets(y, f"{what} y")
        if len(x) != len(y):
            raise ArrayError(f"{what}: {len(x)} inputs but {len(y)} targets")
        if len(x) == 0:
            raise ArrayError(f"{what}: no samples")
        self.loss.check_targets(y, self._output_shape(x, f"{what} x"), f"{what} y")
        return x, y

    def _output_shape(self, x: torch.Tensor, what: str) -> tuple[int, ...]:
        """The per-sample shape of the model's logits, from one forward of two samples of ``x``
        (see :func:`trainwell.data.arrays.output_shape`): it changes no weight, statistic or random stream."""
        return output_shape(self.model, x, what, forward=lambda batch: self._logits(batch, batch_size=2))

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
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
    ) -> History:
        """Train for ``epochs`` epochs and return the History (also ``self.history``).

        With ``cache_frozen`` (the default), when the model's lowest layers are frozen
        and deterministic, their outputs are computed once and only the layers above
        them run each step; the results are the same, only faster.

        With ``resume_dir``, the complete training state is saved there atomically at
        every epoch end (and every ``save_every_steps`` steps); if the folder already
        holds the state of an interrupted fit, training continues from it, to the same
        result as a fit that was never interrupted (see :mod:`trainwell.train.resume`).

        On the CPU the fit runs on ``threads`` intra-op threads (the Trainer's setting;
        by default one for a deep narrow model, see :mod:`trainwell.train.threads`), and the
        process's setting is restored afterwards.
        """
        threads = self.threads if self.threads is not None else auto_threads(self.model, self.device)
        with using_threads(threads):
            return self._fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                             shuffle=shuffle, verbose=verbose, eval_batch_size=eval_batch_size,
                             cache_frozen=cache_frozen, resume_dir=resume_dir, save_every_steps=save_every_steps)

    def _fit(self, x, y, **options) -> History:
        """The loop itself: set up, then epochs (steps, logs, callbacks, saves) until the target or a stop."""
        run = self._prepare(x, y, **options)
        self.failure = None
        for callback in run.callbacks:
            callback.on_fit_begin(self)
        resumed = None
        if run.resume_dir is not None:
            resumed = self._restore(run.resume_dir, run.callbacks, run.order, run.target)
        run.step_lrs = self.history.steps.setdefault("lr", [])
        run.step_momenta = self.history.steps.setdefault("momentum", []) if run.set_momentum is not None else None
        run.count_correct = "accuracy" in self.metrics
        # Accuracy of one process's categorical fit, cheaply: each step writes its predicted
        # classes into an epoch-long buffer (one op), compared with the targets once per epoch.
        run.predicted = (torch.empty(len(run.x_train), dtype=torch.long, device=self.device)
                         if run.count_correct and run.sharding is None and not self.skip_nonfinite
                         and self.loss.predicted_classes is LOSSES["sparse_categorical_crossentropy"].predicted_classes
                         else None)
        while len(self.history) < run.target and not self.stop_training:
            self.epoch = len(self.history) + 1
            for callback in run.callbacks:
                callback.on_epoch_begin(self, self.epoch)
            started = time.perf_counter()
            penalty_sum, correct = self._run_epoch(run, resumed)
            resumed = None
            logs = self._epoch_logs(run, penalty_sum, correct, started)
            self.history.append(logs)
            for callback in run.callbacks:
                callback.on_epoch_end(self, self.epoch, logs)
            if run.resume_dir is not None and self.failure is None:
                self._save(run.resume_dir, run.callbacks, run.order, run.target)
        for callback in run.callbacks:
            callback.on_fit_end(self)
        if self.failure is not None:  # set by a callback (TerminateOnNaN); raised once every callback has ended
            raise self.failure
        return self.history

    def _prepare(self, x, y, *, epochs, batch_size, validation_data, shuffle, verbose, eval_batch_size, cache_frozen,
                 resume_dir, save_every_steps) -> _FitSetup:
        """Check fit's arguments and build, once, what every step reads: data, order, schedules, callbacks."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs: must be a positive integer, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: must be a positive integer, got {batch_size!r}")
        if save_every_steps is not None and (isinstance(save_every_steps, bool) or not isinstance(save_every_steps, int)
                                             or save_every_steps < 1 or resume_dir is None):
            raise ConfigError(f"save_every_steps: must be a positive integer, with resume_dir, got {save_every_steps!r}")
        x_train, y_train = self._data(x, y, "training data", finite=not self.skip_nonfinite)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ConfigError(f"validation_data: expected a pair (x, y), got {type(validation_data).__name__}")
            validation = self._data(*validation_data, "validation data")
        forward = self.forward_logits
        if cache_frozen:
            x_train, validation, forward = self._cache_frozen_features(x_train, validation, eval_batch_size)
        if self.seed is not None:
            torch.manual_seed(self.seed)
        order = torch.Generator().manual_seed(self.seed if self.seed is not None else int(torch.seed() % 2**63))
        sharding = distributed.current()  # data-parallel under torchrun; None (and no cost) in one process
        train_forward = forward
        if sharding is not None:
            sharding.local_batch_size(batch_size)  # the world size must divide the global batch
            order.manual_seed(distributed.shared_seed(order.initial_seed()))  # one permutation for all ranks
            train_forward = distributed.wrap(forward, self.device)

        callbacks = list(self.callbacks)
        steps_per_epoch = (len(x_train) + batch_size - 1) // batch_size
        lr_schedule, momentum_schedule, plateau = self._resolve_schedules(
            steps_per_epoch=steps_per_epoch, total_steps=(len(self.history) + epochs) * steps_per_epoch)
        if plateau is not None:
            callbacks.append(plateau)
        set_momentum = momentum_setter(self.optimizer) if momentum_schedule is not None else None
        if verbose and (sharding is None or sharding.is_main) and not any(isinstance(c, ProgressDisplay) for c in callbacks):
            callbacks.append(ProgressDisplay())

        self.epochs = target = len(self.history) + epochs
        self.steps_per_epoch = steps_per_epoch
        self.stop_training = False
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("nothing to train: every parameter of the model is frozen (unfreeze some layers)")
        # Looked up once per fit: a model without penalties or constraints pays nothing per step.
        penalties, constraints = kernel_penalties(self.model), kernel_constraints(self.model)
        fused = fused_step(self, train_forward, penalties=penalties, sharding=sharding)
        return _FitSetup(
            x_train=x_train, y_train=y_train, validation=validation, forward=forward, train_forward=train_forward,
            batch_size=batch_size, shuffle=shuffle, eval_batch_size=eval_batch_size, order=order, sharding=sharding,
            target=target, callbacks=callbacks,
            batch_begin=[c for c in callbacks if overrides(c, "on_batch_begin")],
            batch_end=[c for c in callbacks if overrides(c, "on_batch_end")],
            autograd_askers=[c for c in callbacks if overrides(c, "needs_autograd")],
            lr_schedule=lr_schedule, momentum_schedule=momentum_schedule, set_momentum=set_momentum,
            params=params, penalties=penalties, constraints=constraints, fused=fused,
            resume_dir=resume_dir, save_every_steps=save_every_steps)

    def _run_epoch(self, run: _FitSetup, resumed: dict[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch's steps, from a saved mid-epoch position if given; returns its penalty and correct sums."""
        n, batch_size = len(run.x_train), run.batch_size
        epoch_order = run.order.get_state()  # kept so a state saved mid-epoch can redraw this epoch's order
        indices = torch.randperm(n, generator=run.order) if run.shuffle else torch.arange(n)
        indices = indices.to(self.device)
        self.model.train()
        apply_frozen_modes(self.model)  # frozen BatchNormalization layers stay in inference mode
        self._loss_sum = torch.zeros((), device=self.device)
        penalty_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        self._samples = 0
        first = position = 0
        if resumed is not None:  # continue an epoch a saved state stopped in the middle of
            first, self._samples = resumed["step_in_epoch"] * batch_size, resumed["samples"]
            position = first
            self._loss_sum, penalty_sum, correct = (t.to(self.device) for t in resumed["sums"])
        for start in range(first, n, batch_size):
            self.step_in_epoch = start // batch_size
            self._apply_schedules(run)
            for callback in run.batch_begin:
                callback.on_batch_begin(self, self.step)
            run.step_lrs.append(float(self.optimizer.param_groups[0]["lr"]))
            batch = indices[start:start + batch_size]
            count, weight = len(batch), 1.0
            if run.sharding is not None:  # this rank's slice of the global batch
                batch, count, weight = run.sharding.shard(batch)
            xb, yb = run.x_train.index_select(0, batch), run.y_train.index_select(0, batch)
            stepped = self._train_step(run, xb, yb, weight)
            if stepped is None:  # a skipped batch still counts as a step, and only that
                self.step += 1
                continue
            logits, loss, penalty = stepped
            self.last_loss = loss = loss.detach()
            with torch.no_grad():
                self._loss_sum.add_(loss, alpha=count)
                if run.penalties:
                    penalty_sum.add_(penalty.detach(), alpha=count)
                if run.predicted is not None:
                    torch.argmax(logits, dim=-1, out=run.predicted[start:start + count])
                elif count and run.count_correct:  # 0: a rank left out of a short last batch ran one sample with weight 0
                    correct += self.loss.correct(logits, yb)
            position = start + count
            self._samples += count
            self.step += 1
            self.step_in_epoch += 1
            for callback in run.batch_end:
                callback.on_batch_end(self, self.step)
            if self.stop_training:
                break
            if run.save_every_steps and self.step % run.save_every_steps == 0 and start + batch_size < n:
                correct = self._tally(correct, run.predicted, run.y_train, indices, first, position)
                first = position
                self._save(run.resume_dir, run.callbacks, run.order, run.target, mid_epoch={
                    "epoch_order": epoch_order, "step_in_epoch": self.step_in_epoch, "samples": self._samples,
                    "sums": [self._loss_sum, penalty_sum, correct]})
        correct = self._tally(correct, run.predicted, run.y_train, indices, first, position)
        if run.sharding is not None:  # the epoch's sums over every rank's shard
            totals = distributed.sum_over_ranks(self._loss_sum, penalty_sum, correct, self._samples)
            self._loss_sum.fill_(totals[0])
            penalty_sum.fill_(totals[1])
            correct.fill_(int(totals[2]))
            self._samples = int(totals[3])
        return penalty_sum, correct

    def _apply_schedules(self, run: _FitSetup) -> None:
        """Set this step's learning rate (the schedule's times ``lr_scale``) and momentum, recording the momentum."""
        if run.lr_schedule is not None or self.lr_scale != 1.0:
            scheduled = None if run.lr_schedule is None else run.lr_schedule(self.step)
            for group in self.optimizer.param_groups:
                base = group["base_lr"] if scheduled is None else scheduled * group.get("lr_scale", 1.0)
                group["lr"] = base * self.lr_scale
        if run.set_momentum is not None:
            momentum = float(run.momentum_schedule(self.step))
            for group in self.optimizer.param_groups:
                run.set_momentum(group, momentum)
            run.step_momenta.append(momentum)

    def _train_step(self, run: _FitSetup, xb: torch.Tensor, yb: torch.Tensor, weight: float):
        """One optimizer step on a batch: (logits, loss, penalty), or None when a non-finite loss is skipped."""
        if self._takes_fused_step(run):  # trainwell.train.fused: no autograd
            logits, loss = run.fused(xb, yb)
            if not run.fused.applies_update:  # the gradients are in .grad
                self._update(run)
            elif run.constraints:
                apply_constraints(run.constraints)
            return logits, loss, None
        logits = run.train_forward(xb)
        loss = self.loss(logits, yb)
        penalty = None
        if run.penalties:
            penalty = total_penalty(run.penalties)
            loss = loss + penalty
        if self.skip_nonfinite and not bool(torch.isfinite(loss)):
            self.skipped_batches += 1
            return None
        self.optimizer.zero_grad(set_to_none=True)
        (loss if weight == 1.0 else loss * weight).backward()
        self._update(run)
        return logits, loss, penalty

    def _takes_fused_step(self, run: _FitSetup) -> bool:
        """Whether this step runs the fused step: it applies, no callback asks for autograd, no hook is in the way.

        Every callback that overrides ``needs_autograd`` is asked, each step.
        """
        if run.fused is None:
            return False
        asked = [callback.needs_autograd(self, self.step) for callback in run.autograd_askers]
        return not any(asked) and run.fused.obstacle() is None

    def _update(self, run: _FitSetup) -> None:
        """Clip the gradients, step the optimizer, apply the max-norm constraints."""
        if self.clip:
            clip_gradients(run.params, **self.clipping)
        self.optimizer.step()
        if run.constraints:
            apply_constraints(run.constraints)

    def _epoch_logs(self, run: _FitSetup, penalty_sum: torch.Tensor, correct: torch.Tensor,
                    started: float) -> dict[str, Any]:
        """The epoch's record for History and the callbacks: loss, metrics, validation, rate, time."""
        logs: dict[str, Any] = {"epoch": self.epoch, "loss": self.running_loss()}
        if run.penalties:  # "loss" is their sum, as Keras reports it; val_loss is the data loss alone
            logs["penalty"] = penalty_sum.item() / max(self._samples, 1)
            logs["data_loss"] = logs["loss"] - logs["penalty"]
        if "accuracy" in self.metrics:
            logs["accuracy"] = correct.item() / max(self._samples, 1)
        if run.validation is not None:
            results = self._evaluate_tensors(*run.validation, batch_size=run.eval_batch_size, forward=run.forward)
            logs.update({f"val_{key}": value for key, value in results.items()})
        if self.skip_nonfinite:
            logs["skipped_batches"] = self.skipped_batches
        logs["lr"] = run.step_lrs[-1] if run.step_lrs else float(self.optimizer.param_groups[0]["lr"])  # last step's
        if run.step_momenta:
            logs["momentum"] = run.step_momenta[-1]
        logs["time"] = time.perf_counter() - started
        return logs

    @staticmethod
    def _tally(correct, predicted, y_train, indices, first: int, position: int) -> torch.Tensor:
        """``correct`` plus the right predictions the buffer holds for the epoch's samples first..position."""
        if predicted is None or position <= first:
            return correct
        return correct + (predicted[first:position] == y_train.index_select(0, indices[first:position])).sum()

    # -------------------------------------------------------------- resume
    def _save(self, directory, callbacks: list[Callback], order: torch.Generator, target: int,
              mid_epoch: dict[str, Any] | None = None) -> None:
        """Save everything the rest of this fit depends on (see trainwell.train.resume)."""
        if not distributed.is_main_process():
            return
        rng = rng_states(order)
        if mid_epoch is not None:
            # Resuming redraws this epoch's order from the generator state at its start,
            # then goes on with the other generators as they are now.
            rng["order"] = mid_epoch.pop("epoch_order")
        state = {
            "target": target, "epoch": len(self.history), "step": self.step, "stopped": self.stop_training,
            "lr_scale": self.lr_scale, "skipped_batches": self.skipped_batches, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "history": {"records": self.history.records, "steps": self.history.steps},
            "callbacks": {name: c.state_dict() for name, c in _fit_callbacks(callbacks).items()},
            "rng": rng, "mid_epoch": mid_epoch,
        }
        save_state(directory, state, step=self.step)

    def _restore(self, directory, callbacks: list[Callback], order: torch.Generator, target: int):
        """Load the newest saved state of this fit, if any; return the mid-epoch position to continue from."""
        state = load_latest_state(directory)
        if state is None:
            return None
        try:
            return self._apply_state(state, directory, callbacks, order, target)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
            # A state whose checksum matches but whose contents are not a state of this kind of fit:
            # crafted, or from an incompatible trainwell. Nothing of it can be trusted.
            detail = " ".join(str(error).split())
            detail = detail if len(detail) <= 300 else detail[:297] + "..."
            raise ResumeError(f"{directory}: the saved training state is incomplete or malformed "
                              f"({type(error).__name__}: {detail}); pass --restart (train_config(restart=True)) "
                              "to start over") from None

    def _apply_state(self, state, directory, callbacks: list[Callback], order: torch.Generator, target: int):
        names = _fit_callbacks(callbacks)
        if list(state["callbacks"]) != list(names) or state["target"] > target:
            raise ResumeError(f"{directory}: the saved training state belongs to a different fit (it has callbacks "
                              f"[{', '.join(state['callbacks'])}] and {state['target']} epochs, this fit "
                              f"[{', '.join(names)}] and {target}); delete the folder to start over")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history.records[:] = state["history"]["records"]
        self.history.steps.clear()
        self.history.steps.update(state["history"]["steps"])
        self.step, self.lr_scale = state["step"], state["lr_scale"]
        self.skipped_batches = state.get("skipped_batches", 0)  # History counts them from the fit's start
        self.stop_training = state["stopped"]
        for key, saved in state["callbacks"].items():
            names[key].load_state_dict(saved)
        set_rng_states(state["rng"], order)  # mid-epoch, "order" is the epoch's start: its order is redrawn
        return state["mid_epoch"]

    def set_optimizer(self, optimizer: str | Mapping[str, Any] | OptimizerFactory | torch.optim.Optimizer) -> None:
        """Use a new optimizer from now on (like recompiling a Keras model between phases).

        Each parameter group remembers its starting rate as ``base_lr``: the rate with no
        schedule, and the reference a group's ``lr_scale`` (e.g. from ``unfreeze``) applies to.
        """
        self.optimizer = make_optimizer(optimizer, self.model.parameters())
        for group in self.optimizer.param_groups:
            group.setdefault("base_lr", float(group["lr"]))

    def _resolve_schedules(self, *, steps_per_epoch: int, total_steps: int):
        """(lr schedule, momentum schedule, plateau callback) for this fit; a table is built for the run's length."""
        if not isinstance(self.schedule, (Mapping, str)):
            return self.schedule, self.momentum_schedule, None
        setup = build_schedule(self.schedule, lr0=self.optimizer.param_groups[0]["base_lr"], steps_per_epoch=steps_per_epoch,
                               total_steps=total_steps, make_plateau=ReduceLROnPlateau)
        return setup.lr, setup.momentum or self.momentum_schedule, setup.plateau

    def running_loss(self) -> float:
        """Mean training loss of the current epoch so far (reads the device once)."""
        if self._loss_sum is None or self._samples == 0:
            return float("nan")
        return self._loss_sum.item() / self._samples

    def _cache_frozen_features(self, x_train: torch.Tensor, validation, batch_size: int):
        """Run the frozen, deterministic lowest layers once; return their outputs and the rest's forward."""
        split = split_frozen_prefix(self.model)
        if split is None:
            return x_train, validation, self.forward_logits
        prefix, rest = split
        with torch.no_grad():
            prefix.eval()
            features = lambda x: torch.cat([prefix(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])  # noqa: E731
            x_train = features(x_train)
            if validation is not None:
                validation = (features(validation[0]), validation[1])
        return x_train, validation, logits_model(rest, self.loss)

    # ------------------------------------------------------------ evaluate
    @torch.no_grad()
    def _logits(self, x: torch.Tensor, batch_size: int, forward: nn.Module | None = None) -> torch.Tensor:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: must be a positive integer, got {batch_size!r}")
        was_training = self.model.training
        self.model.eval()
        try:
            forward = forward or self.forward_logits
            return torch.cat([forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        finally:
            self.model.train(was_training)

    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
                          forward: nn.Module | None = None) -> dict[str, float]:
        logits = self._logits(x, batch_size, forward)
        results = {"loss": float(self.loss(logits, y))}
        if "accuracy" in self.metrics:
            results["accuracy"] = self.loss.correct(logits, y).item() / len(y)
        return results

    def evaluate(self, x: ArrayLike, y: ArrayLike, *, batch_size: int = 1024) -> dict[str, float]:
        """Loss and metrics on ``(x, y)`` with the model in evaluation mode."""
        x, y = self._data(x, y, "evaluation data")
        return self._evaluate_tensors(x, y, batch_size=batch_size)

    def _prediction_inputs(self, x: ArrayLike) -> torch.Tensor:
        """``x`` checked as ``_data`` checks inputs (dtype, values, fit to the model)."""
        x = self._inputs(x, "prediction inputs x")
        self._output_shape(x, "prediction inputs x")  # also refuses an empty array
        return x

    def predict(self, x: ArrayLike, *, batch_size: int = 1024) -> torch.Tensor:
        """Class probabilities (softmax, or sigmoid for a binary loss), on the CPU."""
        return self.loss.probabilities(self._logits(self._prediction_inputs(x), batch_size)).cpu()

    def predict_classes(self, x: ArrayLike, *, batch_size: int = 1024) -> torch.Tensor:
        """The predicted class of each input, on the CPU."""
        return self.loss.predicted_classes(self._logits(self._prediction_inputs(x), batch_size)).cpu()
