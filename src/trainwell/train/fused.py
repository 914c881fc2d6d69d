"""The fused pass: a hand-written forward and backward for plain dense stacks, without autograd.

Why it exists: at the chapter's batch size of 32, a CPU spends most of a training step on
per-op overhead rather than arithmetic. Autograd records a graph node per op, the
optimizer walks the parameters again, and each small op pays PyTorch's dispatch. On a
100-layer network that overhead is most of the epoch (see ``benchmarks/``).

For the chapter's most common model (Flatten, Dense layers with their activation, optional
BatchNormalization, Dropout or AlphaDropout, softmax cross-entropy), the forward and
backward passes fit in a few ops per layer (the stages of :mod:`trainwell.train.fused_stages`):

* the backward uses the same kernels autograd would call (``aten``'s ``*_backward``
  functions), so the arithmetic is autograd's;
* with plain SGD, a weight's update is folded into the matrix product that computes its
  gradient (``W.addmm_(g.T, x, alpha=-lr)``), and no gradient is materialized (``.grad``
  stays ``None``); while the fit runs, the weights MKL updates faster so are stored by column
  (:mod:`trainwell.train.fused_layout`);
* with Adam, AdamW, NAdam (either variant) or trainwell's KerasAdam and KerasAdamW, the
  optimizer's update is applied per parameter right after its gradient, by PyTorch's fused
  Adam kernel with the step's scalars as Python floats (:mod:`trainwell.train.fused_adam`,
  which says which options fold), and no gradient is stored either; the state stays in
  ``optimizer.state`` under PyTorch's keys, so checkpoints and the optimizer's own
  ``step()`` on other steps carry on from it. With gradient clipping the gradients go to
  ``.grad`` first, the step clips them and then applies the same folded update;
* with any other optimizer (SGD with momentum or weight decay, RMSprop, Adagrad...), an
  option the folded update does not cover (amsgrad, maximize, several parameter
  groups...), or plain SGD with gradient clipping, the gradients go to ``.grad`` and the
  step clips them and calls the optimizer's own ``step()``, so its state and checkpoints
  are exactly PyTorch's.

The results equal the autograd step's within floating-point rounding (tests pin whole
Histories). :func:`fused_pass` builds the :class:`FusedPass` for a model and its
optimizer, or says why the model does not qualify; :func:`trainwell.train.step.make_step`
adds the checks of the fit's settings (loss, penalties, data parallelism...) and wraps the
pass in the fit's :class:`~trainwell.train.step.FusedStep`.

Decided per step, too: the step runs autograd on any step where a callback asks for it
(:meth:`~trainwell.callbacks.Callback.needs_autograd`, as trainwell's Diagnostics does on
its recorded steps), or where a hook the pass cannot honour is attached (a module's
forward, forward-pre, backward or backward-pre hook, the global ones, a gradient or
post-accumulate-grad hook on a parameter, and, with the update folded, an optimizer step
hook): :meth:`FusedPass.obstacle` names it.

The ``aten`` kernels' signatures are PyTorch's to change, so a pass is first checked
against autograd on a tiny copy of the model's structure (:mod:`trainwell.train.fused_probe`).
``Trainer(fused=False)`` or ``[train] fused = false`` turns the fused step off.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim import optimizer as _optimizer_module

from trainwell.train.fused_adam import folded_adam
from trainwell.train.fused_model import model_stages
from trainwell.train.fused_stages import FlattenStage, Gradients, LinearStage, foldable, refresh_views, set_layouts

__all__ = ["FusedPass", "fused_pass"]


class FusedPass:
    """Forward, softmax cross-entropy and backward of a plain stack, in one call, without autograd.

    With plain SGD, and with the Adam family's folded update (:attr:`update`) where the step
    does not clip, the update is applied too (:attr:`applies_update`); otherwise the gradients
    are left in ``.grad`` for the step's clipping and then :meth:`apply_from_grads` or
    ``optimizer.step()``.
    """

    def __init__(self, stages: list[Any], modules: list[nn.Module], optimizer: torch.optim.Optimizer, *,
                 fold_updates: bool = True, names: dict[int, str] | None = None):
        self.stages = stages
        self.modules = modules
        self.params = [p for stage in stages for p in stage.params()]
        self.optimizer = optimizer
        self.gradients = Gradients(folded=fold_updates and foldable(optimizer))
        self._constants: tuple[torch.Tensor, torch.Tensor] | None = None  # see _batch_constants
        self._storages: list[int] | None = None  # the parameters' storages when the stages' views were made
        self.update = None if foldable(optimizer) else folded_adam(optimizer, self.params)
        self.fold_updates = fold_updates
        self._applied = self.gradients.folded or (fold_updates and self.update is not None)
        # Below the lowest stage with parameters, no gradient is needed.
        self.lowest = min(i for i, stage in enumerate(stages) if stage.params())
        self.transposed = set_layouts(stages)  # whether the logits come (classes, batch)
        # Its Dense stages take (batch, features): an input of more dimensions needs a Flatten before the first
        first_dense = next((i for i, stage in enumerate(stages) if isinstance(stage, LinearStage)), len(stages))
        self.flattens = any(isinstance(stage, FlattenStage) for stage in stages[:first_dense])
        names = names or {}
        self._named_modules = [(names.get(id(m), type(m).__name__), m) for m in modules]
        self._named_params = [(names.get(id(p), "a parameter"), p) for p in self.params]
        # Every hook registry it watches, read on each step: hooks are added to and removed from these
        # dictionaries in place, so one pass of truth tests finds any (a parameter's are read anew each step).
        self._registries = [getattr(m, attribute) for m in modules for attribute, _ in _MODULE_HOOKS]
        self._registries += [getattr(nn.modules.module, attribute) for attribute, _ in _GLOBAL_HOOKS]
        if self.gradients.folded or self.update is not None:
            self._registries += _optimizer_hooks(optimizer)

    @property
    def applies_update(self) -> bool:
        """Whether the last call (before any: the next) applied the update itself, storing no gradient."""
        return self._applied

    @property
    def folds_into_products(self) -> bool:
        """Whether the update goes inside the gradients' own products (plain SGD): no gradient exists at all."""
        return self.gradients.folded

    def takes(self, x: torch.Tensor) -> bool:
        """Whether the pass can run on a batch shaped like ``x`` (a Dense layer applied to a batch of sequences,
        say, is autograd's: ``nn.Linear`` maps the last axis of any shape, the pass's products a matrix)."""
        return x.dim() == 2 or self.flattens

    @torch.no_grad()
    def apply_from_grads(self) -> bool:
        """The folded update from the gradients in ``.grad`` (clipped by the step); False where
        the optimizer's own ``step()`` must run instead."""
        if self.update is None or not self.update.begin():
            return False
        for p in self.params:
            self.update.apply(p, p.grad, own=False)
        return True

    def obstacle(self) -> str | None:
        """The hook attached now that this pass cannot honour, named (the step then runs autograd's)."""
        if not (any(self._registries) or any(map(_gradient_hooks, self.params))
                or any(map(_accumulate_hooks, self.params))):
            return None  # the common case, in C: a few tens of microseconds on a 100-layer model
        return _hook_obstacle(self._named_modules, self._named_params, self.optimizer,
                              self.gradients.folded or self.update is not None)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward on ``(x, y)`` (and, folded, the update); returns the logits and the mean loss (detached).

        ``lr``: the rate, by default the optimizer's now (the compiled pass hands it in, so that a
        schedule's new rate is an input of the compiled graph, not a constant it recompiles for).
        Runs without autograd (the in-place updates of leaf parameters need it): the grad mode is set
        directly, as ``torch.no_grad`` does but for a microsecond less per step than its decorator.
        """
        enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            return self._run(x, y, lr)
        finally:
            torch._C._set_grad_enabled(enabled)

    def _run(self, x: torch.Tensor, y: torch.Tensor, lr: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.compiler.is_compiling():
            self._storages = refresh_views(self.stages, self.params, self._storages)
        saved = []
        h = x
        for stage in self.stages:
            h, keep = stage.forward(h)
            saved.append(keep)
        # Transposed, the logits are made row-major once: log_softmax would copy them so anyway, and the
        # epoch's meter takes the argmax of each row, which costs 6 us on the transposed view against 2.
        # Always a copy (``contiguous`` would return a batch of one's (1, classes) view as it is): the
        # top layer's output is its kept buffer, which the next step writes over, and the meter keeps these.
        logits = h.t().clone(memory_format=torch.contiguous_format) if self.transposed else h
        log_probs = torch.log_softmax(logits, dim=-1)
        loss = F.nll_loss(log_probs, y)
        # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / batch
        g = log_probs.exp_()
        minus_ones, count = self._batch_constants(g)
        g.scatter_add_(1, y.unsqueeze(1), minus_ones)
        g.div_(count)
        if self.transposed:
            g = g.t()
        self.gradients.lr = float(self.optimizer.param_groups[0]["lr"]) if lr is None else lr
        folding = self.update is not None and self.fold_updates and self.update.begin()
        self.gradients.update = self.update if folding else None
        self._applied = self.gradients.folded or folding
        for i in range(len(self.stages) - 1, self.lowest - 1, -1):
            g = self.stages[i].backward(g, saved[i], self.gradients, need_input=i > self.lowest)
        return logits, loss

    def _batch_constants(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int]:
        """A column of -1 per sample of ``g``'s batch, and the batch size as a 0-dim tensor, kept per batch size:
        fresh ones each step cost a few microseconds, and so does an op with a Python number (PyTorch wraps it
        in a tensor and converts it), where one with a kept tensor divides by the same float. Kept with them,
        the vector of ones the folded bias updates sum the batch with (``Gradients.ones``)."""
        if torch.compiler.is_compiling():  # a compiled pass makes them in its graph (kept ones would be guards)
            return torch.full((g.shape[0], 1), -1.0, dtype=g.dtype, device=g.device), g.shape[0]
        kept = self._constants
        if kept is None or kept[0].shape[0] != g.shape[0] or kept[0].dtype != g.dtype or kept[0].device != g.device:
            kept = self._constants = (torch.full((g.shape[0], 1), -1.0, dtype=g.dtype, device=g.device),
                                      g.new_tensor(float(g.shape[0])))
            self.gradients.ones = torch.ones(g.shape[0], dtype=g.dtype, device=g.device)
        return kept


def fused_pass(model: nn.Module, optimizer: torch.optim.Optimizer, *, fold_updates: bool) -> FusedPass | str:
    """The :class:`FusedPass` that trains ``model`` with ``optimizer``, or why the model does not qualify.

    ``fold_updates=False`` (gradient clipping) leaves the gradients in ``.grad`` even for
    plain SGD. Whether the pass agrees with autograd is the probe's question
    (:func:`trainwell.train.fused_probe.verdict`).
    """
    stages = model_stages(model)
    if isinstance(stages, str):
        return stages
    params = [p for stage in stages[0] for p in stage.params()]
    if len({id(p) for p in params}) != len(params):
        return ("a parameter shared by two layers (tied weights): its gradients add up before the update, which "
                "the fused step's per-layer update does not do")
    model_params = list(model.parameters())
    if len(params) != len(model_params) or not all(p.requires_grad for p in model_params):
        return "some parameters are frozen"
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if trained != {id(p) for p in params}:
        return "the optimizer does not train exactly the model's parameters"
    if any(p.dtype != torch.float32 for p in params):
        return "parameters other than float32"
    names = {id(m): name or "the model" for name, m in model.named_modules()}
    names.update((id(p), name) for name, p in model.named_parameters())
    strided = next((p for p in params if not p.is_contiguous()), None)
    if strided is not None:  # autograd gives a gradient the parameter's own strides; PyTorch's one-kernel
        # optimizers read the two tensors' memory in the same order, so a row-major gradient would be misread
        return (f"a parameter not contiguous in memory ({names[id(strided)]}, strides {tuple(strided.stride())}); "
                "`param.data = param.data.contiguous()` lets the fused step train it")
    return FusedPass(*stages, optimizer, fold_updates=fold_updates, names=names)


# ----------------------------------------------------------------- hooks it cannot honour

_MODULE_HOOKS = (("_forward_pre_hooks", "a forward pre-hook"), ("_forward_hooks", "a forward hook"),
                 ("_backward_pre_hooks", "a backward pre-hook"), ("_backward_hooks", "a backward hook"))
_PARAMETER_HOOKS = (("_backward_hooks", "a gradient hook"),
                    ("_post_accumulate_grad_hooks", "a post-accumulate-grad hook"))
_GLOBAL_HOOKS = (("_global_forward_pre_hooks", "a global forward pre-hook"),
                 ("_global_forward_hooks", "a global forward hook"),
                 ("_global_backward_pre_hooks", "a global backward pre-hook"),
                 ("_global_backward_hooks", "a global backward hook"))


_gradient_hooks, _accumulate_hooks = attrgetter("_backward_hooks"), attrgetter("_post_accumulate_grad_hooks")


def _optimizer_hooks(optimizer: torch.optim.Optimizer) -> list[dict]:
    """The registries of hooks around ``optimizer.step()``, which a folded update never calls."""
    return [optimizer._optimizer_step_pre_hooks, optimizer._optimizer_step_post_hooks,
            _optimizer_module._global_optimizer_pre_hooks, _optimizer_module._global_optimizer_post_hooks]


def _hook_obstacle(modules: list[tuple[str, nn.Module]], params: list[tuple[str, torch.Tensor]],
                   optimizer: torch.optim.Optimizer, folded: bool) -> str | None:
    """The first hook attached now that the fused step would not run, named; None when there is none.

    Asked on every step, so the common case (no hook anywhere) is a few attribute reads
    per module and parameter.
    """
    for name, module in modules:
        if module._forward_pre_hooks or module._forward_hooks or module._backward_pre_hooks or module._backward_hooks:
            return next(f"{kind} on {name}" for attribute, kind in _MODULE_HOOKS if getattr(module, attribute))
    for name, param in params:
        if param._backward_hooks or param._post_accumulate_grad_hooks:
            return next(f"{kind} on {name}" for attribute, kind in _PARAMETER_HOOKS if getattr(param, attribute))
    registry = nn.modules.module
    for attribute, kind in _GLOBAL_HOOKS:
        if getattr(registry, attribute):
            return kind
    if folded and any(_optimizer_hooks(optimizer)):
        return "an optimizer step hook (the fused step folds this optimizer's update and calls no optimizer.step())"
    return None
