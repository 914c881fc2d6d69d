"""What identifies a fit, so that a killed run is resumed only by the same one.

A run's saved state (``<output_dir>/resume``) carries the fingerprint of the fit that wrote
it: the config but for the keys that do not change the result, the device and threads in
use, the data's contents and the code's versions. A run whose fingerprint differs is
refused with :func:`fingerprint_difference`, which says briefly what changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch

from trainwell.config import RunConfig
from trainwell.fileio import json_text
from trainwell.model.layers import Model
from trainwell.recipes import reuse
from trainwell.recipes.build import PreparedData
from trainwell.train.threads import auto_threads
from trainwell.train.devices import resolve_device
from trainwell.versions import __version__

# Config keys that do not change what a fit computes: where its files go and what it is called, what
# happens after training (overwrite, allow_nonfinite_loss), whether and how often its state is saved
# (a resumed fit equals an uninterrupted one either way), whether it restarts, and where the data are
# read from (their contents are in the fingerprint: a changed file is another fit), the held-out test
# files (they are scored after the fit, never seen by it), the loggers (they only report), and how long
# collectives wait for the other ranks.
NOT_THE_FIT = (("name",), ("output_dir",), ("train", "overwrite"), ("train", "allow_nonfinite_loss"),
               ("train", "restart"), ("train", "resumable"), ("train", "save_every_steps"),
               ("train", "device"), ("train", "threads"), ("data", "path"), ("data", "offline"),
               ("data", "target_path"), ("data", "test_path"), ("data", "test_target_path"),
               ("callbacks", "tensorboard"), ("callbacks", "csv_logger"), ("train", "process_group_timeout"))

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
    fingerprint = {"config": data, "runtime": {"device": device.type, "threads": threads},
                   "data": {"sha256": reuse.data_digest(prepared, lambda: _data_digest(prepared))},
                   "code": {"trainwell": __version__, "torch": torch.__version__}}
    return json_text(fingerprint, indent=None, sort_keys=True)


def _data_digest(prepared: PreparedData) -> str:
    """The SHA-256 of the training and validation arrays' types, shapes and bytes."""
    digest = hashlib.sha256()
    for array in (prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val):
        if array is not None:
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # its bytes, uncopied: 2.3x faster
    return digest.hexdigest()


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

