"""``trainwell doctor``: train a config's model briefly, recording per-layer statistics, and diagnose it.

The model, the data and the Trainer are the config's (:mod:`trainwell.recipes.build`), as
``trainwell train`` would fit them; the checkup trains for ``[diagnostics] steps`` steps only
and hands the recording to the doctor's rules (:func:`trainwell.doctor.rules.diagnose`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainwell.checks import is_integer
from trainwell.callbacks import Callback
from trainwell.config import DiagnosticsConfig, load_config
from trainwell.doctor.findings import Diagnosis
from trainwell.doctor.record import Diagnostics, Recording
from trainwell.doctor.rules import diagnose
from trainwell.errors import ConfigError
from trainwell.recipes.build import data_and_model, trainer_from_config


@dataclass
class Checkup:
    """What ``run_doctor`` returns: the diagnosis, the recording behind it, and the training history."""

    diagnosis: Diagnosis
    recording: Recording
    history: Any

    def to_dict(self) -> dict[str, Any]:
        return {"diagnosis": self.diagnosis.to_dict(), "recording": self.recording.to_dict()}


def run_doctor(config: Any, *, steps: int | None = None, every: int | None = None, verbose: bool = False) -> Checkup:
    """Train a config's model for ``steps`` steps (its data, optimizer, schedule, clipping) and diagnose it.

    ``steps`` defaults to ``[diagnostics] steps`` (200), ``every`` to ``steps // 20`` (about
    20 recorded steps), or to ``[diagnostics] every`` when the config sets a smaller one
    (a training run's ``every = 100`` would leave the short checkup two samples).
    """
    if not hasattr(config, "model_dump"):
        config = load_config(config)
    section = config.diagnostics or DiagnosticsConfig()
    steps = section.steps if steps is None else steps
    if not is_integer(steps) or steps < 1:
        raise ConfigError(f"diagnostics.steps: must be an integer >= 1, got {steps!r}")
    if every is None:
        every = max(1, steps // 20)
        if "every" in section.model_fields_set:
            every = min(every, section.every)
    prepared, model = data_and_model(config)
    train = config.train
    n = min(len(prepared.x_train), steps * train.batch_size)
    epochs = -(-steps * train.batch_size // n)  # a small dataset is gone through more than once
    recorder = Diagnostics(every)
    # The checkup has always trained on every batch: train.skip_nonfinite_batches is not applied here.
    trainer = trainer_from_config(config, model, callbacks=[recorder, StopAfter(steps)], skip_nonfinite=False)
    history = trainer.fit(prepared.x_train[:n], prepared.y_train[:n], epochs=epochs, batch_size=train.batch_size,
                          verbose=verbose)
    context = {"name": config.name, "steps": trainer.step, "batch_size": train.batch_size,
               "optimizer": dict(config.optimizer), "scaling": config.data.scaling}
    diagnosis = diagnose(recorder.recording, model=model, scaling=config.data.scaling,
                         optimizer=dict(config.optimizer), context=context)
    return Checkup(diagnosis=diagnosis, recording=recorder.recording, history=history)


class StopAfter(Callback):
    """Ends a fit after ``steps`` steps (the doctor trains briefly, whatever the epoch length)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_batch_end(self, trainer: Any, step: int) -> None:
        if step >= self.steps:
            trainer.stop_training = True
