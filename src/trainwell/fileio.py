"""Atomic file writes, and the one way trainwell writes JSON.

Everything trainwell saves (models, histories, configs) goes through here: the bytes
are written to a temporary file in the destination folder, flushed to disk, and
renamed over the target in one step, so readers see either the old file or the new one.

Every JSON text trainwell writes (files, model metadata, the run store) comes from
:func:`json_text`, which writes a non-finite float (nan, inf, -inf: a diverged loss) as
``null``, so any JSON reader can parse it; Python's own ``json`` would write ``NaN``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file_beside(target, suffix=".tmp")
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
    except OSError as error:
        raise _naming(error, target) from None
    os.close(fd)
    try:
        yield tmp
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # a writer (safetensors) made a new 0600 file in its place
            tmp.chmod(mode)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise _naming(error, target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_file_beside(target: Path, *, suffix: str) -> tuple[int, Path]:
    """A new, empty hidden file next to ``target`` (an open descriptor and its path), with the mode
    the umask gives (0644 under umask 022), as any tool's files have; ``tempfile.mkstemp`` makes 0600."""
    for _ in range(100):
        candidate = target.parent / f".{target.name}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(candidate, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


def _naming(error: OSError, target: Path) -> OSError:
    """The same error, but naming the file the user asked for rather than a temporary one."""
    return type(error)(error.errno, error.strerror or str(error), str(target))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def finite_json_value(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, NumPy/torch values as plain lists and numbers,
    tuples as lists and paths as strings: what :func:`json_text` encodes."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json_value(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy arrays and scalars, tensors
        return finite_json_value(value.tolist())
    return value


def json_text(value: Any, *, indent: int | None = 1, sort_keys: bool = False) -> str:
    """JSON text of ``value``: valid JSON always, a non-finite float written as ``null``.

    >>> json_text({"loss": float("nan"), "accuracy": 0.5}, indent=None)
    '{"loss": null, "accuracy": 0.5}'
    """
    return json.dumps(finite_json_value(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 1) -> None:
    """Write ``value`` as JSON (see :func:`json_text`) to ``path`` atomically, with a final newline."""
    atomic_write_text(path, json_text(value, indent=indent) + "\n")


def null_to_nan(value: Any) -> Any:
    """The figures of JSON written by :func:`json_text` as they were: each null (a non-finite float) as nan."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {key: null_to_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [null_to_nan(item) for item in value]
    return value
