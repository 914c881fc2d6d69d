"""Folders of image files (PNG, JPEG, ...), read with Pillow into arrays laid out as PyTorch's.

A training folder holds one subfolder per class; the class names are the subfolders' names,
sorted (as Keras' ``image_dataset_from_directory`` and torchvision's ``ImageFolder``)::

    images/
      cat/  001.png 002.png ...
      dog/  001.png ...

A grayscale image becomes an ``(H, W)`` array (as Fashion-MNIST's, so a model that starts
with ``flatten`` takes it unchanged), a color one ``(3, H, W)``, channels first; pixels are
``uint8`` (0..255). Every image must have the same size and mode, unless ``image_size``
(resized with Pillow's bilinear filter) and ``color_mode`` (converted) say what they become;
the first image that differs is named, with its size and mode and the ones expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trainwell.errors import DataError

__all__ = ["COLOR_MODES", "ImageSet", "image_files", "class_folders", "read_image_folder", "read_images",
           "image_shape"]

#: ``color_mode`` -> Pillow's mode (Keras' names).
COLOR_MODES = {"grayscale": "L", "rgb": "RGB"}
_MODE_NAMES = {mode: name for name, mode in COLOR_MODES.items()}


@dataclass(frozen=True)
class ImageSet:
    """Images ``x`` (``uint8``, ``(N, H, W)`` or ``(N, 3, H, W)``), labels ``y`` (indices into
    ``class_names``; None for a folder of unlabelled images) and each image's file, relative to the folder."""

    x: np.ndarray
    y: np.ndarray | None
    files: list[str]
    class_names: tuple[str, ...]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def image_files(folder: Path) -> list[Path]:
    """The files in ``folder`` (not in its subfolders), sorted by name; hidden files are left out."""
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p))


def class_folders(folder: str | os.PathLike) -> list[Path]:
    """The subfolders of ``folder``, sorted by name: one per class. DataError if it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {'no such folder' if not folder.exists() else 'is a file, not a folder'}; "
                        "an image folder holds one subfolder of images per class")
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def _mode_of(image, path: Path, color_mode: str | None) -> str:
    """The Pillow mode an image becomes: ``color_mode``'s, or its own when that is grayscale or RGB."""
    if color_mode is not None:
        return COLOR_MODES[color_mode]
    if image.mode in _MODE_NAMES:
        return image.mode
    raise DataError(f"{path}: image mode {image.mode!r} is neither grayscale ('L') nor RGB; set data.color_mode = "
                    "\"grayscale\" or \"rgb\" to convert every image")


def _read_one(path: Path, *, size: tuple[int, int] | None, color_mode: str | None, expected: list) -> np.ndarray:
    """One image as an array; ``expected`` holds ``[(height, width), mode]`` of the first image (filled by it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            own_size, own_mode = (image.height, image.width), image.mode
            if color_mode is not None:
                target = COLOR_MODES[color_mode]
                image = image.convert(target) if image.mode != target else image
            else:
                target = expected[1] if expected else _mode_of(image, path, None)
                if image.mode != target:
                    raise DataError(_differs(path, own_size, own_mode, *expected))
            if size is not None and (image.height, image.width) != tuple(size):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise DataError(f"{path}: is not an image file Pillow can read (remove it from the folder)") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read as an image ({error})") from None
    if not expected:
        expected.extend([tuple(array.shape[:2]), target])
    elif tuple(array.shape[:2]) != expected[0]:
        raise DataError(_differs(path, own_size, own_mode, *expected))
    return np.moveaxis(array, -1, 0) if array.ndim == 3 else array  # channels first, as PyTorch


def _differs(path: Path, size: tuple[int, int], mode: str, expected_size: tuple[int, int], expected_mode: str,
             model: bool = False) -> str:
    if model:  # new images for a trained model: the model fixes the size and mode
        return (f"{path}: image of {size[0]}x{size[1]} pixels, mode {mode!r}; the model takes {expected_size[0]}x"
                f"{expected_size[1]}, mode {expected_mode!r}; resize or convert the images, or train the model "
                "with data.image_size and data.color_mode, which it then applies to new images too")
    return (f"{path}: image of {size[0]}x{size[1]} pixels, mode {mode!r}; expected {expected_size[0]}x"
            f"{expected_size[1]}, mode {expected_mode!r} (as the first image); set data.image_size = "
            f"[{expected_size[0]}, {expected_size[1]}] to resize every image and data.color_mode = "
            f"\"{_MODE_NAMES.get(expected_mode, 'rgb')}\" to convert them")


def read_images(paths: Sequence[Path], *, image_size: Sequence[int] | None = None, color_mode: str | None = None,
                shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The images at ``paths`` as one ``uint8`` array. ``shape``, when given, is the per-image shape they
    must have (a model's input shape): each image is resized/converted only as ``image_size`` and
    ``color_mode`` say, never to fit silently."""
    expected: list = []
    if shape is not None:  # a model's images: every file must give this shape
        expected = [tuple(shape[-2:]), "RGB" if len(shape) == 3 else "L", True]
    size = tuple(image_size) if image_size is not None else None
    arrays = [_read_one(path, size=size, color_mode=color_mode, expected=expected) for path in paths]
    return np.stack(arrays) if arrays else np.zeros((0, *(shape or ())), dtype=np.uint8)


