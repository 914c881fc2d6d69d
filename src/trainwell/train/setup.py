"""What one fit is made of, built once from a Trainer's settings and fit's arguments, before its first step.

:func:`check_settings` checks the Trainer's own settings when it is made.

:func:`prepare_fit` checks fit's arguments and the data, caches the outputs of frozen
lowest layers (:mod:`trainwell.train.frozen`), seeds and draws the order generator (one
permutation for every rank under torchrun: :mod:`trainwell.train.batches`), builds the
schedules of the run's length and the callbacks (a schedule table's plateau, the
progress display; under torchrun those that write run on rank 0 alone: ``rank_zero_only``),
the validation (under torchrun each rank its slice: :mod:`trainwell.train.validation`),
chooses the step (:func:`trainwell.train.step.make_step`) and the meter, and returns them
as a :class:`Fit`: what the loop calls, so that no step looks anything up. Its batches come
from the arrays' :class:`~trainwell.train.batches.Batches` or, for a torch Dataset or
DataLoader, from a streamed source (:mod:`trainwell.train.streamed`); the loop iterates either alike.

:func:`evaluate_stream` and :func:`prediction_logits` are ``evaluate`` and ``predict`` on a
Dataset or DataLoader (and a fit's validation on one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainwell.checks import is_integer, is_number
from trainwell.callbacks import Callback, ProgressDisplay, overrides
from trainwell.data.arrays import model_dtype
from trainwell.data.streams import is_stream, stream_length
from trainwell.errors import ArrayError, ConfigError
from trainwell.metrics import check_metrics, needs_outputs
from trainwell.model.regularization import kernel_constraints, kernel_penalties
from trainwell.model.transfer import training_batch_norms
from trainwell.train import distributed
from trainwell.train.batches import Batches, order_generator
from trainwell.train.frozen import cache_frozen_prefix
from trainwell.train.inputs import logits_shape, loss_and_metrics
from trainwell.train.meter import Meter
from trainwell.train.rates import StepRates, resolve_schedules
from trainwell.train.resume import FitSaves
from trainwell.train.step import Step, StepParts, make_step
from trainwell.train.streamed import BatchCheck, DatasetBatches, LoaderBatches, streamed_batches, streamed_logits
from trainwell.train.threads import check_threads
from trainwell.train.validation import sharded_validation
from trainwell.train.weights import sample_weights


def check_settings(metrics: Sequence[str] | None, clipping: Mapping[str, Any], threads: Any) -> None:
    """Refuse a Trainer's unknown metric, non-positive clipping or bad thread count (whether the metrics
    fit the loss is checked once the loss is known: :func:`trainwell.metrics.check_metrics`)."""
    if metrics is not None:
        check_metrics(metrics)
    for key, value in clipping.items():
        if value is not None and (not is_number(value) or value <= 0):
            raise ConfigError(f"{key}: must be a positive number, got {value!r}")
    check_threads(threads)


@dataclass
class Fit:
    """What one fit's loop calls."""

    batches: Batches | DatasetBatches | LoaderBatches  # each epoch's batches (this rank's share under torchrun)
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


def check_no_batch_of_one(model: nn.Module, samples: int, batch_size: int) -> None:
    """Refuse, before any step, a fit in which a batch normalization that trains would see a batch of one sample.

    One value has no variance: PyTorch's batch norm raises mid-epoch on such a batch (after the
    epoch's other batches have trained), and the fused step would normalize it with a variance
    of zero. A batch of one comes from ``batch_size=1`` or from a last batch that holds one sample.
    """
    last = samples % batch_size
    if batch_size > 1 and last != 1:
        return
    training = training_batch_norms(model)  # a frozen layer's normalizes with its moving statistics
    if not training:
        return
    layer = f"the model's batch normalization layer {training[0]!r}"
    if samples == 1:
        raise ConfigError(f"training data: one sample, which {layer} cannot normalize (one value has no variance); "
                          "train on 2 samples or more")
    if batch_size == 1:
        raise ConfigError(f"batch_size 1: {layer} cannot normalize a batch of one sample (one value has no "
                          "variance); use a batch_size of 2 or more")
    better = next((size for offset in range(1, batch_size) for size in (batch_size + offset, batch_size - offset)
                   if size > 1 and samples % size != 1), samples)
    raise ConfigError(f"batch_size {batch_size}: the last batch of the {samples} training samples holds one sample, "
                      f"which {layer} cannot normalize (one value has no variance); use a batch_size whose last "
                      f"batch holds 0 or at least 2 samples, e.g. {better}")


