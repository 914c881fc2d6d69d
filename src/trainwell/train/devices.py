"""Which device a Trainer trains on: a ``device`` setting checked by its spelling, then against this machine.

``auto`` (or None) is CUDA when available, else the CPU; a name trainwell does not train on
(``meta``, ``xla``, ``cpu:7``) or a device this machine lacks is one ConfigError naming it.
"""

from __future__ import annotations

import re

import torch

from trainwell.errors import ConfigError


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
