"""Evaluating and inspecting saved models (what ``trainwell evaluate`` and ``summary`` use)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from trainwell import data as datasets
from trainwell.config import CONFIG_SUFFIXES, load_config
from trainwell.errors import ConfigError
from trainwell.experiment import build_from_config, select_split
from trainwell.layers import Model
from trainwell.preprocessing import Preprocessing
from trainwell.saving import load_model_file
from trainwell.trainer import Trainer

SPLITS = ("test", "validation", "train")


def evaluate_model_file(path: str | os.PathLike, *, data: str | None = None, split: str = "test",
                        data_path: str | None = None, device: str | None = None) -> dict[str, Any]:
    """Loss and accuracy of a saved model on a split, prepared as at training time."""
    if split not in SPLITS:
        raise ConfigError(f"--split: {split!r} is not a split; allowed: {', '.join(SPLITS)}")
    loaded = load_model_file(path)
    data_info = loaded.info.get("data", {})
    name = data or data_info.get("dataset")
    if name is None:
        raise ConfigError(f"{path}: the model file does not say which dataset it was trained on; pass --data NAME")
    dataset = datasets.load(name, path=data_path)
    x, y = select_split(dataset, validation_size=int(data_info.get("validation_size", 0)),
                        classes=data_info.get("classes"), split=split)
    prep = Preprocessing.from_info(data_info, loaded.extra)
    expected = loaded.model.spec.input_shape
    if tuple(x.shape[1:]) != tuple(expected):
        raise ConfigError(f"--data {name}: images of shape {tuple(x.shape[1:])} do not fit the model, "
                          f"which expects {tuple(expected)}")
    trainer = Trainer(loaded.model, loss=loaded.info.get("loss", "sparse_categorical_crossentropy"),
                      optimizer="sgd", device=device)
    return {"samples": float(len(y)), **trainer.evaluate(prep(x), np.asarray(y, dtype=np.int64))}


def model_for_summary(source: str | os.PathLike) -> Model:
    """The model a config file describes, or the one a model file holds."""
    file = Path(source)
    if file.suffix.lower() in CONFIG_SUFFIXES:
        config = load_config(file)
        shape = tuple(config.model.input_shape) if config.model.input_shape else None
        if shape is None:
            shape = datasets.load(config.data.name, path=config.data.path, offline=config.data.offline).image_shape
        return build_from_config(config, shape)
    return load_model_file(file).model
