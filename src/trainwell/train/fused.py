"""A hand-written forward and backward pass for plain dense stacks: no autograd.

Why it exists: at the chapter's batch size of 32, a CPU spends most of a training step on
per-op overhead rather than arithmetic. Autograd records a graph node per op, the
optimizer walks the parameters again, and each small op pays PyTorch's dispatch. On a
100-layer network that overhead is most of the epoch (see ``benchmarks/``).

For the chapter's most common model (Flatten, Dense layers with their activation, optional
BatchNormalization, Dropout or AlphaDropout, softmax cross-entropy), the forward and
backward passes fit in a few ops per layer. This module writes them out:

* the backward uses the same kernels autograd would call (``aten``'s ``*_backward``
  functions), so the arithmetic is autograd's;
* with plain SGD, a weight's update is folded into the matrix product that computes its
  gradient (``W.addmm_(g.T, x, alpha=-lr)``), and no gradient is materialized (``.grad``
  stays ``None``);
* with any other optimizer (momentum, Adam, Nadam, RMSprop...), or with gradient
  clipping, the gradients go to ``.grad`` and the trainer clips them and calls the
  optimizer's own ``step()``, so its state and checkpoints are exactly PyTorch's.

The results equal the standard step's within floating-point rounding (tests pin whole
Histories). :func:`fused_step` says whether a trainer's model and settings qualify and
returns ``None`` otherwise; the trainer then runs its standard autograd step.

Decided per step, too: the trainer runs the autograd step on any step where a callback
asks for it (:meth:`~trainwell.callbacks.Callback.needs_autograd`, as trainwell's
Diagnostics does on its recorded steps), or where a hook the fused step cannot honour is
attached (a module's forward, forward-pre, backward or backward-pre hook, the global ones,
a gradient or post-accumulate-grad hook on a parameter, and, with the update folded, an
optimizer step hook). :func:`why_not_fused` names what stands in the way.

The ``aten`` kernels' signatures are PyTorch's to change, so when a step is built it is
first run on a tiny copy of the model's structure (fresh tensors: the model, optimizer,
random streams and statistics are untouched) and compared with autograd; if it raises or
disagrees, the trainer warns once in a line and trains with autograd. The verdict is kept
per structure for the process, so later fits do not pay for it again.
``Trainer(fused=False)`` or ``[train] fused = false`` turns the fused step off.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from operator import attrgetter
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.optim import optimizer as _optimizer_module

from trainwell.model.activations import activation_name
from trainwell.model.modules import ActivatedLinear, BatchNorm

__all__ = ["FusedStep", "fused_step", "why_not_fused"]

aten = torch.ops.aten

# Keras' / PyTorch's SELU constants (nn.SELU uses these).
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


# ----------------------------------------------------------------- stages: one op or two each way


class _Linear:
    def __init__(self, module: nn.Linear):
        self.weight, self.bias = module.weight, module.bias

    def params(self) -> list[torch.Tensor]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if self.bias is None:
            return x.mm(self.weight.t()), x
        return torch.addmm(self.bias, x, self.weight.t()), x

    def backward(self, g: torch.Tensor, x: torch.Tensor, update: "_Gradients", need_input: bool) -> torch.Tensor | None:
        gx = g.mm(self.weight) if need_input else None  # before the weight changes
        update.matmul(self.weight, g.t(), x)
        if self.bias is not None:
            update.column_sum(self.bias, g)
        return gx


#: Each covered activation module: (its name, forward in place, backward from the output);
#: the output is all these backward kernels need.
_ACTIVATIONS: dict[type, tuple[str, Any, Any]] = {
    nn.ReLU: ("relu", torch.relu_, lambda g, y, _: aten.threshold_backward(g, y, 0)),
    nn.LeakyReLU: ("leaky_relu", lambda z, slope: F.leaky_relu_(z, slope),  # a positive slope keeps z's sign
                   lambda g, y, slope: aten.leaky_relu_backward(g, y, slope, True)),
    nn.ELU: ("elu", lambda z, alpha: F.elu_(z, alpha), lambda g, y, alpha: aten.elu_backward(g, alpha, 1.0, 1.0, True, y)),
    nn.SELU: ("selu", torch.selu_, lambda g, y, _: aten.elu_backward(g, _SELU_ALPHA, _SELU_SCALE, 1.0, True, y)),
    nn.Sigmoid: ("sigmoid", torch.sigmoid_, lambda g, y, _: aten.sigmoid_backward(g, y)),
    nn.Tanh: ("tanh", torch.tanh_, lambda g, y, _: aten.tanh_backward(g, y)),
}


class _Activation:
    """An elementwise activation, applied in place on the layer's output; ``backward`` is
    the kernel autograd uses for it, computed from the output.

    ``in_place`` is set only where the input is a fresh tensor no other stage keeps (the
    output of a Dense or BatchNormalization layer); elsewhere the input is copied first.
    """

    def __init__(self, module: nn.Module):
        self.in_place = False
        self.name, forward, self._backward = _ACTIVATIONS[type(module)]
        self.argument = float(module.negative_slope) if self.name == "leaky_relu" else (
            float(module.alpha) if self.name == "elu" else None)
        self._forward = forward if self.argument is None else (lambda z: forward(z, self.argument))

    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, Any]:
        y = self._forward(z if self.in_place else z.clone())
        return y, y

    def backward(self, g: torch.Tensor, y: torch.Tensor, update: "_Gradients", need_input: bool) -> torch.Tensor:
        return self._backward(g, y, self.argument)


class _BatchNorm:
    """BatchNorm1d, and trainwell's BatchNorm with Keras' moving variance (see :class:`BatchNorm`)."""

    def __init__(self, module: nn.BatchNorm1d):
        self.module = module

    def params(self) -> list[torch.Tensor]:
        return [p for p in (self.module.weight, self.module.bias) if p is not None]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        shape = x.shape
        if x.dim() > 2 and isinstance(self.module, BatchNorm):  # trainwell's: per feature of the last axis
            y, saved = self._forward(x.reshape(-1, shape[-1]))
            return y.reshape(shape), (saved, shape)
        y, saved = self._forward(x)
        return y, (saved, None)

    def backward(self, g: torch.Tensor, saved: Any, update: "_Gradients", need_input: bool) -> torch.Tensor | None:
        saved, shape = saved
        if shape is None:
            return self._backward(g, saved, update, need_input)
        gx = self._backward(g.reshape(-1, shape[-1]), saved, update, need_input)
        return None if gx is None else gx.reshape(shape)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        m = self.module
        if isinstance(m, BatchNorm) and m.training and m.running_mean is not None:
            # trainwell's layer: batch statistics without PyTorch's running update, then Keras' update
            factor = m.count_batch()
            y, mean, invstd = aten.native_batch_norm(x, m.weight, m.bias, None, None, True, 0.0, m.eps)
            m.update_moving_statistics(mean, invstd, factor)
            return y, (x, mean, invstd, True)
        training = m.training or m.running_mean is None
        if m.training and m.num_batches_tracked is not None:
            m.num_batches_tracked.add_(1)  # as nn.BatchNorm1d does
        momentum = 0.0 if m.momentum is None else m.momentum  # None (cumulative averages) is ruled out upstream
        y, mean, invstd = aten.native_batch_norm(x, m.weight, m.bias, m.running_mean, m.running_var, training,
                                                 momentum, m.eps)
        return y, (x, mean, invstd, training)

    def _backward(self, g: torch.Tensor, saved: Any, update: "_Gradients", need_input: bool) -> torch.Tensor | None:
        m = self.module
        x, mean, invstd, training = saved
        affine = m.weight is not None
        gx, gw, gb = aten.native_batch_norm_backward(g, x, m.weight, m.running_mean, m.running_var, mean, invstd,
                                                     training, m.eps, [need_input, affine, affine])
        if affine:
            update.add(m.weight, gw)
            update.add(m.bias, gb)
        return gx


class _Dropout:
    """Dropout and AlphaDropout, drawing their mask exactly as ``F.dropout`` and
    ``F.alpha_dropout`` do on a CPU (one ``bernoulli_`` of the same shape), so a seed gives
    the same masks on either path; the backward multiplies by the same mask."""

    _ALPHA = 1.7580993408473766  # SELU's negative saturation value, -scale * alpha

    def __init__(self, module: nn.Module):
        self.module, self.p, self.alpha = module, float(module.p), isinstance(module, nn.AlphaDropout)

    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if not self.module.training or self.p == 0.0:
            return x, None
        keep = 1.0 - self.p
        noise = torch.empty_like(x).bernoulli_(keep)
        if not self.alpha:
            noise.div_(keep)
            return x * noise, noise
        a = 1.0 / ((self._ALPHA ** 2 * self.p + 1) * keep) ** 0.5
        shift = noise.add(-1).mul_(self._ALPHA * a).add_(self._ALPHA * a * self.p)
        noise.mul_(a)
        return (x * noise).add_(shift), noise

    def backward(self, g: torch.Tensor, noise: Any, update: "_Gradients", need_input: bool) -> torch.Tensor:
        return g if noise is None else g * noise


class _Flatten:
    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, g: torch.Tensor, shape: Any, update: "_Gradients", need_input: bool) -> torch.Tensor:
        return g.reshape(shape)


# ----------------------------------------------------------------- where the gradients go


@dataclass
class _Gradients:
    """Where a stage's gradients go.

    ``folded`` (plain SGD: no momentum, no weight decay, one parameter group): the update
    ``param -= lr * grad`` is applied at once, inside the product that computes the
    gradient. Otherwise each gradient is stored in ``param.grad`` and the optimizer's own
    ``step()`` runs afterwards (Adam, Nadam, SGD with momentum... exactly as they are).
    """

    folded: bool
    lr: float = 0.0
    ones: torch.Tensor | None = None

    def matmul(self, param: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        """A gradient ``a @ b`` (a weight's)."""
        if self.folded:
            param.addmm_(a, b, alpha=-self.lr)
        elif param.grad is None:
            param.grad = a.mm(b)
        else:  # into the last step's buffer: a fresh megabyte per step costs more than the product
            torch.mm(a, b, out=param.grad)

    def column_sum(self, param: torch.Tensor, g: torch.Tensor) -> None:
        """A gradient ``g.sum(0)`` (a bias's); folded, one ``addmv_`` with a vector of ones."""
        if not self.folded:
            if param.grad is None:
                param.grad = g.sum(0)
            else:
                torch.sum(g, 0, out=param.grad)
            return
        if self.ones is None or len(self.ones) < len(g) or self.ones.dtype != g.dtype or self.ones.device != g.device:
            self.ones = torch.ones(len(g), dtype=g.dtype, device=g.device)
        param.addmv_(g.t(), self.ones[:len(g)], alpha=-self.lr)

    def add(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        """A gradient computed whole (batch normalization's scale and shift)."""
        if self.folded:
            param.add_(grad, alpha=-self.lr)
        else:
            param.grad = grad


def _foldable(optimizer: torch.optim.Optimizer) -> bool:
    """Plain SGD, whose update can go inside the gradient's own product."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return not (group["momentum"] or group["weight_decay"] or group.get("maximize") or group.get("differentiable"))


# ----------------------------------------------------------------- the step


class FusedStep:
    """Forward, softmax cross-entropy and backward of a plain stack, in one call, without autograd.

    With plain SGD the update is applied too (:attr:`applies_update`); otherwise the
    gradients are left in ``.grad`` for the trainer's clipping and ``optimizer.step()``.
    """

    def __init__(self, stages: list[Any], modules: list[nn.Module], optimizer: torch.optim.Optimizer, *,
                 fold_updates: bool = True, names: dict[int, str] | None = None):
        self.stages = stages
        self.modules = modules
        self.params = [p for stage in stages for p in stage.params()]
        self.optimizer = optimizer
        self.gradients = _Gradients(folded=fold_updates and _foldable(optimizer))
        # Below the lowest stage with parameters, no gradient is needed.
        self.lowest = min(i for i, stage in enumerate(stages) if stage.params())
        names = names or {}
        self._named_modules = [(names.get(id(m), type(m).__name__), m) for m in modules]
        self._named_params = [(names.get(id(p), "a parameter"), p) for p in self.params]
        # Every hook registry it watches, read on each step: hooks are added to and removed from these
        # dictionaries in place, so one pass of truth tests finds any (a parameter's are read anew each step).
        self._registries = [getattr(m, attribute) for m in modules for attribute, _ in _MODULE_HOOKS]
        self._registries += [getattr(nn.modules.module, attribute) for attribute, _ in _GLOBAL_HOOKS]
        if self.gradients.folded:
            self._registries += _optimizer_hooks(optimizer)

    @property
    def applies_update(self) -> bool:
        return self.gradients.folded

    def obstacle(self) -> str | None:
        """The hook attached now that this step cannot honour, named (the trainer then runs autograd's step)."""
        if not (any(self._registries) or any(map(_gradient_hooks, self.params))
                or any(map(_accumulate_hooks, self.params))):
            return None  # the common case, in C: a few tens of microseconds on a 100-layer model
        return _hook_obstacle(self._named_modules, self._named_params, self.optimizer, self.gradients.folded)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step on ``(x, y)``; returns the logits and the mean loss (both detached)."""
        saved = []
        h = x
        for stage in self.stages:
            h, keep = stage.forward(h)
            saved.append(keep)
        logits = h
        log_probs = torch.log_softmax(logits, dim=-1)
        loss = F.nll_loss(log_probs, y)
        # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / batch
        g = log_probs.exp_()
        g.scatter_add_(1, y.unsqueeze(1), torch.full((len(y), 1), -1.0, dtype=g.dtype, device=g.device))
        g.div_(len(y))
        self.gradients.lr = float(self.optimizer.param_groups[0]["lr"])
        for i in range(len(self.stages) - 1, self.lowest - 1, -1):
            g = self.stages[i].backward(g, saved[i], self.gradients, need_input=i > self.lowest)
        return logits, loss


def _stages(model: nn.Module) -> tuple[list[Any], list[nn.Module]] | str:
    """The model as a list of stages, or why it cannot be one."""
    if not isinstance(model, nn.Sequential):
        return "the model is not an nn.Sequential"
    children = list(model.children())
    stages: list[Any] = []
    modules: list[nn.Module] = [model]
    for index, child in enumerate(children):
        last = index == len(children) - 1
        modules.append(child)
        if parametrize.is_parametrized(child):
            return f"a parametrized layer ({type(child).__name__}, e.g. weight_norm): its weights are computed"
        if isinstance(child, nn.Flatten):
            if child.start_dim != 1 or child.end_dim != -1:
                return "a Flatten other than Flatten(1, -1)"
            stages.append(_Flatten())
        elif isinstance(child, nn.Linear):
            stages.append(_Linear(child))
            if isinstance(child, ActivatedLinear):
                modules.append(child.activation)
                activation = _activation_stage(child.activation, last)
                if isinstance(activation, str):
                    return activation
                if activation is not None:
                    activation.in_place = True  # on the Dense layer's own output
                    stages.append(activation)
        elif type(child) in (nn.Dropout, nn.AlphaDropout):
            if not 0.0 <= child.p < 1.0:
                return f"dropout with rate {child.p}"
            stages.append(_Dropout(child))
        elif isinstance(child, nn.BatchNorm1d):
            if type(child) not in (nn.BatchNorm1d, BatchNorm):
                return f"a custom batch normalization ({type(child).__name__})"
            if child.momentum is None or (child.weight is None) != (child.bias is None):
                return "batch normalization with cumulative averages or only one of scale/center"
            stages.append(_BatchNorm(child))
        else:
            activation = _activation_stage(child, last)
            if isinstance(activation, str):
                return activation
            if activation is not None:
                activation.in_place = bool(stages) and isinstance(stages[-1], (_Linear, _BatchNorm))
                stages.append(activation)
    if not any(stage.params() for stage in stages):
        return "the model has no Dense or BatchNormalization layer"
    return stages, modules


def _activation_stage(module: nn.Module, last: bool) -> _Activation | None | str:
    if isinstance(module, nn.Identity) or (last and activation_name(module) == "softmax"):
        return None  # nothing to do; a final softmax: the loss takes the logits
    if type(module) not in _ACTIVATIONS:
        return f"a layer the fused step does not cover ({type(module).__name__})"
    if (isinstance(module, nn.LeakyReLU) and module.negative_slope <= 0) or (isinstance(module, nn.ELU)
                                                                           and module.alpha < 0):
        return f"{type(module).__name__} with a slope or alpha below zero (the backward reads the output's sign)"
    return _Activation(module)


def why_not_fused(trainer: Any, forward: nn.Module | None = None) -> str | None:
    """Why ``trainer``'s fit cannot take the fused step now, or None when it can.

    Names the first obstacle: a setting or layer it does not cover, a hook attached now
    that it cannot honour (``"a post-accumulate-grad hook on dense_1.weight"``), or its
    probe against autograd failing. ``forward`` (the logits module) defaults to the
    trainer's own.
    """
    plan = _plan(trainer, forward)
    if isinstance(plan, str):
        return plan
    stages, modules, names = plan
    step = FusedStep(stages, modules, trainer.optimizer, fold_updates=not trainer.clip, names=names)
    return step.obstacle() or _verdict(step.stages, folded=step.applies_update, device=trainer.device)


def _plan(trainer: Any, forward: nn.Module | None) -> tuple[list[Any], list[nn.Module], dict[int, str]] | str:
    """The stages, modules and their names of ``trainer``'s model when the fused step can train it, else why not."""
    from trainwell.train import distributed
    from trainwell.model.losses import LOSSES
    from trainwell.model.regularization import kernel_penalties

    if not getattr(trainer, "fused", True):
        return "the trainer was made with fused=False"
    if trainer.loss is not LOSSES["sparse_categorical_crossentropy"]:
        return f"the loss is {trainer.loss.name}"
    if trainer.skip_nonfinite:
        return "skipping non-finite batches"
    if forward is not None and forward is not trainer.forward_logits:
        return "the inputs are cached features"
    if kernel_penalties(trainer.model):
        return "l1/l2 penalties (their gradients come from autograd)"
    if distributed.current() is not None:
        return "a data-parallel run"
    stages = _stages(trainer.model)
    if isinstance(stages, str):
        return stages
    params = [p for stage in stages[0] for p in stage.params()]
    model_params = list(trainer.model.parameters())
    if len(params) != len(model_params) or not all(p.requires_grad for p in model_params):
        return "some parameters are frozen"
    trained = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    if trained != {id(p) for p in params}:
        return "the optimizer does not train exactly the model's parameters"
    if any(p.dtype != torch.float32 for p in params):
        return "parameters other than float32"
    names = {id(m): name or "the model" for name, m in trainer.model.named_modules()}
    names.update((id(p), name) for name, p in trainer.model.named_parameters())
    return (*stages, names)


def fused_step(trainer: Any, forward: nn.Module | None = None, *, penalties: Any = None,
               sharding: Any = None) -> FusedStep | None:
    """A :class:`FusedStep` for ``trainer`` when its model and settings qualify, else None.

    l1/l2 penalties and data-parallel runs take the standard step (their gradients come
    from autograd); so does everything :func:`why_not_fused` names. A step whose probe
    against autograd fails is not used, with a one-line warning naming why.
    """
    if not getattr(trainer, "fused", True) or penalties or sharding is not None:
        return None
    plan = _plan(trainer, forward)
    if isinstance(plan, str):
        return None
    stages, modules, names = plan
    step = FusedStep(stages, modules, trainer.optimizer, fold_updates=not trainer.clip, names=names)
    verdict = _verdict(step.stages, folded=step.applies_update, device=trainer.device)
    if verdict is not None:
        warnings.warn(f"trainwell: {verdict}; training with the autograd step instead (see why_not_fused)",
                      RuntimeWarning, stacklevel=3)
        return None
    return step


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
        return "an optimizer step hook (with plain SGD the fused step folds the update and calls no optimizer.step())"
    return None


# ----------------------------------------------------------------- the probe against autograd

#: The probe's verdict per structure (see :func:`_signature`), for this process: None when
#: the fused step agrees with autograd, else why not.
_PROBES: dict[tuple, str | None] = {}
_PROBE_BATCH, _PROBE_WIDTH, _PROBE_CLASSES = 8, 5, 3
_PROBE_LR = 0.5


def _verdict(stages: list[Any], *, folded: bool, device: torch.device) -> str | None:
    """The cached verdict of the probe for this structure, probing it the first time."""
    key = _signature(stages, folded=folded, device=device)
    if key not in _PROBES:
        _PROBES[key] = _probe(stages, folded=folded, device=device)
    return _PROBES[key]


def _signature(stages: list[Any], *, folded: bool, device: torch.device) -> tuple:
    """What the probe's outcome depends on: the kinds of stages in order and their settings, not the widths."""
    def kind(stage: Any) -> tuple:
        if isinstance(stage, _Linear):
            return ("linear", stage.bias is not None)
        if isinstance(stage, _Activation):
            return ("activation", stage.name, stage.argument, stage.in_place)
        if isinstance(stage, _BatchNorm):
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
        step = FusedStep(copies, [], torch.optim.SGD(params, lr=_PROBE_LR), fold_updates=folded)
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
    last_linear = max(i for i, stage in enumerate(stages) if isinstance(stage, _Linear)) if any(
        isinstance(stage, _Linear) for stage in stages) else -1
    width, copies = _PROBE_WIDTH, []
    for i, stage in enumerate(stages):
        if isinstance(stage, _Linear):
            units = _PROBE_CLASSES if i == last_linear else _PROBE_WIDTH
            weight = nn.Parameter(draw(units, width) / math.sqrt(width))
            bias = nn.Parameter(0.1 * draw(units)) if stage.bias is not None else None
            copies.append(_Linear(SimpleNamespace(weight=weight, bias=bias)))
            width = units
        elif isinstance(stage, _BatchNorm):
            copies.append(_BatchNorm(_small_batch_norm(stage.module, width, draw)))
        elif not isinstance(stage, _Dropout):
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
    if isinstance(stage, _Linear):
        return F.linear(x, stage.weight, stage.bias)
    if isinstance(stage, _Activation):
        return stage._forward(x.clone())
    if isinstance(stage, _BatchNorm):
        m = stage.module
        running_mean = None if m.running_mean is None else m.running_mean.clone()
        running_var = None if m.running_var is None else m.running_var.clone()
        return F.batch_norm(x, running_mean, running_var, m.weight, m.bias, True, m.momentum or 0.0, m.eps)
    return x.reshape(len(x), -1)  # Flatten


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal within float32 rounding, relative to the tensor's scale."""
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return bool(torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, scale), equal_nan=True))
