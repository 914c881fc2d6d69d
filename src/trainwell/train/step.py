"""One training step as an object the loop calls: ``step(xb, yb, weight, sample_weight)``.

A fit chooses its step once, with :func:`make_step`: a :class:`FusedStep` (the hand-written
pass of :mod:`trainwell.train.fused`) where the model, loss and settings allow it, else an
:class:`AutogradStep`. Either takes a batch, updates the weights and returns what the
epoch's meter adds up (:class:`StepResult`), or None for a batch whose non-finite loss was
skipped. Neither reads the Trainer: what a step uses is handed to it in :class:`StepParts`.

The autograd step: forward, loss plus the kernel penalties (l1/l2), with ``skip_nonfinite`` the
batch skipped when the loss is nan or infinite (under torchrun when it is on any rank: every rank
skips it, before the backward pass whose gradient all-reduce they must all join), backward (the loss
times ``weight``, which a data-parallel rank's share of a short batch needs), clipping,
the optimizer's step, the kernel constraints (max-norm). With ``sample_weight`` (one weight per
sample of the batch) the loss is the mean of weight times each sample's loss. The fused step runs the same
update without autograd, and hands a batch to its autograd step on any step where a
callback asks for autograd (``needs_autograd``) or a hook the pass cannot honour is attached.

:func:`why_not_fused` says, for a Trainer, what keeps its next fit off the fused step.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Mapping, NamedTuple, Protocol, Sequence

import torch
from torch import nn

from trainwell.model.losses import LOSSES, Loss
from trainwell.model.regularization import apply_constraints, kernel_penalties, total_penalty
from trainwell.optim import clip_gradients
from trainwell.train import distributed
from trainwell.train.compiled import CompiledPass, compiled_pass, warn_not_compiled
from trainwell.train.fused import FusedPass, fused_pass
from trainwell.train.fused_layout import column_weights, stored_by_column
from trainwell.train.fused_probe import verdict
from trainwell.train.precision import Precision

__all__ = ["AutogradStep", "FusedStep", "Step", "StepParts", "StepResult", "make_step", "why_not_fused"]


class StepResult(NamedTuple):
    """What one step gives the epoch's meter."""

    logits: torch.Tensor
    loss: torch.Tensor  # the batch's mean loss, penalties included, detached
    penalty: torch.Tensor | None  # the l1/l2 penalties' sum, detached; None without penalties
    #: whether ``logits`` is a fresh tensor nothing writes to again (the fused step's), which the meter
    #: may keep a few steps before reading it; a model's own output might be a buffer it reuses
    fresh: bool = False


class Step(Protocol):
    """One optimizer step on a batch; None when the batch was skipped (a non-finite loss)."""

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor, weight: float = 1.0,
                 sample_weight: torch.Tensor | None = None) -> StepResult | None: ...

    def weights_laid_out(self, batch_size: int) -> ContextManager[None]:
        """The block the fit's epochs run in, where the step may store weights as it computes fastest."""


@dataclass(frozen=True)
class StepParts:
    """What one fit's step is made of, read once when the fit starts."""

    model: nn.Module
    forward: nn.Module  # the logits of the fit's inputs: above any cached layers, DDP-wrapped under torchrun
    loss: Loss
    optimizer: torch.optim.Optimizer
    clipping: Mapping[str, float | None]  # clipvalue, clipnorm, global_clipnorm: None where not set
    skip_nonfinite: bool = False
    penalties: Sequence[Any] = ()  # the model's kernel penalties (trainwell.model.regularization)
    constraints: Sequence[Any] = ()  # and its kernel constraints
    device: torch.device = torch.device("cpu")
    weighted: bool = False  # the fit weighs its samples (sample_weight, class_weight)
    precision: Precision | None = None  # mixed precision (trainwell.train.precision); None: float32

    @property
    def clips(self) -> bool:
        """Whether any gradient clipping is set."""
        return any(value is not None for value in self.clipping.values())


