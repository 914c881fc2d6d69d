"""Judging a figure: the mean over seeds (or their spread) against the book's, within a tolerance.

:func:`judge` gives an :class:`Outcome` (the values, the verdict, the band applied); the report
shows it, and the claims across entries are weighed from the same results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainwell.catalog.vocabulary import Budget, Target


@dataclass
class Outcome:
    """A target judged: mean and spread over seeds, the difference and the verdict."""

    target: Target
    values: list[float] = field(default_factory=list)
    status: str = "missing"   # pass | fail | not comparable | missing | shown (not judged)
    tolerance: float | None = None
    reason: str = ""          # why a figure is not comparable, when not for its budget

    @property
    def by_spread(self) -> bool:
        return self.target.spread_seeds > 0

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    @property
    def std(self) -> float:
        if len(self.values) < 2:
            return 0.0
        m = self.mean
        return (sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1)) ** 0.5

    @property
    def band(self) -> tuple[float | None, float | None]:
        """The interval judged: the range of the seeds' values, which must hold the book's
        (a spread-judged target), or the one the mean must fall in (``Target.band``)."""
        if self.by_spread:
            return (min(self.values), max(self.values)) if self.values else (None, None)
        return self.target.band(self.tolerance)

    @property
    def difference(self) -> float | None:
        if self.mean is None or self.target.book is None:
            return None
        return self.mean - self.target.book


def judge(target: Target, values: list[float], *, epochs: int, budget: Budget,
          tolerance_long: float = 0.015, tolerance_short: float = 0.025) -> Outcome:
    """Pass/fail of the mean over seeds against the book (default: within 0.015 for runs of
    10 or more epochs, 0.025 for shorter ones), or of the book's value against the seeds'
    range for a spread-judged target. Training figures of a budget that is not comparable
    (quick, smoke) are shown but marked "not comparable"."""
    import math

    values = [float(v) for v in values]
    outcome = Outcome(target, values)
    if not values:
        return outcome
    if not target.budget_free and not budget.comparable:
        outcome.status = "not comparable"
        return outcome
    mean = outcome.mean
    if math.isnan(mean):
        outcome.status = "fail"
        return outcome
    if outcome.by_spread:
        if len(values) < target.spread_seeds:
            outcome.status, outcome.reason = "not comparable", f"{len(values)} of {target.spread_seeds} seeds"
            return outcome
        low, high = outcome.band
        outcome.status = "pass" if low - 1e-12 <= target.book <= high + 1e-12 else "fail"
        return outcome
    if target.book is not None:
        outcome.tolerance = target.tolerance if target.tolerance is not None else (
            tolerance_long if epochs >= 10 else tolerance_short)
    low, high = outcome.band
    ok = (low is None or mean >= low - 1e-12) and (high is None or mean <= high + 1e-12)
    outcome.status = "pass" if ok else "fail"
    return outcome
