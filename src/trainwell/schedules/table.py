"""A ``[schedule]`` table (a config's, or ``Trainer(schedule={...})``'s) -> the run's schedules.

One table names a schedule and its options; :func:`build_schedule` sizes it for one run
(steps per epoch, total steps) and :func:`check_schedule` judges it before any data is
loaded. ``name = "plateau"`` is performance scheduling: it has state, so it is a callback
(:class:`~trainwell.callbacks.ReduceLROnPlateau`), not a function of the step; the caller
says how to make it (``make_plateau``), and this module only hands it the table's options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from trainwell.errors import ConfigError
from trainwell.schedules.functions import (Schedule, check_count, constant, cosine, exponential, one_cycle,
                                           one_cycle_momentum, per_epoch, piecewise_constant, power)

#: Each schedule name, the keys its ``[schedule]`` table may hold (besides ``name`` and ``per``).
SCHEDULES: dict[str, tuple[str, ...]] = {
    "constant": (),
    "power": ("s", "c"),
    "exponential": ("s", "rate"),
    "piecewise_constant": ("boundaries", "values", "inclusive"),
    "one_cycle": ("max_lr", "start_lr", "last_lr", "last_steps", "total_steps", "cycle_momentum",
                  "max_momentum", "min_momentum"),
    "cosine": ("total_steps", "warmup_steps", "warmup_start", "min_lr"),
    "plateau": ("monitor", "mode", "factor", "patience", "min_delta", "cooldown", "min_lr"),
}

_REQUIRED = {"power": ("s",), "exponential": ("s",), "piecewise_constant": ("boundaries", "values")}
_PER = ("step", "epoch")


@dataclass(frozen=True)
class ScheduleSetup:
    """What a ``[schedule]`` table amounts to: the rate per step, the momentum per step (1cycle),
    and what ``make_plateau`` made of the plateau table's options (``plateau``), each None when
    not asked for."""

    lr: Schedule
    momentum: Schedule | None = None
    plateau: Any = None


def build_schedule(spec: Mapping[str, Any] | str, *, lr0: float, steps_per_epoch: int,
                   total_steps: int, make_plateau: Callable[..., Any] = dict) -> ScheduleSetup:
    """Build a ``{"name": ..., **options}`` table (a config's ``[schedule]``) for one run.

    ``lr0`` is the optimizer's learning rate (the schedule's start, and 1cycle's default
    ``max_lr``); ``per = "epoch"`` counts ``t`` (and every step count in the table) in
    epochs instead of steps. The plateau schedule is a constant rate and
    ``make_plateau(**options)`` (pass :class:`~trainwell.callbacks.ReduceLROnPlateau` for the
    callback; by default the options themselves). Errors name the key as ``schedule.<key>``.

    >>> setup = build_schedule({"name": "exponential", "s": 20, "per": "epoch"}, lr0=0.01,
    ...                        steps_per_epoch=100, total_steps=2500)
    >>> round(setup.lr(2000), 6), setup.momentum, setup.plateau
    (0.001, None, None)
    """
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = options.pop("name", None)
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ConfigError(f"schedule.name: unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    per = options.pop("per", "step")
    if not isinstance(per, str) or per not in _PER:
        raise ConfigError(f"schedule.per: must be 'step' or 'epoch', got {per!r}")
    for key in options:
        if key not in SCHEDULES[name]:
            allowed = ", ".join(("name", "per", *SCHEDULES[name]))
            raise ConfigError(f"schedule.{key}: not an option of the {name} schedule; allowed: {allowed}")
    for key in _REQUIRED.get(name, ()):
        if key not in options:
            raise ConfigError(f"schedule.{key}: missing; the {name} schedule needs {', '.join(_REQUIRED[name])}")
    spe = check_count("steps_per_epoch", steps_per_epoch)
    total = check_count("total_steps", total_steps)
    if per == "epoch":
        total = max(1, -(-total // spe))  # the schedule counts epochs
    try:
        lr, momentum, plateau = _build(name, options, lr0=lr0, total=total, make_plateau=make_plateau)
    except ConfigError as error:
        raise ConfigError(f"schedule.{error}") from None
    if per == "epoch":
        lr = per_epoch(lr, steps_per_epoch=spe)
        momentum = None if momentum is None else per_epoch(momentum, steps_per_epoch=spe)
    return ScheduleSetup(lr=lr, momentum=momentum, plateau=plateau)


def _build(name: str, options: dict[str, Any], *, lr0: float, total: int, make_plateau: Callable[..., Any]):
    if name == "constant":
        return constant(lr=lr0), None, None
    if name == "power":
        return power(lr0=lr0, **options), None, None
    if name == "exponential":
        return exponential(lr0=lr0, **options), None, None
    if name == "piecewise_constant":
        return piecewise_constant(**options), None, None
    if name == "cosine":
        return cosine(lr0=lr0, **{"total_steps": total, **options}), None, None
    if name == "plateau":
        return constant(lr=lr0), None, make_plateau(**options)
    # one_cycle
    cycle = {"total_steps": total, **options}
    momentum_keys = ("cycle_momentum", "max_momentum", "min_momentum")
    cycling = cycle.pop("cycle_momentum", False)
    if not isinstance(cycling, bool):
        raise ConfigError(f"cycle_momentum: must be true or false, got {cycling!r}")
    momentum_options = {k: cycle.pop(k) for k in momentum_keys[1:] if k in cycle}
    if momentum_options and not cycling:
        raise ConfigError(f"{next(iter(momentum_options))}: only used with cycle_momentum = true")
    cycle.setdefault("max_lr", lr0)
    lr = one_cycle(**cycle)
    momentum = None
    if cycling:
        momentum = one_cycle_momentum(total_steps=cycle["total_steps"], last_steps=cycle.get("last_steps"),
                                      **momentum_options)
    return lr, momentum, None


def check_schedule(spec: Any, *, lr0: float, make_plateau: Callable[..., Any] = dict) -> None:
    """Validate a ``[schedule]`` table before any data is loaded.

    Checks names, keys and values as :func:`build_schedule` will (the plateau's values as
    ``make_plateau`` does); the only checks left for the run itself are the ones that need
    its length (e.g. 1cycle's ``last_steps`` against the run's steps), done when it starts.
    """
    if not isinstance(spec, (Mapping, str)):
        raise ConfigError(f"schedule: must be a table with a name, e.g. name = \"exponential\", got {spec!r}")
    # A stand-in run long enough for any explicit step count, so only the table is judged.
    build_schedule(spec, lr0=lr0, steps_per_epoch=1, total_steps=10**12, make_plateau=make_plateau)
