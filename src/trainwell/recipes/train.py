"""A configured run from start to finish: data -> model -> Trainer -> saved outputs.

This is what ``trainwell train CONFIG`` does, as a Python function. Outputs are
written only once training has finished, as one set (see fileio.replacing_set), so a
failed, interrupted or out-of-space run never replaces the files of an earlier one, and
never leaves a new model beside an old run's metrics (checkpoints, written during
training, have their own ``checkpoints/`` subfolder).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell import data as datasets
from trainwell.train import distributed
from trainwell.callbacks import Callback, Checkpoint, EarlyStopping, TerminateOnNaN
from trainwell.config import PhaseConfig, RunConfig, load_config
from trainwell.train.distributed import is_main_process
from trainwell.errors import ConfigError, TrainingDiverged, TrainwellError
from trainwell.fileio import (atomic_write_text, check_writable_folder, json_text, remove_leftovers, replacing_set,
                              write_json)
from trainwell.train.history import History
from trainwell.model.layers import Model, ModelSpec, build_model, layer_from_dict
from trainwell.data.preprocessing import Preprocessing
from trainwell.train.resume import saved_position
from trainwell.model.saving import load_model, save_model
from trainwell.model.transfer import freeze, reuse_layers, select_layers, unfreeze
from trainwell.train.threads import auto_threads
from trainwell.train.trainer import Trainer, resolve_device, seed_everything


@dataclass
class PreparedData:
    """The arrays of one run, ready for the model, and how they were made."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    preprocessing: Preprocessing
    info: dict[str, Any]


def select_split(dataset: Any, *, validation_size: int, classes: list[int] | None, split: str):
    """Raw (uint8) images and labels of one split: "train", "validation" or "test".

    The book's validation set is the first ``validation_size`` training images.
    """
    if split == "test":
        x, y = dataset.x_test, dataset.y_test
    else:
        if validation_size >= len(dataset.x_train):
            raise ConfigError(f"data.validation_size: {validation_size} leaves no training images "
                              f"({dataset.name} has {len(dataset.x_train)})")
        parts = datasets.validation_split(dataset.x_train, dataset.y_train, size=validation_size)
        x, y = (parts.x_valid, parts.y_valid) if split == "validation" else (parts.x_train, parts.y_train)
    if classes:
        x, y = datasets.filter_classes(x, y, classes, relabel=True)
    return x, y


def prepare_data(config: RunConfig) -> PreparedData:
    """Load the dataset the config names and make its splits and preprocessing."""
    section = config.data
    dataset = datasets.load(section.name, path=section.path, offline=section.offline)
    if section.classes is not None:
        known = set(np.unique(dataset.y_train).tolist())
        unknown = [c for c in section.classes if c not in known]
        if unknown or len(set(section.classes)) != len(section.classes):
            raise ConfigError(f"data.classes: {section.classes} must be distinct classes of {section.name} "
                              f"(allowed: {sorted(known)})")
    x_train, y_train = select_split(dataset, validation_size=section.validation_size, classes=section.classes, split="train")
    x_train, y_train = _subsample(x_train, y_train, section, seed=config.seed)
    x_test, y_test = select_split(dataset, validation_size=section.validation_size, classes=section.classes, split="test")
    x_val = y_val = None
    if section.validation_size > 0:
        x_val, y_val = select_split(dataset, validation_size=section.validation_size, classes=section.classes,
                                    split="validation")
    prep = Preprocessing.fit(section.scaling, x_train, pixel_max=dataset.pixel_max)
    num_classes = len(section.classes) if section.classes else int(max(dataset.y_train.max(), dataset.y_test.max())) + 1
    info = {"dataset": section.name, "validation_size": section.validation_size, "classes": section.classes,
            "per_class": section.per_class, "train_size": section.train_size}
    return PreparedData(
        x_train=prep(x_train), y_train=np.asarray(y_train, dtype=np.int64),
        x_val=None if x_val is None else prep(x_val), y_val=None if y_val is None else np.asarray(y_val, dtype=np.int64),
        x_test=prep(x_test), y_test=np.asarray(y_test, dtype=np.int64),
        num_classes=num_classes, input_shape=tuple(x_train.shape[1:]), preprocessing=prep, info=info)


