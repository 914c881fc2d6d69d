"""The catalog's configs: an example file read as a plain dict (:func:`example`), and small builders
for those no file holds (plain dicts, the same tables a config file holds)."""

from __future__ import annotations

from importlib.resources import as_file, files
from typing import Any

EXAMPLE_SUFFIXES = (".toml", ".yaml")


def example(name: str) -> dict[str, Any]:
    """The config of the example file ``<name>.toml`` (or ``.yaml``) as the file holds it (not yet validated),
    named after the file as ``trainwell train`` names it.

    The files are package data (``trainwell/examples/``; ``examples/`` in a clone), so a catalog
    entry and ``trainwell train examples/<name>.toml`` run one config, kept in one place.

    >>> example("bn_after")["optimizer"]
    {'name': 'sgd', 'lr': 0.001}
    """
    from trainwell.config import read_config_file

    folder = files("trainwell").joinpath("examples")
    for suffix in EXAMPLE_SUFFIXES:
        resource = folder.joinpath(name + suffix)
        if resource.is_file():
            with as_file(resource) as path:
                data = read_config_file(path)
            data.setdefault("name", name)
            return data
    raise FileNotFoundError(f"no example config {name}{' or '.join(EXAMPLE_SUFFIXES)} in trainwell/examples/")


FLATTEN = {"type": "flatten"}


def dense(units: int, activation: str | None = None, init: str | None = None, **keys: Any) -> dict[str, Any]:
    layer: dict[str, Any] = {"type": "dense", "units": units}
    if activation is not None:
        layer["activation"] = activation
    if init is not None:
        layer["init"] = init
    layer.update(keys)
    return layer


def softmax(units: int = 10, **keys: Any) -> dict[str, Any]:
    return dense(units, "softmax", **keys)


def config(name: str, layers: list[dict[str, Any]], *, data: dict[str, Any], optimizer: dict[str, Any],
           epochs: int, batch_size: int = 32, **sections: Any) -> dict[str, Any]:
    """A run config as a dict: ``validate_config`` reads it like a config file."""
    return {"name": name, "seed": 42, "data": data, "model": {"layers": layers, **sections.pop("model", {})},
            "optimizer": optimizer, **sections, "train": {"epochs": epochs, "batch_size": batch_size,
                                                          **sections.pop("train", {})}}


STANDARDIZED_NOTE = ("trainwell standardizes with the mean and std of the training images actually used "
                     "(in the quick budget, the 10,000 kept), as the chapter fits them on its training set.")
