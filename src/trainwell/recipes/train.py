"""A configured run from start to finish: data -> model -> Trainer -> saved outputs.

This is what ``trainwell train CONFIG`` does, as a Python function. The data, the model
and the Trainer come from :mod:`trainwell.recipes.build`; the output folder (what a run
finds there, what it writes, its saved state for resuming) is :mod:`trainwell.recipes.run_folder`'s.
Here: the run's phases, its callbacks, the check that it did not diverge, and its metrics.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwell.callbacks import Callback, Checkpoint, CSVLogger, EarlyStopping, TensorBoard, TerminateOnNaN
from trainwell.config import PhaseConfig, RunConfig, load_config, loss_of, with_dataset_defaults
from trainwell.doctor.record import Diagnostics
from trainwell.doctor.rules import diagnose
from trainwell.errors import ConfigError, TrainingDiverged
from trainwell.fileio import check_writable_folder
from trainwell.model.layers import Model
from trainwell.model.transfer import freeze, select_layers, unfreeze
from trainwell.recipes.build import PreparedData, data_and_model, trainer_from_config
from trainwell.recipes.fingerprint import fit_fingerprint
from trainwell.recipes.run_folder import (PROGRESS, announce_resume, drawn_curves, drop_diverged_state,
                                          drop_unstarted_state, model_info,
                                          output_dir_for, progress_callbacks, refuse_finished_run, remove_folder,
                                          remove_leftovers_of, resume_folder, write_outputs)
from trainwell.train.distributed import barrier, decided_by_main, is_main_process, raised_together
from trainwell.train.history import History
from trainwell.train.trainer import Trainer


@dataclass
class RunResult:
    model: Model
    history: History
    metrics: dict[str, float]
    output_dir: Path | None
    diagnosis: Any = None  # a trainwell.doctor.findings.Diagnosis when the config has a [diagnostics] section


def train_config(config: RunConfig | str | os.PathLike, *, verbose: bool = True, save: bool = True,
                 callbacks: list[Callback] | None = None, allow_nonfinite_loss: bool | None = None,
                 overwrite: bool | None = None, restart: bool | None = None, progress: bool = True) -> RunResult:
    """Run a config (or a config file): train, evaluate, and save the outputs.

    Writes ``model.safetensors``, ``history.json``, ``history.csv``, ``curves.png``, ``metrics.json``
    and ``config.json`` into the output folder, as one set, after training; while it trains, the
    History so far and its curves are rewritten after every epoch in ``<output_dir>/progress/``.
    A run whose final training loss is nan or infinite raises TrainingDiverged and saves
    nothing, unless ``allow_nonfinite_loss`` (default: the config's
    ``train.allow_nonfinite_loss``) keeps it. A folder that holds a finished run is
    refused (ConfigError, nothing changed) unless ``overwrite`` (default: the config's
    ``train.overwrite``); a run killed before it finished continues from its saved state,
    when it is the same fit (see :func:`~trainwell.recipes.fingerprint.fit_fingerprint`), and
    ``restart`` (default: the config's ``train.restart``) drops that state to train from epoch 1 instead.
    ``progress=False`` writes nothing into ``progress/`` while it trains (the final set is the same): for
    callers that show progress their own way, as ``trainwell reproduce`` does, and skip redrawing curves.
    """
    if not isinstance(config, RunConfig):
        config = load_config(config)
    else:  # one made directly (RunConfig(**data)) has not had the dataset's defaults filled in
        config = with_dataset_defaults(config)
    prepared, model = data_and_model(config)
    _check_model_fits_data(config, prepared, model)
    train = config.train
    folder = output_dir_for(config) if save else None  # the run's folder, known to every rank
    out = folder if is_main_process() else None  # where this process writes: under torchrun, rank 0 alone
    replace = train.overwrite if overwrite is None else overwrite
    made_out = out is not None and not out.exists()
    # rank 0 readies the folder and decides (refuse, fingerprint); every rank gets that decision or its error
    fingerprint = decided_by_main(lambda: _prepare_folder(out, config, prepared, model, replace=replace))
    callbacks = [*(callbacks or []),
                 *raised_together(lambda: configured_callbacks(config, prepared, out, progress=progress))]
    trainer = trainer_from_config(config, model, callbacks=callbacks)
    trainer.class_names = prepared.info.get("class_names")  # a files run's classes: class_weight may name them
    validation = (prepared.x_val, prepared.y_val) if prepared.x_val is not None else None
    phases = config.phases or [PhaseConfig(epochs=train.epochs)]
    _check_phase_layers(model, phases)  # fail on a bad layer name now, not after hours of training
    started = time.perf_counter()
    resume_dir = _agreed_resume_folder(config, folder, out, fingerprint, len(phases), replace=replace,
                                       restart=train.restart if restart is None else restart)
    try:
        history = _fit_phases(trainer, model, phases, config, prepared, validation, resume_dir, verbose=verbose)
        if not (train.allow_nonfinite_loss if allow_nonfinite_loss is None else allow_nonfinite_loss):
            _fail_if_diverged(history, config)
    except TrainingDiverged:
        drop_diverged_state(resume_dir, out)
        raise
    except BaseException:  # an error or Ctrl-C before the first saved epoch leaves nothing behind
        drop_unstarted_state(resume_dir, out, made_out=made_out)
        raise
    metrics = _final_metrics(trainer, history, callbacks, prepared, validation, config,
                             train_time=time.perf_counter() - started)
    diagnosis = _diagnose_run(config, model, callbacks)
    if out is not None:
        write_outputs(out, config, model, history, metrics, prepared, trainer, diagnosis=diagnosis,
                      recording=_recording(callbacks), curves=drawn_curves(out, callbacks, history))
    barrier()  # every rank has finished: only now may the saved state go (a rank that failed keeps it)
    if out is not None:  # the run is complete: a new run of the same command starts afresh; a state
        remove_folder(out / "resume")  # left there by an earlier killed run (even with resumable = false) goes too
        remove_folder(out / PROGRESS)  # the set holds its history.csv and curves.png
    return RunResult(model=model, history=history, metrics=metrics, output_dir=out, diagnosis=diagnosis)


def _check_model_fits_data(config: RunConfig, prepared: PreparedData, model: Model) -> None:
    """ConfigError when the model's input shape or output units do not fit the data and the loss."""
    if tuple(model.spec.input_shape) != tuple(prepared.input_shape):
        raise ConfigError(f"model: the model takes inputs of shape {tuple(model.spec.input_shape)} but "
                          f"{config.data.name or config.data.path} has {tuple(prepared.input_shape)}")
    loss, num_classes = config.train.loss, prepared.num_classes
    if loss_of(config.train).regression:  # values, not classes: fit checks the outputs against the targets
        return
    units = model.output_shapes[list(model.output_shapes)[-1]][-1]
    expected = 1 if loss == "binary_crossentropy" else num_classes
    if units != expected:
        raise ConfigError(f"model.layers: the last layer has {units} units but the data has {num_classes} classes "
                          f"and the loss {loss} needs {expected}")


def _prepare_folder(out: Path | None, config: RunConfig, prepared: PreparedData, model: Model, *,
                    replace: bool) -> str | None:
    """Ready the output folder before training; the fit's fingerprint (None when nothing is saved).

    Clears a killed run's leftovers, refuses a finished run's folder unless ``replace``, and
    fails now, not after the training, on a place that is read-only or cannot be made.
    """
    if out is None:
        return None
    remove_leftovers_of(out)
    fingerprint = fit_fingerprint(config, prepared, model)  # hashes the data
    if not replace:
        refuse_finished_run(out, config, fingerprint)
    check_writable_folder(out)
    return fingerprint


def _agreed_resume_folder(config: RunConfig, folder: Path | None, out: Path | None, fingerprint: str | None,
                          phases: int, *, replace: bool, restart: bool) -> Path | None:
    """``<folder>/resume`` on every rank when rank 0 finds or makes it there (:func:`resume_folder`), else None.

    Rank 0 alone reads, drops and writes the folder and says where the run resumes; the other
    ranks follow its decision (or raise its error), and read the state itself when each fit
    starts (:func:`trainwell.train.resume.load_on_every_rank`: from the shared folder, or sent by rank 0).
    """
    def decide() -> bool:
        resume_dir = resume_folder(config, out, fingerprint, replace=replace, restart=restart)
        if resume_dir is not None:
            announce_resume(resume_dir, phases)
        return resume_dir is not None

    return folder / "resume" if decided_by_main(decide) and folder is not None else None


def _check_phase_layers(model: Model, phases: list[PhaseConfig]) -> None:
    for index, phase in enumerate(phases):
        for key in ("freeze", "unfreeze"):
            try:
                select_layers(model, getattr(phase, key))
            except ConfigError as error:
                raise ConfigError(f"phases[{index}].{key}: {error}") from None


def _fit_phases(trainer: Trainer, model: Model, phases: list[PhaseConfig], config: RunConfig, prepared: PreparedData,
                validation: tuple[Any, Any] | None, resume_dir: Path | None, *, verbose: bool) -> History:
    """Fit each phase in turn (each from its own saved state when resuming); the last phase's History."""
    train = config.train
    for index, phase in enumerate(phases):
        _start_phase(trainer, model, phase, config)
        history = trainer.fit(prepared.x_train, prepared.y_train, epochs=phase.epochs, batch_size=train.batch_size,
                              validation_data=validation, verbose=verbose, eval_batch_size=train.eval_batch_size,
                              cache_frozen=train.cache_frozen,
                              resume_dir=None if resume_dir is None else resume_dir / f"phase-{index}",
                              save_every_steps=train.save_every_steps if resume_dir is not None else None)
        if trainer.stop_training:
            break
    return history


def _start_phase(trainer: Trainer, model: Model, phase: PhaseConfig, config: RunConfig) -> None:
    """Freeze and unfreeze the phase's layers; a phase with optimizer options gets a fresh optimizer."""
    if phase.freeze:
        freeze(model, phase.freeze)
    if phase.optimizer:
        overrides = dict(phase.optimizer)
        base = dict(config.optimizer) if overrides.get("name", config.optimizer["name"]) == config.optimizer["name"] else {}
        if phase.unfreeze:
            unfreeze(model, phase.unfreeze)
        trainer.set_optimizer({**base, **overrides})
    elif phase.unfreeze:
        unfreeze(model, phase.unfreeze, optimizer=trainer.optimizer, lr_scale=phase.unfreeze_lr_scale)


def _fail_if_diverged(history: History, config: RunConfig) -> None:
    """TrainingDiverged when the final training loss is not finite.

    Nothing has been written yet, so an earlier run's files in the folder stay as they were.
    """
    losses = [(record.get("epoch"), record.get("loss")) for record in history.records]
    if not losses or losses[-1][1] is None or math.isfinite(losses[-1][1]):
        return
    epoch, loss = next((e, v) for e, v in losses if v is not None and not math.isfinite(v))
    lr = config.optimizer.get("lr")
    lower = f"--set optimizer.lr={lr / 10:g}" if isinstance(lr, (int, float)) else "--set optimizer.lr=..."
    raise TrainingDiverged(
        f"training diverged: the loss became {loss} at epoch {epoch} and was {losses[-1][1]} at the end, so "
        f"nothing was saved; try a lower optimizer.lr ({lower}), gradient clipping (train.clipnorm = 1.0), "
        "or `trainwell lr-find CONFIG` to pick a rate (train.allow_nonfinite_loss = true keeps such a run)")


def _final_metrics(trainer: Trainer, history: History, callbacks: list[Callback], prepared: PreparedData,
                   validation: tuple[Any, Any] | None, config: RunConfig, *, train_time: float) -> dict[str, float]:
    """``metrics.json``: the training time, the validation metrics (of the best epoch when early stopping
    restored it), early stopping's epochs, and the test metrics."""
    batch_size = config.train.eval_batch_size
    metrics: dict[str, float] = {"train_time_s": train_time}
    metrics.update({f"val_{k}": v for k, v in history.last.items() if k in ("loss", *trainer.metrics)}
                   if validation is None else
                   {k: v for k, v in history.last.items() if k.startswith("val_")})
    stopping = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
    if stopping is not None:
        metrics.update({"best_epoch": stopping.best_epoch, "stopped_epoch": stopping.stopped_epoch})
        if stopping.restored and validation is not None:  # the model is the best epoch's, not the last one's
            metrics.update({f"val_{k}": v for k, v in trainer.evaluate(*validation, batch_size=batch_size).items()})
    if prepared.x_test is not None:  # files without a test part have no test metrics
        metrics.update({f"test_{k}": v for k, v in trainer.evaluate(prepared.x_test, prepared.y_test,
                                                                     batch_size=batch_size).items()})
    return metrics


def _recording(callbacks: list[Callback]):
    """The diagnostics recording of a run with a [diagnostics] section, or None."""
    recorder = next((c for c in callbacks if isinstance(c, Diagnostics)), None)
    return None if recorder is None else recorder.recording


def _diagnose_run(config: RunConfig, model: Model, callbacks: list[Callback]):
    """The doctor's findings on a run that recorded diagnostics (written to <output_dir>/diagnostics.json)."""
    recording = _recording(callbacks)
    if recording is None:
        return None
    return diagnose(recording, model=model, scaling=config.data.scaling,
                    optimizer=dict(config.optimizer), context={"name": config.name})


def _writable(folder: str | os.PathLike, key: str) -> Path:
    """``folder``, checked before the training (which writes its progress and saved state) that files can be
    written there; ConfigError naming ``key`` (what ``--tensorboard`` and ``--csv-log`` set) if not."""
    try:
        check_writable_folder(folder)
    except OSError as error:
        raise ConfigError(f"{key}: cannot write in {str(folder)!r}: {error.strerror or error}") from None
    return Path(folder)


def configured_callbacks(config: RunConfig, prepared: PreparedData, out: Path | None, *,
                         progress: bool = True) -> list[Callback]:
    """The callbacks a config's ``[callbacks]`` section asks for.

    Checkpoints go to ``<output_dir>/checkpoints/``, apart from the run's final files
    (which are only written once training has succeeded), and carry the same metadata
    as ``model.safetensors``, so ``trainwell evaluate`` and ``predict`` read them.
    The final model is ``model.safetensors`` itself, so no ``final.safetensors``.
    A run that saves (``out``, rank 0 under torchrun) also writes its progress after every epoch
    (``<output_dir>/progress/``, unless ``progress`` is False) and the loggers asked for: ``[callbacks.tensorboard]`` (into
    ``log_dir``, default ``<output_dir>/tensorboard``) and ``[callbacks.csv_logger]`` (``filename``,
    default ``<output_dir>/training.log``).
    """
    section = config.callbacks
    made: list[Callback] = []
    if config.diagnostics is not None:  # [diagnostics]: the doctor's recording, read by _diagnose_run
        made.append(Diagnostics(config.diagnostics.every))
    if out is not None:
        if progress:
            made.extend(progress_callbacks(out, config))
        if section is not None and section.tensorboard is not None:
            options = section.tensorboard.model_dump()
            log_dir = _writable(options.pop("log_dir") or out / "tensorboard", "callbacks.tensorboard.log_dir")
            made.append(TensorBoard(log_dir, **options))
        if section is not None and section.csv_logger is not None:
            options = section.csv_logger.model_dump()
            filename = Path(options.pop("filename") or out / "training.log")
            _writable(filename.parent, "callbacks.csv_logger.filename")
            made.append(CSVLogger(filename, **options))
    if section is None:
        return made
    if section.terminate_on_nan:
        made.append(TerminateOnNaN())
    if section.early_stopping is not None:  # before Checkpoint: its restored weights are what the run keeps
        made.append(EarlyStopping(**section.early_stopping.model_dump()))
    if section.checkpoint is not None and out is not None:
        info, extra = model_info(config, prepared)
        made.append(Checkpoint(out / "checkpoints", **section.checkpoint.model_dump(), save_final=False,
                               info=info, extra=extra))
    return made
