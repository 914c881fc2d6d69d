"""What one fit is made of, built once from a Trainer's settings and fit's arguments, before its first step.

:func:`check_settings` checks the Trainer's own settings when it is made.

:func:`prepare_fit` checks fit's arguments and the data, caches the outputs of frozen
lowest layers (:mod:`trainwell.train.frozen`), seeds and draws the order generator (one
permutation for every rank under torchrun: :mod:`trainwell.train.batches`), builds the
schedules of the run's length and the callbacks (a schedule table's plateau, the
progress display), chooses the step (:func:`trainwell.train.step.make_step`) and the
meter, and returns them as a :class:`Fit`: what the loop calls, so that no step looks
anything up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from trainwell.checks import is_integer, is_number
from trainwell.callbacks import Callback, ProgressDisplay, overrides
from trainwell.errors import ConfigError
from trainwell.model.losses import LOSSES
from trainwell.model.regularization import kernel_constraints, kernel_penalties
from trainwell.train import distributed
from trainwell.train.batches import Batches, order_generator
from trainwell.train.frozen import cache_frozen_prefix
from trainwell.train.meter import Meter
from trainwell.train.rates import StepRates, resolve_schedules
from trainwell.train.resume import FitSaves
from trainwell.train.step import Step, StepParts, make_step
from trainwell.train.threads import check_threads


METRICS = ("accuracy",)


def check_settings(metrics: Sequence[str], clipping: Mapping[str, Any], threads: Any) -> None:
    """Refuse a Trainer's unknown metric, non-positive clipping or bad thread count."""
    for metric in metrics:
        if metric not in METRICS:
            raise ConfigError(f"metrics: unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    for key, value in clipping.items():
        if value is not None and (not is_number(value) or value <= 0):
            raise ConfigError(f"{key}: must be a positive number, got {value!r}")
    check_threads(threads)


@dataclass
class Fit:
    """What one fit's loop calls."""

    batches: Batches  # each epoch's order and batches (this rank's share under torchrun)
    step: Step  # the fused or the autograd step (trainwell.train.step)
    meter: Meter  # the epoch's sums
    rates: StepRates  # each step's learning rate and momentum
    saves: FitSaves  # where the fit's state is saved and restored from
    validate: Callable[[], dict[str, float]] | None
    callbacks: list[Callback]
    batch_begin: list[Callback]  # only those that override the hook: the rest cost nothing per step
    batch_end: list[Callback]
    target: int  # the number of epochs in History when the fit ends


def check_fit_arguments(epochs: Any, batch_size: Any, save_every_steps: Any, resume_dir: Any) -> None:
    if not is_integer(epochs) or epochs < 1:
        raise ConfigError(f"epochs: must be a positive integer, got {epochs!r}")
    if not is_integer(batch_size) or batch_size < 1:
        raise ConfigError(f"batch_size: must be a positive integer, got {batch_size!r}")
    if save_every_steps is not None and (not is_integer(save_every_steps) or save_every_steps < 1
                                         or resume_dir is None):
        raise ConfigError(f"save_every_steps: must be a positive integer, with resume_dir, got {save_every_steps!r}")


def prepare_fit(trainer: Any, x, y, *, epochs, batch_size, validation_data, shuffle, verbose, eval_batch_size,
                cache_frozen, resume_dir, save_every_steps) -> Fit:
    """Check fit's arguments and build, once, what every step reads: data, order, schedules, callbacks, step.

    Sets the trainer's ``epochs`` and ``steps_per_epoch`` (which callbacks read) and clears ``stop_training``.
    """
    check_fit_arguments(epochs, batch_size, save_every_steps, resume_dir)
    x_train, y_train = trainer._data(x, y, "training data", finite=not trainer.skip_nonfinite)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError(f"validation_data: expected a pair (x, y), got {type(validation_data).__name__}")
        validation = trainer._data(*validation_data, "validation data")
    forward = trainer.forward_logits  # the logits of inputs like x_train (above any cached layers)
    if cache_frozen:
        x_train, validation, forward = cache_frozen_prefix(trainer.model, trainer.loss, forward, x_train, validation,
                                                           eval_batch_size)
    if trainer.seed is not None:
        torch.manual_seed(trainer.seed)
    sharding = distributed.current()  # data-parallel under torchrun; None (and no cost) in one process
    order = order_generator(trainer.seed, sharding, batch_size)
    train_forward = forward if sharding is None else distributed.wrap(forward, trainer.device)
    steps_per_epoch = (len(x_train) + batch_size - 1) // batch_size
    callbacks, rates = _callbacks_and_rates(trainer, epochs, steps_per_epoch,
                                            verbose and (sharding is None or sharding.is_main))
    trainer.epochs = target = len(trainer.history) + epochs
    trainer.steps_per_epoch = steps_per_epoch
    trainer.stop_training = False
    if not any(p.requires_grad for p in trainer.model.parameters()):
        raise ConfigError("nothing to train: every parameter of the model is frozen (unfreeze some layers)")
    step = _step(trainer, train_forward, callbacks, cached=forward is not trainer.forward_logits)
    validate = None if validation is None else functools.partial(
        trainer._evaluate_tensors, *validation, batch_size=eval_batch_size, forward=forward)
    return Fit(
        batches=Batches(x_train, y_train, batch_size, shuffle=shuffle, order=order, device=trainer.device,
                        sharding=sharding),
        step=step, meter=_meter(trainer, y_train, sharded=sharding is not None), rates=rates,
        saves=FitSaves(resume_dir, every_steps=save_every_steps, callbacks=callbacks, order=order, target=target),
        validate=validate, callbacks=callbacks, batch_begin=[c for c in callbacks if overrides(c, "on_batch_begin")],
        batch_end=[c for c in callbacks if overrides(c, "on_batch_end")], target=target)


def _callbacks_and_rates(trainer: Any, epochs: int, steps_per_epoch: int, show_progress: bool):
    """The fit's callbacks (a schedule table's plateau, the progress display) and its step rates."""
    callbacks = list(trainer.callbacks)
    lr_schedule, momentum_schedule, plateau = resolve_schedules(
        trainer.schedule, trainer.momentum_schedule, lr0=trainer.optimizer.param_groups[0]["base_lr"],
        steps_per_epoch=steps_per_epoch, total_steps=(len(trainer.history) + epochs) * steps_per_epoch)
    if plateau is not None:
        callbacks.append(plateau)
    rates = StepRates(trainer.optimizer, lr_schedule, momentum_schedule)
    if show_progress and not any(isinstance(c, ProgressDisplay) for c in callbacks):
        callbacks.append(ProgressDisplay())
    return callbacks, rates


def _step(trainer: Any, forward: nn.Module, callbacks: list[Callback], *, cached: bool) -> Step:
    """The fit's step; every callback that overrides ``needs_autograd`` is asked on each step the fused step could take."""
    askers = [c for c in callbacks if overrides(c, "needs_autograd")]
    wants_autograd = (lambda: any([c.needs_autograd(trainer, trainer.step) for c in askers])) if askers else None
    # Looked up once per fit: a model without penalties or constraints pays nothing per step.
    parts = StepParts(model=trainer.model, forward=forward, loss=trainer.loss, optimizer=trainer.optimizer,
                      clipping=trainer.clipping, skip_nonfinite=trainer.skip_nonfinite,
                      penalties=kernel_penalties(trainer.model), constraints=kernel_constraints(trainer.model),
                      device=trainer.device, precision=trainer.mixed_precision)
    step, _ = make_step(parts, fused=trainer.fused, cached=cached, wants_autograd=wants_autograd)
    return step


def _meter(trainer: Any, y_train: torch.Tensor, *, sharded: bool) -> Meter:
    """The fit's meter. Accuracy of one process's categorical fit, cheaply: each step writes its predicted
    classes into an epoch-long buffer (one op), compared with the targets once per epoch."""
    count_correct = "accuracy" in trainer.metrics
    buffered = (count_correct and not sharded and not trainer.skip_nonfinite
                and trainer.loss.predicted_classes is LOSSES["sparse_categorical_crossentropy"].predicted_classes)
    predicted = torch.empty(len(y_train), dtype=torch.long, device=trainer.device) if buffered else None
    return Meter(y_train, device=trainer.device, penalties=bool(kernel_penalties(trainer.model)),
                 count_correct=count_correct, correct=trainer.loss.correct, predicted=predicted, sharded=sharded)
