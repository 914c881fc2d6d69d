"""The catalog's vocabulary: an Entry (one experiment of the chapter), its Targets (the book's
figures and how to compare), Claims (the chapter's qualitative statements across entries),
and Budgets (how long a run may take).

The section modules describe their experiments in these words; :mod:`trainwell.catalog.registry`
finds them by id, :mod:`trainwell.catalog.judge` weighs a run's figures against a Target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.catalog.context import Context


@dataclass(frozen=True)
class Budget:
    """How much of the book's schedule a run gets.

    ``full``: the book's epochs and data; ``quick``: a few epochs on 10,000 training
    images, so the whole catalog takes minutes (results are not comparable with the
    book's); ``smoke``: one epoch on a few hundred images, for tests.
    """

    name: str
    train_size: int | None      # training images kept (None: all)
    validation_size: int | None  # None: the book's 5,000
    comparable: bool            # whether pass/fail against the book means anything

    def epochs(self, entry: "Entry") -> int:
        if self.name == "full":
            return entry.epochs
        if self.name == "quick":
            return min(entry.epochs, entry.quick_epochs)
        return 1

    def size(self, full: int, quick: int, smoke: int) -> int:
        return {"full": full, "quick": quick}.get(self.name, smoke)


BUDGETS = {
    "full": Budget("full", None, None, True),
    "quick": Budget("quick", 10_000, None, False),
    "smoke": Budget("smoke", 256, 256, False),
}


def get_budget(name: str) -> Budget:
    from trainwell.errors import ConfigError

    if name not in BUDGETS:
        raise ConfigError(f"budget: {name!r} is not a budget; allowed: {', '.join(BUDGETS)}")
    return BUDGETS[name]


@dataclass(frozen=True)
class Target:
    """One figure the book reports and how trainwell's is judged against it.

    ``book`` with ``tolerance`` None: the default tolerance (0.015 for runs of 10 or more
    epochs, 0.025 for shorter ones); ``low``/``high``: a range check instead (for figures
    the book gives as a range or a qualitative statement); ``budget_free``: the figure
    does not depend on training length, so it is judged in every budget.

    ``spread_seeds`` K > 0: the figure is chaotic (a tiny change of the rate or of float
    rounding moves it as much as a change of seed), so a mean over a few seeds says little.
    It passes when the book's value lies within the range (min..max) of trainwell's
    per-seed values, given at least K seeds (fewer: not comparable); the full budget runs
    K seeds of its entry (``Entry.full_seeds``).
    """

    metric: str
    book: float | None = None
    tolerance: float | None = None
    low: float | None = None
    high: float | None = None
    text: str = ""
    budget_free: bool = False
    spread_seeds: int = 0

    def __post_init__(self) -> None:
        if self.spread_seeds and self.book is None:
            raise ValueError(f"target {self.metric}: spread_seeds needs the book's value to judge")

    def band(self, tolerance: float | None) -> tuple[float | None, float | None]:
        """The interval a figure must fall in (None: open on that side): the book's value
        widened by ``tolerance``, cut by ``low``/``high``. What :func:`judge` applies and
        what the report shows as the range judged."""
        low, high = self.low, self.high
        if self.book is not None and tolerance is not None:
            low = self.book - tolerance if low is None else max(low, self.book - tolerance)
            high = self.book + tolerance if high is None else min(high, self.book + tolerance)
        return low, high

    def book_text(self) -> str:
        if self.text:
            return self.text
        if self.book is not None:
            return f"{self.book:g}"
        return f"in [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Entry:
    """One catalog entry: an experiment id of the book, a demonstration, or an exercise step."""

    id: str
    section: str
    kind: str                          # "book" | "demo" | "exercise"
    shows: str                         # what it shows, in one sentence
    run: Callable[["Context"], None]
    epochs: int = 0                    # the book's epochs (0: no training)
    quick_epochs: int = 2
    targets: tuple[Target, ...] = ()
    book: str = ""                     # what the book reports, in words
    config: dict[str, Any] | None = None  # the run's config, when a config can say it
    needs: tuple[str, ...] = ()        # entries whose saved models this one reuses (same seed)
    datasets: tuple[str, ...] = ()     # datasets a procedure loads itself (a config's data.name is known)
    notes: tuple[str, ...] = ()        # known, explained differences from the book
    compare_curves: tuple[str, ...] = ()  # other entries whose learning curves are drawn beside this one's
    cost: float = 5.0                  # rough seconds in the quick budget on one core (for scheduling/ETA)

    @property
    def full_seeds(self) -> int:
        """Seeds the full budget runs at least: what its spread-judged targets need (0: no minimum)."""
        return max((target.spread_seeds for target in self.targets), default=0)


@dataclass(frozen=True)
class Claim:
    """A qualitative statement of the chapter, checked on the mean results of two entries."""

    text: str
    left: tuple[str, str]    # (entry id, metric)
    right: tuple[str, str] | None = None  # None: left > threshold
    threshold: float = 0.0
