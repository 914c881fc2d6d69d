"""Optimizers by name, with the chapter's (Keras') parameter names and defaults.

These are PyTorch's own optimizers; this module only translates names and defaults,
so ``optimizer("rmsprop", rho=0.9)`` builds ``torch.optim.RMSprop(alpha=0.9, eps=1e-7)``.
Unknown arguments are errors, never silently dropped. See the README's table of
where Keras and PyTorch differ.

Where Keras' formula differs from PyTorch's, the ``variant`` option picks one (the
default is the book's, tf.keras 2, except for Adam, which stays PyTorch's):

* ``nadam``: ``"keras2"`` (PyTorch's NAdam, ``momentum_decay=0.004``: the legacy tf.keras 2
  schedule ``mu_t = beta_1 (1 - 0.5 * 0.96 ** (0.004 t))``) or ``"keras3"``
  (``mu_t = beta_1 (1 - 0.5 * 0.96 ** t)``: PyTorch's NAdam with ``momentum_decay=1``);
* ``rmsprop``: ``"keras2"`` (``g / (sqrt(v) + eps)``, PyTorch's RMSprop; with momentum,
  tf.keras 2's kernel takes ``sqrt(v + eps)`` and so does trainwell) or ``"keras3"``
  (``g / sqrt(v + eps)`` always: :class:`KerasRMSprop`);
* ``adam``, ``adamw``: ``"pytorch"`` (``eps`` added to the bias-corrected ``sqrt(v_hat)``) or
  ``"keras"`` (tf.keras 2 and Keras 3 alike: ``eps`` added to ``sqrt(v)`` before the
  correction: :class:`KerasAdam`, :class:`KerasAdamW`).

>>> optimizer("nadam", variant="keras3")([torch.nn.Parameter(torch.zeros(1))]).defaults["momentum_decay"]
1.0

>>> make = optimizer("sgd", lr=0.1, momentum=0.9, nesterov=True)
>>> make([torch.nn.Parameter(torch.zeros(1))]).defaults["nesterov"]
True

This is one module: the optimizer table (names, defaults, variants), the checks of options
against it and the builders that read it belong together; gradient clipping and the momentum
setter are the two small things the Trainer asks of an optimizer besides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch

from trainwell.checks import check_bool, check_number
from trainwell.errors import ConfigError


class KerasRMSprop(torch.optim.RMSprop):
    """RMSprop as Keras 3 writes it (and tf.keras 2's kernel with momentum): epsilon inside the root.

    ``v = rho v + (1 - rho) g^2``; ``increment = lr g / sqrt(v + eps)`` (centered:
    ``sqrt(v - mg^2 + eps)``); with momentum ``mom = momentum mom + increment; w -= mom``,
    else ``w -= increment``. PyTorch's RMSprop divides by ``sqrt(v) + eps`` and keeps ``lr``
    outside its momentum buffer. ``weight_decay`` is PyTorch's (added to the gradient).
    The state uses PyTorch's names (``square_avg``, ``momentum_buffer``, ``grad_avg``).
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: Mapping[str, Any]) -> None:
        grad = p.grad if not group["weight_decay"] else p.grad.add(p, alpha=group["weight_decay"])
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["square_avg"] = torch.zeros_like(p)
        state["step"] += 1
        rho = group["alpha"]
        square_avg = state["square_avg"].mul_(rho).addcmul_(grad, grad, value=1 - rho)
        if group["centered"]:
            grad_avg = state.setdefault("grad_avg", torch.zeros_like(p)).mul_(rho).add_(grad, alpha=1 - rho)
            denominator = square_avg.addcmul(grad_avg, grad_avg, value=-1).add_(group["eps"]).sqrt_()
        else:
            denominator = square_avg.add(group["eps"]).sqrt_()
        increment = torch.div(grad, denominator).mul_(group["lr"])
        if group["momentum"] > 0:
            buffer = state.setdefault("momentum_buffer", torch.zeros_like(p))
            p.sub_(buffer.mul_(group["momentum"]).add_(increment))
        else:
            p.sub_(increment)


