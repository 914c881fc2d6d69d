"""Which device a Trainer trains on: a ``device`` setting checked by its spelling, then against this machine.

``auto`` (or None) is CUDA when available, else the CPU; a name trainwell does not train on
(``meta``, ``xla``, ``cpu:7``) or a device this machine lacks is one ConfigError naming it.

Under torchrun (or in a process group of several processes) a CUDA device is the GPU of the
process's local rank, ``cuda:(LOCAL_RANK % device count)``, whatever the setting spells: the
same config then trains one GPU per process. It is decided when the Trainer is made (torchrun's
``LOCAL_RANK`` is known before the group is joined) and again when a fit starts
(:func:`move_to_rank_device`), so the order of ``Trainer(...)`` and ``init_from_env()`` does not
matter. ``cuda:N`` under torchrun is that rule too, with a note: choose the GPUs a machine's
processes use with ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import re
import warnings

import torch
from torch import nn

from trainwell.errors import ConfigError
from trainwell.train import distributed


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
    """The torch device for a ``device`` setting, refused unless this machine has it; under torchrun a
    CUDA device is the local rank's GPU."""
    if device is None or device == "auto":
        return _on_local_rank(default_device(), device)
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
    return _on_local_rank(resolved, device)


_NOTED: set[str] = set()  # the explicit cuda:N settings this process has said its note about


def _on_local_rank(resolved: torch.device, setting: object) -> torch.device:
    """``resolved``, but for a process of several data-parallel ones the GPU of its local rank; an explicit
    ``cuda:N`` there gets one note (on the main process) saying so."""
    local = distributed.local_rank() if resolved.type == "cuda" else None
    if local is None:
        return resolved
    if resolved.index is not None and _first_process() and str(setting) not in _NOTED:
        _NOTED.add(str(setting))
        warnings.warn(f"trainwell: device {str(setting)!r} under torchrun: each process trains on the GPU of its "
                      "LOCAL_RANK (cuda:LOCAL_RANK modulo the GPU count); choose a machine's GPUs with "
                      "CUDA_VISIBLE_DEVICES and set device = 'cuda'", stacklevel=3)
    return torch.device("cuda", local % torch.cuda.device_count())


def _first_process() -> bool:
    """Rank 0, in the group or (before it is joined) in torchrun's variables."""
    group = distributed.current()
    place = distributed.from_env() if group is None else None
    return group.is_main if group is not None else place is None or place[0] == 0


def move_to_rank_device(setting: str | torch.device | None, device: torch.device, model: nn.Module,
                        optimizer: torch.optim.Optimizer) -> torch.device:
    """The device a fit trains on, decided again now that the process group is known: ``setting`` resolved
    (under torchrun a CUDA device is the local rank's GPU). When that is not ``device`` (where the Trainer
    put the model when it was made, before ``init_from_env()`` perhaps), the model and the optimizer's
    state move there. In a group, a CUDA device also becomes the process's current one, where NCCL's
    collectives run."""
    placed = resolve_device(setting)
    if placed != device:
        model.to(placed)
        for state in optimizer.state.values():
            for key, value in state.items():
                if torch.is_tensor(value) and value.device.type == placed.type:  # not Adam's step count on the CPU
                    state[key] = value.to(placed)
    if placed.type == "cuda" and placed.index is not None and distributed.current() is not None:
        torch.cuda.set_device(placed)
    return placed
