"""Mixed precision: a fit's forward pass under ``torch.autocast``, and fp16's GradScaler.

``precision = "bf16"`` runs the forward pass's matrix products in bfloat16 (on the CPU and on
CUDA); ``"fp16"`` in float16, on CUDA only, with a ``torch.amp.GradScaler`` that scales the
loss so small gradients do not underflow (and skips a step whose gradients overflowed);
``"32"`` (the default) is plain float32, as before. The weights, the optimizer's state, the
loss (computed on the logits cast back to float32) and the penalties stay float32; only the
training step uses autocast: evaluation, validation figures and predictions are float32, so a
saved model predicts the same however it was trained, and validation figures of runs in
different precisions compare. The fused step (float32 by construction) steps aside.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from trainwell.errors import ConfigError

PRECISIONS = ("32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: Any, device: torch.device) -> str:
    """``precision`` if it is one trainwell trains in on ``device``, else one ConfigError saying what is allowed."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not a precision trainwell trains in; allowed: "
                          f"{', '.join(repr(p) for p in PRECISIONS)} (bf16 on the CPU and CUDA, fp16 on CUDA)")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"precision: 'fp16' trains on CUDA only (with a GradScaler), and this fit runs on "
                          f"{device.type}; use precision 'bf16' on the CPU")
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise ConfigError(f"precision: 'bf16' trains on the CPU or CUDA, not on {device.type}; use precision '32'")
    return precision


class Precision:
    """What a training step does differently in a precision: its autocast, its backward and its optimizer step."""

    def __init__(self, precision: str = "32", device: torch.device = torch.device("cpu")):
        self.name, self.device = precision, device
        self.dtype = DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def autocast(self) -> ContextManager[Any]:
        """``torch.autocast`` in the precision's dtype; nothing in float32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """The true gradients in ``.grad`` (fp16: divided by the scale), before clipping reads them."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step; fp16: skipped when a gradient overflowed, and the scale updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
