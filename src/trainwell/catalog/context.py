"""What a catalog entry's procedure gets: its :class:`Context` (entry, seed, budget, store, state
folder), a :class:`StoreRecorder` that logs a fit's epochs into the store, and :func:`run_config`,
which trains a config under the budget (:func:`budget_config`) and records what it measured.

Each run has a state folder ``OUT/runs/<id>/seed<k>/`` for the models it saves (which entries
that reuse them read) and for the training state a killed config entry and the fit a procedure
entry was in (``Context.fit``) resume from (``<state folder>/resume``, see
:mod:`trainwell.train.resume`).
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trainwell.callbacks import Callback
from trainwell.catalog.vocabulary import Budget, Entry
from trainwell.store import RunStore


def state_dir(out: str | os.PathLike, entry_id: str, seed: int, budget: str) -> Path:
    suffix = "" if budget == "full" else f"-{budget}"
    return Path(out) / "runs" / entry_id / f"seed{seed}{suffix}"


class StoreRecorder(Callback):
    """Logs every epoch into the store, and the run's progress about once a second."""

    def __init__(self, context: "Context", phase: str):
        self.context, self.phase = context, phase
        self._next = 0.0
        self._records: list[dict[str, Any]] | None = None  # the History's records logged so far: its list,
        self._logged = 0                                     # and how many of them

    def _progress(self, trainer, step_in_epoch: int) -> None:
        self.context.store.set_progress(self.context.run_id, {
            "phase": self.phase, "epoch": trainer.epoch, "epochs": trainer.epochs,
            "step": step_in_epoch, "steps": trainer.steps_per_epoch})

    def on_batch_end(self, trainer, step: int) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 1.0
            self._progress(trainer, trainer.step_in_epoch)

    def _log_history(self, trainer) -> None:
        # Every epoch of the History this attempt has not logged, not just this one: a fit resumed from a
        # saved state (after the process was killed) brings back epochs this attempt never logged. Each
        # epoch is written once (one transaction each), not the whole History again at every epoch end.
        records = trainer.history.records
        if records is not self._records or len(records) < self._logged:  # another fit's History
            self._records, self._logged = records, 0
        for record in records[self._logged:]:
            self.context.store.log_epoch(self.context.run_id, self.phase, record["epoch"], dict(record))
        self._logged = len(records)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        self.context.train_s += float(logs.get("time") or 0.0)  # this attempt's epochs only, not resumed ones
        self._log_history(trainer)
        self._progress(trainer, trainer.steps_per_epoch)

    def on_fit_end(self, trainer) -> None:
        # A fit killed after its final state was saved resumes with every epoch done: no epoch
        # ends in this attempt, and its epochs are logged here (the new run record has none).
        self._log_history(trainer)


@dataclass
class Context:
    """What a catalog procedure gets: its entry, seed, budget, store and state folder."""

    entry: Entry
    seed: int
    budget: Budget
    store: RunStore
    run_id: int
    out: Path
    results: dict[str, float] = field(default_factory=dict)
    train_s: float = 0.0  # seconds in training so far: the recorded fits' epochs, and :meth:`training` blocks

    @contextmanager
    def training(self) -> Iterator[None]:
        """Count the block's time as training (a fit whose epochs the store does not record, such as a search's)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.train_s += time.perf_counter() - started

    @property
    def state_dir(self) -> Path:
        path = state_dir(self.out, self.entry.id, self.seed, self.budget.name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def state_of(self, entry_id: str) -> Path:
        """The state folder of an entry this one needs (same seed, same budget)."""
        return state_dir(self.out, entry_id, self.seed, self.budget.name)

    @property
    def epochs(self) -> int:
        return self.budget.epochs(self.entry)

    def recorder(self, phase: str = "train") -> StoreRecorder:
        return StoreRecorder(self, phase)

    def fit(self, trainer: Any, x: Any, y: Any, *, phase: str = "train", **options: Any):
        """``trainer.fit`` with its state saved in the run's folder at every epoch end.

        A run killed during this fit continues it from the last saved state when reproduce
        runs again; a finished fit's state is removed (redoing it gives the same weights).
        """
        resume = self.state_dir / "resume" / phase.replace(" ", "-")
        history = trainer.fit(x, y, resume_dir=resume, **options)
        shutil.rmtree(resume, ignore_errors=True)
        return history

    def result(self, **values: float) -> None:
        values = {k: float(v) for k, v in values.items()}
        self.results.update(values)
        self.store.log_results(self.run_id, values)

    def series(self, name: str, data: Any) -> None:
        self.store.log_series(self.run_id, name, data)

    def note_config(self, config: Any) -> None:
        self.store.set_config(self.run_id, config)

    def train_size(self, full: int | None = None) -> int | None:
        """The budget's cap on training images (``full``: the entry's own size in the full budget)."""
        if self.budget.train_size is None:
            return full
        return self.budget.train_size if full is None else min(full, self.budget.train_size)


def budget_config(config: dict[str, Any], context: Context, *, epochs: int | None = None) -> dict[str, Any]:
    """The entry's config for this seed and budget: the budget's epochs and training-set size."""
    config = copy.deepcopy(config)
    config["seed"] = context.seed
    config["output_dir"] = str(context.state_dir)
    train = config.setdefault("train", {})
    if config.get("phases"):  # each phase has its epochs (the smoke budget: one each)
        train.pop("epochs", None)
        if context.budget.name == "smoke":
            config["phases"] = [{**phase, "epochs": 1} for phase in config["phases"]]
    else:
        train["epochs"] = epochs if epochs is not None else max(1, context.epochs)
    if context.budget.name == "smoke":  # a few steps per epoch even at batch 128 (1cycle needs some room)
        train["batch_size"] = min(train.get("batch_size", 32), 32)
    data = config.setdefault("data", {})
    size = context.train_size(data.get("train_size"))
    if size is not None:
        data["train_size"] = size
    if context.budget.validation_size is not None:
        data["validation_size"] = min(data.get("validation_size", 5000), context.budget.validation_size)
    return config


def run_config(context: Context, config: dict[str, Any] | None = None, *, phase: str = "train",
               epochs: int | None = None, callbacks: list[Callback] | None = None):
    """Train a config under the budget; record epochs, final metrics and (with a schedule) the rate per step."""
    from trainwell.config import validate_config
    from trainwell.recipes.train import train_config

    config = budget_config(config if config is not None else context.entry.config, context, epochs=epochs)
    context.note_config(config)
    run = train_config(validate_config(config, source=context.entry.id), verbose=False, overwrite=True,
                       callbacks=[context.recorder(phase), *(callbacks or [])], progress=False)
    context.result(**{k: v for k, v in run.metrics.items() if isinstance(v, (int, float))})
    if "schedule" in config:
        context.series("lr", thin(run.history.steps.get("lr", [])))
    if run.diagnosis is not None:
        context.series("diagnosis", run.diagnosis.to_markdown())
    return run


def thin(values: list[float], points: int = 1500) -> dict[str, list[float]]:
    """At most ``points`` (step, value) pairs of a long per-step series, for plotting."""
    stride = max(1, len(values) // points)
    steps = list(range(0, len(values), stride))
    return {"step": steps, "value": [float(values[i]) for i in steps]}
