"""The catalog's vocabulary: an Entry (one experiment of the chapter), its Targets (the book's
figures and how to compare), Claims (the chapter's qualitative statements across entries),
and Budgets (how long a run may take)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.catalog.runner import Context


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


_ENTRIES: dict[str, Entry] = {}
CLAIMS: list[Claim] = []


def register(entry: Entry) -> Entry:
    if entry.id in _ENTRIES:
        raise ValueError(f"catalog id registered twice: {entry.id}")
    _ENTRIES[entry.id] = entry
    return entry


def claim(claim_: Claim) -> Claim:
    CLAIMS.append(claim_)
    return claim_


def entries() -> list[Entry]:
    _load()
    return list(_ENTRIES.values())


def ids() -> list[str]:
    return [entry.id for entry in entries()]


def get(entry_id: str) -> Entry:
    from trainwell.errors import ConfigError

    _load()
    if entry_id not in _ENTRIES:
        raise ConfigError(f"unknown catalog id {entry_id!r}; `trainwell reproduce --list` shows them")
    return _ENTRIES[entry_id]


def with_dependencies(selected: list[str]) -> list[str]:
    """The selected ids plus what they need, in catalog order."""
    wanted: set[str] = set()

    def add(entry_id: str) -> None:
        if entry_id not in wanted:
            wanted.add(entry_id)
            for need in get(entry_id).needs:
                add(need)

    for entry_id in selected:
        add(entry_id)
    return [entry_id for entry_id in ids() if entry_id in wanted]


def _load() -> None:
    # the section modules register their entries on import
    from trainwell.catalog.sections import activations, batchnorm, transfer, schedules  # noqa: F401
    from trainwell.catalog.sections import regularization, exercise8, exercise9, exercise10  # noqa: F401


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