class AutogradStep:
    """The standard step: forward, loss (plus penalties), backward, then :meth:`update`."""

    def __init__(self, parts: StepParts):
        self.forward, self.loss, self.optimizer = parts.forward, parts.loss, parts.optimizer
        self.params = [p for p in parts.model.parameters() if p.requires_grad]  # the trainable ones, for clipping
        self.clipping = dict(parts.clipping) if parts.clips else None
        self.skip_nonfinite = parts.skip_nonfinite
        # Under torchrun every rank must skip the same batches: a non-finite loss on any rank skips the
        # batch on all of them, agreed (one all-reduce) before the backward pass and its gradient all-reduce.
        self.nonfinite = _nonfinite if distributed.current() is None else distributed.nonfinite_on_any_rank
        self.penalties, self.constraints = parts.penalties, parts.constraints
        self.precision = parts.precision if parts.precision is not None else Precision()

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor, weight: float = 1.0,
                 sample_weight: torch.Tensor | None = None) -> StepResult | None:
        with self.precision.autocast():  # mixed precision: the forward pass only; the loss in float32
            logits = self.forward(xb)
        if logits.dtype in (torch.float16, torch.bfloat16):  # a float64 model's loss stays in float64
            logits = logits.float()
        loss = self.loss(logits, yb) if sample_weight is None else self.loss(logits, yb, sample_weight)
        penalty = None
        if self.penalties:
            penalty = total_penalty(self.penalties)
            loss = loss + penalty
        if self.skip_nonfinite and self.nonfinite(loss):
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss if weight == 1.0 else loss * weight)
        self.update()
        return StepResult(logits, loss.detach(), None if penalty is None else penalty.detach())

    def weights_laid_out(self, batch_size: int) -> ContextManager[None]:
        """Autograd's weights stay as they are."""
        return contextlib.nullcontext()

    def update(self, folded: Callable[[], bool] | None = None) -> None:
        """Clip the gradients, step the optimizer, apply the max-norm constraints.

        ``folded`` (the fused step's): applies the update from the clipped ``.grad`` in place
        of ``optimizer.step()``, or returns False to leave it to the optimizer.
        """
        if self.clipping is not None:
            self.precision.unscale(self.optimizer)
            clip_gradients(self.params, **self.clipping)
        if folded is None or not folded():
            self.precision.step(self.optimizer)
        if self.constraints:
            apply_constraints(self.constraints)


def _nonfinite(loss: torch.Tensor) -> bool:
    """Whether a loss is nan or infinite (one host sync)."""
    return not bool(torch.isfinite(loss))


class FusedStep:
    """The fused pass as a fit's step, with its autograd step for the steps the pass must leave.

    ``wants_autograd`` (when given) is asked on every step: it asks each callback that
    overrides ``needs_autograd``.
    """

    def __init__(self, fused: FusedPass | CompiledPass, autograd: AutogradStep, *, constraints: Sequence[Any] = (),
                 wants_autograd: Callable[[], bool] | None = None):
        self.fused, self.autograd, self.constraints = fused, autograd, constraints
        self.wants_autograd = wants_autograd

    @property
    def applies_update(self) -> bool:
        """Whether the pass applies the update itself (plain SGD, the Adam family unclipped): no gradient is stored."""
        return self.fused.applies_update

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor, weight: float = 1.0,
                 sample_weight: torch.Tensor | None = None) -> StepResult | None:
        if ((self.wants_autograd is not None and self.wants_autograd()) or self.fused.obstacle() is not None
                or sample_weight is not None or not self.fused.takes(xb)):
            return self.autograd(xb, yb, weight, sample_weight)
        logits, loss = self.fused(xb, yb)
        if not self.fused.applies_update:  # the gradients are in .grad
            self.autograd.update(self.fused.apply_from_grads)
        elif self.constraints:
            apply_constraints(self.constraints)
        return StepResult(logits, loss, None, fresh=True)

    def weights_laid_out(self, batch_size: int) -> ContextManager[None]:
        """The block in which the fit runs this step: the eager pass with plain SGD stores the weights it
        updates faster so by column (:mod:`trainwell.train.fused_layout`), the others leave them as they are."""
        if not isinstance(self.fused, FusedPass) or not self.fused.folds_into_products:
            return contextlib.nullcontext()
        return stored_by_column(column_weights(self.fused.stages, batch_size=batch_size,
                                               threads=torch.get_num_threads()))


