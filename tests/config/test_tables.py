"""A config's tables -> the domain's objects (trainwell.config.tables): schedules, the plateau callback, layers."""

import pytest

from trainwell.callbacks import ReduceLROnPlateau
from trainwell.config import layer_specs, schedule_from_table, validate_config
from trainwell.errors import ConfigError


MODEL = {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]}


@pytest.mark.parametrize("schedule, message", [
    ({"name": "exponentail", "s": 2}, "schedule.name: unknown schedule 'exponentail'; allowed: constant, power"),
    ({"name": "exponential"}, "schedule.s: missing"),
    ({"name": "exponential", "s": -20}, "schedule.s: must be positive, got -20"),
    ({"name": "exponential", "s": 20, "decay": 0.1}, "schedule.decay: not an option of the exponential schedule; "
                                                     "allowed: name, per, s, rate"),
    ({"name": "exponential", "s": 20, "per": "batch"}, "schedule.per: must be 'step' or 'epoch', got 'batch'"),
    ({"name": "piecewise_constant", "boundaries": [15, 5], "values": [0.1, 0.01, 0.001]},
     "schedule.boundaries: must be strictly increasing, got [15, 5]"),
    ({"name": "one_cycle", "max_lr": -0.05}, "schedule.max_lr: must be positive, got -0.05"),
    ({"name": "one_cycle", "max_lr": 0.05, "start_lr": 0.1}, "schedule.max_lr: must be above start_lr"),
    ({"name": "one_cycle", "min_momentum": 0.8}, "schedule.min_momentum: only used with cycle_momentum = true"),
    ({"name": "one_cycle", "cycle_momentum": True, "min_momentum": 0.97}, "schedule.min_momentum: must not exceed"),
    ({"name": "plateau", "factor": 2}, "schedule.factor: must be a number in (0, 1), got 2"),
    ({"name": "plateau", "mode": "auto"}, "schedule.mode: must be 'min' or 'max', got 'auto'"),
    ({"name": "plateau", "patience": -1}, "schedule.patience: must be a non-negative integer"),
    ("exponential", "'schedule' = 'exponential': must be a valid dictionary"),
])
def test_bad_schedule_tables_name_the_key(schedule, message):
    with pytest.raises(ConfigError) as error:
        validate_config({"model": MODEL, "schedule": schedule}, source="run.toml")
    assert str(error.value).startswith("run.toml: ")
    assert message in str(error.value)


def test_a_plateau_table_gives_the_plateau_callback():
    setup = schedule_from_table({"name": "plateau", "factor": 0.5, "patience": 2}, lr0=0.1, steps_per_epoch=10,
                                total_steps=100)
    assert isinstance(setup.plateau, ReduceLROnPlateau) and (setup.plateau.factor, setup.plateau.patience) == (0.5, 2)
    assert setup.lr(99) == 0.1 and setup.momentum is None
    assert schedule_from_table({"name": "cosine"}, lr0=0.1, steps_per_epoch=10, total_steps=100).plateau is None


def test_layer_tables_become_specs_with_repeats_written_out():
    config = validate_config({"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 8, "repeat": 3},
                                                   {"type": "dense", "units": 10, "activation": "softmax"}]}})
    specs = layer_specs(config.model)
    assert [type(spec).__name__ for spec in specs] == ["Flatten", "Dense", "Dense", "Dense", "Dense"]
