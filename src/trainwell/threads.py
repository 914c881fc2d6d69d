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
from typing import Iterator

import torch
from torch import nn

DEEP = 10  # more weight layers than this ...
NARROW = 512  # ... none wider than this: one thread


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
