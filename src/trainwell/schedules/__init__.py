"""Learning-rate schedules: plain functions of the optimizer step.

A :data:`Schedule` is any callable ``t -> value`` where ``t`` is the number of
optimizer steps already taken (0 for the first step, counting on across epochs).
The factories take keyword arguments and return such closures, so a schedule
holds no hidden state: it can be called at any step, composed with :func:`join`,
plotted with :func:`values`, and the Trainer sets each step's rate from it
(``Trainer(model, schedule=...)``).

Performance scheduling (reduce on plateau) has state, so it is a callback,
:class:`~trainwell.callbacks.ReduceLROnPlateau`, which lowers a scale the Trainer
multiplies the schedule's value by. In config files all of these are one
``[schedule]`` table, read by :func:`build_schedule`.

    functions  the schedules (constant, power, exponential, piecewise_constant, one_cycle,
               one_cycle_momentum, cosine) and composing them (per_epoch, join, values)
    table      a ``[schedule]`` table -> the run's schedules (build_schedule, check_schedule)

This package may use trainwell.errors and trainwell.checks only: a schedule is arithmetic on the step, so the
plateau callback is made by whoever reads the table (``make_plateau``), not here.
"""

from trainwell.schedules.functions import (Schedule, constant, cosine, exponential, join, one_cycle, one_cycle_momentum,
                                           per_epoch, piecewise_constant, power, values)
from trainwell.schedules.table import SCHEDULES, ScheduleSetup, build_schedule, check_schedule

__all__ = ["SCHEDULES", "Schedule", "ScheduleSetup", "build_schedule", "check_schedule", "constant", "cosine",
           "exponential", "join", "one_cycle", "one_cycle_momentum", "per_epoch", "piecewise_constant", "power",
           "values"]
