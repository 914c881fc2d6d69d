"""The fused pass checked against autograd, once per structure, before a fit trusts it.

The fused pass (:mod:`trainwell.train.fused`) calls ``aten`` kernels whose signatures are
PyTorch's to change, so before a pass is used it is first run on a tiny copy of the model's
structure (fresh tensors: the model, optimizer, random streams and statistics are
untouched) and compared with autograd; if it raises or disagrees, the fit warns once in a
line and trains with autograd. :func:`verdict` keeps the outcome per structure for the
process, so later fits do not pay for it again.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.train.fused import FusedPass
from trainwell.train.fused_stages import ActivationStage, BatchNormStage, DropoutStage, LinearStage

#: The probe's verdict per structure (see :func:`_signature`), for this process: None when
#: the fused step agrees with autograd, else why not.
_PROBES: dict[tuple, str | None] = {}
_PROBE_BATCH, _PROBE_WIDTH, _PROBE_CLASSES = 8, 5, 3
_PROBE_LR = 0.5


def verdict(fused: FusedPass, device: torch.device) -> str | None:
    """Why ``fused`` cannot be trusted on ``device`` (its probe raised or disagreed with autograd), or None.

    Probed the first time a structure is seen in this process, then read from :data:`_PROBES`.
    """
    return _verdict(fused.stages, folded=fused.folds_into_products, device=device)


def _verdict(stages: list[Any], *, folded: bool, device: torch.device) -> str | None:
    """The cached verdict of the probe for this structure, probing it the first time."""
    key = _signature(stages, folded=folded, device=device)
    if key not in _PROBES:
        _PROBES[key] = _probe(stages, folded=folded, device=device)
    return _PROBES[key]


def _signature(stages: list[Any], *, folded: bool, device: torch.device) -> tuple:
    """What the probe's outcome depends on: the kinds of stages in order and their settings, not the widths."""
    def kind(stage: Any) -> tuple:
        if isinstance(stage, LinearStage):
            return ("linear", stage.bias is not None)
        if isinstance(stage, ActivationStage):
            return ("activation", stage.name, stage.argument, stage.in_place)
        if isinstance(stage, BatchNormStage):
            m = stage.module
            return ("batch_norm", type(m).__name__, m.weight is not None, m.running_mean is not None)
        return (type(stage).__name__,)
    return (folded, device.type, tuple(kind(stage) for stage in stages))


def _probe(stages: list[Any], *, folded: bool, device: torch.device) -> str | None:
    """Run a tiny copy of ``stages`` once through the fused step and once through autograd: why they disagree, or None.

    The copy has the same kinds of stages in the same order, with fresh tensors of a few
    units (drawn from a private generator), so the model, its optimizer, the random
    streams and the batch statistics are left as they are. Dropout draws no kernel of
    its own and is left out.
    """
    generator = torch.Generator().manual_seed(0)
    draw = lambda *shape: torch.randn(*shape, generator=generator).to(device)  # noqa: E731
    try:
        copies = _probe_stages(stages, draw)
        params = [p for stage in copies for p in stage.params()]
        x, y = draw(_PROBE_BATCH, _PROBE_WIDTH), torch.arange(_PROBE_BATCH, device=device) % _PROBE_CLASSES
        with torch.enable_grad():
            h = x
            for stage in copies:
                h = _autograd_forward(stage, h)
            expected_loss = F.cross_entropy(h, y)
            expected_grads = torch.autograd.grad(expected_loss, params)
        expected_logits = h.detach()
        before = [p.detach().clone() for p in params]
        step = FusedPass(copies, [], torch.optim.SGD(params, lr=_PROBE_LR), fold_updates=folded)
        logits, loss = step(x, y)
        grads = ([(b - p.detach()) / _PROBE_LR for b, p in zip(before, params)] if step.applies_update
                 else [p.grad for p in params])
    except Exception as error:  # noqa: BLE001: whatever the kernels raise is the verdict
        message = (str(error).strip().splitlines() or [""])[0]
        return f"the fused step's probe raised {type(error).__name__}: {message}"
    for what, got, expected in [("the logits", logits, expected_logits), ("the loss", loss, expected_loss.detach()),
                                *(("a gradient", g, e) for g, e in zip(grads, expected_grads))]:
        if got is None or not _close(got, expected):
            difference = float("nan") if got is None else float((got - expected).abs().max())
            return f"the fused step disagrees with autograd on {what} of its probe (largest difference {difference:.2g})"
    return None


def _probe_stages(stages: list[Any], draw) -> list[Any]:
    """Tiny stand-ins for ``stages``: linear layers of a few units, the same activations and normalizations."""
    last_linear = max(i for i, stage in enumerate(stages) if isinstance(stage, LinearStage)) if any(
        isinstance(stage, LinearStage) for stage in stages) else -1
    width, copies = _PROBE_WIDTH, []
    for i, stage in enumerate(stages):
        if isinstance(stage, LinearStage):
            units = _PROBE_CLASSES if i == last_linear else _PROBE_WIDTH
            weight = nn.Parameter(draw(units, width) / math.sqrt(width))
            bias = nn.Parameter(0.1 * draw(units)) if stage.bias is not None else None
            copies.append(LinearStage(SimpleNamespace(weight=weight, bias=bias)))
            width = units
        elif isinstance(stage, BatchNormStage):
            copies.append(BatchNormStage(_small_batch_norm(stage.module, width, draw)))
        elif not isinstance(stage, DropoutStage):
            copies.append(copy.copy(stage))  # activations and Flatten hold no tensors
    return copies


def _small_batch_norm(module: nn.Module, width: int, draw) -> nn.Module:
    """A copy of a batch normalization module with ``width`` features and fresh tensors, in training mode.

    Its class and settings are the module's; each per-feature tensor is replaced by one of
    ``width`` values (parameters drawn near the module's first value, buffers filled with
    it), so the module's own tensors are never touched.
    """
    small = copy.copy(module)
    per_feature = lambda t: t.dim() == 1 and len(t) == module.num_features  # noqa: E731
    small.__dict__["_parameters"] = {
        name: None if p is None else nn.Parameter(p.detach()[:1].repeat(width) + 0.1 * draw(width)
                                                   if per_feature(p) else p.detach().clone())
        for name, p in module._parameters.items()}
    small.__dict__["_buffers"] = {
        name: None if b is None else (b[:1].repeat(width) if per_feature(b) else b.clone())
        for name, b in module._buffers.items()}
    small.num_features = width
    small.training = True
    return small


def _autograd_forward(stage: Any, x: torch.Tensor) -> torch.Tensor:
    """``stage``'s forward with differentiable ops, for autograd to take the backward of."""
    if isinstance(stage, LinearStage):
        return F.linear(x, stage.weight, stage.bias)
    if isinstance(stage, ActivationStage):
        return stage.activate(x.clone())
    if isinstance(stage, BatchNormStage):
        m = stage.module
        running_mean = None if m.running_mean is None else m.running_mean.clone()
        running_var = None if m.running_var is None else m.running_var.clone()
        return F.batch_norm(x, running_mean, running_var, m.weight, m.bias, True, m.momentum or 0.0, m.eps)
    return x.reshape(len(x), -1)  # Flatten


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal within float32 rounding, relative to the tensor's scale."""
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return bool(torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, scale), equal_nan=True))
