"""Plain helpers the tests of several packages share (fixtures are in conftest.py).

The root conftest puts this folder on ``sys.path``, so a test imports them as ``from helpers import ...``.
"""


def strict_json(text):
    """json.loads that refuses NaN, Infinity and -Infinity, as every other JSON reader does."""
    import json

    def refuse(constant):
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# The smallest config (every section at its default but [model]), and one trained in two phases.
MINIMAL = {"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]}}


def with_(**sections):
    data = {"model": MINIMAL["model"]}
    for key, value in sections.items():
        data[key] = value
    return data


PHASED = {"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 30}, {"type": "dense", "units": 10}]},
          "phases": [{"epochs": 2, "freeze": [0]}, {"epochs": 3}]}
