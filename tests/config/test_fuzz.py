"""A config loader that never crashes on random or mutated input: a config fails with a TrainwellError or builds."""

import copy
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwell.config import read_config_file, validate_config
from trainwell.errors import TrainwellError
from trainwell.recipes.build import build_from_config

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))


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
