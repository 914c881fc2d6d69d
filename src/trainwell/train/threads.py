"""How many CPU threads a fit uses: chosen by measurement per model shape, overridable.

On a CPU, PyTorch runs each operation on all its intra-op threads. For the chapter's
3-layer networks a second thread helps a little (the 784x300 products are worth
splitting); for a deep narrow stack such as the 100-layer SELU net every product is
tiny, and handing each one to a thread pool costs more than it saves: on 2 cores its
epoch took 1.6x longer with 2 threads than with 1 (benchmarks/suite.py). So by default
a fit of a deep narrow model on the CPU runs on one thread, and any other fit keeps
PyTorch's setting; ``Trainer(threads=N)``, ``[train] threads = N`` or
``trainwell train --threads N`` choose for themselves.

>>> from torch import nn
>>> auto_threads(nn.Sequential(*[nn.Linear(100, 100) for _ in range(50)]), torch.device("cpu"))
1
>>> auto_threads(nn.Sequential(nn.Linear(784, 300), nn.Linear(300, 10)), torch.device("cpu")) is None
True
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from torch import nn

from trainwell.checks import is_integer
from trainwell.errors import ConfigError

DEEP = 10  # more weight layers than this ...
NARROW = 512  # ... none wider than this: one thread
OVERSUBSCRIPTION = 4  # at most this many threads per CPU (see check_threads)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(threads: object, *, what: str = "threads") -> None:
    """Refuse a thread count that is not a positive integer or is above OVERSUBSCRIPTION x the CPUs.

    Intra-op threads compute; past one per CPU they only take turns, so a few per CPU is
    the most that can make sense (a config written on a bigger machine still runs on a
    smaller one up to that). Far beyond it OpenMP cannot start its threads and aborts the
    interpreter: ``threads = 100000`` killed the process without a message.
    """
    if threads is None:
        return
    if not is_integer(threads) or threads < 1:
        raise ConfigError(f"{what}: must be a positive integer, got {threads!r}")
    cpus = available_cpus()
    if threads > OVERSUBSCRIPTION * cpus:
        raise ConfigError(f"{what} = {threads}: at most {OVERSUBSCRIPTION * cpus} on this machine "
                          f"({OVERSUBSCRIPTION} per CPU, {cpus} CPU{'s' if cpus != 1 else ''}); more threads than "
                          "CPUs only take turns")


def auto_threads(model: nn.Module, device: torch.device) -> int | None:
    """1 for a deep narrow model on the CPU; None (keep PyTorch's setting) otherwise."""
    if device.type != "cpu":
        return None
    widths = [module.weight.shape[0] for module in model.modules()
              if isinstance(module, nn.Linear)]
    if len(widths) > DEEP and max(widths) <= NARROW:
        return 1
    return None


@contextlib.contextmanager
def using_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (None: unchanged), then restore the setting."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
