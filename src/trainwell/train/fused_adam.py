"""The Adam family's update folded into the fused step: Adam, AdamW, NAdam, KerasAdam, KerasAdamW.

Why it exists: at batch 32 the optimizer's own ``step()`` costs more than the forward and
backward passes of the fused step. Most of it is Python: foreach NAdam's per-step scalar
tensor math, ``.item()`` calls and copies; even fused Adam's ``step()`` spends more in its
bookkeeping (grouping tensors, state checks, hooks) than in its kernel. :class:`FoldedAdam`
applies the same update, per parameter, right after the fused pass computed its gradient
(while it is in cache), in one call of the kernel ``torch.optim.Adam(fused=True)`` runs
(``torch._fused_adam_`` / ``torch._fused_adamw_``), with the step's scalars as Python floats.

NAdam has no kernel of its own, but its update is the Adam kernel's with other scalars:
NAdam moves the weight by ``a g + b m_t`` over ``sqrt(v_t / (1 - beta_2^t)) + eps``, where
``m_t = lerp(m, g, 1 - beta_1)``, so ``a g + b m_t = (a + b) lerp(m, g, 1 - b beta_1 / (a + b))``:
a lerp of the *previous* first moment. So the new first moment is computed as NAdam does
(``torch.lerp(m, g, 1 - beta_1)``) into a second buffer, and the Adam kernel runs on the
previous one with ``beta_1 = b beta_1 / (a + b)`` and a learning rate that undoes its bias
correction: the second moment, the denominator and the weight are then NAdam's, within
float32 rounding. The two buffers trade places each step (the state's ``exp_avg`` is the
new moment): two passes over the moment, where copying it for the kernel took three.

The state stays PyTorch's own, in ``optimizer.state[p]`` under its keys and types
(``step`` a float32 0-dim tensor, ``exp_avg``, ``exp_avg_sq``, NAdam's ``mu_product``), so
``state_dict()``, checkpoints, resuming and the optimizer's own ``step()`` on other steps
see exactly what they would. The step count and NAdam's ``mu_product`` are mirrored as
Python floats (``mu_product`` rounded to float32, as its tensor is) and read again from the
state whenever something else changed it (its tensors' version counters tell, and a new
state dictionary after ``load_state_dict``). The hyperparameters (``lr``, ``betas``,
``eps``, ``weight_decay``, ``momentum_decay``) are read from the parameter group on every
step, so schedules and 1cycle's momentum reach it; KerasAdam's per-step epsilon is set in
the group as its own ``step()`` sets it.

Only the options implemented here fold (:func:`folded_adam` says which); the others keep
the optimizer's own ``step()``.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import torch

from trainwell.optim import KerasAdam, KerasAdamW

__all__ = ["FoldedAdam", "folded_adam"]

_FOLDED_TYPES = (torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, KerasAdam, KerasAdamW)
_UNSUPPORTED = ("amsgrad", "maximize", "capturable", "differentiable")


def _float32(x: float) -> float:
    """``x`` rounded to float32, as a float32 tensor holds it."""
    return struct.unpack("f", struct.pack("f", x))[0]


def folded_adam(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> FoldedAdam | None:
    """A :class:`FoldedAdam` for ``optimizer`` training ``params``, or None where its options are not covered.

    Covered: exactly torch's Adam, AdamW and NAdam and trainwell's KerasAdam and KerasAdamW,
    one parameter group, contiguous float32 parameters on one device, without amsgrad, maximize,
    capturable or differentiable, and with plain float hyperparameters (not tensors).
    """
    if type(optimizer) not in _FOLDED_TYPES or len(optimizer.param_groups) != 1 or not params:
        return None
    if (len({p.device for p in params}) != 1 or params[0].device.type not in ("cpu", "cuda")
            or not all(p.is_contiguous() for p in params)):
        return None
    if not _covered(optimizer.param_groups[0]):
        return None
    return FoldedAdam(optimizer, params)


def _covered(group: dict[str, Any]) -> bool:
    """Whether a parameter group's options are the ones :class:`FoldedAdam` implements."""
    if any(group.get(option) for option in _UNSUPPORTED):
        return False
    numbers = [group["lr"], *group["betas"], group["eps"], group["weight_decay"], group.get("momentum_decay", 0.0)]
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers)


