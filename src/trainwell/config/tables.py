"""What turns a validated config's tables into the objects the domain modules take.

``[schedule]`` -> the run's schedules and, for ``name = "plateau"``, the plateau callback
(:class:`~trainwell.callbacks.ReduceLROnPlateau`: it has state, so it is not a schedule);
``[model]``'s layer tables -> layer specs, presets and ``repeat = n`` written out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from trainwell.callbacks import ReduceLROnPlateau
from trainwell.model.layers import LayerSpec, layer_from_dict
from trainwell.schedules import ScheduleSetup, build_schedule, check_schedule

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.config.schema import ModelConfig


def schedule_from_table(spec: Mapping[str, Any] | str, *, lr0: float, steps_per_epoch: int,
                        total_steps: int) -> ScheduleSetup:
    """A ``[schedule]`` table for one run: its rate and momentum per step, and its plateau callback (or None)."""
    return build_schedule(spec, lr0=lr0, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                          make_plateau=ReduceLROnPlateau)


def check_schedule_table(spec: Any, *, lr0: float) -> None:
    """ConfigError, naming ``schedule.<key>``, unless the table gives a schedule (the plateau's options included)."""
    check_schedule(spec, lr0=lr0, make_plateau=ReduceLROnPlateau)


def layer_specs(model: "ModelConfig") -> list[LayerSpec]:
    """The ``[model]`` section's layers as specs: presets expanded, ``repeat = n`` written out, errors
    naming ``model.layers[i]`` (counted after the expansion)."""
    return [layer_from_dict(layer, where=f"model.layers[{index}]") for index, layer in enumerate(model.layer_tables())]
