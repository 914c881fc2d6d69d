"""Plain helpers the tests of several packages share (fixtures are in conftest.py).

The root conftest puts this folder on ``sys.path``, so a test imports them as ``from helpers import ...``.
"""


def strict_json(text):
    """json.loads that refuses NaN, Infinity and -Infinity, as every other JSON reader does."""
    import json

    def refuse(constant):
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def small_model(*hidden, input_shape=(4,), classes=3, seed=0):
    """A small classifier for the tests' toy problems (the ``blobs`` fixture has 4 features, 3 classes).

    ``hidden`` are the layers before the softmax head of ``classes`` units; an int n stands for
    ``Dense(n, activation="relu")``; none given means ``Dense(16, relu), Dropout(0.1)``. ``seed`` calls
    ``torch.manual_seed(seed)`` first, so the weights and the random draws after them (dropout masks,
    shuffles) are fixed; ``seed=None`` draws from the global stream as it stands (the autouse
    ``fixed_seeds`` fixture seeded it when the test began), so a test's second model differs from its first.
    """
    import torch

    from trainwell.model.layers import Dense, Dropout, build_model

    layers = [Dense(layer, activation="relu") if isinstance(layer, int) else layer
              for layer in hidden or (16, Dropout(0.1))]
    if seed is not None:
        torch.manual_seed(seed)
    return build_model([*layers, Dense(classes, activation="softmax")], input_shape=input_shape)


def tiny_digits(*, epochs=3, units=32, activation="relu", init="he_normal", validation_size=200, data="",
                train="", extra=""):
    """A tiny config on scikit-learn's bundled digits (always there, no download), as TOML text.

    The defaults are the command line tests' config; ``data`` and ``train`` are lines added to those
    sections (``'scaling = "unit"'``), ``extra`` is sections added at the end; ``init=None`` leaves the
    hidden layer's init out.
    """
    init = f', init = "{init}"' if init else ""
    return "".join([
        '\nname = "tiny"\nseed = 3\n[data]\nname = "digits"\n',
        f"validation_size = {validation_size}\n", f"{data}\n" if data else "",
        '[model]\nlayers = [{type = "flatten"}, ',
        f'{{type = "dense", units = {units}, activation = "{activation}"{init}}},\n',
        '          {type = "dense", units = 10, activation = "softmax"}]\n',
        '[optimizer]\nname = "adam"\nlr = 0.01\n',
        f"[train]\nepochs = {epochs}\n", f"{train}\n" if train else "", f"{extra}\n" if extra else "",
    ])


# The smallest config (every section at its default but [model]), and one trained in two phases.
MINIMAL = {"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]}}


def with_(**sections):
    data = {"model": MINIMAL["model"]}
    for key, value in sections.items():
        data[key] = value
    return data


PHASED = {"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 30}, {"type": "dense", "units": 10}]},
          "phases": [{"epochs": 2, "freeze": [0]}, {"epochs": 3}]}