class FoldedAdam:
    """The update of an Adam-family optimizer, applied one parameter at a time by the fused step.

    Per step: :meth:`begin` (False: this step cannot be folded, the optimizer's ``step()``
    must run), then :meth:`apply` once per parameter with its gradient. :meth:`buffer`
    lends a scratch tensor shaped like a parameter for its gradient.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]):
        self.optimizer = optimizer
        self.params = params
        self.nadam = isinstance(optimizer, torch.optim.NAdam)
        self.keras = isinstance(optimizer, (KerasAdam, KerasAdamW))
        self._index = {id(p): i for i, p in enumerate(params)}
        largest = max(p.numel() for p in params)
        # One scratch for the gradients, shared by the parameters in turn.
        flat = torch.empty(largest, dtype=params[0].dtype, device=params[0].device)
        self._gradient = [flat[:p.numel()].view_as(p) for p in params]
        self._state: Any = None  # the state dictionary the mirrors below were read from
        self._versions: tuple[int, ...] = ()
        self.t = 0.0  # the step count, as state["step"] holds it
        self.mu_product = 1.0  # NAdam's, as state["mu_product"] holds it (float32)
        self._kernel = None

    def buffer(self, param: torch.Tensor) -> torch.Tensor:
        """A scratch tensor shaped like ``param`` for its gradient, valid until the next parameter's."""
        return self._gradient[self._index[id(param)]]

    # ------------------------------------------------------------- per step

    def begin(self) -> bool:
        """Advance the state's step counts and compute this step's scalars; False when it cannot be folded."""
        group = self.optimizer.param_groups[0]
        if len(self.optimizer.param_groups) != 1 or not _covered(group):
            return False
        if not self._in_sync() and not self._sync():
            return False
        if self.keras:
            self.optimizer.advance_epsilon()
        beta1, beta2 = (float(b) for b in group["betas"])
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        decoupled = bool(group.get("decoupled_weight_decay", False))
        self.t += 1.0
        t = self.t
        self.eps, self.beta2 = eps, beta2
        if not self.nadam:
            self._kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            self.lr, self.beta1, self.weight_decay = lr, beta1, weight_decay
            self.l2, self.decay = 0.0, 1.0
        else:
            momentum_decay = float(group["momentum_decay"])
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1.0) * momentum_decay))
            self.mu_product = _float32(self.mu_product * _float32(mu))  # as mu_product *= mu rounds it
            a = lr * (1.0 - mu) / (1.0 - self.mu_product)  # the gradient's share of the step
            b = lr * mu_next / (1.0 - self.mu_product * mu_next)  # the first moment's
            self._kernel = torch._fused_adam_
            # the kernel's lerp(m, g, 1 - beta1) of the previous moment is the numerator / (a + b)
            self.beta1 = b * beta1 / (a + b)
            self.lr = (a + b) * (1.0 - self.beta1 ** t)  # times its bias correction, which it divides by
            self.weight_decay = 0.0
            self.nadam_beta1 = beta1
            self.l2 = 0.0 if decoupled else weight_decay
            self.decay = 1.0 - lr * weight_decay if decoupled else 1.0
        self._write_counters()
        self._versions = self._current_versions()
        return True

    def _write_counters(self) -> None:
        """The state's step counts (and NAdam's mu_products) set from the mirrors, in one foreach copy."""
        self._count.fill_(self.t)
        if self.nadam:
            self._product.fill_(self.mu_product)
        torch._foreach_copy_(self._counters, self._sources)
        if self._device_count is not None:
            self._device_count.fill_(self.t)

    def apply(self, param: torch.Tensor, grad: torch.Tensor, *, own: bool = True) -> None:
        """Update ``param`` from its gradient ``grad`` (``own``: a scratch tensor the update may change)."""
        i = self._index[id(param)]
        m, v, step = self._exp_avgs[i], self._exp_avg_sqs[i], self._kernel_steps[i]
        if self.nadam:
            if self.l2:
                grad = grad.add_(param, alpha=self.l2) if own else torch.add(grad, param, alpha=self.l2,
                                                                              out=self._gradient[i])
            if self.decay != 1.0:
                param.mul_(self.decay)
            new = torch.lerp(m, grad, 1.0 - self.nadam_beta1, out=self._spares[i])  # NAdam's own m_t
            self._spares[i], self._exp_avgs[i] = m, new  # m, the previous moment, the kernel then consumes
            self._states[i]["exp_avg"] = new
        self._kernel([param], [grad], [m], [v], [], [step], amsgrad=False, lr=self.lr, beta1=self.beta1,
                     beta2=self.beta2, weight_decay=self.weight_decay, eps=self.eps, maximize=False)

    # ------------------------------------------------------------- the state, PyTorch's own

    def _current_versions(self) -> tuple[int, ...]:
        versions = (self._steps[0]._version,)
        return versions + (self._mu_products[0]._version,) if self.nadam else versions

    def _in_sync(self) -> bool:
        return self.optimizer.state is self._state and self._current_versions() == self._versions

    def _sync(self) -> bool:
        """Read the state (creating it as the optimizer would on its first step) and the mirrors from it."""
        optimizer, group = self.optimizer, self.optimizer.param_groups[0]
        keys = ("step", "exp_avg", "exp_avg_sq") + (("mu_product",) if self.nadam else ())
        states = []
        for p in self.params:
            state = optimizer.state[p]
            if not state:
                _initial_state(state, p, group, self.nadam)
            if set(state) != set(keys) or any(state[k].shape != p.shape or state[k].dtype != p.dtype
                                              or state[k].device != p.device for k in ("exp_avg", "exp_avg_sq")):
                return False
            if any(state[k].dtype != torch.float32 or state[k].dim() for k in keys if k in ("step", "mu_product")):
                return False  # the float mirrors below hold float32 counts
            states.append(state)
        steps = {float(state["step"]) for state in states}
        mu_products = {float(state["mu_product"]) for state in states} if self.nadam else {1.0}
        if len(steps) != 1 or len(mu_products) != 1:
            return False  # parameters at different steps: the optimizer's own step() keeps them apart
        self.t, self.mu_product = steps.pop(), mu_products.pop()
        self._steps = [state["step"] for state in states]
        self._exp_avgs = [state["exp_avg"] for state in states]
        self._exp_avg_sqs = [state["exp_avg_sq"] for state in states]
        self._mu_products = [state["mu_product"] for state in states] if self.nadam else []
        self._states = states
        self._spares = [torch.empty_like(m) for m in self._exp_avgs] if self.nadam else []  # NAdam's second buffers
        device = self.params[0].device
        # The kernel reads the count on the parameters' device: where the state keeps it elsewhere (on the
        # CPU, beside CUDA parameters), a copy there, set with it.
        self._device_count = None
        self._kernel_steps = self._steps
        if any(step.device != device for step in self._steps):
            self._device_count = torch.zeros((), dtype=torch.float32, device=device)
            self._kernel_steps = [self._device_count] * len(self._steps)
        # What _write_counters copies: each count from one tensor per device (a foreach copy is one call).
        sources: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        for tensor in self._steps + self._mu_products:
            sources.setdefault(tensor.device, (torch.zeros((), device=tensor.device), torch.ones((), device=tensor.device)))
        self._counters = self._steps + self._mu_products
        self._sources = [sources[t.device][0] for t in self._steps] + [sources[t.device][1] for t in self._mu_products]
        self._count, self._product = sources[self._steps[0].device]
        self._state = optimizer.state
        self._versions = self._current_versions()
        return True


def _initial_state(state: dict[str, Any], p: torch.Tensor, group: dict[str, Any], nadam: bool) -> None:
    """The state the optimizer's own first step would create for ``p`` (its keys, dtypes and devices)."""
    on_device = group.get("fused") or group.get("capturable")
    state["step"] = (torch.zeros((), dtype=torch.float32, device=p.device) if on_device
                     else torch.tensor(0.0, dtype=_scalar_dtype()))
    if nadam:
        state["mu_product"] = torch.tensor(1.0, dtype=_scalar_dtype())
    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def _scalar_dtype() -> torch.dtype:
    """The dtype PyTorch's optimizers give their step counts (float64 only under a float64 default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
