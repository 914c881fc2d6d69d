"""The user's own data files, in each format ``[data] format`` names, read into raw arrays.

One entry point per use: :func:`read_parts` reads the files a run trains on (its training
file, the validation and test parts an ``.npz`` or IDX folder holds, the held-out
``test_path``); :func:`read_inputs` reads new files to predict as a model was trained
(the same columns, image size and mode); :func:`input_shape_of` says the per-example shape
from a header or the first image alone, for a summary. What they return is raw: labels as
the files hold them (encoding and scaling are the run's, in :mod:`trainwell.recipes.build`).

The formats: ``csv`` and ``parquet`` (:mod:`~trainwell.data.tables`), ``npz`` and ``npy``
(:mod:`~trainwell.data.numpy_files`), ``image_folder`` (:mod:`~trainwell.data.images`) and
``idx``, a folder of the four MNIST-style files (``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``; ``test``
for ``t10k`` is accepted too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainwell.data import images, numpy_files, tables
from trainwell.data.idx import read_idx
from trainwell.errors import DataError

__all__ = ["FORMATS", "Part", "FileParts", "read_parts", "read_inputs", "input_shape_of", "idx_files"]

FORMATS = ("csv", "parquet", "npz", "npy", "image_folder", "idx")
IMAGE_FORMATS = ("image_folder", "idx")  # whose inputs are uint8 pixels, scaled by default to [0, 1]


@dataclass
class Part:
    """One part of the data: inputs ``x``, targets ``y`` as the files hold them (None: unlabelled), and
    each example's name for a predictions file (a file name; None: its row number)."""

    x: np.ndarray
    y: np.ndarray | None
    ids: list[str] | None = None
    source: str = ""


@dataclass
class FileParts:
    """The parts a run's files hold: ``train``, and ``validation``/``test`` where the files have them.

    ``features`` are a table's columns used as inputs; ``class_names`` are an image folder's classes
    (its labels are already indices into them).
    """

    train: Part
    validation: Part | None = None
    test: Part | None = None
    features: list[str] | None = None
    class_names: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def idx_files(folder: str | os.PathLike, *, train: bool = True) -> dict[str, Path]:
    """The IDX files of an MNIST-style folder, by role (``train_images``...; the test ones only if present).
    ``train=False``: a folder of new data, whose training or test files are both fine."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {'no such folder' if not folder.exists() else 'is a file, not a folder'}; "
                        "data.format = \"idx\" reads a folder of MNIST-style IDX files")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = path.name.lower().removesuffix(".gz")
        part = "train" if name.startswith("train") else "test" if name.startswith(("t10k", "test")) else None
        kind = "images" if "images" in name else "labels" if "labels" in name else None
        if part and kind and path.is_file():
            found.setdefault(f"{part}_{kind}", path)
    missing = [role for role in ("train_images", "train_labels") if role not in found]
    if not train and not missing or not train and "test_images" in found:
        return found
    if missing:
        raise DataError(f"{folder}: has no {' and no '.join(r.replace('_', '-') for r in missing)} IDX file "
                        "(e.g. train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz)")
    if ("test_images" in found) != ("test_labels" in found):
        raise DataError(f"{folder}: has test {'images' if 'test_images' in found else 'labels'} but no test "
                        f"{'labels' if 'test_images' in found else 'images'}")
    return found


def _idx_part(files: dict[str, Path], part: str) -> Part:
    x, y = read_idx(files[f"{part}_images"]), read_idx(files[f"{part}_labels"])
    if len(x) != len(y):
        raise DataError(f"{files[f'{part}_images']} and {files[f'{part}_labels']}: {len(x)} images but "
                        f"{len(y)} labels")
    return Part(x, y, source=str(files[f"{part}_images"]))


def _table_part(path: str | os.PathLike, format: str, *, target: str | None, features: Sequence[str] | None,
                target_needed: bool) -> tuple[Part, list[str]]:
    table = tables.read_table(path, format)
    x, y, used = tables.table_arrays(table, target=target, features=features, target_needed=target_needed)
    return Part(x, y, source=str(path)), used


def _checked_pair(x: np.ndarray, y: np.ndarray, where: str) -> Part:
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise DataError(f"{where}: holds no examples")
    return Part(x, y, source=where)


def read_parts(format: str, path: str | os.PathLike, *, target: str | None = None,
               features: Sequence[str] | None = None, target_path: str | os.PathLike | None = None,
               test_path: str | os.PathLike | None = None, test_target_path: str | os.PathLike | None = None,
               image_size: Sequence[int] | None = None, color_mode: str | None = None) -> FileParts:
    """Every part a run's files hold (see the module's docstring for each format)."""
    if format in ("csv", "parquet"):
        if target is None:
            columns = tables.table_columns(path, format)
            raise DataError(f"{path}: say which column holds the targets with data.target; its columns: "
                            f"{', '.join(columns)}")
        train, used = _table_part(path, format, target=target, features=features, target_needed=True)
        test = None if test_path is None else _table_part(test_path, format, target=target, features=used,
                                                          target_needed=True)[0]
        return FileParts(train, None, test, features=used)
    if format == "npz":
        made = {part: _checked_pair(x, y, str(path)) for part, (x, y) in numpy_files.read_npz(path).items()}
        if test_path is not None:
            x_key, y_key = numpy_files.npz_input_key(test_path)
            if y_key is None:
                raise DataError(f"{test_path}: holds {x_key!r} but no targets ({'y' + x_key[1:]!r}); a test set "
                                "needs both")
            made["test"] = _checked_pair(*numpy_files.read_npz_arrays(test_path, (x_key, y_key)), str(test_path))
        return FileParts(made["train"], made.get("validation"), made.get("test"))
    if format == "npy":
        if target_path is None:
            raise DataError(f"{path}: data.format = \"npy\" reads the inputs from data.path and the targets from "
                            "data.target_path (a second .npy file); set data.target_path")
        train = _checked_pair(numpy_files.read_npy(path), numpy_files.read_npy(target_path), f"{path}, {target_path}")
        test = None
        if test_path is not None:
            if test_target_path is None:
                raise DataError(f"{test_path}: data.test_path needs data.test_target_path, the test targets' .npy")
            test = _checked_pair(numpy_files.read_npy(test_path), numpy_files.read_npy(test_target_path),
                                 f"{test_path}, {test_target_path}")
        return FileParts(train, None, test)
    if format == "image_folder":
        train_set = images.read_image_folder(path, image_size=image_size, color_mode=color_mode)
        train = Part(train_set.x, train_set.y, train_set.files, str(path))
        test = None
        if test_path is not None:
            test_set = images.read_image_folder(test_path, image_size=image_size, color_mode=color_mode,
                                                class_names=train_set.class_names, shape=train_set.x.shape[1:])
            test = Part(test_set.x, test_set.y, test_set.files, str(test_path))
        return FileParts(train, None, test, class_names=train_set.class_names)
    if format == "idx":
        files = idx_files(path)
        test = None
        if test_path is not None:
            held_out = idx_files(test_path, train=False)
            test = _idx_part(held_out, "test" if "test_images" in held_out else "train")
        elif "test_images" in files:
            test = _idx_part(files, "test")
        return FileParts(_idx_part(files, "train"), None, test)
    raise DataError(f"unknown data format {format!r}; allowed: {', '.join(FORMATS)}")


def input_format(path: str | os.PathLike, trained_format: str) -> str:
    """The format of new inputs at ``path``: by its suffix, a folder as the model's images (IDX or an image folder)."""
    path = Path(path)
    if path.is_dir():
        return "idx" if trained_format == "idx" else "image_folder"
    suffix = path.suffix.lower()
    by_suffix = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz", ".npy": "npy"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if trained_format == "idx":
        return "idx_file"
    raise DataError(f"{path}: cannot tell its format from the name; give a .csv, .parquet, .npz or .npy file, "
                    "or a folder of images")