def prepare_fit(trainer: Any, x, y, *, epochs, batch_size, validation_data, shuffle, verbose, eval_batch_size,
                cache_frozen, resume_dir, save_every_steps, sample_weight=None, num_workers=0) -> Fit:
    """Check fit's arguments and build, once, what every step reads: data, order, schedules, callbacks, step.

    Sets the trainer's ``epochs`` and ``steps_per_epoch`` (which callbacks read) and clears ``stop_training``.
    """
    check_fit_arguments(epochs, batch_size, save_every_steps, resume_dir)
    streamed = is_stream(x)
    check_workers(num_workers, x)
    if streamed:
        check_streamed(x, y, "training data")
        check = BatchCheck(trainer.model, trainer.forward_logits, trainer.loss, trainer.device, "training data",
                           finite=not trainer.skip_nonfinite)
        x_train = y_train = None
    else:
        x_train, y_train = trainer._data(x, y, "training data", finite=not trainer.skip_nonfinite)
        check_no_batch_of_one(trainer.model, len(x_train), batch_size)
    validation, validate_stream = _validation(trainer, validation_data, eval_batch_size)
    weights = None
    if sample_weight is not None or trainer.class_weight is not None:
        if streamed:
            raise ConfigError("sample_weight and class_weight: a Dataset or DataLoader is not weighted yet; "
                              "pass arrays (x, y) with sample_weight=, or weigh the loss in your own Dataset's labels")
        weights = sample_weights(sample_weight, trainer.class_weight, trainer.loss, y_train,
                                 logits_shape(trainer.model, trainer.forward_logits, x_train, "training data x"),
                                 names=trainer.class_names, dtype=model_dtype(trainer.model))
    forward = trainer.forward_logits  # the logits of inputs like x_train (above any cached layers)
    # A streamed fit skips the frozen-prefix cache: it holds the frozen layers' outputs of the whole
    # training set in memory, which streaming is there to avoid.
    if cache_frozen and not streamed:
        x_train, validation, forward = cache_frozen_prefix(trainer.model, trainer.loss, forward, x_train, validation,
                                                           eval_batch_size)
    sharding = distributed.current()  # data-parallel under torchrun; None (and no cost) in one process
    if sharding is not None:  # before the first collective of the fit, which ranks that differ would not all join
        length = stream_length(x, "training data") if streamed else len(x_train)
        distributed.check_same_fit({f"training {'batches' if isinstance(x, DataLoader) else 'samples'}": length,
                                    "resume_dir given": resume_dir is not None, "batch_size": batch_size,
                                    "epochs": epochs, "validation_data given": validation_data is not None})
    batches = None
    if streamed:  # its first items are checked now, before the seed: as the arrays' checks, they draw nothing
        order = torch.Generator()  # a placeholder until order_generator below draws the fit's
        batches = streamed_batches(x, batch_size, shuffle=shuffle, order=order, device=trainer.device,
                                   sharding=sharding, check=check, num_workers=num_workers,
                                   epochs_done=lambda: len(trainer.history))
    if trainer.seed is not None:
        torch.manual_seed(trainer.seed)
    order = order_generator(trainer.seed, sharding, batch_size)
    if batches is None:
        batches = Batches(x_train, y_train, batch_size, shuffle=shuffle, order=order, device=trainer.device,
                          sharding=sharding, weights=weights)
    else:
        batches.order = order
    train_forward = forward if sharding is None else distributed.wrap(forward, trainer.device)
    steps_per_epoch = (batches.n + batches.batch_size - 1) // batches.batch_size
    callbacks, rates = _callbacks_and_rates(trainer, epochs, steps_per_epoch,
                                            verbose and (sharding is None or sharding.is_main))
    trainer.epochs = target = len(trainer.history) + epochs
    trainer.steps_per_epoch = steps_per_epoch
    trainer.stop_training = False
    if not any(p.requires_grad for p in trainer.model.parameters()):
        raise ConfigError("nothing to train: every parameter of the model is frozen (unfreeze some layers)")
    running = on_this_rank(callbacks, sharding)  # saved and restored all alike: FitSaves has them all
    step = _step(trainer, train_forward, running, cached=forward is not trainer.forward_logits,
                 weighted=weights is not None)
    validate = validate_stream if validation is None else functools.partial(
        trainer._evaluate_tensors, *validation, batch_size=eval_batch_size, forward=forward)
    if sharding is not None and validation_data is not None:  # each rank its slice (trainwell.train.validation)
        validate = sharded_validation(trainer, validation_data if validation is None else validation, sharding,
                                      eval_batch_size, forward=trainer.forward_logits if validation is None
                                      else forward) or validate
    return Fit(
        batches=batches,
        step=step, meter=_meter(trainer, y_train, sharded=sharding is not None), rates=rates,
        saves=FitSaves(resume_dir, every_steps=save_every_steps, callbacks=callbacks, order=order, target=target,
                       source=batches if streamed else None),
        validate=validate, callbacks=running, batch_begin=[c for c in running if overrides(c, "on_batch_begin")],
        batch_end=[c for c in running if overrides(c, "on_batch_end")], target=target)