def _subsample(x: np.ndarray, y: np.ndarray, section: Any, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The chapter's small training sets: k images per class (seeded), then the first N."""
    try:
        if section.per_class is not None:
            x, y = datasets.take_per_class(x, y, section.per_class, seed=seed)
    except TrainwellError as error:
        raise ConfigError(f"data.per_class: {error}") from None
    try:
        if section.train_size is not None:
            x, y = datasets.take_first(x, y, section.train_size)
    except TrainwellError as error:
        raise ConfigError(f"data.train_size: {error}") from None
    return x, y


def build_from_config(config: RunConfig, input_shape: tuple[int, ...]) -> Model:
    """The config's model, with the dataset's input shape unless the config gives one.

    With ``[model.reuse]``, the lowest layers of a saved model (copied, unless
    ``share``) topped by ``model.layers`` as the new head.
    """
    layers = [layer_from_dict(layer, where=f"model.layers[{i}]") for i, layer in enumerate(config.model.layer_tables())]
    reuse = config.model.reuse
    if reuse is not None:
        source = load_model(_existing(reuse.model, "model.reuse.model"))
        count = reuse.layers if reuse.layers > 0 else len(source.spec.layers) + reuse.layers
        try:
            return reuse_layers(source, count, head=layers, share=reuse.share)
        except ConfigError as error:
            raise ConfigError(f"model.reuse.layers = {reuse.layers}: {error}") from None
    shape = tuple(config.model.input_shape) if config.model.input_shape else input_shape
    return build_model(ModelSpec(input_shape=shape, layers=tuple(layers)))


def _existing(path: str, key: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{key}: no model file at {path!r}; train the source model first "
                          "(e.g. trainwell train examples/transfer_model_a.toml)")
    return file


@dataclass
class RunResult:
    model: Model
    history: History
    metrics: dict[str, float]
    output_dir: Path | None
    diagnosis: Any = None  # a trainwell.doctor.findings.Diagnosis when the config has a [diagnostics] section


def output_dir_for(config: RunConfig) -> Path:
    return Path(config.output_dir) if config.output_dir else Path("runs") / (config.name or "run")


def train_config(config: RunConfig | str | os.PathLike, *, verbose: bool = True, save: bool = True,
                 callbacks: list[Callback] | None = None, allow_nonfinite_loss: bool | None = None,
                 overwrite: bool | None = None, restart: bool | None = None) -> RunResult:
    """Run a config (or a config file): train, evaluate, and save the outputs.

    Writes ``model.safetensors``, ``history.json``, ``history.csv``, ``metrics.json``
    and ``config.json`` into the output folder, each atomically, after training.
    A run whose final training loss is nan or infinite raises TrainingDiverged and saves
    nothing, unless ``allow_nonfinite_loss`` (default: the config's
    ``train.allow_nonfinite_loss``) keeps it. A folder that holds a finished run is
    refused (ConfigError, nothing changed) unless ``overwrite`` (default: the config's
    ``train.overwrite``); a run killed before it finished continues from its saved state,
    when it is the same fit (see :func:`fit_fingerprint`), and ``restart`` (default: the
    config's ``train.restart``) drops that state to train from epoch 1 instead.
    """
    if not isinstance(config, RunConfig):
        config = load_config(config)
    seed_everything(config.seed)
    prepared = prepare_data(config)
    seed_everything(config.seed)  # the model's initial weights depend on the seed alone
    model = build_from_config(config, prepared.input_shape)
    if tuple(model.spec.input_shape) != tuple(prepared.input_shape):
        raise ConfigError(f"model: the model takes inputs of shape {tuple(model.spec.input_shape)} but "
                          f"{config.data.name} has {tuple(prepared.input_shape)}")
    _check_output_units(model, prepared.num_classes, config.train.loss)
    train = config.train
    out = output_dir_for(config) if save and is_main_process() else None  # under torchrun, rank 0 writes
    replace = train.overwrite if overwrite is None else overwrite
    if out is not None:
        _remove_leftovers_of(out)
    fingerprint = fit_fingerprint(config, prepared, model) if out is not None else None  # hashes the data
    if out is not None and not replace:
        _refuse_finished_run(out, config, fingerprint)
    if out is not None:  # a read-only or missing place fails now, not after the training
        check_writable_folder(out)
    callbacks = [*(callbacks or []), *configured_callbacks(config, prepared, out)]
    trainer = Trainer(model, loss=train.loss, optimizer=dict(config.optimizer), metrics=train.metrics,
                      clipvalue=train.clipvalue, clipnorm=train.clipnorm, global_clipnorm=train.global_clipnorm,
                      schedule=config.schedule, callbacks=callbacks, device=train.device, seed=config.seed,
                      skip_nonfinite=train.skip_nonfinite_batches, threads=train.threads, fused=train.fused)
    validation = (prepared.x_val, prepared.y_val) if prepared.x_val is not None else None
    phases = config.phases or [PhaseConfig(epochs=train.epochs)]
    for index, phase in enumerate(phases):  # fail on a bad layer name now, not after hours of training
        for key in ("freeze", "unfreeze"):
            try:
                select_layers(model, getattr(phase, key))
            except ConfigError as error:
                raise ConfigError(f"phases[{index}].{key}: {error}") from None
    started = time.perf_counter()
    resume_dir = _resume_dir(config, out, fingerprint, replace=replace,
                             restart=train.restart if restart is None else restart)
    if resume_dir is not None:
        _announce_resume(resume_dir, len(phases))
    try:
        for index, phase in enumerate(phases):
            _start_phase(trainer, model, phase, config)
            history = trainer.fit(prepared.x_train, prepared.y_train, epochs=phase.epochs, batch_size=train.batch_size,
                                  validation_data=validation, verbose=verbose, eval_batch_size=train.eval_batch_size,
                                  cache_frozen=train.cache_frozen,
                                  resume_dir=None if resume_dir is None else resume_dir / f"phase-{index}",
                                  save_every_steps=train.save_every_steps if resume_dir is not None else None)
            if trainer.stop_training:
                break
        if not (train.allow_nonfinite_loss if allow_nonfinite_loss is None else allow_nonfinite_loss):
            _fail_if_diverged(history, config)
    except TrainingDiverged:
        _drop_diverged_state(resume_dir, out)
        raise
    metrics: dict[str, float] = {"train_time_s": time.perf_counter() - started}
    metrics.update({f"val_{k}": v for k, v in history.last.items() if k in ("loss", "accuracy")}
                   if validation is None else
                   {k: v for k, v in history.last.items() if k.startswith("val_")})
    stopping = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
    if stopping is not None:
        metrics.update({"best_epoch": stopping.best_epoch, "stopped_epoch": stopping.stopped_epoch})
        if stopping.restored and validation is not None:  # the model is the best epoch's, not the last one's
            metrics.update({f"val_{k}": v for k, v in trainer.evaluate(
                *validation, batch_size=train.eval_batch_size).items()})
    metrics.update({f"test_{k}": v for k, v in trainer.evaluate(prepared.x_test, prepared.y_test,
                                                                 batch_size=train.eval_batch_size).items()})
    diagnosis = _diagnose_run(config, model, callbacks)
    if out is not None:
        _write_outputs(out, config, model, history, metrics, prepared, trainer, diagnosis=diagnosis,
                       recording=_recording(callbacks))
    if out is not None:  # the run is complete: a new run of the same command starts afresh; a state
        remove_folder(out / "resume")  # left there by an earlier killed run (even with resumable = false) goes too
    return RunResult(model=model, history=history, metrics=metrics, output_dir=out, diagnosis=diagnosis)


RUN_FILES = ("model.safetensors", "history.json", "history.csv", "metrics.json", "config.json")
OUTPUT_SET = (*RUN_FILES, "diagnostics.json")  # written, and replaced, together


def _remove_leftovers_of(out: Path) -> None:
    """Clear what a killed run left in ``out`` (its own temporary files; a half-written set of outputs)
    and in the subfolders trainwell writes during training."""
    remove_leftovers(out)
    for sub in (out / "checkpoints", *sorted((out / "resume").glob("phase-*"))):
        if sub.is_dir() and not sub.is_symlink():
            remove_leftovers(sub)


def remove_folder(folder: Path) -> None:
    """Remove a folder trainwell made (``resume/``); a symlink there is removed, not what it points to."""
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def _refuse_finished_run(out: Path, config: RunConfig, fingerprint: str) -> None:
    """ConfigError when ``out`` already holds a finished run's files: a new run would replace them silently.

    A folder whose ``resume/`` still holds this config's saved state is not finished: the
    run was killed (perhaps while writing its files), and running it again completes it.
    """
    if config.train.resumable and _saved_fingerprint(out / "resume") == fingerprint:
        return
    found = [name for name in OUTPUT_SET if (out / name).exists()]  # every file a new run's set replaces
    if found:
        raise ConfigError(f"{out}: already holds a finished run ({', '.join(found)}); pass --overwrite "
                          "(train.overwrite = true, train_config(..., overwrite=True)) to replace it, "
                          "or choose another folder with -o/--output-dir")


def _announce_resume(resume_dir: Path, phases: int) -> None:
    """One line on stderr when this run continues a killed one: where it starts again, and from which folder."""
    for index in reversed(range(phases)):
        position = saved_position(resume_dir / f"phase-{index}")
        if position is not None:
            break
    else:
        return
    epoch, step = position["epoch"], position["step"]
    where = f"at epoch {epoch + 1}" if epoch < position["target"] else f"after epoch {epoch}, the last"
    phase = f" of phase {index + 1} of {phases}" if phases > 1 else ""
    print(f"resuming {where}{phase}, step {step:,} from {resume_dir}", file=sys.stderr)


def _resume_dir(config: RunConfig, out: Path | None, fingerprint: str | None, *, replace: bool = False,
                restart: bool = False) -> Path | None:
    """``<output_dir>/resume``, made for the fit ``fingerprint`` identifies (see :func:`fit_fingerprint`).

    The saved state of another fit there is refused, saying what differs, unless
    ``restart`` (``--restart``) or ``replace`` (``--overwrite``) says to drop it, or it holds
    no finished epoch (a run that failed in its first epoch: nothing to lose, and the
    corrected run must not be refused). ``restart`` drops this fit's own state too, so
    training starts from epoch 1.
    """
    if out is None or fingerprint is None or not config.train.resumable:
        return None
    folder = out / "resume"
    saved = _saved_fingerprint(folder)
    if restart or (saved is not None and saved != fingerprint):
        progress = [position for phase in sorted(folder.glob("phase-*"))
                    if (position := saved_position(phase)) is not None]
        done = sum(p["epoch"] for p in progress)
        if progress and not (replace or restart):
            raise ConfigError(f"{out}: holds an interrupted run of a different fit ({done} epoch(s) done, its state "
                              f"in {folder}): {fingerprint_difference(saved, fingerprint)}; pass --restart "
                              "(train.restart = true, train_config(..., restart=True)) to drop that state and start "
                              "from epoch 1, or use another output_dir")
        if distributed.is_main_process() and folder.exists():
            if progress:
                print(f"starting over: dropped the saved state of {done} epoch(s) in {folder}", file=sys.stderr)
            remove_folder(folder)
    if distributed.is_main_process():  # every rank resumes from the state; only rank 0 writes it
        atomic_write_text(folder / "config.json", fingerprint + "\n")
    return folder


def _saved_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the config whose training state ``folder`` keeps, or None.

    A file that cannot be read as text (not UTF-8, a folder in its place) is no config's:
    ``""``, which matches none, so the state there counts as another run's.
    """
    saved = folder / "config.json"
    if not saved.exists():
        return None
    try:
        return saved.read_text(encoding="utf-8").strip()
    except (UnicodeDecodeError, IsADirectoryError, PermissionError):
        return ""


# Config keys that do not change what a fit computes: where its files go and what it is called, what
# happens after training (overwrite, allow_nonfinite_loss), whether and how often its state is saved
# (a resumed fit equals an uninterrupted one either way), whether it restarts, and where the data are
# read from (their contents are in the fingerprint).
NOT_THE_FIT = (("name",), ("output_dir",), ("train", "overwrite"), ("train", "allow_nonfinite_loss"),
               ("train", "restart"), ("train", "resumable"), ("train", "save_every_steps"),
               ("train", "device"), ("train", "threads"), ("data", "path"), ("data", "offline"))

_LABELS = {"runtime.device": "train.device (in use)", "runtime.threads": "train.threads (CPU threads in use)",
           "data.sha256": "the data (their sha256)", "code.trainwell": "trainwell version",
           "code.torch": "torch version"}


def fit_fingerprint(config: RunConfig, prepared: PreparedData, model: Model) -> str:
    """What identifies a fit, so that a killed run is resumed only by the same one (one line of JSON).

    It holds what changes the result: the config but for the keys of :data:`NOT_THE_FIT`;
    the device the fit runs on and, on the CPU, the number of threads (``device = "auto"`` and
    ``threads`` unset are machine-dependent, and the thread count changes how sums are split,
    so their rounding); the contents of the training and validation data; and the versions
    of trainwell and torch (the training loop and the kernels: a run continued by another
    version equals no uninterrupted run). It leaves out how the run is shown (``-q``, the
    progress display) and where its files go (``-o run`` and ``-o /abs/run`` are one fit).
    """
    import trainwell

    data = config.to_dict()
    for path in NOT_THE_FIT:
        section = data
        for key in path[:-1]:
            section = section.get(key, {})
        section.pop(path[-1], None)
    device = resolve_device(config.train.device)
    threads = None
    if device.type == "cpu":
        threads = config.train.threads or auto_threads(model, device) or torch.get_num_threads()
    digest = hashlib.sha256()
    for array in (prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val):
        if array is not None:
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    fingerprint = {"config": data, "runtime": {"device": device.type, "threads": threads},
                   "data": {"sha256": digest.hexdigest()},
                   "code": {"trainwell": trainwell.__version__, "torch": torch.__version__}}
    return json_text(fingerprint, indent=None, sort_keys=True)


def fingerprint_difference(saved: str | None, current: str, *, most: int = 4) -> str:
    """What differs between two fingerprints, briefly: ``optimizer.lr 0.01 -> 0.002; train.epochs 2 -> 4``."""
    try:
        old = json.loads(saved or "")
    except ValueError:
        old = None
    if not isinstance(old, dict) or "config" not in old or "code" not in old:
        return "its fingerprint is unreadable or was written by an earlier trainwell version"
    old_keys, new_keys = _flat(old), _flat(json.loads(current))
    keys = sorted((k for k in old_keys.keys() | new_keys.keys() if old_keys.get(k, _UNSET) != new_keys.get(k, _UNSET)),
                  key=lambda k: (not k.startswith("config."), k))  # the config's keys first
    parts = [f"{_label(k)} {_brief(old_keys.get(k, _UNSET))} -> {_brief(new_keys.get(k, _UNSET))}" for k in keys[:most]]
    if len(keys) > most:
        parts.append(f"and {len(keys) - most} more")
    return "; ".join(parts) or "the fingerprints differ"


_UNSET = object()


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as one dict with keys like ``model.layers[1].units``; scalars are the values."""
    if isinstance(value, list) and value:
        items = {f"{prefix}[{i}]": item for i, item in enumerate(value)}
    elif isinstance(value, dict) and value:
        items = {f"{prefix}.{key}" if prefix else str(key): item for key, item in value.items()}
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items.items():
        flat.update(_flat(item, key))
    return flat


def _label(key: str) -> str:
    return _LABELS.get(key, key[len("config."):] if key.startswith("config.") else key)


def _brief(value: Any, width: int = 40) -> str:
    if value is _UNSET:
        return "(unset)"
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[:width - 3] + "..."


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


def _drop_diverged_state(resume_dir: Path | None, out: Path | None) -> None:
    """Drop the saved state of a fit that diverged (at its end, or stopped by TerminateOnNaN).

    Resumed, the same config would only diverge again, and the corrected config that the
    error suggests must not be refused as "a different fit" until someone deletes resume/.
    """
    if resume_dir is None or not distributed.is_main_process():
        return
    remove_folder(resume_dir)
    with contextlib.suppress(OSError):
        out.rmdir()  # the folder, if this run made it and nothing else is in it


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


def _recording(callbacks: list[Callback]):
    """The diagnostics recording of a run with a [diagnostics] section, or None."""
    from trainwell.doctor.record import Diagnostics

    recorder = next((c for c in callbacks if isinstance(c, Diagnostics)), None)
    return None if recorder is None else recorder.recording


def _diagnose_run(config: RunConfig, model: Model, callbacks: list[Callback]):
    """The doctor's findings on a run that recorded diagnostics (written to <output_dir>/diagnostics.json)."""
    from trainwell.doctor.findings import diagnose

    recording = _recording(callbacks)
    if recording is None:
        return None
    return diagnose(recording, model=model, scaling=config.data.scaling,
                    optimizer=dict(config.optimizer), context={"name": config.name})


def _check_output_units(model: Model, num_classes: int, loss: str) -> None:
    units = model.output_shapes[list(model.output_shapes)[-1]][-1]
    expected = 1 if loss == "binary_crossentropy" else num_classes
    if units != expected:
        raise ConfigError(f"model.layers: the last layer has {units} units but the data has {num_classes} classes "
                          f"and the loss {loss} needs {expected}")


def configured_callbacks(config: RunConfig, prepared: PreparedData, out: Path | None) -> list[Callback]:
    """The callbacks a config's ``[callbacks]`` section asks for.

    Checkpoints go to ``<output_dir>/checkpoints/``, apart from the run's final files
    (which are only written once training has succeeded), and carry the same metadata
    as ``model.safetensors``, so ``trainwell evaluate`` and ``predict`` read them.
    The final model is ``model.safetensors`` itself, so no ``final.safetensors``.
    """
    section = config.callbacks
    made: list[Callback] = []
    if config.diagnostics is not None:  # [diagnostics]: the doctor's recording, read by _diagnose_run
        from trainwell.doctor.record import Diagnostics

        made.append(Diagnostics(config.diagnostics.every))
    if section is None:
        return made
    if section.terminate_on_nan:
        made.append(TerminateOnNaN())
    if section.early_stopping is not None:  # before Checkpoint: its restored weights are what the run keeps
        made.append(EarlyStopping(**section.early_stopping.model_dump()))
    if section.checkpoint is not None and out is not None:
        info, extra = _model_info(config, prepared)
        made.append(Checkpoint(out / "checkpoints", **section.checkpoint.model_dump(), save_final=False,
                               info=info, extra=extra))
    return made


def _model_info(config: RunConfig, prepared: PreparedData) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """What a model file records besides the weights: the loss, the data preparation, the config."""
    prep_info, prep_tensors = prepared.preprocessing.to_info()
    info = {"loss": config.train.loss, "data": {**prepared.info, **prep_info}, "config": config.to_dict(),
            "versions": versions()}
    return info, prep_tensors


def _write_outputs(out: Path, config: RunConfig, model: Model, history: History, metrics: dict[str, float],
                   prepared: PreparedData, trainer: Trainer, *, diagnosis: Any = None, recording: Any = None) -> None:
    """The run's files, replacing an earlier run's as one set: a reader sees all old or all new files."""
    info, prep_tensors = _model_info(config, prepared)
    info["device"] = str(trainer.device)
    with replacing_set(out, family=OUTPUT_SET) as stage:
        save_model(model, stage / "model.safetensors", info=info, extra=prep_tensors)
        history.to_json(stage / "history.json")
        history.to_csv(stage / "history.csv")
        write_json(stage / "metrics.json", metrics)
        write_json(stage / "config.json", config.to_dict())
        if diagnosis is not None:
            write_json(stage / "diagnostics.json", {"diagnosis": diagnosis.to_dict(), "recording": recording.to_dict()})


def versions() -> dict[str, str]:
    """Library versions, recorded with every saved model."""
    import trainwell

    return {"trainwell": trainwell.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}