class _KerasEpsilon:
    """Keras' epsilon placement for PyTorch's Adam family, as a transformation of ``eps``.

    Keras (tf.keras 2 and Keras 3) updates ``w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m /
    (sqrt(v) + eps)``: epsilon is added before the bias correction. PyTorch divides by
    ``sqrt(v / (1 - beta_2^t)) + eps``. The two agree exactly when PyTorch's ``eps`` at step
    ``t`` is ``eps / sqrt(1 - beta_2^t)``, so each step sets it so and runs PyTorch's own
    (fused) update. The step count and Keras' epsilon live in the parameter group
    (``keras_step``, ``keras_epsilon``), so a checkpoint carries them.
    """

    param_groups: list[dict[str, Any]]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        self.advance_epsilon()
        return super().step(closure)  # type: ignore[misc]

    def advance_epsilon(self) -> None:
        """Count one more step and set each group's ``eps`` for it (a step that runs PyTorch's
        update without this ``step()``, as the fused step's folded update does, calls this first)."""
        for group in self.param_groups:
            epsilon = group.setdefault("keras_epsilon", group["eps"])
            group["keras_step"] = group.get("keras_step", 0) + 1
            group["eps"] = epsilon / math.sqrt(1.0 - group["betas"][1] ** group["keras_step"])


class KerasAdam(_KerasEpsilon, torch.optim.Adam):
    """PyTorch's Adam with Keras' epsilon placement (see :class:`_KerasEpsilon`)."""


class KerasAdamW(_KerasEpsilon, torch.optim.AdamW):
    """PyTorch's AdamW with Keras' epsilon placement (see :class:`_KerasEpsilon`)."""


@dataclass(frozen=True)
class Variant:
    """One formula an optimizer may follow: its class for the (PyTorch-named) options, and
    the options it sets itself (which the user may then not set)."""

    choose: Callable[[Mapping[str, Any]], type[torch.optim.Optimizer]]
    sets: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerInfo:
    """How one Keras-named optimizer maps onto its PyTorch class."""

    cls: type[torch.optim.Optimizer]
    defaults: Mapping[str, Any]
    # Keras name -> PyTorch name, for the arguments whose names differ.
    renames: Mapping[str, str] = field(default_factory=dict)
    # Pairs of Keras arguments PyTorch takes as one tuple (beta_1, beta_2 -> betas).
    betas: bool = False
    # The ``variant`` option's values, the default first; empty: no such option.
    variants: Mapping[str, Variant] = field(default_factory=dict)


_BETAS = {"beta_1": 0.9, "beta_2": 0.999}
_EPS = {"epsilon": 1e-7}

OPTIMIZERS: dict[str, OptimizerInfo] = {
    "sgd": OptimizerInfo(torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}),
    "adagrad": OptimizerInfo(torch.optim.Adagrad, {"lr": 0.001, "initial_accumulator_value": 0.1, **_EPS,
                                                   "weight_decay": 0.0}, {"epsilon": "eps"}),
    # tf.keras 2: sqrt(v) + eps without momentum (PyTorch's), its ApplyRMSProp kernel's sqrt(v + eps) with it.
    "rmsprop": OptimizerInfo(torch.optim.RMSprop, {"lr": 0.001, "rho": 0.9, "momentum": 0.0, **_EPS,
                                                   "centered": False, "weight_decay": 0.0},
                             {"rho": "alpha", "epsilon": "eps"},
                             variants={"keras2": Variant(lambda o: KerasRMSprop if o["momentum"] > 0
                                                         else torch.optim.RMSprop),
                                       "keras3": Variant(lambda o: KerasRMSprop)}),
    "adam": OptimizerInfo(torch.optim.Adam, {"lr": 0.001, **_BETAS, **_EPS, "amsgrad": False, "weight_decay": 0.0},
                          {"epsilon": "eps"}, betas=True,
                          variants={"pytorch": Variant(lambda o: torch.optim.Adam),
                                    "keras": Variant(lambda o: KerasAdam)}),
    "adamax": OptimizerInfo(torch.optim.Adamax, {"lr": 0.001, **_BETAS, **_EPS, "weight_decay": 0.0},
                            {"epsilon": "eps"}, betas=True),
    # PyTorch's NAdam with momentum_decay 0.004 is legacy tf.keras 2's schedule,
    # mu_t = beta_1 * (1 - 0.5 * 0.96 ** (0.004 t)); with momentum_decay 1 it is Keras 3's, 0.96 ** t.
    "nadam": OptimizerInfo(torch.optim.NAdam, {"lr": 0.001, **_BETAS, **_EPS, "momentum_decay": 0.004,
                                               "weight_decay": 0.0}, {"epsilon": "eps"}, betas=True,
                           variants={"keras2": Variant(lambda o: torch.optim.NAdam),
                                     "keras3": Variant(lambda o: torch.optim.NAdam, {"momentum_decay": 1.0})}),
    "adamw": OptimizerInfo(torch.optim.AdamW, {"lr": 0.001, **_BETAS, **_EPS, "weight_decay": 0.004,
                                               "amsgrad": False}, {"epsilon": "eps"}, betas=True,
                           variants={"pytorch": Variant(lambda o: torch.optim.AdamW),
                                     "keras": Variant(lambda o: KerasAdamW)}),
}

