"""The lock of a reproduce folder: one reproduce at a time works in it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from trainwell.errors import StoreError

LOCK_NAME = "reproduce.lock"


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/reproduce.lock`` while reproduce works in ``out``; a StoreError names the process that holds it.

    Two reproduce in one folder would redo each other's runs (starting a run drops the record
    the other is writing) and fail them. The lock is an OS lock on the file (flock), so it goes
    with its process however that ends: a lock file left by a killed reproduce is simply taken.
    The file holds the holder's process id, for the message.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no lock
        yield
        return
    path = out / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise StoreError(f"{out} is in use by another trainwell reproduce (process {holder or 'unknown'}, which "
                             f"holds {path}); wait for it to end, or use another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
