"""Download one dataset file, safely.

Three promises, because a half-downloaded dataset is worse than none:

* **Retries and mirrors.** Each URL is tried a few times with a growing pause
  (network hiccups, overloaded servers); "404 Not Found" and content that fails
  its checksum are not retried but passed on to the next mirror.
* **Checked before saved.** The SHA-256 of the decompressed content must match
  the expected digest before the file gets its final name.
* **Atomic.** Data is written to a temporary file in the destination folder and
  renamed with :func:`os.replace`, so the final name only ever holds a complete,
  verified file -- even if the process is killed half way.

Only the standard library (:mod:`urllib`) speaks HTTP, so there is no extra
dependency. A progress bar (rich) appears when stderr is a terminal.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from trainwell.data.idx import read_content
from trainwell.errors import DataError
from trainwell.fileio import temp_file_beside

__all__ = ["download_file", "ATTEMPTS", "BACKOFF_S", "TIMEOUT_S"]

log = logging.getLogger(__name__)

#: Tries per URL before moving on to the next mirror.
ATTEMPTS = 3
#: Pause before the second try, in seconds; doubled before each further try.
BACKOFF_S = 1.0
#: Seconds to wait for a connection or for the next chunk of data.
TIMEOUT_S = 30.0

_CHUNK = 1 << 20
_USER_AGENT = "trainwell (dataset download)"


class _RetryableError(Exception):
    """A failure that may go away if we try the same URL again."""


class _MirrorError(Exception):
    """A failure that trying the same URL again will not fix."""


def _fetch(url: str, out, timeout: float, progress, label: str) -> None:
    """Stream ``url`` into the open binary file ``out``."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            task = progress.add_task(label, total=total) if progress else None
            received = 0
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    if progress:
                        progress.update(task, completed=received)
            finally:
                if progress:
                    progress.remove_task(task)
            if total is not None and received != total:
                raise _RetryableError(f"connection closed after {received} of {total} bytes")
    except urllib.error.HTTPError as exc:
        message = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in (408, 429):
            raise _RetryableError(message) from None
        raise _MirrorError(message) from None
    except urllib.error.URLError as exc:
        raise _RetryableError(f"cannot connect ({exc.reason})") from None
    except http.client.IncompleteRead as exc:
        raise _RetryableError(f"connection closed after {len(exc.partial)} bytes of a chunk") from None
    except (TimeoutError, http.client.HTTPException, OSError) as exc:
        raise _RetryableError(f"{type(exc).__name__}: {exc}") from None


def _check(path: Path, sha256: str | None) -> None:
    """Raise :class:`_MirrorError` unless ``path``'s decompressed content has digest ``sha256``."""
    try:
        content = read_content(path)
    except DataError:
        raise _MirrorError("the downloaded file is not a valid gzip stream (truncated or damaged)") from None
    if sha256 is None:
        return
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256.lower():
        raise _MirrorError(
            f"checksum mismatch: the SHA-256 of the decompressed content is {actual}, expected {sha256}"
        )


def _progress_bar(enabled: bool | None):
    """A rich progress bar on stderr, or None when quiet."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike,
    *,
    sha256: str | None,
    attempts: int | None = None,
    backoff_s: float | None = None,
    timeout_s: float | None = None,
    progress: bool | None = None,
) -> Path:
    """Download the first URL that works into ``dest`` and return ``dest``.

    ``urls`` are mirrors of the same file, tried in order; each is tried up to
    ``attempts`` times, pausing ``backoff_s``, ``2 * backoff_s``, ... in between.
    ``sha256`` is the digest of the *decompressed* content (None skips the
    check). ``progress`` shows a bar on stderr (None: only if it is a terminal).
    Defaults come from the module's ``ATTEMPTS``, ``BACKOFF_S`` and ``TIMEOUT_S``.

    Raises :class:`~trainwell.errors.DataError` listing what went wrong with
    each URL if none works; nothing is then left under ``dest``.
    """
    attempts = ATTEMPTS if attempts is None else attempts
    backoff_s = BACKOFF_S if backoff_s is None else backoff_s
    timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
    dest = Path(dest)
    if not urls:
        raise DataError(f"Cannot download {dest.name}: no URL is known for it.")
    if attempts < 1:
        raise DataError(f"Cannot download {dest.name}: attempts must be at least 1, got {attempts}.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"Cannot create the download folder {dest.parent}: {exc.strerror or exc}. "
            f"Set TRAINWELL_CACHE to a writable directory."
        ) from None

    failures: list[str] = []
    bar = _progress_bar(progress)
    if bar:
        bar.start()
    try:
        for url in urls:
            for attempt in range(1, attempts + 1):
                try:
                    _download_once(url, dest, sha256, timeout_s, bar)
                    return dest
                except _MirrorError as exc:
                    failures.append(f"{url}: {exc}")
                    break
                except _RetryableError as exc:
                    if attempt == attempts:
                        failures.append(f"{url}: {exc} (tried {attempts} times)")
                        break
                    pause = backoff_s * 2 ** (attempt - 1)
                    log.info("Download of %s failed (%s); retrying in %.1f s", url, exc, pause)
                    time.sleep(pause)
    finally:
        if bar:
            bar.stop()
    reasons = "\n".join(f"  - {failure}" for failure in failures)
    raise DataError(
        f"Could not download {dest.name} into {dest.parent}; nothing was saved under that name.\n"
        f"{reasons}\n"
        f"Check the network connection and try again, or get the file another way and point "
        f"TRAINWELL_DATA at the directory holding it."
    )


def _download_once(url: str, dest: Path, sha256: str | None, timeout_s: float, bar) -> None:
    """One try: fetch into a temporary file next to ``dest``, check it, rename it."""
    try:
        fd, tmp = temp_file_beside(dest, suffix=".part")
    except OSError as exc:
        raise DataError(f"Cannot write into {dest.parent}: {exc.strerror or exc}.") from None
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, timeout_s, bar, dest.name)
        _check(tmp, sha256)
        os.replace(tmp, dest)
    except OSError as exc:  # disk full, permission denied, ...
        raise DataError(f"Cannot save {dest}: {exc.strerror or exc}.") from None
    finally:
        tmp.unlink(missing_ok=True)
