"""Small builders for the catalog's configs (plain dicts, the same tables a config file holds)."""

from __future__ import annotations

from typing import Any

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


def fashion(scaling: str = "unit", **keys: Any) -> dict[str, Any]:
    """Fashion-MNIST with the book's validation set (the first 5,000 training images)."""
    return {"name": "fashion_mnist", "validation_size": 5000, "scaling": scaling, **keys}


def config(name: str, layers: list[dict[str, Any]], *, data: dict[str, Any], optimizer: dict[str, Any],
           epochs: int, batch_size: int = 32, **sections: Any) -> dict[str, Any]:
    """A run config as a dict: ``validate_config`` reads it like a config file."""
    return {"name": name, "seed": 42, "data": data, "model": {"layers": layers, **sections.pop("model", {})},
            "optimizer": optimizer, **sections, "train": {"epochs": epochs, "batch_size": batch_size,
                                                          **sections.pop("train", {})}}


def selu_300_100() -> list[dict[str, Any]]:
    """The scheduling and regularization sections' network: SELU 300-100, LeCun normal."""
    return [FLATTEN, dense(300, "selu", "lecun_normal"), dense(100, "selu", "lecun_normal"), softmax()]


STANDARDIZED_NOTE = ("trainwell standardizes with the mean and std of the training images actually used "
                     "(in the quick budget, the 10,000 kept), as the chapter fits them on its training set.")
