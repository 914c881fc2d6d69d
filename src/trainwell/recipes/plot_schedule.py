"""``trainwell plot-schedule``: the learning rate (and momentum) at every step of a configured run, as a figure.

The schedule is computed from the config alone, step by step, as the Trainer would compute
it; the steps per epoch are counted from the data (the registry's count, when no class
filter needs the files). A plateau schedule is drawn before its reductions, which depend on
the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainwell import data as datasets
from trainwell.config import RunConfig, schedule_from_table
from trainwell.errors import TrainwellError
from trainwell.optim import resolve_optimizer_options
from trainwell.plots import plot_schedule as draw
from trainwell.recipes.build import prepare_data
from trainwell.schedules import values

MAX_PLOT_STEPS = 1_000_000  # each step is computed in turn; the chapter's longest run has ~200,000


@dataclass
class SchedulePlot:
    """The figure written, the learning rate at every step, and the number of steps."""

    path: Path
    lrs: list[float]
    total: int


def plot_schedule_for_config(run_config: RunConfig, target: Path, *, steps_per_epoch: int | None = None,
                             log: bool = False) -> SchedulePlot:
    """Draw the config's schedule over its ``train.epochs`` into ``target`` (a checked figure path)."""
    steps_per_epoch = steps_per_epoch or steps_per_epoch_of(run_config)
    total = steps_per_epoch * run_config.train.epochs
    if total > MAX_PLOT_STEPS:
        raise TrainwellError(f"plot-schedule: {run_config.train.epochs:,} epochs x {steps_per_epoch:,} steps is "
                             f"{total:,} steps; at most {MAX_PLOT_STEPS:,} can be plotted (each is computed in turn)")
    options = dict(run_config.optimizer)
    lr0 = resolve_optimizer_options(options.pop("name"), options)["lr"]
    spec = run_config.schedule or {"name": "constant"}
    setup = schedule_from_table(spec, lr0=lr0, steps_per_epoch=steps_per_epoch, total_steps=total)
    lrs = values(setup.lr, total)
    title = f"{run_config.name}: {spec['name']} schedule, {run_config.train.epochs} epochs x {steps_per_epoch} steps"
    if setup.plateau is not None:
        title += "\n(before the plateau reductions, which depend on the run)"
    path = draw(lrs, target, steps_per_epoch=steps_per_epoch,
                momentum=values(setup.momentum, total) if setup.momentum else None, title=title, log=log)
    return SchedulePlot(path=path, lrs=lrs, total=total)


def steps_per_epoch_of(run_config: RunConfig) -> int:
    """Optimizer steps per epoch of a configured run: its training images over the batch size."""
    return -(-training_images(run_config) // run_config.train.batch_size)


def training_images(run_config: RunConfig) -> int:
    """How many images a configured run trains on. Without a class filter, the registry's count
    less the validation images (no files needed); with one, or for files, counted from the data."""
    section = run_config.data
    if section.format is None and section.classes is None and section.per_class is None:
        available = datasets.get_spec(section.name).train_size - section.validation_size
        return min(available, section.train_size or available)
    return len(prepare_data(run_config).x_train)
