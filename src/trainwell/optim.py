"""Optimizers by name, with the chapter's (Keras') parameter names and defaults.

These are PyTorch's own optimizers; this module only translates names and defaults,
so ``optimizer("rmsprop", rho=0.9)`` builds ``torch.optim.RMSprop(alpha=0.9, eps=1e-7)``.
Unknown arguments are errors, never silently dropped. See the README's table of
where Keras and PyTorch differ.

>>> make = optimizer("sgd", lr=0.1, momentum=0.9, nesterov=True)
>>> make([torch.nn.Parameter(torch.zeros(1))]).defaults["nesterov"]
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch

from trainwell.errors import ConfigError


@dataclass(frozen=True)
class OptimizerInfo:
    """How one Keras-named optimizer maps onto its PyTorch class."""

    cls: type[torch.optim.Optimizer]
    defaults: Mapping[str, Any]
    # Keras name -> PyTorch name, for the arguments whose names differ.
    renames: Mapping[str, str] = field(default_factory=dict)
    # Pairs of Keras arguments PyTorch takes as one tuple (beta_1, beta_2 -> betas).
    betas: bool = False


_BETAS = {"beta_1": 0.9, "beta_2": 0.999}
_EPS = {"epsilon": 1e-7}

OPTIMIZERS: dict[str, OptimizerInfo] = {
    "sgd": OptimizerInfo(torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}),
    "adagrad": OptimizerInfo(torch.optim.Adagrad, {"lr": 0.001, "initial_accumulator_value": 0.1, **_EPS,
                                                   "weight_decay": 0.0}, {"epsilon": "eps"}),
    "rmsprop": OptimizerInfo(torch.optim.RMSprop, {"lr": 0.001, "rho": 0.9, "momentum": 0.0, **_EPS,
                                                   "centered": False, "weight_decay": 0.0},
                             {"rho": "alpha", "epsilon": "eps"}),
    "adam": OptimizerInfo(torch.optim.Adam, {"lr": 0.001, **_BETAS, **_EPS, "amsgrad": False, "weight_decay": 0.0},
                          {"epsilon": "eps"}, betas=True),
    "adamax": OptimizerInfo(torch.optim.Adamax, {"lr": 0.001, **_BETAS, **_EPS, "weight_decay": 0.0},
                            {"epsilon": "eps"}, betas=True),
    # PyTorch's NAdam implements Keras' momentum schedule (mu_t = beta_1 * (1 - 0.5 * 0.96 ** (t * 0.004))).
    "nadam": OptimizerInfo(torch.optim.NAdam, {"lr": 0.001, **_BETAS, **_EPS, "momentum_decay": 0.004,
                                               "weight_decay": 0.0}, {"epsilon": "eps"}, betas=True),
    "adamw": OptimizerInfo(torch.optim.AdamW, {"lr": 0.001, **_BETAS, **_EPS, "weight_decay": 0.004,
                                               "amsgrad": False}, {"epsilon": "eps"}, betas=True),
}

_ALIASES = {"learning_rate": "lr"}


def optimizer_names() -> list[str]:
    return list(OPTIMIZERS)


def resolve_optimizer_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Keras-named options merged over the defaults, checked, in PyTorch's names."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name: unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    info = OPTIMIZERS[name]
    merged = dict(info.defaults)
    for key, value in options.items():
        key = _ALIASES.get(key, key)
        if not isinstance(key, str) or key not in info.defaults:
            raise ConfigError(f"optimizer.{key}: not an option of {name}; allowed: {', '.join(info.defaults)}")
        default = info.defaults[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"optimizer.{key}: must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"optimizer.{key}: must be a non-negative number, got {value!r}")
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
    torch_options = resolve_optimizer_options(name, options)
    cls = OPTIMIZERS[name].cls

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
