"""NumPy files of the user's own: ``.npz`` archives of named arrays, ``.npy`` files of one array each.

An ``.npz`` holds its parts under these keys (the first pair found of each part is read):

* training: ``x``/``y`` or ``x_train``/``y_train`` (as Keras' ``mnist.npz``);
* validation (optional): ``x_val``/``y_val`` or ``x_valid``/``y_valid``;
* test (optional): ``x_test``/``y_test``.

An ``.npy`` holds one array: the inputs, or (a second file) the targets. Object arrays are
refused (loading them would run pickled code). :func:`npz_shape` reads an array's shape from
the archive's header alone, so a summary need not decompress the data.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from trainwell.errors import DataError

__all__ = ["NPZ_KEYS", "read_npz", "read_npy", "npz_shape", "npy_shape", "npz_input_key"]

#: Each part of an ``.npz`` -> the ``(x, y)`` key pairs that may hold it, in the order they are looked for.
NPZ_KEYS = {
    "train": (("x", "y"), ("x_train", "y_train")),
    "validation": (("x_val", "y_val"), ("x_valid", "y_valid")),
    "test": (("x_test", "y_test"),),
}
#: The arrays of new inputs to predict, in the order they are looked for (a held-out file or a whole archive).
INPUT_KEYS = ("x", "x_test", "x_train")


def _open(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> DataError:
    """The error for a file NumPy cannot read. Bytes that are neither ``.npy`` nor a zip archive NumPy takes
    for a pickle, and its message suggests unpickling them: never say that of a file of unknown origin."""
    if isinstance(error, ValueError) and "pickled" in str(error):
        return DataError(f"{path}: is not a NumPy file (an .npz archive of arrays or an .npy array, as numpy.savez "
                         "and numpy.save write them)")
    return DataError(f"{path}: cannot be read as a NumPy file ({str(error).splitlines()[0]})")


def _array(archive, path: Path, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as error:  # an object array: allow_pickle=False refuses it
        raise DataError(f"{path}: array {key!r} cannot be read ({error}); save numbers, not Python objects") from None


def read_npz(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The parts (``"train"``, and ``"validation"``, ``"test"`` where present) of an ``.npz``, as ``(x, y)``."""
    path = Path(path)
    archive = _open(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds one array (an .npy file); data.format = \"npy\" reads it")
    with archive:
        keys = set(archive.files)
        parts = {}
        for part, pairs in NPZ_KEYS.items():
            for x_key, y_key in pairs:
                if x_key in keys or y_key in keys:
                    if not (x_key in keys and y_key in keys):
                        raise DataError(f"{path}: holds {x_key if x_key in keys else y_key!r} but not "
                                        f"{y_key if x_key in keys else x_key!r}; the {part} part needs both")
                    x, y = _array(archive, path, x_key), _array(archive, path, y_key)
                    if len(x) != len(y):
                        raise DataError(f"{path}: {x_key!r} has {len(x)} examples but {y_key!r} has {len(y)}")
                    parts[part] = (x, y)
                    break
    if "train" not in parts:
        raise DataError(f"{path}: holds no training arrays; expected keys x and y (or x_train and y_train), "
                        f"found: {', '.join(sorted(keys)) or 'none'}")
    return parts


def npz_input_key(path: str | os.PathLike) -> tuple[str, str | None]:
    """The keys of new inputs in an ``.npz``, and of their targets when it holds them: ``("x", "y")``..."""
    path = Path(path)
    archive = _open(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds one array (an .npy file), not an .npz archive")
    with archive:
        keys = set(archive.files)
    key = next((k for k in INPUT_KEYS if k in keys), None)
    if key is None:
        raise DataError(f"{path}: holds no inputs; expected an array named {', '.join(INPUT_KEYS)}, "
                        f"found: {', '.join(sorted(keys)) or 'none'}")
    target = "y" + key[1:]
    return key, target if target in keys else None


def read_npz_arrays(path: str | os.PathLike, keys: tuple[str, ...]) -> list[np.ndarray]:
    """The arrays ``keys`` of an ``.npz``."""
    path = Path(path)
    with _open(path) as archive:
        return [_array(archive, path, key) for key in keys]


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """The one array of an ``.npy`` file."""
    path = Path(path)
    array = _open(path)
    if isinstance(array, np.lib.npyio.NpzFile):
        array.close()
        raise DataError(f"{path}: is an .npz archive of several arrays; data.format = \"npz\" reads it")
    return array


def npy_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape of an ``.npy``'s array, from its header (the data stay on disk)."""
    path = Path(path)
    try:
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise _unreadable(path, error) from None


def npz_shape(path: str | os.PathLike, key: str) -> tuple[int, ...] | None:
    """The shape of array ``key`` of an ``.npz``, from the array's header in the zip (nothing decompressed
    beyond it); None when the archive has no such array."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if f"{key}.npy" not in archive.namelist():
                return None
            with archive.open(f"{key}.npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                return tuple(read_header(member)[0])
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot be read as an .npz archive ({str(error).splitlines()[0]})") from None
