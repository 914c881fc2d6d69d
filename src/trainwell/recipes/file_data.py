"""A run on the user's own files (``[data] format``): from the files to a model's arrays, and back for new files.

:func:`prepare_files` makes a run's parts from what :func:`trainwell.data.files.read_parts`
read: the validation part (the files' own, or ``validation_size`` / ``validation_split`` rows
drawn with the run's seed, so a file sorted by class still validates on every class; 10% by
default), the targets (class labels encoded by sorted name, or float values for a regression
loss) and the scaling fitted on the training part alone. What it records in the model file's
``data`` entry (format, columns, class names, image size and mode) is what
:func:`inputs_from_files` needs to prepare new files the same way for ``predict --input``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from trainwell.config import RunConfig
from trainwell.data.files import IMAGE_FORMATS, Part, read_inputs, read_parts
from trainwell.data.labels import apply_labels, encode_labels, label_name, numeric_targets
from trainwell.data.preprocessing import Preprocessing
from trainwell.errors import ConfigError, DataError, ModelFileError, shown
from trainwell.model.losses import get_loss

DEFAULT_VALIDATION_SPLIT = 0.1  # of a file's training rows, when neither validation_size nor validation_split is set


def is_regression(loss_name: str) -> bool:
    """Whether ``loss_name`` fits real-valued targets (no class encoding; the target's width is the output width)."""
    return get_loss(loss_name).regression


@dataclass
class FileData:
    """A files run's parts, ready for the model, and what the model file records about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int
    preprocessing: Preprocessing
    info: dict[str, Any]


def _numeric_inputs(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: the inputs are {x.dtype} values; they must be numbers")
    if x.ndim < 2:
        raise DataError(f"{where}: the inputs have shape {x.shape}; expected (examples, features...), one row per example")
    return x


def _validation_rows(count: int, section: Any, seed: int, has_own: bool) -> np.ndarray | None:
    """The rows of the training file that validate (seeded, sorted), or None (none, or the files' own part)."""
    asked = section.validation_size is not None or section.validation_split is not None
    if has_own:
        if asked:
            raise ConfigError(f"data.validation_{'size' if section.validation_size is not None else 'split'}: "
                              f"{section.path} holds its own validation arrays (x_val, y_val); leave the key out, "
                              "or leave those arrays out of the file")
        return None
    if section.validation_size is not None:
        size = section.validation_size
    else:
        size = round((section.validation_split or DEFAULT_VALIDATION_SPLIT) * count)
    if size >= count:
        raise ConfigError(f"data.validation_{'size' if section.validation_size is not None else 'split'}: {size} of "
                          f"the {count} examples of {section.path} would validate, leaving none to train on")
    if size == 0:
        return None
    return np.sort(np.random.default_rng(seed).permutation(count)[:size])


def _split(part: Part, rows: np.ndarray) -> tuple[Part, Part]:
    keep = np.ones(len(part.x), dtype=bool)
    keep[rows] = False
    ids = part.ids

    def take(mask):
        return Part(part.x[mask], part.y[mask], None if ids is None else [ids[i] for i in np.flatnonzero(mask)],
                    part.source)

    return take(keep), take(~keep)


def _targets(parts: dict[str, Part | None], *, regression: bool, class_names: tuple[str, ...] | None,
             encoded: set[str]) -> tuple[dict[str, np.ndarray], int]:
    """Each part's targets as the model takes them, and the output width. The parts named in ``encoded``
    hold class indices already; the others' labels are mapped by ``class_names`` (a label training never
    saw is an error naming it)."""
    present = {name: part for name, part in parts.items() if part is not None}
    if regression:
        ys = {name: numeric_targets(part.y, where=part.source) for name, part in present.items()}
        return ys, int(ys["train"].shape[1])
    ys = {name: np.asarray(part.y, dtype=np.int64) if name in encoded
          else apply_labels(part.y, class_names, where=f"{part.source} ({name})") for name, part in present.items()}
    return ys, len(class_names)


def prepare_files(config: RunConfig, subsample: Any) -> FileData:
    """The arrays of a run on files, and their info for the model file; ``subsample(x, y)`` makes the
    small training sets (``per_class``, ``train_size``) as for a registered dataset."""
    section = config.data
    files = read_parts(section.format, section.path, target=section.target, features=section.features,
                       target_path=section.target_path, test_path=section.test_path,
                       test_target_path=section.test_target_path, image_size=section.image_size,
                       color_mode=section.color_mode)
    regression = is_regression(config.train.loss)
    parts: dict[str, Part | None] = {"train": files.train, "validation": files.validation, "test": files.test}
    for name, part in parts.items():
        if part is not None:
            part.x = _numeric_inputs(part.x, f"{part.source} ({name})")
    class_names = files.class_names
    encoded = set(parts) if class_names is not None else {"train", "validation"}  # image folders: all indices
    if not regression and class_names is None:  # names from the whole training file, before the split
        files.train.y, class_names = encode_labels(files.train.y)
    if regression:
        class_names = None
    elif len(class_names) < 2:
        raise DataError(f"{files.train.source}: every training label is {shown(class_names[0]) if class_names else 'missing'}"
                        f"; a classifier needs examples of at least two classes (for real-valued targets use a "
                        "regression loss: train.loss = \"mse\")")
    rows = _validation_rows(len(files.train.x), section, config.seed, files.validation is not None)
    if rows is not None:
        parts["train"], parts["validation"] = _split(files.train, rows)
    else:
        encoded.discard("validation")  # the files' own validation part: labels as the file holds them
    ys, width = _targets(parts, regression=regression, class_names=class_names, encoded=encoded)
    x_train, y_train = subsample(parts["train"].x, ys["train"])
    pixel_max = 255.0 if x_train.dtype == np.uint8 else 1.0
    prep = Preprocessing.fit(section.scaling, x_train, pixel_max=pixel_max)
    validation, test = parts["validation"], parts["test"]
    info = {"dataset": None, "format": section.format, "validation_size": 0 if validation is None else len(validation.x),
            "classes": None, "per_class": section.per_class, "train_size": section.train_size,
            "class_names": None if class_names is None else list(class_names), "regression": regression,
            "target": section.target, "features": files.features, "image_size": section.image_size,
            "color_mode": section.color_mode}
    return FileData(
        x_train=prep(x_train), y_train=y_train,
        x_val=None if validation is None else prep(validation.x), y_val=ys.get("validation"),
        x_test=None if test is None else prep(test.x), y_test=ys.get("test"),
        num_classes=width, preprocessing=prep, info=info)


@dataclass
class FileInputs:
    """New files prepared as a model's training data: inputs, targets where the files hold them, names."""

    x: np.ndarray
    y: np.ndarray | None
    ids: list[str] | None
    class_names: tuple[str, ...] | None  # None: a regression model
    source: str


def recorded_file_info(path: str | os.PathLike, data: dict[str, Any]) -> dict[str, Any]:
    """The file keys of a model file's ``data`` entry, checked (a model trained on files records them all)."""
    for key in ("format", "class_names", "regression"):
        if key not in data:
            raise ModelFileError(f"{path}: the model file was trained on files but does not record {key!r}")
    names = data["class_names"]
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise ModelFileError(f"{path}: the model file's class_names must be a list of names, got {shown(names)}")
    return data


def inputs_from_files(path: str | os.PathLike, data: dict[str, Any], input_path: str | os.PathLike, *,
                      input_shape: Sequence[int], prep: Preprocessing,
                      registered_names: Sequence[str] | None = None) -> FileInputs:
    """The files at ``input_path`` prepared as the model at ``path`` was trained (its ``data`` entry): the same
    columns, image size and mode, scaling statistics and class names. A model trained on a registered
    dataset takes images (an image folder, an .npz, .npy or IDX file) of its input shape."""
    if registered_names is None:
        data = recorded_file_info(path, data)
        trained_format, class_names = data["format"], data["class_names"]
        regression = bool(data["regression"])
    else:
        trained_format, class_names, regression = "registered", list(registered_names), False
    shape = tuple(input_shape)
    part = read_inputs(input_path, trained_format=trained_format, target=data.get("target"),
                       features=data.get("features"), image_size=data.get("image_size"),
                       color_mode=data.get("color_mode"), class_names=class_names,
                       shape=shape if trained_format in (*IMAGE_FORMATS, "registered") else None)
    x = _numeric_inputs(part.x, str(input_path))
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"{input_path}: examples of shape {tuple(x.shape[1:])}; the model takes {shape}")
    y = None
    if part.y is not None:
        if regression:
            y = numeric_targets(part.y, where=str(input_path))
        elif trained_format in ("image_folder", "registered"):  # indices already (class folders; a dataset's labels)
            y = np.asarray(part.y, dtype=np.int64)
            if trained_format == "registered" and (y.min() < 0 or y.max() >= len(class_names)):
                raise DataError(f"{input_path}: labels {int(y.min())}..{int(y.max())}; the model has "
                                f"{len(class_names)} classes")
        else:
            y = apply_labels(part.y, class_names, where=str(input_path))
    names = None if class_names is None else tuple(label_name(n) for n in class_names)
    return FileInputs(prep(x), y, part.ids, names, str(input_path))