_VARIANT_MEANING = {"keras2": "tf.keras 2, the book's", "keras3": "Keras 3", "pytorch": "PyTorch's formula",
                    "keras": "Keras' epsilon placement, tf.keras 2 and Keras 3 alike"}

_ALIASES = {"learning_rate": "lr"}


def optimizer_names() -> list[str]:
    return list(OPTIMIZERS)


def resolve_optimizer(name: str, options: Mapping[str, Any]) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The optimizer class and its options (PyTorch's names) for Keras-named ``options``, checked."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name: unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    info = OPTIMIZERS[name]
    options = dict(options)
    chosen = options.pop("variant", next(iter(info.variants), None))
    variant = _variant(name, info, chosen)
    torch_options = resolve_optimizer_options(name, options)
    if variant is None:
        return info.cls, torch_options
    for key, value in variant.sets.items():
        if key in options:
            raise ConfigError(f"optimizer.{key}: the {chosen} variant sets it ({value!r}); leave it out")
        torch_options[key] = value
    return variant.choose(torch_options), torch_options


def _variant(name: str, info: OptimizerInfo, value: Any) -> Variant | None:
    if not info.variants:
        if value is not None:
            raise ConfigError(f"optimizer.variant: not an option of {name}; allowed: "
                              f"{', '.join(info.defaults)} (variant: only for {_with_variants()})")
        return None
    if not isinstance(value, str) or value not in info.variants:
        allowed = ", ".join(f"{key} ({_VARIANT_MEANING[key]}{', the default' if i == 0 else ''})"
                            for i, key in enumerate(info.variants))
        raise ConfigError(f"optimizer.variant: {value!r} is not a variant of {name}; allowed: {allowed}")
    return info.variants[value]


def _with_variants() -> str:
    return ", ".join(name for name, info in OPTIMIZERS.items() if info.variants)


def resolve_optimizer_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Keras-named options merged over the defaults, checked, in PyTorch's names (for the default
    variant's class; :func:`resolve_optimizer` also reads ``variant``)."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name: unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    info = OPTIMIZERS[name]
    if "variant" in options:
        return resolve_optimizer(name, options)[1]
    merged = dict(info.defaults)
    for key, value in options.items():
        key = _ALIASES.get(key, key)
        if not isinstance(key, str) or key not in info.defaults:
            allowed = ", ".join([*info.defaults, *(["variant"] if info.variants else [])])
            raise ConfigError(f"optimizer.{key}: not an option of {name}; allowed: {allowed}")
        default = info.defaults[key]
        if isinstance(default, bool):
            check_bool(value, f"optimizer.{key}: must be true or false")
        else:
            check_number(value, f"optimizer.{key}: must be a finite non-negative number", finite=True, minimum=0)
        merged[key] = value
    if merged["lr"] <= 0:
        raise ConfigError(f"optimizer.lr: the learning rate must be positive, got {merged['lr']!r}")
    for beta in ("beta_1", "beta_2", "rho", "momentum"):
        if beta in merged and not 0 <= merged[beta] < 1:
            raise ConfigError(f"optimizer.{beta}: must be in [0, 1), got {merged[beta]!r}")
    if merged.get("nesterov") and merged.get("momentum", 0) == 0:
        raise ConfigError("optimizer.nesterov: Nesterov momentum needs momentum > 0")
    torch_options = {info.renames.get(k, k): v for k, v in merged.items() if k not in ("beta_1", "beta_2")}
    if info.betas:
        torch_options["betas"] = (merged["beta_1"], merged["beta_2"])
    return torch_options


OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]