def check_workers(num_workers: Any, x: Any) -> None:
    """``num_workers``: a count of worker processes, for a Dataset that trainwell batches (0: read in this process)."""
    if not is_integer(num_workers) or num_workers < 0:
        raise ConfigError(f"num_workers: must be an integer of at least 0, got {num_workers!r}")
    if num_workers and not (is_stream(x) and not isinstance(x, DataLoader)):
        given = "a DataLoader, which is used as given (set its own num_workers)" if is_stream(x) else "arrays"
        raise ConfigError(f"num_workers: loads a Dataset in worker processes, but the training data is {given}")


def check_streamed(x: Any, y: Any, what: str) -> None:
    """A Dataset or DataLoader holds its targets: a ``y`` beside it is refused."""
    if y is not None:
        raise ArrayError(f"{what}: y was given beside a {type(x).__name__}, whose items hold the targets; pass "
                         "the Dataset or DataLoader alone (its items (x, y))")


def _validation(trainer: Any, validation_data: Any, batch_size: int):
    """``(arrays, None)`` for a validation pair, ``(None, validate)`` for a Dataset or DataLoader, else ``(None, None)``."""
    if validation_data is None:
        return None, None
    if is_stream(validation_data):
        return None, functools.partial(evaluate_stream, trainer, validation_data, batch_size,
                                       forward=trainer.forward_logits, what="validation data")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ConfigError(f"validation_data: expected a pair (x, y) or a Dataset or DataLoader, got "
                          f"{type(validation_data).__name__}")
    return trainer._data(*validation_data, "validation data"), None


def evaluate_stream(trainer: Any, data: Any, batch_size: int, *, forward: nn.Module, what: str,
                    y: Any = None) -> dict[str, float]:
    """Loss and metrics of the whole of a Dataset or DataLoader: its logits and targets batch by batch, in order."""
    check_streamed(data, y, what)
    check = BatchCheck(trainer.model, forward, trainer.loss, trainer.device, what)
    logits, targets = streamed_logits(trainer.model, forward, data, batch_size, check)
    return loss_and_metrics(trainer.loss, trainer.metrics, logits, targets)


def prediction_logits(trainer: Any, data: Any, batch_size: int) -> torch.Tensor:
    """The model's logits of a Dataset or DataLoader whose items are ``(x, y)`` or ``x`` alone (``y`` is not read)."""
    check = BatchCheck(trainer.model, trainer.forward_logits, trainer.loss, trainer.device, "prediction inputs",
                       targets=False)
    return streamed_logits(trainer.model, trainer.forward_logits, data, batch_size, check)[0]


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


def on_this_rank(callbacks: list[Callback], sharding: distributed.ProcessRank | None) -> list[Callback]:
    """The callbacks this process runs: all of them, but under torchrun those that are ``rank_zero_only``
    (they write or print) on rank 0 alone."""
    if sharding is None or sharding.is_main:
        return callbacks
    return [c for c in callbacks if not getattr(c, "rank_zero_only", False)]


def _step(trainer: Any, forward: nn.Module, callbacks: list[Callback], *, cached: bool, weighted: bool = False) -> Step:
    """The fit's step; every callback that overrides ``needs_autograd`` is asked on each step the fused step could take."""
    askers = [c for c in callbacks if overrides(c, "needs_autograd")]
    wants_autograd = (lambda: any([c.needs_autograd(trainer, trainer.step) for c in askers])) if askers else None
    # Looked up once per fit: a model without penalties or constraints pays nothing per step.
    parts = StepParts(model=trainer.model, forward=forward, loss=trainer.loss, optimizer=trainer.optimizer,
                      clipping=trainer.clipping, skip_nonfinite=trainer.skip_nonfinite,
                      penalties=kernel_penalties(trainer.model), constraints=kernel_constraints(trainer.model),
                      device=trainer.device, weighted=weighted, precision=trainer.mixed_precision)
    step, _ = make_step(parts, fused=trainer.fused, cached=cached, wants_autograd=wants_autograd,
                        compile=trainer.compile, compiled=trainer.compiled_pass)
    return step


def _meter(trainer: Any, y_train: torch.Tensor | None, *, sharded: bool) -> Meter:
    """The fit's meter. Accuracy of one process's categorical fit, cheaply: each step writes its predicted
    classes into an epoch-long buffer (one op), compared with the targets once per epoch. The other metrics
    (auc, f1, rmse...) need the epoch's outputs, which the meter then keeps. A streamed fit (no ``y_train``:
    the buffer needs the targets by sample index) counts each batch's right predictions."""
    count_correct = "accuracy" in trainer.metrics
    buffered = (y_train is not None and count_correct and not sharded and not trainer.skip_nonfinite
                and trainer.loss.kind == "classes")
    predicted = torch.empty(len(y_train), dtype=torch.long, device=trainer.device) if buffered else None
    return Meter(y_train, device=trainer.device, penalties=bool(kernel_penalties(trainer.model)),
                 count_correct=count_correct, correct=trainer.loss.correct, predicted=predicted, sharded=sharded,
                 metrics=trainer.metrics if needs_outputs(trainer.metrics) else (), loss=trainer.loss)
