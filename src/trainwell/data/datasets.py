"""Load a dataset by name: find it, download it if needed, read it, check it.

:func:`load` is the one function most code needs::

    data = load("fashion_mnist")
    data.x_train.shape   # (60000, 28, 28), uint8
    data.class_names[data.y_train[0]]

Files are read once per process: the arrays are kept in memory (keyed on the
files' paths, sizes and modification times) and every :func:`load` hands out
fresh copies, so tests and notebooks can load repeatedly at no cost and no
caller can change what the next one gets.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from trainwell.data import download as _download
from trainwell.data.idx import parse_idx, read_content
from trainwell.data.locations import Location, locate, not_found_message
from trainwell.data.registry import DatasetSpec, get_spec
from trainwell.errors import DataError

__all__ = ["Dataset", "FileCheck", "load", "verify"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset's train and test parts as NumPy arrays.

    Images are ``uint8`` of shape ``(N, H, W)`` with values ``0..pixel_max``;
    labels are ``int64`` class indices into ``class_names``. ``source`` says
    where the data was read from.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    class_names: tuple[str, ...]
    pixel_max: int
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape[0]}, test={self.x_test.shape[0]}, "
            f"image_shape={self.image_shape}, classes={self.num_classes}, source={self.source!r})"
        )


class FileCheck(NamedTuple):
    """The result of checking one file: which file, whether it is good, and why."""

    file: Path
    ok: bool
    detail: str


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@functools.lru_cache(maxsize=4)
def _read_files(key: tuple[tuple[str, str, int, int], ...]) -> tuple[dict, dict]:
    """Read each ``(role, path, size, mtime)`` in ``key``: arrays and content digests.

    The size and modification time are part of the key only so that a file
    replaced on disk is read again. The SHA-256 is computed on the way (it
    costs little next to decompressing) so that ``verify=True`` needs no
    second read.
    """
    arrays, digests = {}, {}
    for role, path, _size, _mtime in key:
        content = read_content(path)
        digests[role] = hashlib.sha256(content).hexdigest()
        arrays[role] = _frozen(parse_idx(content, path))
    return arrays, digests


@functools.lru_cache(maxsize=None)
def _read_bundled(name: str) -> tuple[np.ndarray, ...]:
    return tuple(_frozen(np.asarray(part)) for part in get_spec(name).bundled())


def _stat_key(location: Location) -> tuple[tuple[str, str, int, int], ...]:
    key = []
    for role, path in location.files.items():
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise DataError(f"Cannot read data file {path}: {exc.strerror or exc}.") from None
        key.append((role, str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(key)


def files_state(name: str, *, path: str | os.PathLike | None = None, offline: bool | None = None) -> tuple | None:
    """What :func:`load` would read for dataset ``name``, as a comparable value (each file's path, size and
    modification time; the name for a bundled dataset), without reading anything; None while its files are
    not all there (a load would download them)."""
    location = locate(get_spec(name).name, path=path, offline=offline)
    if location.origin == "bundled":
        return ("bundled", location.name)
    if location.origin in ("download", "missing"):
        return None
    try:
        return _stat_key(location)
    except DataError:
        return None


def _download_missing(spec: DatasetSpec, location: Location) -> None:
    for role in location.to_download:
        file = spec.file(role)
        try:
            _download.download_file(spec.urls(file), location.directory / file.filename, sha256=file.sha256)
        except DataError as exc:
            raise DataError(
                f"Dataset {spec.name!r} was not found on this machine, and downloading it failed.\n{exc}\n"
                f"Places looked in first:\n" + "\n".join(f"  - {note}" for note in location.searched)
            ) from None


def _check_arrays(spec: DatasetSpec, location: Location, arrays: dict) -> None:
    """Make sure the files hold images and labels that fit together."""
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        image_file, label_file = location.files[f"{part}_images"], location.files[f"{part}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(
                f"Data file {image_file} should hold uint8 images of shape (N, height, width), "
                f"but holds {images.dtype} of shape {images.shape}."
            )
        if labels.ndim != 1:
            raise DataError(f"Data file {label_file} should hold one label per image, but has shape {labels.shape}.")
        if len(images) != len(labels):
            raise DataError(
                f"Data files {image_file} and {label_file} do not match: "
                f"{len(images)} images but {len(labels)} labels."
            )
        if labels.size and not (0 <= labels.min() and labels.max() < len(spec.class_names)):
            raise DataError(
                f"Data file {label_file} holds labels from {labels.min()} to {labels.max()}, "
                f"but {spec.title} has classes 0 to {len(spec.class_names) - 1}."
            )


def load(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    offline: bool | None = None,
    verify: bool = True,
) -> Dataset:
    """Load dataset ``name`` (see :func:`dataset_names`), downloading it if needed.

    ``path`` is a directory to look in first; ``offline=True`` (or the
    environment variable ``TRAINWELL_OFFLINE=1``) forbids downloading;
    ``verify`` (on by default; the digest is computed while reading, so it costs
    nothing extra) checks every file's SHA-256, so a corrupted file is never used.
    The search order is described in :mod:`trainwell.data.locations`.

    Raises :class:`~trainwell.errors.DataError` if the dataset cannot be found,
    downloaded, read or verified; the message says where it looked and how to
    get the data.
    """
    spec = get_spec(name)
    location = locate(spec.name, path=path, offline=offline)
    if spec.bundled is not None:
        x_train, y_train, x_test, y_test = _read_bundled(spec.name)
        return Dataset(
            spec.name, x_train.copy(), y_train.astype(np.int64), x_test.copy(), y_test.astype(np.int64),
            spec.class_names, spec.pixel_max, location.source,
        )
    if location.origin == "missing":
        raise DataError(not_found_message(location, "downloading is switched off (offline)"))
    if location.origin == "download":
        _download_missing(spec, location)
        location = locate(spec.name, path=path, offline=True)
        if not location.found:  # the files were saved, so this means the cache moved under us
            raise DataError(not_found_message(location, "the downloaded files have disappeared"))

    arrays, digests = _read_files(_stat_key(location))
    _check_arrays(spec, location, arrays)
    if verify:
        for file in spec.files:
            if file.sha256 is not None and digests[file.role] != file.sha256:
                raise DataError(_mismatch(location.files[file.role], digests[file.role], file.sha256))
    return Dataset(
        name=spec.name,
        x_train=arrays["train_images"].copy(),
        y_train=arrays["train_labels"].astype(np.int64),
        x_test=arrays["test_images"].copy(),
        y_test=arrays["test_labels"].astype(np.int64),
        class_names=spec.class_names,
        pixel_max=spec.pixel_max,
        source=location.source,
    )


def _mismatch(path: Path, actual: str, expected: str) -> str:
    return (
        f"Data file {path} does not have the expected content: the SHA-256 of its decompressed "
        f"content is {actual}, expected {expected}. Delete it and get it again."
    )


def verify(name: str, *, path: str | os.PathLike | None = None) -> list[FileCheck]:
    """Check the SHA-256 of each file of dataset ``name`` where :func:`load` would find it.

    Never downloads. Returns one :class:`FileCheck` ``(file, ok, detail)`` per
    file (an unreadable file is reported, not raised); bundled datasets have no
    files and give an empty list. Raises :class:`~trainwell.errors.DataError`
    if the files are not on this machine.
    """
    spec = get_spec(name)
    location = locate(spec.name, path=path, offline=True)
    if spec.bundled is not None:
        return []
    if not location.found:
        raise DataError(not_found_message(location, "verify never downloads"))
    results = []
    for file in spec.files:
        file_path = location.files[file.role]
        try:
            actual = hashlib.sha256(read_content(file_path)).hexdigest()
        except DataError as exc:
            results.append(FileCheck(file_path, False, str(exc)))
            continue
        if file.sha256 is None:
            results.append(FileCheck(file_path, True, "readable; no checksum is known for it"))
        elif actual == file.sha256:
            results.append(FileCheck(file_path, True, f"SHA-256 {actual} matches"))
        else:
            results.append(FileCheck(file_path, False, _mismatch(file_path, actual, file.sha256)))
    return results
