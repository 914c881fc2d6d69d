"""From a config to the objects of a run: its data, its model and the Trainer that fits it.

Every command that trains starts here, so that ``train``, ``lr-find``, ``doctor`` and
``tune`` (whose trials are ``train`` runs) fit the same model on the same data with the
same settings: :func:`data_and_model` loads the data and builds the model with its seeded
initial weights, :func:`trainer_from_config` makes the Trainer of the config's
``[train]``, ``[optimizer]`` and ``[schedule]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from trainwell import data as datasets
from trainwell.callbacks import Callback
from trainwell.config import RunConfig, loss_of
from trainwell.data.preprocessing import Preprocessing
from trainwell.errors import ConfigError, TrainwellError
from trainwell.model.layers import Model, ModelSpec, build_model, layer_from_dict
from trainwell.model.saving import load_model
from trainwell.model.transfer import reuse_layers
from trainwell.recipes import reuse
from trainwell.recipes.file_data import prepare_files
from trainwell.train.trainer import Trainer, seed_everything


@dataclass
class PreparedData:
    """The arrays of one run, ready for the model, and how they were made."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None  # None: files without a test part (no test metrics)
    y_test: np.ndarray | None
    num_classes: int  # for a regression loss, the target's width
    input_shape: tuple[int, ...]
    preprocessing: Preprocessing
    info: dict[str, Any]


def select_split(dataset: Any, *, validation_size: int, classes: list[int] | None, split: str):
    """Raw (uint8) images and labels of one split: "train", "validation" or "test".

    The book's validation set is the first ``validation_size`` training images.
    """
    if split == "test":
        x, y = dataset.x_test, dataset.y_test
    else:
        if validation_size >= len(dataset.x_train):
            raise ConfigError(f"data.validation_size: {validation_size} leaves no training images "
                              f"({dataset.name} has {len(dataset.x_train)})")
        parts = datasets.validation_split(dataset.x_train, dataset.y_train, size=validation_size)
        x, y = (parts.x_valid, parts.y_valid) if split == "validation" else (parts.x_train, parts.y_train)
    if classes:
        x, y = datasets.filter_classes(x, y, classes, relabel=True)
    return x, y


def prepare_data(config: RunConfig) -> PreparedData:
    """Load the dataset the config names (or read its files) and make its splits and preprocessing; within
    :func:`~trainwell.recipes.reuse.reusing_prepared_data`, the data an earlier run prepared the same way."""
    return reuse.prepared(config, _prepare_data)


def _prepare_data(config: RunConfig) -> PreparedData:
    section = config.data
    if section.format is not None:
        files = prepare_files(config, lambda x, y: _subsample(x, y, section, seed=config.seed))
        return PreparedData(x_train=files.x_train, y_train=files.y_train, x_val=files.x_val, y_val=files.y_val,
                            x_test=files.x_test, y_test=files.y_test, num_classes=files.num_classes,
                            input_shape=tuple(files.x_train.shape[1:]), preprocessing=files.preprocessing,
                            info=files.info)
    dataset = datasets.load(section.name, path=section.path, offline=section.offline)
    if section.classes is not None:
        known = set(np.unique(dataset.y_train).tolist())
        unknown = [c for c in section.classes if c not in known]
        if unknown or len(set(section.classes)) != len(section.classes):
            raise ConfigError(f"data.classes: {section.classes} must be distinct classes of {section.name} "
                              f"(allowed: {sorted(known)})")
    x_train, y_train = select_split(dataset, validation_size=section.validation_size, classes=section.classes, split="train")
    x_train, y_train = _subsample(x_train, y_train, section, seed=config.seed)
    x_test, y_test = select_split(dataset, validation_size=section.validation_size, classes=section.classes, split="test")
    x_val = y_val = None
    if section.validation_size > 0:
        x_val, y_val = select_split(dataset, validation_size=section.validation_size, classes=section.classes,
                                    split="validation")
    prep = Preprocessing.fit(section.scaling, x_train, pixel_max=dataset.pixel_max)
    num_classes = len(section.classes) if section.classes else int(max(dataset.y_train.max(), dataset.y_test.max())) + 1
    info = {"dataset": section.name, "validation_size": section.validation_size, "classes": section.classes,
            "per_class": section.per_class, "train_size": section.train_size}
    return PreparedData(
        x_train=prep(x_train), y_train=np.asarray(y_train, dtype=np.int64),
        x_val=None if x_val is None else prep(x_val), y_val=None if y_val is None else np.asarray(y_val, dtype=np.int64),
        x_test=prep(x_test), y_test=np.asarray(y_test, dtype=np.int64),
        num_classes=num_classes, input_shape=tuple(x_train.shape[1:]), preprocessing=prep, info=info)