def make_step(parts: StepParts, *, fused: bool = True, cached: bool = False,
              wants_autograd: Callable[[], bool] | None = None, compile: bool = False,
              compiled: dict[str, Any] | None = None) -> tuple[Step, str | None]:
    """The step of a fit, and why it is not the fused one (None when it is).

    ``fused=False`` keeps to autograd; ``cached``: the inputs are the cached outputs of
    frozen lowest layers. A fused pass whose probe against autograd fails is not used, with
    a one-line warning naming why. ``compile``: the fused pass runs through ``torch.compile``
    (:mod:`trainwell.train.compiled`; ``compiled``: the Trainer's compiled pass of an earlier fit, used
    again where it fits); without a fused pass, a warning says nothing is compiled.
    """
    autograd = AutogradStep(parts)
    found, reason = _fused_pass(parts, fused=fused, cached=cached)
    if found is not None:
        reason = verdict(found, parts.device)
        if reason is not None:
            warnings.warn(f"trainwell: {reason}; training with the autograd step instead (see why_not_fused)",
                          RuntimeWarning, stacklevel=4)
    if reason is not None:
        if compile:
            warn_not_compiled(reason)
        return autograd, reason
    if compile and found.update is not None:
        warn_not_compiled(f"{type(parts.optimizer).__name__}'s update is folded into the fused step with scalars "
                          "that change every step", eager="the eager fused step")
    elif compile:
        found = compiled_pass(found, {} if compiled is None else compiled)
    return FusedStep(found, autograd, constraints=parts.constraints, wants_autograd=wants_autograd), None


def _fused_pass(parts: StepParts, *, fused: bool, cached: bool) -> tuple[FusedPass | None, str | None]:
    """The fused pass for these parts when the fit's settings and the model allow it, else why not."""
    if not fused:
        return None, "the trainer was made with fused=False"
    if parts.loss is not LOSSES["sparse_categorical_crossentropy"]:
        return None, f"the loss is {parts.loss.title}"
    if parts.weighted:
        return None, "sample or class weights (the weighted loss's gradient comes from autograd)"
    if parts.skip_nonfinite:
        return None, "skipping non-finite batches"
    if parts.precision is not None and parts.precision.name != "32":
        return None, f"precision {parts.precision.name}: the fused step runs in float32"
    if cached:
        return None, "the inputs are cached features"
    if parts.penalties:
        return None, "l1/l2 penalties (their gradients come from autograd)"
    if distributed.current() is not None:
        return None, "a data-parallel run"
    found = fused_pass(parts.model, parts.optimizer, fold_updates=not parts.clips)
    return (None, found) if isinstance(found, str) else (found, None)


def _parts_of(trainer: Any) -> StepParts:
    """The parts of a step for ``trainer``'s model and settings as they are now."""
    return StepParts(model=trainer.model, forward=trainer.forward_logits, loss=trainer.loss,
                     optimizer=trainer.optimizer, clipping=trainer.clipping, skip_nonfinite=trainer.skip_nonfinite,
                     penalties=kernel_penalties(trainer.model), device=trainer.device,
                     weighted=trainer.class_weight is not None, precision=getattr(trainer, "mixed_precision", None))


def why_not_fused(trainer: Any) -> str | None:
    """Why ``trainer``'s next fit cannot take the fused step now, or None when it can.

    Names the first obstacle: a setting or layer it does not cover, a hook attached now
    that it cannot honour (``"a post-accumulate-grad hook on dense_1.weight"``), or its
    probe against autograd failing.
    """
    parts = _parts_of(trainer)
    found, reason = _fused_pass(parts, fused=trainer.fused, cached=False)
    if found is None:
        return reason
    return found.obstacle() or verdict(found, parts.device)


def fused_step(trainer: Any, forward: nn.Module | None = None) -> FusedStep | None:
    """The fused step a fit of ``trainer`` would take (on the inputs of ``forward``, by default its own), or None.

    For tests and benchmarks that drive the step by hand.
    """
    parts = _parts_of(trainer)
    step, _ = make_step(parts, fused=trainer.fused, compile=getattr(trainer, "compile", False),
                        cached=forward is not None and forward is not trainer.forward_logits)
    return step if isinstance(step, FusedStep) else None