def read_inputs(path: str | os.PathLike, *, trained_format: str, target: str | None = None,
                features: Sequence[str] | None = None, image_size: Sequence[int] | None = None,
                color_mode: str | None = None, class_names: Sequence[str] | None = None,
                shape: tuple[int, ...] | None = None) -> Part:
    """New inputs at ``path`` prepared as a model's training files were (the same columns, image size and
    mode); with their targets when the files hold them (a target column, ``y`` in an ``.npz``, class
    subfolders), else ``y`` is None. ``shape`` is the model's per-example input shape, which images must fit."""
    format = input_format(path, trained_format)
    if format in ("csv", "parquet"):
        part, _ = _table_part(path, format, target=target, features=features, target_needed=False)
        return part
    if format == "npz":
        x_key, y_key = numpy_files.npz_input_key(path)
        arrays = numpy_files.read_npz_arrays(path, (x_key,) if y_key is None else (x_key, y_key))
        return Part(arrays[0], arrays[1] if y_key else None, source=str(path))
    if format == "npy":
        return Part(numpy_files.read_npy(path), None, source=str(path))
    if format == "idx_file":
        return Part(read_idx(path), None, source=str(path))
    if format == "idx":
        found = idx_files(path, train=False)
        return _idx_part(found, "test" if "test_images" in found else "train")
    folder = Path(path)
    if images.class_folders(folder) and not images.image_files(folder):
        labelled = images.read_image_folder(folder, image_size=image_size, color_mode=color_mode,
                                            class_names=class_names, shape=shape)
        return Part(labelled.x, labelled.y, labelled.files, str(folder))
    unlabelled = images.read_unlabelled(folder, image_size=image_size, color_mode=color_mode, shape=shape)
    return Part(unlabelled.x, None, unlabelled.files, str(folder))


def input_shape_of(format: str, path: str | os.PathLike, *, target: str | None = None,
                   features: Sequence[str] | None = None, image_size: Sequence[int] | None = None,
                   color_mode: str | None = None) -> tuple[int, ...]:
    """The per-example input shape of a run's files, read cheaply: a table's header, an array's header,
    the first image (a summary needs no more)."""
    if format in ("csv", "parquet"):
        if features is not None:
            return (len(features),)
        columns = tables.table_columns(path, format)
        return (len([name for name in columns if name != target]),)
    if format == "npz":
        shape = numpy_files.npz_shape(path, "x") or numpy_files.npz_shape(path, "x_train")
        if shape is None:
            raise DataError(f"{path}: holds no array x or x_train")
        return shape[1:]
    if format == "npy":
        return numpy_files.npy_shape(path)[1:]
    if format == "image_folder":
        return images.image_shape(path, image_size=image_size, color_mode=color_mode)
    if format == "idx":
        return tuple(read_idx(idx_files(path)["train_images"]).shape[1:])
    raise DataError(f"unknown data format {format!r}; allowed: {', '.join(FORMATS)}")
