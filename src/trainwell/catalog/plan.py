"""The plan of a reproduce: which (entry, seed) runs, and whether the datasets they need are here."""

from __future__ import annotations

from dataclasses import dataclass

from trainwell.catalog.registry import get
from trainwell.catalog.vocabulary import Budget, Entry

BOOK_SEED = 42


def seeds_for(n: int) -> list[int]:
    """The book's seed 42, then 43, 44, ..."""
    return [BOOK_SEED + k for k in range(n)]


@dataclass
class Task:
    entry: Entry
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return self.entry.id, self.seed

    @property
    def name(self) -> str:
        return f"{self.entry.id} seed {self.seed}"


def datasets_needed(entry: Entry) -> set[str]:
    """The datasets a run of ``entry`` loads: its config's, those its procedure declares, and its needs'."""
    from trainwell.data import get_spec

    names = set(entry.datasets)
    if entry.config is not None and (entry.config.get("data") or {}).get("name"):
        names.add(entry.config["data"]["name"])
    for need in entry.needs:
        names |= datasets_needed(get(need))
    return {get_spec(name).name for name in names}


class DatasetCheck:
    """Each dataset the runs need, loaded once here (in reproduce's own process) before any run needing it starts.

    Found, it is read and checked against its checksums; missing, it is downloaded into the
    cache, where the runs (and the worker processes) then find it. A dataset that cannot be
    had is remembered for the rest of the invocation: the first run needing it fails with the
    whole message (where trainwell looked, how to get it), every later one at once with a
    short reference to that run, so one invocation never tries a download twice.
    """

    def __init__(self) -> None:
        self.available: set[str] = set()
        self.missing: dict[str, str] = {}  # dataset -> the run that failed with its message

    def problem(self, task: Task) -> str | None:
        """Why ``task`` cannot run for want of a dataset, or None when every dataset it needs is here."""
        from trainwell.data import datasets as loading
        from trainwell.errors import DataError

        for name in sorted(datasets_needed(task.entry)):
            if name in self.missing:
                return f"not run: dataset {name!r} is not available (the failure of {self.missing[name]} says why)"
            if name in self.available:
                continue
            try:
                loading.load(name)
            except DataError as error:
                self.missing[name] = task.name
                return f"DataError: {error}"
            self.available.add(name)
        return None


def plan(selected: list[str], *, seeds: int, budget: Budget) -> list[Task]:
    """The (entry, seed) runs of a reproduce, seed by seed: ``seeds`` each, and in the full
    budget at least ``Entry.full_seeds`` for an entry judged by its spread (and for what it needs)."""
    counts = {entry_id: max(seeds, get(entry_id).full_seeds if budget.comparable else 0) for entry_id in selected}
    for entry_id in reversed(selected):  # an entry's needs run at least its seeds
        for need in get(entry_id).needs:
            counts[need] = max(counts.get(need, seeds), counts[entry_id])
    return [Task(get(entry_id), seed) for seed in seeds_for(max(counts.values(), default=seeds))
            for entry_id in selected if seed < BOOK_SEED + counts[entry_id]]
