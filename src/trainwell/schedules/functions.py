"""Schedules as plain functions of the optimizer step: the factories, and composing and listing them.

A :data:`Schedule` is any callable ``t -> value`` where ``t`` is the number of
optimizer steps already taken (0 for the first step, counting on across epochs).
The factories below take keyword arguments and return such closures, so a schedule
holds no hidden state: it can be called at any step, composed with :func:`join`,
plotted with :func:`values`, and the Trainer sets each step's rate from it
(``Trainer(model, schedule=...)``).

Schedules that count in epochs are the same functions, fed the epoch index instead:
:func:`per_epoch` turns ``epoch -> lr`` into ``step -> lr`` given the number of steps
per epoch, so the rate changes only at epoch boundaries, as the chapter's
``LearningRateScheduler`` callback does.

>>> schedule = exponential(lr0=0.01, s=20)
>>> round(schedule(20), 6)
0.001
>>> by_epoch = per_epoch(schedule, steps_per_epoch=100)
>>> by_epoch(1999) == schedule(19), by_epoch(2000) == schedule(20)
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from trainwell.checks import is_integer, is_number
from trainwell.errors import ConfigError

Schedule = Callable[[int], float]


# ------------------------------------------------------------------ checks
def _number(key: str, value: Any, *, positive: bool = True) -> float:
    if not is_number(value) or math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{key}: must be a {'positive' if positive else 'non-negative'} number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{key}: must be {'positive' if positive else 'non-negative (>= 0)'}, got {value!r}")
    return float(value)


def check_count(key: str, value: Any, *, positive: bool = True) -> int:
    if not is_integer(value) or value < (1 if positive else 0):
        raise ConfigError(f"{key}: must be a {'positive' if positive else 'non-negative'} integer, got {value!r}")
    return value


def _fraction(key: str, value: Any) -> float:
    if not is_number(value) or not 0 <= value < 1:
        raise ConfigError(f"{key}: must be a number in [0, 1), got {value!r}")
    return float(value)


# --------------------------------------------------------------- factories
def constant(*, lr: float) -> Schedule:
    """The same rate at every step.

    >>> constant(lr=0.01)(12345)
    0.01
    """
    lr = _number("lr", lr)
    return lambda t: lr


def power(*, lr0: float, s: float, c: float = 1.0) -> Schedule:
    """Power scheduling, ``lr0 / (1 + t / s) ** c``: the rate halves (c = 1) after s steps, then falls ever slower.

    Keras' ``SGD(decay=d)`` is this with ``c = 1`` and ``s = 1 / d``.

    >>> power(lr0=0.01, s=10_000)(10_000)
    0.005
    """
    lr0, s, c = _number("lr0", lr0), _number("s", s), _number("c", c)
    return lambda t: lr0 / (1 + t / s) ** c


def exponential(*, lr0: float, s: float, rate: float = 0.1) -> Schedule:
    """Exponential scheduling, ``lr0 * rate ** (t / s)``: the rate drops 10-fold (rate 0.1) every s steps.

    A ``rate`` above 1 makes it grow, as the LR finder's sweep does.

    >>> round(exponential(lr0=0.01, s=20)(40), 9)
    0.0001
    """
    lr0, s, rate = _number("lr0", lr0), _number("s", s), _number("rate", rate)
    return lambda t: lr0 * rate ** (t / s)


def piecewise_constant(*, boundaries: Sequence[float], values: Sequence[float], inclusive: bool = False) -> Schedule:
    """``values[i]`` from ``boundaries[i - 1]`` (inclusive) up to ``boundaries[i]`` (exclusive).

    That is the chapter's own ``piecewise_constant`` function (``0.01 until epoch 5, 0.005
    until 15, then 0.001``: epoch 5 already has 0.005):

    >>> schedule = piecewise_constant(boundaries=[5, 15], values=[0.01, 0.005, 0.001])
    >>> [schedule(t) for t in (0, 4, 5, 14, 15, 100)]
    [0.01, 0.01, 0.005, 0.005, 0.001, 0.001]

    Keras' ``PiecewiseConstantDecay`` (tf.keras 2 and Keras 3 alike) counts each boundary in
    the interval it ends: ``values[i]`` while ``t <= boundaries[i]``. ``inclusive=True``
    gives that:

    >>> keras = piecewise_constant(boundaries=[5, 15], values=[0.01, 0.005, 0.001], inclusive=True)
    >>> [keras(t) for t in (0, 5, 6, 15, 16)]
    [0.01, 0.01, 0.005, 0.005, 0.001]
    """
    if not isinstance(inclusive, bool):
        raise ConfigError(f"inclusive: must be true or false, got {inclusive!r}")
    if not isinstance(boundaries, (list, tuple)) or not boundaries:
        raise ConfigError(f"boundaries: must be a non-empty list of steps (or epochs), got {boundaries!r}")
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"values: must be a list of learning rates, got {values!r}")
    bounds = [_number("boundaries", b) for b in boundaries]
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise ConfigError(f"boundaries: must be strictly increasing, got {list(boundaries)!r}")
    rates = [_number("values", v) for v in values]
    if len(rates) != len(bounds) + 1:
        raise ConfigError(f"values: needs one more entry than boundaries ({len(bounds) + 1}), got {len(rates)}")

    def schedule(t: int) -> float:
        for boundary, rate in zip(bounds, rates):
            if t < boundary or (inclusive and t == boundary):
                return rate
        return rates[-1]

    return schedule


@dataclass(frozen=True)
class _Cycle:
    """The three phases of 1cycle, in steps: up [0, half), down [half, 2 half), then the tail to total."""

    total: int
    half: int

    @classmethod
    def make(cls, total_steps: Any, last_steps: Any) -> "_Cycle":
        total = check_count("total_steps", total_steps)
        last = total // 10 + 1 if last_steps is None else check_count("last_steps", last_steps)
        half = (total - last) // 2
        if half < 1:
            raise ConfigError(f"last_steps: {last} leaves no room for the cycle in {total} total steps; "
                              f"allowed: at most {total - 2}")
        return cls(total, half)

    def interpolate(self, t: int, up: float, peak: float, tail_end: float | None) -> float:
        """``up`` -> ``peak`` -> ``up`` linearly, then ``up`` -> ``tail_end`` (or flat) over the tail."""
        if t < self.half:
            return up + (peak - up) * t / self.half
        if t < 2 * self.half:
            return peak + (up - peak) * (t - self.half) / self.half
        if tail_end is None:
            return up
        tail = self.total - 2 * self.half
        return up + (tail_end - up) * min(t - 2 * self.half, tail) / tail


def one_cycle(*, total_steps: int, max_lr: float, start_lr: float | None = None, last_lr: float | None = None,
              last_steps: int | None = None) -> Schedule:
    """1cycle as the chapter writes it: up from ``start_lr`` to ``max_lr`` over the first half of the
    cycle, back down over the second, then over the last ``last_steps`` (about 10% of the run) down to
    ``last_lr``.

    Defaults are the chapter's: ``start_lr = max_lr / 10``, ``last_lr = start_lr / 1000``,
    ``last_steps = total_steps // 10 + 1``; the cycle's half is ``(total_steps - last_steps) // 2``.

    >>> schedule = one_cycle(total_steps=100, max_lr=0.05)      # half = 44
    >>> schedule(0), schedule(44), schedule(88), round(schedule(100), 9)
    (0.005, 0.05, 0.005, 5e-06)
    """
    max_lr = _number("max_lr", max_lr)
    start = max_lr / 10 if start_lr is None else _number("start_lr", start_lr)
    last = start / 1000 if last_lr is None else _number("last_lr", last_lr)
    if start >= max_lr:
        raise ConfigError(f"max_lr: must be above start_lr ({start!r}), got {max_lr!r}")
    cycle = _Cycle.make(total_steps, last_steps)
    return lambda t: cycle.interpolate(t, start, max_lr, last)


def one_cycle_momentum(*, total_steps: int, max_momentum: float = 0.95, min_momentum: float = 0.85,
                       last_steps: int | None = None) -> Schedule:
    """Momentum for 1cycle, cycled the other way (Smith, 2018): 0.95 -> 0.85 while the rate
    rises, back to 0.95 while it falls, and 0.95 for the last steps.

    >>> momentum = one_cycle_momentum(total_steps=100)
    >>> momentum(0), momentum(44), momentum(88), momentum(99)
    (0.95, 0.85, 0.95, 0.95)
    """
    high, low = _fraction("max_momentum", max_momentum), _fraction("min_momentum", min_momentum)
    if low > high:
        raise ConfigError(f"min_momentum: must not exceed max_momentum ({high!r}), got {low!r}")
    cycle = _Cycle.make(total_steps, last_steps)
    return lambda t: cycle.interpolate(t, high, low, None)


def cosine(*, lr0: float, total_steps: int, warmup_steps: int = 0, warmup_start: float = 0.0,
           min_lr: float = 0.0) -> Schedule:
    """Linear warm-up from ``warmup_start`` to ``lr0`` over ``warmup_steps``, then a half cosine
    down to ``min_lr`` at ``total_steps`` (and ``min_lr`` after).

    >>> schedule = cosine(lr0=0.1, total_steps=110, warmup_steps=10)
    >>> schedule(0), schedule(5), schedule(10), round(schedule(60), 9), schedule(110)
    (0.0, 0.05, 0.1, 0.05, 0.0)
    """
    lr0 = _number("lr0", lr0)
    total = check_count("total_steps", total_steps)
    warmup = check_count("warmup_steps", warmup_steps, positive=False)
    start = _number("warmup_start", warmup_start, positive=False)
    floor = _number("min_lr", min_lr, positive=False)
    if warmup >= total:
        raise ConfigError(f"warmup_steps: must be below total_steps ({total}), got {warmup}")
    if floor > lr0:
        raise ConfigError(f"min_lr: must not exceed the peak rate lr0 ({lr0!r}), got {floor!r}")

    def schedule(t: int) -> float:
        if t < warmup:
            return start + (lr0 - start) * t / warmup
        progress = min(1.0, (t - warmup) / (total - warmup))
        return floor + (lr0 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return schedule


# ------------------------------------------------------------- composition
def per_epoch(schedule: Schedule, *, steps_per_epoch: int) -> Schedule:
    """Feed ``schedule`` the epoch index (0, 1, ...) instead of the step: the rate changes once per epoch.

    >>> halving = per_epoch(lambda epoch: 0.5 ** epoch, steps_per_epoch=10)
    >>> halving(9), halving(10)
    (1.0, 0.5)
    """
    steps = check_count("steps_per_epoch", steps_per_epoch)
    return lambda t: schedule(t // steps)


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Schedule ``i`` from step ``boundaries[i - 1]`` on, each fed the steps since its own start.

    >>> warm_then_decay = join([lambda t: 0.01 * t, exponential(lr0=0.1, s=100)], [10])
    >>> warm_then_decay(5), warm_then_decay(10), round(warm_then_decay(110), 6)
    (0.05, 0.1, 0.01)
    """
    if len(schedules) != len(boundaries) + 1:
        raise ConfigError(f"join: needs one more schedule than boundaries, got {len(schedules)} and {len(boundaries)}")
    bounds = [check_count("boundaries", b) for b in boundaries]
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise ConfigError(f"boundaries: must be strictly increasing, got {list(boundaries)!r}")
    starts = [0, *bounds]

    def schedule(t: int) -> float:
        index = sum(t >= b for b in bounds)
        return schedules[index](t - starts[index])

    return schedule


def values(schedule: Schedule, steps: int) -> list[float]:
    """The schedule's values at steps ``0 .. steps - 1`` (to plot or inspect it).

    >>> values(piecewise_constant(boundaries=[2], values=[1.0, 0.5]), 4)
    [1.0, 1.0, 0.5, 0.5]
    """
    return [float(schedule(t)) for t in range(steps)]
