"""Read and write the IDX file format used by MNIST and Fashion-MNIST.

An IDX file is a tiny header followed by raw numbers:

* 2 zero bytes,
* 1 byte giving the type of every number (0x08 means unsigned byte, ...),
* 1 byte giving the number of dimensions ``ndim``,
* ``ndim`` big-endian 32-bit sizes,
* then the numbers themselves, big-endian, in C order.

The datasets are distributed gzip-compressed (``.gz``), but people also
decompress them by hand, so both forms are read. Which one a file is gets
decided by its first bytes rather than its name, since a gzip stream always
starts with ``1f 8b`` and an IDX file always with ``00 00``.

Every problem (missing file, damaged gzip stream, wrong header, too few or too
many bytes) is raised as :class:`~trainwell.errors.DataError` naming the file,
because a NumPy reshape error says nothing about which download went wrong.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from trainwell.errors import DataError

__all__ = ["read_idx", "write_idx", "read_content", "parse_idx", "IDX_TYPES"]

#: The IDX type byte -> the NumPy dtype of the numbers as stored (big-endian).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _type_names() -> str:
    return ", ".join(f"0x{code:02X} ({dtype.name})" for code, dtype in IDX_TYPES.items())


def read_content(path: str | os.PathLike) -> bytes:
    """Return the bytes of ``path``, decompressed if the file is gzip-compressed.

    This is the "content" whose SHA-256 the dataset checksums refer to: the
    compressed bytes differ between copies of the same data (compression level,
    timestamps), the decompressed ones do not.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"Data file {path} does not exist.") from None
    except IsADirectoryError:
        raise DataError(f"Data file {path} is a directory, expected a file.") from None
    except OSError as exc:
        raise DataError(f"Cannot read data file {path}: {exc.strerror or exc}.") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(
            f"Data file {path} is a truncated gzip stream (the download or copy was "
            f"cut short); delete it and get it again."
        ) from None
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"Data file {path} is a damaged gzip stream ({exc}); delete it and get it again."
        ) from None


def parse_idx(data: bytes, source: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Turn the (decompressed) bytes of an IDX file into an array.

    ``source`` only serves error messages. The result shares memory with
    ``data`` when the numbers are single bytes (no copy, so reading 60,000
    images is fast) and is then read-only; wider types are converted to the
    machine's byte order.
    """
    if len(data) < 4:
        raise DataError(
            f"Data file {source} is too short to be an IDX file ({len(data)} bytes, "
            f"the header alone needs at least 4)."
        )
    zero, type_code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00":
        if data.startswith(_GZIP_MAGIC):
            what = "it is still gzip-compressed (decompress it first)"
        else:
            what = f"it starts with bytes {data[:4].hex(' ')}"
        raise DataError(
            f"Data file {source} is not an IDX file: {what}; an IDX file starts with "
            f"00 00 <type> <number of dimensions>."
        )
    if type_code not in IDX_TYPES:
        raise DataError(
            f"Data file {source} has unknown IDX type byte 0x{type_code:02X}; "
            f"allowed: {_type_names()}."
        )
    if ndim == 0:
        raise DataError(f"Data file {source} declares 0 dimensions; an IDX file needs at least 1.")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"Data file {source} is truncated inside its header: {ndim} dimensions need "
            f"{header_size} header bytes, the file has {len(data)}."
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "followed by extra bytes"
        raise DataError(
            f"Data file {source} is {problem}: its header declares shape {shape} of "
            f"{dtype.name}, i.e. {expected} bytes of data, but {actual} bytes follow "
            f"the header."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    if not dtype.isnative and dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    Raises :class:`~trainwell.errors.DataError` naming the file if it is
    missing, not IDX, a damaged gzip stream, or has the wrong number of bytes.
    """
    return parse_idx(read_content(path), Path(path))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    Mostly useful for making small test files. The gzip header carries no
    timestamp, so the same array always gives the same bytes.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        allowed = ", ".join(dtype.newbyteorder("=").name for dtype in IDX_TYPES.values())
        raise DataError(f"Cannot write {path}: dtype {array.dtype} has no IDX type; allowed: {allowed}.")
    if not 1 <= array.ndim <= 255:
        raise DataError(f"Cannot write {path}: IDX needs 1 to 255 dimensions, the array has {array.ndim}.")
    if any(size >= 2**32 for size in array.shape):
        raise DataError(f"Cannot write {path}: IDX sizes must be below 2**32, got shape {array.shape}.")
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        size.to_bytes(4, "big") for size in array.shape
    )
    data = header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise DataError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return path