def read_image_folder(folder: str | os.PathLike, *, image_size: Sequence[int] | None = None,
                      color_mode: str | None = None, class_names: Sequence[str] | None = None,
                      shape: tuple[int, ...] | None = None) -> ImageSet:
    """A folder of class subfolders as an :class:`ImageSet`; with ``class_names`` (a trained model's), the
    subfolders must be among them (a held-out folder may lack a class). DataError for no class folders, an
    empty one, a file that is not an image, an image of another size or mode, an unknown class."""
    folder = Path(folder)
    subfolders = class_folders(folder)
    if not subfolders:
        raise DataError(f"{folder}: has no class folders; an image folder holds one subfolder of images per class "
                        f"(e.g. {folder}/cat/001.png, {folder}/dog/001.png)")
    names = tuple(p.name for p in subfolders) if class_names is None else tuple(class_names)
    paths, labels = [], []
    for sub in subfolders:
        files = image_files(sub)
        if not files:
            raise DataError(f"{sub}: the class folder {sub.name!r} holds no images")
        if sub.name not in names:
            raise DataError(f"{sub}: class {sub.name!r} was not among the training classes "
                            f"({', '.join(names)})")
        paths += files
        labels += [names.index(sub.name)] * len(files)
    x = read_images(paths, image_size=image_size, color_mode=color_mode, shape=shape)
    return ImageSet(x, np.asarray(labels, dtype=np.int64), [str(p.relative_to(folder)) for p in paths], names)


def read_unlabelled(folder: str | os.PathLike, *, image_size: Sequence[int] | None = None,
                    color_mode: str | None = None, shape: tuple[int, ...] | None = None) -> ImageSet:
    """New images to predict: a folder of image files (no labels), or of class subfolders (labelled)."""
    folder = Path(folder)
    subfolders = class_folders(folder)
    files = image_files(folder)
    if subfolders and not files:
        raise DataError(f"{folder}: holds class folders; read it with read_image_folder")
    if not files:
        raise DataError(f"{folder}: holds no images")
    x = read_images(files, image_size=image_size, color_mode=color_mode, shape=shape)
    return ImageSet(x, None, [p.name for p in files], ())


def image_shape(folder: str | os.PathLike, *, image_size: Sequence[int] | None = None,
                color_mode: str | None = None) -> tuple[int, ...]:
    """The per-image shape a folder's images become, from its first image alone (for a summary)."""
    subfolders = class_folders(folder)
    first = next((files[0] for sub in subfolders if (files := image_files(sub))), None)
    if first is None:
        raise DataError(f"{folder}: has no class folders with images")
    return tuple(read_images([first], image_size=image_size, color_mode=color_mode).shape[1:])
