"""Hard edges: nan batches, and a config loader that never crashes on random or mutated input."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainwell as tw
from trainwell.callbacks import TerminateOnNaN
from trainwell.config import read_config_file, validate_config
from trainwell.errors import TrainingDiverged, TrainwellError
from trainwell.recipes.build import build_from_config

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.toml"))


def nan_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    x[5] = np.nan
    return x, y


def model():
    torch.manual_seed(0)
    return tw.build_model([tw.Dense(8, activation="relu"), tw.Dense(2, activation="softmax")], input_shape=(4,))


def test_nan_batches_can_be_skipped():
    x, y = nan_data()
    trainer = tw.Trainer(model(), optimizer={"name": "sgd", "lr": 0.1}, skip_nonfinite=True, seed=0)
    history = trainer.fit(x, y, epochs=2, batch_size=16, verbose=False)
    assert history["skipped_batches"] == [1, 2]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nan_inputs_are_refused_before_training_unless_their_batches_are_skipped():
    x, y = nan_data()
    trainer = tw.Trainer(model(), optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    with pytest.raises(tw.ArrayError, match=r"training data x: 4 values are NaN or infinite \(sample 5\).*skip_nonfinite"):
        trainer.fit(x, y, epochs=1, batch_size=16, verbose=False)


def test_without_skipping_a_nan_loss_stops_the_run_with_a_clear_message():
    x, y = nan_data()
    x[5] = 0.0
    trainer = tw.Trainer(model(), optimizer={"name": "sgd", "lr": 1e30}, callbacks=[TerminateOnNaN()], seed=0)
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf) at step \d+ \(epoch 1"):
        trainer.fit(x, y, epochs=2, batch_size=16, verbose=False)


# ---------------------------------------------------------------- config fuzzing
values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, prefix + (index,))


def _mutate(config, path, action, value):
    data = copy.deepcopy(config)
    if not path:
        return value if action == "replace" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    return data


def _validate_and_build(data):
    """A config either fails with a TrainwellError or builds its model; nothing else may happen."""
    try:
        config = validate_config(data, source="fuzz.toml")
        if config.model.reuse is None:
            build_from_config(config, (8, 8))
    except TrainwellError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_example_configs_never_crash(example, data):
    config = read_config_file(example)
    paths = list(_paths(config))
    path = data.draw(st.sampled_from(paths))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    _validate_and_build(_mutate(config, path, action, data.draw(values)))


@settings(max_examples=200, deadline=None)
@given(values)
def test_random_configs_never_crash(data):
    _validate_and_build(data)
