"""Atomic file writes, sets of files replaced together, and the one way trainwell writes JSON.

Everything trainwell saves (models, histories, configs) goes through here: the bytes
are written to a temporary file in the destination folder, flushed to disk, and
renamed over the target in one step, so readers see either the old file or the new one.
Every failure to write is an OSError naming the file the caller asked for (a full disk
included, which safetensors reports as its own error type).

A run's outputs are a set (the model beside the history and metrics it was trained with):
:func:`replacing_set` writes them into a hidden folder first and moves them in only once
all are on disk, so a full disk or a kill never leaves a new model beside old metrics.

Temporary names carry the writer's process id, so :func:`remove_leftovers` can clear the
ones a killed process left behind without touching those of a writer still running.

Every JSON text trainwell writes (files, model metadata, the run store) comes from
:func:`json_text`, which writes a non-finite float (nan, inf, -inf: a diverged loss) as
``null``, so any JSON reader can parse it; Python's own ``json`` would write ``NaN``.

This is one module: atomic writes, sets of files and the clean-up of their leftovers share one
naming of temporary files (split, its format would be spread over the writer and the cleaner);
JSON comes along as the one text format those writers write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import shutil
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
        make_folder(target.parent)
        fd, tmp = temp_file_beside(target, suffix=".tmp")
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
    except OSError as error:
        raise _naming(error, target) from None
    os.close(fd)
    try:
        try:
            yield tmp
        except Exception as error:  # noqa: BLE001 - only a writer's disk error is translated
            disk = _as_os_error(error)
            if disk is None:
                raise
            raise disk from None
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


_OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")


def make_folder(folder: Path) -> None:
    """``mkdir -p folder``; where a file stands in the way, a NotADirectoryError that names it
    (mkdir's own error, "File exists", names neither the file nor the problem)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise NotADirectoryError(errno.ENOTDIR, f"{blocking} is a file, not a folder", str(folder)) from None


def _as_os_error(error: Exception) -> OSError | None:
    """A writer's I/O failure that is not an OSError, as one: safetensors raises SafetensorError
    ("I/O error: No space left on device (os error 28)") when the disk fills, and matplotlib's PDF
    writer an AttributeError while it handles the OSError of a full disk (found in the chain)."""
    seen = error.__cause__ or error.__context__
    while seen is not None:
        if isinstance(seen, OSError):
            return OSError(seen.errno, seen.strerror or str(seen)) if seen.errno else OSError(errno.EIO, str(seen))
        seen = seen.__cause__ or seen.__context__
    if type(error).__name__ != "SafetensorError":
        return None
    found = _OS_ERROR_CODE.search(str(error))
    if found is None:
        return OSError(errno.EIO, str(error))
    code = int(found.group(1))
    return OSError(code, os.strerror(code))


# .model.safetensors.4242-1a2b3c4d.tmp: the target's name, the writer's pid, a random part, the suffix.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(tmp|part)$")
_OLD_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.(tmp|part)$")  # before names carried the pid: no writer is left
_SET_FOLDER = re.compile(r"^\.outputs\.(?P<pid>\d+)-[0-9a-f]{8}\.new$")
MANIFEST = "manifest.json"


def temp_file_beside(target: Path, *, suffix: str) -> tuple[int, Path]:
    """A new, empty hidden file next to ``target`` (an open descriptor and its path), with the mode
    the umask gives (0644 under umask 022), as any tool's files have; ``tempfile.mkstemp`` makes 0600."""
    for _ in range(100):
        candidate = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(candidate, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


def _naming(error: OSError, target: Path) -> OSError:
    """The same error, but naming the file the user asked for rather than a temporary one."""
    return type(error)(error.errno, error.strerror or str(error), str(target))


def _running(pid: int) -> bool:
    """Whether process ``pid`` is alive (this one always is)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or a pid this system cannot check: leave its files alone
    return True


def remove_leftovers(folder: str | os.PathLike) -> None:
    """Finish or clear what killed trainwell processes left in ``folder``.

    A set of outputs that was complete (its manifest written) is moved into place, as the
    killed process would have; an incomplete one, and temporary files, are removed. Only
    trainwell's own temporary names are touched, and only those of processes no longer running.
    """
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as error:
        raise _naming(error, folder) from None
    for entry in entries:
        if _SET_FOLDER.match(entry.name) and entry.is_dir() and not entry.is_symlink():
            if _abandoned_set(entry):
                _move_set_into_place(entry, folder)
        elif (found := _TEMP_NAME.match(entry.name)) and not _running(int(found["pid"])) or (
                found is None and _OLD_TEMP_NAME.match(entry.name)):
            if entry.is_file() or entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def finish_pending_sets(folder: str | os.PathLike) -> None:
    """Move in a complete set of files (its manifest written) that a killed process left in ``folder``,
    so a reader sees the new set whole; nothing else is touched, and a folder that cannot be
    changed (read-only) is read as it is."""
    with contextlib.suppress(OSError):
        for entry in Path(folder).iterdir():
            if _abandoned_set(entry) and (entry / MANIFEST).is_file():
                _move_set_into_place(entry, Path(folder))


def _abandoned_set(entry: Path) -> bool:
    """Whether ``entry`` is the staging folder of a :func:`replacing_set` whose writer is no longer running."""
    found = _SET_FOLDER.match(entry.name)
    return found is not None and not _running(int(found["pid"]))


@contextlib.contextmanager
def replacing_set(folder: str | os.PathLike, *, family: tuple[str, ...]) -> Iterator[Path]:
    """Yield a hidden folder inside ``folder``; the files written there replace ``folder``'s as one set.

    ``family`` names every file the set may hold: one of them that this set does not write
    is removed from ``folder`` (an earlier run's ``diagnostics.json``), so no file of an
    older set is left beside the new ones. Nothing in ``folder`` changes until every file
    is on disk and the manifest (written last) lists them; then each is renamed into place,
    which needs no space. A failure while writing removes the hidden folder and raises an
    OSError naming the file in ``folder``; after a kill, :func:`remove_leftovers` rolls the
    set forward (manifest written) or away (not).
    """
    folder = Path(folder)
    try:
        make_folder(folder)
        stage = folder / f".outputs.{os.getpid()}-{secrets.token_hex(4)}.new"
        stage.mkdir()
    except OSError as error:
        raise _naming(error, Path(error.filename or folder)) from None
    try:
        yield stage
        written = sorted(entry.name for entry in stage.iterdir() if entry.name in family)
        strays = [entry.name for entry in stage.iterdir() if entry.name not in family]
        if strays:
            raise ValueError(f"replacing_set: {strays} are not in the set's family {family}")
        atomic_write_text(stage / MANIFEST, json_text({"files": written, "family": list(family)}) + "\n")
    except OSError as error:
        shutil.rmtree(stage, ignore_errors=True)
        where = Path(error.filename) if error.filename else stage
        named = folder / where.name if where.parent == stage else where
        raise type(error)(error.errno, f"{error.strerror or error}; nothing in {folder} was changed",
                          str(named)) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _move_set_into_place(stage, folder)


def _move_set_into_place(stage: Path, folder: Path) -> None:
    """Rename a complete set's files from ``stage`` into ``folder``, remove the rest of its family
    there, and then ``stage`` itself. Each step can be repeated, so a kill in between is finished later.
    A ``stage`` without a readable manifest was never complete: it is removed, ``folder`` unchanged."""
    try:
        manifest = json.loads((stage / MANIFEST).read_text(encoding="utf-8"))
        files, family = list(manifest["files"]), list(manifest["family"])
        if not all(isinstance(name, str) and _plain_name(name) for name in files + family):
            raise ValueError("not plain file names")
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(stage, ignore_errors=True)
        return
    for name in files:
        if (stage / name).exists():
            os.replace(stage / name, folder / name)
    for name in family:
        if name not in files:
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
    _sync_folder(folder)
    (stage / MANIFEST).unlink()
    shutil.rmtree(stage, ignore_errors=True)


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so the renames in it survive a power cut (where the system allows it)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable_folder(folder: str | os.PathLike) -> None:
    """OSError naming ``folder`` unless files can be written there, checked by making (and removing) an
    empty temporary file; folders it had to make for that are removed again, so nothing is left.

    Cheap, so a command checks before hours of training or a long sweep, not after.
    """
    folder = Path(folder)
    made: list[Path] = []
    missing = folder
    while not missing.exists() and missing != missing.parent:
        made.append(missing)
        missing = missing.parent
    try:
        if missing.exists() and not missing.is_dir() or folder.is_file():
            blocker = missing if not missing.is_dir() else folder
            raise NotADirectoryError(errno.ENOTDIR, f"{blocker} is a file, not a folder", str(folder))
        for path in reversed(made):
            path.mkdir()
        fd, probe = temp_file_beside(folder / "probe", suffix=".tmp")
        os.close(fd)
        probe.unlink()
    except OSError as error:
        raise _naming(error, folder) from None
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()


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
