"""Resumable training: the whole state of a fit, saved atomically, so a killed run continues exactly.

A state holds everything the rest of the fit depends on: the model's weights and
buffers, the optimizer's state, the History, the epoch and step counters, the
learning-rate scale, the count of skipped non-finite batches, the callbacks' counters (early stopping, plateau, checkpoints),
and the random number generators of PyTorch, NumPy and Python together with the
generator that shuffles the data. Restored, the run goes on with the same data order
and the same dropout masks, so on the CPU its final weights and History equal those of
a run that was never interrupted, bit for bit.

On disk a state is one safetensors file (tensors) whose metadata holds the rest as
JSON and a SHA-256 of both. Files are written atomically and the newest two are kept:
a state that fails its checksum is reported and the previous one is used instead.

:class:`FitSaves` is what the training loop calls: it captures a trainer's state at an
epoch's end (or every ``save_every_steps`` steps) and restores it when a fit starts. Under
torchrun every rank restores the state rank 0 picks (:func:`load_on_every_rank`): read from
the shared folder, or sent by rank 0. The state's encoding, its files, and how a fit saves and
finds it are one module: each rule (which file is the newest good one, what a state holds) is
read by the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trainwell.errors import TrainwellError
from trainwell.fileio import json_text
from trainwell.model.saving import read_safetensors, weights_digest
from trainwell.tensorfile import write_tensors
from trainwell.train import distributed

log = logging.getLogger(__name__)

STATE_FORMAT = "trainwell-training-state"
KEEP = 2


class ResumeError(TrainwellError):
    """A saved training state cannot be used (it belongs to another run, or none is readable)."""


# ------------------------------------------------------------------ encoding
def _flatten(value: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """JSON-ready copy of ``value`` with every tensor replaced by a reference into ``tensors``."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(value, np.ndarray):  # kept as int64/float64: safetensors lacks some unsigned types
        wide = value.astype(np.int64 if value.dtype.kind in "iub" else np.float64)
        tensors[path] = torch.from_numpy(np.ascontiguousarray(wide))
        return {"__ndarray__": path, "dtype": value.dtype.str}
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            raise TypeError(f"state keys must be strings or integers, got {list(value)[:3]} at {path}")
        return {"__dict__": [[k, _flatten(v, tensors, f"{path}.{k}")] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    return value


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__ndarray__" in value:
            return tensors[value["__ndarray__"]].numpy().astype(np.dtype(value["dtype"]))
        if "__dict__" in value:
            return {k: _unflatten(v, tensors) for k, v in value["__dict__"]}
        if "__tuple__" in value:
            return tuple(_unflatten(v, tensors) for v in value["__tuple__"])
        if "__float__" in value:
            return float(value["__float__"])
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value


def _digest(tensors: dict[str, torch.Tensor], text: str) -> str:
    return hashlib.sha256((weights_digest(tensors) + text).encode()).hexdigest()


# ------------------------------------------------------------------ files
def state_files(directory: str | os.PathLike) -> list[Path]:
    """The state files in ``directory``, newest (highest step) first."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("state-*.safetensors"), key=lambda p: _step_of(p), reverse=True)


def _step_of(path: Path) -> int:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def save_state(directory: str | os.PathLike, state: dict[str, Any], *, step: int) -> Path:
    """Write ``state`` as ``state-<step>.safetensors`` atomically; keep the newest two."""
    tensors: dict[str, torch.Tensor] = {}
    text = json_text(_flatten(state, tensors, "s"), indent=None)
    path = Path(directory) / f"state-{step:09d}.safetensors"
    write_tensors(tensors, path, {"format": STATE_FORMAT, "state": text, "sha256": _digest(tensors, text)})
    for old in state_files(directory)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read one state file; ResumeError if it is unreadable or fails its checksum."""
    try:
        tensors, metadata = read_safetensors(path)
    except (OSError, ValueError, RuntimeError) as error:
        raise ResumeError(f"{path}: unreadable training state ({error})") from None
    text = metadata.get("state")
    if metadata.get("format") != STATE_FORMAT or text is None:
        raise ResumeError(f"{path}: not a trainwell training state")
    if _digest(tensors, text) != metadata.get("sha256"):
        raise ResumeError(f"{path}: the training state does not match its checksum; the file is corrupted")
    try:  # the checksum is right, but a crafted file can still hold JSON that is no state
        return _unflatten(json.loads(text), tensors)
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else f"{type(error).__name__}: {error}"
        raise ResumeError(f"{path}: the training state's contents are not a state trainwell wrote ({reason})") from None


def saved_position(directory: str | os.PathLike) -> dict[str, int] | None:
    """Where the newest state in ``directory`` stands: ``{"epoch": epochs done, "step": steps done,
    "target": epochs of the fit}``, read from its metadata alone (to say where a run resumes); None without one."""
    from safetensors import SafetensorError, safe_open

    for path in state_files(directory):
        try:
            with safe_open(str(path), framework="pt") as handle:
                fields = dict(json.loads((handle.metadata() or {})["state"])["__dict__"])
            return {key: int(fields[key]) for key in ("epoch", "step", "target")}
        except (OSError, ValueError, KeyError, TypeError, SafetensorError):
            continue  # unreadable: loading falls back past it too
    return None


def load_latest_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The newest readable state in ``directory`` (falling back past corrupted ones), or None."""
    found = _latest_state(directory)
    return None if found is None else found[1]


def _latest_state(directory: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable state in ``directory`` and its file, or None."""
    problems = []
    for path in state_files(directory):
        try:
            state = read_state(path)
        except ResumeError as error:
            log.warning("%s; trying the previous state", error)
            problems.append(str(error))
            continue
        return path, state
    if problems:
        raise ResumeError("no usable training state: " + "; ".join(problems) + "; pass --restart "
                          "(train_config(restart=True)) to drop them and train from epoch 1")
    return None


def load_on_every_rank(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The newest state in rank 0's ``directory``, the same on every rank (in one process, :func:`load_latest_state`).

    Rank 0 picks the state (or none, or fails: then every rank fails). Where every rank sees
    that very file (one machine, or a shared filesystem: same name, same checksum), each reads
    it; where one does not (each node its own disk), rank 0 sends the state to all by broadcast.
    """
    if distributed.current() is None:
        return load_latest_state(directory)
    found: list[tuple[Path, dict[str, Any]] | None] = [None]

    def pick() -> tuple[str, str | None] | None:  # on rank 0: the file, and its checksum for the others to match
        found[0] = _latest_state(directory)
        return None if found[0] is None else (found[0][0].name, _checksum(found[0][0]))

    chosen = distributed.decided_by_main(pick)
    if chosen is None:
        return None
    state = found[0][1] if distributed.is_main_process() else _same_state(Path(directory) / chosen[0], chosen[1])
    seen = distributed.gather_object(state is not None)
    if all(seen):  # the folder is shared: each rank has read the state
        return state
    if distributed.is_main_process():
        blind = ", ".join(str(rank) for rank, ok in enumerate(seen) if not ok)
        print(f"rank {blind} does not see {directory} (not a shared folder): rank 0 sends the saved state",
              file=sys.stderr)
    return distributed.from_rank_zero(state if distributed.is_main_process() else None)


def _checksum(path: Path) -> str | None:
    """The SHA-256 a state file's metadata records, or None where it cannot be read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("sha256")
    except (OSError, SafetensorError):
        return None


def _same_state(path: Path, checksum: str | None) -> dict[str, Any] | None:
    """The state in ``path`` when this rank sees the file rank 0 chose (same checksum), else None."""
    if checksum is None or _checksum(path) != checksum:
        return None
    try:
        return read_state(path)
    except ResumeError:
        return None


# ------------------------------------------------------------------ generators
def rng_states(order: torch.Generator) -> dict[str, Any]:
    """The states of every random generator a fit draws from."""
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
              "order": order.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], order: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    order.set_state(states["order"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ------------------------------------------------------------------ one fit's saves
def fit_callbacks(callbacks: Sequence[Any]) -> dict[str, Any]:
    """The callbacks a saved training state records, by position and class ("0:EarlyStopping"): all but
    those that only report (``affects_fit = False``, the progress display), which a resumed fit may add or drop."""
    kept = [c for c in callbacks if getattr(c, "affects_fit", True)]
    return {f"{i}:{type(c).__name__}": c for i, c in enumerate(kept)}


def capture(trainer: Any, callbacks: Sequence[Any], order: torch.Generator, target: int,
            mid_epoch: dict[str, Any] | None = None, source: Any = None) -> dict[str, Any]:
    """Everything the rest of ``trainer``'s fit depends on, as a state to save (``source``: what a streamed
    fit's batches keep beyond the order generator, :mod:`trainwell.train.streamed`)."""
    rng = rng_states(order)
    if mid_epoch is not None:
        # Resuming redraws this epoch's order from the generator state at its start,
        # then goes on with the other generators as they are now.
        rng["order"] = mid_epoch.pop("epoch_order")
    state = {
        "target": target, "epoch": len(trainer.history), "step": trainer.step, "stopped": trainer.stop_training,
        "lr_scale": trainer.lr_scale, "skipped_batches": trainer.skipped_batches,
        "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
        "history": {"records": trainer.history.records, "steps": trainer.history.steps},
        "callbacks": {name: c.state_dict() for name, c in fit_callbacks(callbacks).items()},
        "rng": rng, "mid_epoch": mid_epoch,
    }
    if source is not None:
        state["source"] = source
    return state


def _matching(names: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """Rank 0's saved callback names, each given this rank's callback of the same class in the same order (the
    n-th EarlyStopping to the n-th), or None where this rank runs none (``load_state_dict`` is then skipped)."""
    mine: dict[str, list[Any]] = {}
    for name, callback in names.items():
        mine.setdefault(name.split(":", 1)[1], []).append(callback)
    matched: dict[str, Any] = {}
    for name in saved:
        same_class = mine.get(name.split(":", 1)[1])
        matched[name] = same_class.pop(0) if same_class else None
    return matched


class FitSaves:
    """Where one fit saves its state (``directory``; None: nowhere, and every call does nothing) and restores it from.

    The state is the trainer's (:func:`capture`): its model, optimizer, History, counters and
    ``lr_scale``, the callbacks' state and every random generator, with ``order`` (the epoch
    orders' generator), and a streamed fit's ``source`` state (its ``state_dict``, when not None).
    A save goes through the trainer's ``_save``, the one place a fit writes it.
    """

    def __init__(self, directory: str | os.PathLike | None, *, every_steps: int | None, callbacks: Sequence[Any],
                 order: torch.Generator, target: int, source: Any = None):
        self.directory, self.every_steps, self.callbacks = directory, every_steps, list(callbacks)
        self.order, self.target, self.source = order, target, source

    def due(self, step: int) -> bool:
        """Whether a state is saved after step ``step`` (``save_every_steps``), mid-epoch."""
        return bool(self.every_steps) and step % self.every_steps == 0

    def save(self, trainer: Any, mid_epoch: dict[str, Any] | None = None) -> None:
        """Save ``trainer``'s state, at an epoch's end or (``mid_epoch``) within one."""
        if self.directory is not None:
            source = None if self.source is None else self.source.state_dict()
            trainer._save(self.directory, self.callbacks, self.order, self.target, mid_epoch,
                          **({} if source is None else {"source": source}))

    def restore(self, trainer: Any) -> dict[str, Any] | None:
        """Load the newest saved state of this fit, if any, into ``trainer``; return the mid-epoch position to
        continue from (None: start at an epoch's beginning)."""
        if self.directory is None:
            return None
        state = load_on_every_rank(self.directory)
        if state is None:
            return None
        try:
            return distributed.raised_together(lambda: self._apply(state, trainer))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
            # A state whose checksum matches but whose contents are not a state of this kind of fit:
            # crafted, or from an incompatible trainwell. Nothing of it can be trusted.
            detail = " ".join(str(error).split())
            detail = detail if len(detail) <= 300 else detail[:297] + "..."
            raise ResumeError(f"{self.directory}: the saved training state is incomplete or malformed "
                              f"({type(error).__name__}: {detail}); pass --restart (train_config(restart=True)) "
                              "to start over") from None

    def _apply(self, state: dict[str, Any], trainer: Any) -> dict[str, Any] | None:
        names = fit_callbacks(self.callbacks)
        if not distributed.is_main_process():  # rank 0 alone runs the callbacks that write (Checkpoint): rank 0
            names = _matching(names, state["callbacks"])  # checks the list, the others restore what they run
        if list(state["callbacks"]) != list(names) or state["target"] > self.target:
            raise ResumeError(f"{self.directory}: the saved training state belongs to a different fit (it has "
                              f"callbacks [{', '.join(state['callbacks'])}] and {state['target']} epochs, this fit "
                              f"[{', '.join(names)}] and {self.target}); delete the folder to start over")
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.history.records[:] = state["history"]["records"]
        trainer.history.steps.clear()
        trainer.history.steps.update(state["history"]["steps"])
        trainer.step, trainer.lr_scale = state["step"], state["lr_scale"]
        trainer.skipped_batches = state.get("skipped_batches", 0)  # History counts them from the fit's start
        trainer.stop_training = state["stopped"]
        for key, saved in state["callbacks"].items():
            if names[key] is not None:
                names[key].load_state_dict(saved)
        set_rng_states(state["rng"], self.order)  # mid-epoch, "order" is the epoch's start: its order is redrawn
        if self.source is not None:
            self.source.load_state_dict(state.get("source"), in_epoch=state["mid_epoch"] is not None)
        return state["mid_epoch"]
