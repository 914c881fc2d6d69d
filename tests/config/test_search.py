"""The [search] section of trainwell tune (trainwell.config.search): its dimensions, and bounds checked as configs."""

from __future__ import annotations

import pytest

from trainwell.config import ParamSpec, apply_overrides, make_param, parse_search, validate_config, with_params
from trainwell.config import set_space_key as set_key
from trainwell.errors import ConfigError


def _data(**search) -> dict:
    data = {"model": {"layers": [{"type": "dense", "units": 3}]}, "data": {"name": "digits"}, "optimizer": {"name": "sgd"}}
    data["search"] = {"space": {"optimizer.lr": {"low": 0.001, "high": 0.1, "log": True}}, **search}
    return data


# ------------------------------------------------------------------ the [search] section
def test_space_entries_become_optuna_dimensions():
    assert make_param("optimizer.lr", ParamSpec(low=1e-4, high=0.1, log=True)).kind == "float"
    assert make_param("model.layers[1].repeat", ParamSpec(low=1, high=3)).kind == "int"
    assert make_param("train.batch_size", ParamSpec(low=16, high=64, step=16)).kind == "int"
    assert make_param("optimizer.name", ParamSpec(choices=["sgd", "nadam"])).choices == ("sgd", "nadam")


@pytest.mark.parametrize("space, message", [
    ({}, "search.space: empty"),
    ({"optimizer.lr": {"low": 0.1, "high": 0.01}}, r'search.space."optimizer.lr": low \(0.1\) must be below high'),
    ({"optimizer.lr": {"low": 0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
    ({"optimizer.lr": {"choices": []}}, "choices is empty"),
    ({"optimizer.lr": {"choices": [0.1], "low": 0.1}}, "either choices or a range"),
    ({"optimizer.lr": {"high": 0.1}}, "give low and high"),
    ({"optimizer.lr": {"low": 0.1, "hgh": 1}}, "unknown key 'search.space.optimizer.lr.hgh'"),
    ({"optimizer.lrr": {"low": 0.1, "high": 1.0}}, r'search.space."optimizer.lrr" = 0.1 gives a bad config.*lrr'),
    ({"model.layers[5].units": {"choices": [1, 2]}}, r"the config has no model.layers\[5\]"),
    ({"model.layers[0].units": {"low": -3, "high": 4}}, r'"model.layers\[0\].units" = -3 gives a bad config'),
])
def test_bad_spaces_are_one_clear_error(space, message):
    data = _data()
    data["search"]["space"] = space
    with pytest.raises(ConfigError, match=message):
        validate_config(data)


def test_the_direction_is_inferred_from_a_known_metric_and_required_for_any_other():
    space = {"optimizer.lr": {"low": 0.1, "high": 1.0}}
    with pytest.raises(ConfigError, match="search.direction: missing.*'val_penalty'"):
        parse_search({"space": space, "metric": "val_penalty"})
    for metric, goal in [("val_loss", "minimize"), ("val_rmse", "minimize"), ("val_mae", "minimize"),
                         ("val_accuracy", "maximize"), ("val_auc", "maximize"), ("val_f1", "maximize"),
                         ("val_r2", "maximize"), ("val_top_3_accuracy", "maximize")]:
        assert parse_search({"space": space, "metric": metric})[0].goal == goal, metric
    search, _ = parse_search({"space": space, "metric": "val_penalty", "direction": "minimize"})
    assert search.goal == "minimize"
    with pytest.raises(ConfigError, match="search.direction: 'val_auc' is better when higher"):
        parse_search({"space": space, "metric": "val_auc", "direction": "minimize"})


def test_values_are_set_at_their_keys_without_touching_the_original():
    data = _data()
    tried = with_params(data, {"optimizer.lr": 0.01, "model.layers[0].units": 5})
    assert tried["optimizer"] == {"name": "sgd", "lr": 0.01} and tried["model"]["layers"][0]["units"] == 5
    assert "search" not in tried and data["model"]["layers"][0]["units"] == 3
    with pytest.raises(ConfigError, match="not a table"):
        set_key({"model": 3}, "model.layers[0].units", 1)


def test_search_keys_are_read_as_set_reads_them():
    data = _data()
    with pytest.raises(ConfigError) as by_set:
        apply_overrides(data, ["model.layers[5].units=1"])
    with pytest.raises(ConfigError) as by_search:
        set_key(data, "model.layers[5].units", 1)
    assert str(by_set.value) == "--set 'model.layers[5].units=1': " + SAME_ERROR
    assert str(by_search.value) == 'search.space."model.layers[5].units": ' + SAME_ERROR
    with pytest.raises(ConfigError, match=r"search.space: 'model.layers\[-1\].units' is not a config key.*from 0"):
        make_param("model.layers[-1].units", ParamSpec(low=1, high=3))


SAME_ERROR = "the config has no model.layers[5]: model.layers has 1 entry (allowed indices: 0..0)"
