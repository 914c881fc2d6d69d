"""A configured run's output folder: what is there before a run, and what the run leaves there.

Before training, a run clears what a killed run left (temporary files, a half-moved set of
outputs), refuses a folder that holds a finished run, and finds or makes ``resume/``, the
saved state of its fit (refused when another fit's: see :mod:`trainwell.recipes.fingerprint`).
After training it writes its files as one set (see fileio.replacing_set), so a failed,
interrupted or out-of-space run never replaces the files of an earlier one, and never leaves
a new model beside an old run's metrics; checkpoints, written during training, have their
own ``checkpoints/`` subfolder, and so do the learning curves and the History of the epochs
done so far, redrawn after every epoch: ``progress/curves.png`` and ``progress/history.csv``
(:func:`progress_callbacks`). Those are not a finished run's files: a killed run leaves them
(and a resumed run goes on writing them from the History it restores), and a finished run's set
holds ``curves.png`` and ``history.csv`` of the same History, after which ``progress/`` goes.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from trainwell.callbacks import Callback, CSVLogger
from trainwell.config import RunConfig
from trainwell.errors import ConfigError
from trainwell.fileio import atomic_write_bytes, atomic_write_text, remove_leftovers, replacing_set, write_json
from trainwell.model.layers import Model
from trainwell.model.saving import save_model
from trainwell.plots import TrainingCurves, plot_history
from trainwell.recipes.build import PreparedData
from trainwell.recipes.fingerprint import fingerprint_difference
from trainwell.train import distributed
from trainwell.train.history import History
from trainwell.train.resume import saved_position
from trainwell.train.trainer import Trainer
from trainwell.versions import versions


def output_dir_for(config: RunConfig) -> Path:
    """The folder a run writes to: ``output_dir``, or ``runs/<name>``."""
    return Path(config.output_dir) if config.output_dir else Path("runs") / (config.name or "run")


RUN_FILES = ("model.safetensors", "history.json", "history.csv", "metrics.json", "config.json", "curves.png")
OUTPUT_SET = (*RUN_FILES, "diagnostics.json")  # written, and replaced, together
PROGRESS = "progress"  # the subfolder of what a run writes after every epoch while it trains


def curves_title(config: RunConfig) -> str:
    return f"{config.name}: training curves" if config.name else "training curves"


def progress_callbacks(out: Path, config: RunConfig) -> list[Callback]:
    """What ``trainwell train`` writes after every epoch: ``<out>/progress/history.csv`` (the History so far,
    as the final ``history.csv``) and ``<out>/progress/curves.png`` (the learning curves)."""
    return [CSVLogger(out / PROGRESS / "history.csv"),
            TrainingCurves(out / PROGRESS / "curves.png", title=curves_title(config))]


def drawn_curves(out: Path, callbacks: list[Callback], history: History) -> Path | None:
    """``progress/curves.png`` when it shows ``history`` as it is now (the final set takes it as it is), else None."""
    for callback in callbacks:
        if isinstance(callback, TrainingCurves) and callback.path == out / PROGRESS / "curves.png" \
                and callback.shows(history):
            return callback.path
    return None


def remove_leftovers_of(out: Path) -> None:
    """Clear what a killed run left in ``out`` (its own temporary files; a half-written set of outputs)
    and in the subfolders trainwell writes during training."""
    remove_leftovers(out)
    for sub in (out / "checkpoints", out / PROGRESS, *sorted((out / "resume").glob("phase-*"))):
        if sub.is_dir() and not sub.is_symlink():
            remove_leftovers(sub)


def remove_folder(folder: Path) -> None:
    """Remove a folder trainwell made (``resume/``); a symlink there is removed, not what it points to."""
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def refuse_finished_run(out: Path, config: RunConfig, fingerprint: str) -> None:
    """ConfigError when ``out`` already holds a finished run's files: a new run would replace them silently.

    A folder whose ``resume/`` still holds this config's saved state is not finished: the
    run was killed (perhaps while writing its files), and running it again completes it.
    """
    if config.train.resumable and saved_fingerprint(out / "resume") == fingerprint:
        return
    found = [name for name in OUTPUT_SET if (out / name).exists()]  # every file a new run's set replaces
    if found:
        raise ConfigError(f"{out}: already holds a finished run ({', '.join(found)}); pass --overwrite "
                          "(train.overwrite = true, train_config(..., overwrite=True)) to replace it, "
                          "or choose another folder with -o/--output-dir")


def announce_resume(resume_dir: Path, phases: int) -> None:
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


def resume_folder(config: RunConfig, out: Path | None, fingerprint: str | None, *, replace: bool = False,
                  restart: bool = False) -> Path | None:
    """``<output_dir>/resume``, made for the fit ``fingerprint`` identifies (see :mod:`trainwell.recipes.fingerprint`).

    The saved state of another fit there is refused, saying what differs, unless
    ``restart`` (``--restart``) or ``replace`` (``--overwrite``) says to drop it, or it holds
    no finished epoch (a run that failed in its first epoch: nothing to lose, and the
    corrected run must not be refused). ``restart`` drops this fit's own state too, so
    training starts from epoch 1.
    """
    if out is None or fingerprint is None or not config.train.resumable:
        return None
    folder = out / "resume"
    saved = saved_fingerprint(folder)
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


def saved_fingerprint(folder: Path) -> str | None:
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


def drop_diverged_state(resume_dir: Path | None, out: Path | None) -> None:
    """Drop the saved state of a fit that diverged (at its end, or stopped by TerminateOnNaN).

    Resumed, the same config would only diverge again, and the corrected config that the
    error suggests must not be refused as "a different fit" until someone deletes resume/.
    """
    if out is None or not distributed.is_main_process():
        return
    remove_folder(out / PROGRESS)  # its curves: nothing of a diverged run is kept
    if resume_dir is not None:
        remove_folder(resume_dir)
    with contextlib.suppress(OSError):
        out.rmdir()  # the folder, if this run made it and nothing else is in it


def drop_unstarted_state(resume_dir: Path | None, out: Path | None, *, made_out: bool) -> None:
    """After a run that failed before any epoch was saved: its resume folder (the fit's ``config.json`` alone:
    nothing to resume from), and the output folder itself if the run made it (``made_out``) and left nothing
    else there."""
    if out is None or resume_dir is None or not distributed.is_main_process():
        return
    if any(saved_position(phase) is not None for phase in resume_dir.glob("phase-*")):
        return  # epochs to resume from: kept, and the error says how
    remove_folder(resume_dir)
    if not any((out / PROGRESS).glob("*")):
        remove_folder(out / PROGRESS)
    if made_out:
        with contextlib.suppress(OSError):
            out.rmdir()


def model_info(config: RunConfig, prepared: PreparedData) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """What a model file records besides the weights: the loss, the data preparation, the config."""
    prep_info, prep_tensors = prepared.preprocessing.to_info()
    info = {"loss": config.train.loss, "metrics": list(config.train.metrics), "data": {**prepared.info, **prep_info},
            "config": config.to_dict(),
            "versions": versions()}
    return info, prep_tensors


def write_outputs(out: Path, config: RunConfig, model: Model, history: History, metrics: dict[str, float],
                  prepared: PreparedData, trainer: Trainer, *, diagnosis: Any = None, recording: Any = None,
                  curves: Path | None = None) -> None:
    """The run's files, replacing an earlier run's as one set: a reader sees all old or all new files.

    ``curves``: a drawing of ``history`` already made (``progress/curves.png``), copied rather than drawn again.
    """
    info, prep_tensors = model_info(config, prepared)
    info["device"] = str(trainer.device)
    with replacing_set(out, family=OUTPUT_SET) as stage:
        save_model(model, stage / "model.safetensors", info=info, extra=prep_tensors)
        history.to_json(stage / "history.json")
        history.to_csv(stage / "history.csv")
        if curves is not None:
            atomic_write_bytes(stage / "curves.png", curves.read_bytes())
        else:
            plot_history(history, stage / "curves.png", title=curves_title(config))
        write_json(stage / "metrics.json", metrics)
        write_json(stage / "config.json", config.to_dict())
        if diagnosis is not None:
            write_json(stage / "diagnostics.json", {"diagnosis": diagnosis.to_dict(), "recording": recording.to_dict()})
