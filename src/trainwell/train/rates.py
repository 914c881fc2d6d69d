"""Each step's learning rate and momentum: the schedules' values, set on the optimizer and recorded.

A step's rate is its schedule's value (or each group's ``base_lr`` without one) times the
trainer's ``lr_scale``, which ReduceLROnPlateau lowers; a group's own ``lr_scale`` (from
``unfreeze``) applies too. The rate each step used is kept in ``history.steps["lr"]``, and
the momentum, where a schedule sets it, in ``history.steps["momentum"]``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from trainwell.callbacks import ReduceLROnPlateau
from trainwell.optim import momentum_setter
from trainwell.schedules import Schedule, build_schedule


def resolve_schedules(schedule: Any, momentum_schedule: Schedule | None, *, lr0: float, steps_per_epoch: int,
                      total_steps: int) -> tuple[Schedule | None, Schedule | None, Any]:
    """(lr schedule, momentum schedule, plateau callback) for a fit; a table is built for the run's length."""
    if not isinstance(schedule, (Mapping, str)):
        return schedule, momentum_schedule, None
    setup = build_schedule(schedule, lr0=lr0, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                           make_plateau=ReduceLROnPlateau)
    return setup.lr, setup.momentum or momentum_schedule, setup.plateau


class StepRates:
    """Sets each step's rate and momentum on one fit's optimizer and records them."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr_schedule: Schedule | None,
                 momentum_schedule: Schedule | None):
        self.optimizer, self.lr_schedule, self.momentum_schedule = optimizer, lr_schedule, momentum_schedule
        self.set_momentum = momentum_setter(optimizer) if momentum_schedule is not None else None
        self.lrs: list[float] = []
        self.momenta: list[float] | None = None

    def start(self, steps: dict[str, list[float]]) -> None:
        """Record into a History's ``steps`` (once a saved state, if any, is loaded into it)."""
        self.lrs = steps.setdefault("lr", [])
        self.momenta = steps.setdefault("momentum", []) if self.set_momentum is not None else None

    def apply(self, step: int, lr_scale: float) -> None:
        """Set step ``step``'s learning rate and momentum, recording the momentum."""
        if self.lr_schedule is not None or lr_scale != 1.0:
            scheduled = None if self.lr_schedule is None else self.lr_schedule(step)
            for group in self.optimizer.param_groups:
                base = group["base_lr"] if scheduled is None else scheduled * group.get("lr_scale", 1.0)
                group["lr"] = base * lr_scale
        if self.set_momentum is not None:
            momentum = float(self.momentum_schedule(step))
            for group in self.optimizer.param_groups:
                self.set_momentum(group, momentum)
            self.momenta.append(momentum)

    def record(self) -> None:
        """Keep the rate this step uses (after the batch-begin callbacks, which may change it)."""
        self.lrs.append(float(self.optimizer.param_groups[0]["lr"]))

    def logs(self) -> dict[str, float]:
        """An epoch's ``lr`` (its last step's) and ``momentum``, where a schedule sets one."""
        logs = {"lr": self.lrs[-1] if self.lrs else float(self.optimizer.param_groups[0]["lr"])}
        if self.momenta:
            logs["momentum"] = self.momenta[-1]
        return logs