def _subsample(x: np.ndarray, y: np.ndarray, section: Any, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The chapter's small training sets: k images per class (seeded), then the first N."""
    try:
        if section.per_class is not None:
            x, y = datasets.take_per_class(x, y, section.per_class, seed=seed)
    except TrainwellError as error:
        raise ConfigError(f"data.per_class: {error}") from None
    try:
        if section.train_size is not None:
            x, y = datasets.take_first(x, y, section.train_size)
    except TrainwellError as error:
        raise ConfigError(f"data.train_size: {error}") from None
    return x, y


def build_from_config(config: RunConfig, input_shape: tuple[int, ...]) -> Model:
    """The config's model, with the dataset's input shape unless the config gives one.

    With ``[model.reuse]``, the lowest layers of a saved model (copied, unless
    ``share``) topped by ``model.layers`` as the new head.
    """
    layers = [layer_from_dict(layer, where=f"model.layers[{i}]") for i, layer in enumerate(config.model.layer_tables())]
    reuse = config.model.reuse
    if reuse is not None:
        source = load_model(_existing(reuse.model, "model.reuse.model"))
        count = reuse.layers if reuse.layers > 0 else len(source.spec.layers) + reuse.layers
        try:
            return reuse_layers(source, count, head=layers, share=reuse.share)
        except ConfigError as error:
            raise ConfigError(f"model.reuse.layers = {reuse.layers}: {error}") from None
    shape = tuple(config.model.input_shape) if config.model.input_shape else input_shape
    return build_model(ModelSpec(input_shape=shape, layers=tuple(layers)))


def _existing(path: str, key: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{key}: no model file at {path!r}; train the source model first "
                          "(e.g. trainwell train examples/transfer_model_a.toml)")
    return file


def data_and_model(config: RunConfig) -> tuple[PreparedData, Model]:
    """The config's data and its model, whose initial weights depend on the seed alone.

    The seed is set before the data are made and again before the model is built, so the
    weights are the same whatever drawing the data took.
    """
    seed_everything(config.seed)
    prepared = prepare_data(config)
    seed_everything(config.seed)
    return prepared, build_from_config(config, prepared.input_shape)


def trainer_options(config: RunConfig) -> dict[str, Any]:
    """The Trainer's keyword arguments that a config sets (all but the callbacks)."""
    train = config.train
    return {"loss": loss_of(train), "optimizer": dict(config.optimizer), "metrics": train.metrics,
            "class_weight": train.class_weight,
            "clipvalue": train.clipvalue, "clipnorm": train.clipnorm, "global_clipnorm": train.global_clipnorm,
            "schedule": config.schedule, "device": train.device, "seed": config.seed,
            "skip_nonfinite": train.skip_nonfinite_batches, "threads": train.threads, "fused": train.fused, "compile": train.compile,
            "precision": train.precision, "sync_batchnorm": train.sync_batchnorm}


def trainer_from_config(config: RunConfig, model: Model, *, callbacks: Iterable[Callback] = (),
                        **overrides: Any) -> Trainer:
    """The Trainer that fits ``model`` as the config says; ``overrides`` replace options of :func:`trainer_options`."""
    return Trainer(model, **{**trainer_options(config), **overrides}, callbacks=callbacks)
