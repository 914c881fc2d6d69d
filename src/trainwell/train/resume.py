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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from trainwell.errors import TrainwellError
from trainwell.fileio import atomic_path, json_text
from trainwell.model.saving import read_safetensors, weights_digest

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
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": STATE_FORMAT, "state": text,
                                               "sha256": _digest(tensors, text)})
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
    problems = []
    for path in state_files(directory):
        try:
            state = read_state(path)
        except ResumeError as error:
            log.warning("%s; trying the previous state", error)
            problems.append(str(error))
            continue
        return state
    if problems:
        raise ResumeError("no usable training state: " + "; ".join(problems) + "; pass --restart "
                          "(train_config(restart=True)) to drop them and train from epoch 1")
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