#: PyTorch's single-kernel ("fused") implementations, on the CPU as on the GPU: the same
#: update rule in one pass over each tensor. On the chapter's models at batch 32 they step
#: 2-4x faster than the default per-parameter loop (Adam: 0.9 ms against 2.7 ms per step
#: on the 300-100 network, one CPU thread). NAdam has none; its multi-tensor ("foreach")
#: version measured 1.4-3.9x faster. The others keep PyTorch's default.
_FUSED = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)
_FOREACH = (torch.optim.NAdam,)


def build_fast(cls: type[torch.optim.Optimizer], params: Iterable[Any], options: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``cls(params, **options)`` in its fastest implementation where PyTorch has one for these tensors."""
    params = list(params)
    tensors = [p for item in params for p in (item["params"] if isinstance(item, Mapping) else [item])]
    devices = {t.device.type for t in tensors}
    choice = "fused" if issubclass(cls, _FUSED) else "foreach" if issubclass(cls, _FOREACH) else None
    if (choice and tensors and all(t.is_floating_point() for t in tensors) and len(devices) == 1
            and devices <= {"cpu", "cuda"}):
        try:
            return cls(params, **options, **{choice: True})
        except (RuntimeError, ValueError, TypeError):  # not for this device or dtype: the default below
            pass
    return cls(params, **options)


def optimizer(name: str, **options: Any) -> OptimizerFactory:
    """A factory ``params -> torch.optim.Optimizer``, checked now (before any model exists)."""
    cls, torch_options = resolve_optimizer(name, options)

    def make(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return build_fast(cls, params, torch_options)

    make.__name__ = f"{name}_optimizer"
    make.__qualname__ = make.__name__
    return make


def make_optimizer(spec: str | Mapping[str, Any] | OptimizerFactory | torch.optim.Optimizer,
                   params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Build an optimizer from a name, a ``{"name": ..., **options}`` table, a factory or an instance."""
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    if isinstance(spec, str):
        return optimizer(spec)(params)
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if name is None:
            raise ConfigError("optimizer.name: missing; allowed: " + ", ".join(OPTIMIZERS))
        return optimizer(name, **options)(params)
    if callable(spec):
        return spec(params)
    raise ConfigError(f"optimizer: expected a name, a table, a factory or a torch optimizer, got {spec!r}")


def clip_gradients(params: list[torch.nn.Parameter], *, clipvalue: float | None = None,
                   clipnorm: float | None = None, global_clipnorm: float | None = None) -> None:
    """Clip gradients in place, with Keras' three meanings.

    ``clipvalue`` clips each element to [-v, v]; ``clipnorm`` rescales each parameter's
    gradient to norm <= c on its own (Keras' clipnorm); ``global_clipnorm`` rescales all
    gradients together so their joint norm is <= c.
    """
    grads = [p for p in params if p.grad is not None]
    if clipvalue is not None:
        torch.nn.utils.clip_grad_value_(grads, clipvalue)
    if clipnorm is not None:
        for p in grads:
            torch.nn.utils.clip_grad_norm_([p], clipnorm)
    if global_clipnorm is not None:
        torch.nn.utils.clip_grad_norm_(grads, global_clipnorm)


def momentum_setter(optimizer: torch.optim.Optimizer) -> Callable[[dict[str, Any], float], None]:
    """A function ``(param_group, m) -> None`` that sets the momentum to ``m``: SGD's and RMSprop's
    ``momentum``, or ``beta_1`` for the Adam family (how 1cycle cycles momentum); a ConfigError for
    optimizers without one (Adagrad)."""
    if "betas" in optimizer.param_groups[0]:
        def set_beta_1(group: dict[str, Any], m: float) -> None:
            group["betas"] = (m, group["betas"][1])
        return set_beta_1
    if "momentum" in optimizer.param_groups[0]:
        def set_momentum(group: dict[str, Any], m: float) -> None:
            group["momentum"] = m
        return set_momentum
    raise ConfigError(f"momentum_schedule: {type(optimizer).__name__} has no momentum to cycle; "
                      "allowed with sgd, rmsprop and the adam family")
