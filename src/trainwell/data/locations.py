"""Where trainwell looks for a dataset's files, and in which order.

Datasets are large and people already have them somewhere, so trainwell looks
before it downloads. The places, first match wins:

1. the ``path`` argument (a directory) -- you said where, so it comes first;
2. each directory in the ``TRAINWELL_DATA`` environment variable
   (``os.pathsep``-separated: ``:`` on Linux and macOS, ``;`` on Windows);
3. the user cache (``<user cache dir>/trainwell/datasets``, or
   ``$TRAINWELL_CACHE/datasets`` when that variable is set), where downloads go;
4. system dataset directories such as ``/usr/share/datasets``, which Debian's
   ``dataset-fashion-mnist`` package fills;
5. otherwise the files are downloaded into the cache (unless offline).

Inside each directory ``D`` the files may sit in a sub-folder named after the
dataset (``D/fashion-mnist/`` or ``D/fashion_mnist/``) or in ``D`` itself, and
each file may be gzip-compressed (``.gz``, as served) or already decompressed.
A set only counts when all its files are in the same folder.

MNIST and Fashion-MNIST use the *same file names*, so files lying directly in
``D`` could belong to either. For those (not for files in a named sub-folder)
the small training-label file is checked against the dataset's checksum and
the folder is skipped if it belongs to another dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainwell.data.idx import read_content
from trainwell.data.registry import DatasetSpec, get_spec
from trainwell.errors import DataError

__all__ = [
    "Location",
    "locate",
    "cache_dir",
    "data_dirs",
    "is_offline",
    "SYSTEM_DIRS",
    "not_found_message",
]

#: System-wide dataset directories, searched after the cache. Debian's
#: ``dataset-*`` packages install into ``/usr/share/datasets/<name>/``.
SYSTEM_DIRS: tuple[str, ...] = ("/usr/local/share/datasets", "/usr/share/datasets")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def cache_dir() -> Path:
    """The folder downloads go to: ``$TRAINWELL_CACHE/datasets`` or the user cache."""
    root = os.environ.get("TRAINWELL_CACHE")
    if not root:
        import platformdirs  # imported late: only needed when no override is set

        root = platformdirs.user_cache_dir("trainwell")
    return Path(root).expanduser() / "datasets"


def data_dirs() -> list[Path]:
    """The directories listed in ``TRAINWELL_DATA``, in order (empty entries ignored)."""
    value = os.environ.get("TRAINWELL_DATA", "")
    return [Path(entry).expanduser() for entry in value.split(os.pathsep) if entry.strip()]


def is_offline(offline: bool | None = None) -> bool:
    """Whether downloads are forbidden: the argument if given, else ``TRAINWELL_OFFLINE``."""
    if offline is not None:
        return bool(offline)
    value = os.environ.get("TRAINWELL_OFFLINE", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DataError(
        f"TRAINWELL_OFFLINE={os.environ['TRAINWELL_OFFLINE']!r} is not understood; "
        f"use 1/true/yes/on to forbid downloads or 0/false/no/off (or unset it) to allow them."
    )


@dataclass(frozen=True)
class Location:
    """Where a dataset's files are, or where they would be downloaded to.

    ``origin`` says which rule matched: ``"path argument"``, ``"TRAINWELL_DATA"``,
    ``"cache"``, ``"system"``, ``"bundled"`` (shipped with a library, no files),
    ``"download"`` (not found; the missing files would be downloaded into
    ``directory``) or ``"missing"`` (not found and offline).
    """

    name: str
    origin: str
    directory: Path | None
    files: Mapping[str, Path] = field(default_factory=dict)
    to_download: tuple[str, ...] = ()
    searched: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """True when the data can be used without downloading anything."""
        return self.origin not in ("download", "missing")

    @property
    def source(self) -> str:
        """A short human-readable description of where the data comes from."""
        if self.origin == "bundled":
            return f"{self.name} (bundled with scikit-learn)"
        return f"{self.directory} ({self.origin})"


def _present_files(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    """The dataset's files present in ``folder``: role -> path (``.gz`` preferred)."""
    present = {}
    for file in spec.files:
        for candidate in file.alternative_names:
            if (folder / candidate).is_file():
                present[file.role] = folder / candidate
                break
    return present


def _belongs_to(spec: DatasetSpec, files: Mapping[str, Path]) -> bool:
    """Whether loose files are this dataset's, judged by the small train-label file."""
    try:
        expected = spec.file("train_labels").sha256
        path = files["train_labels"]
    except KeyError:
        return True
    if expected is None:
        return True
    try:
        actual = hashlib.sha256(read_content(path)).hexdigest()
    except DataError:
        return True  # a damaged file: let loading report it clearly
    return actual == expected


def _search(spec: DatasetSpec, base: Path, origin: str, notes: list[str]) -> dict[str, Path] | None:
    """Look for the complete file set in ``base`` and its named sub-folders."""
    if not base.is_dir():
        notes.append(f"{base} ({origin}): no such directory")
        return None
    noted = len(notes)
    for folder in [base / sub for sub in spec.folder_names] + [base]:
        if not folder.is_dir():
            continue
        present = _present_files(spec, folder)
        if len(present) == len(spec.files):
            if folder == base and not _belongs_to(spec, present):
                notes.append(
                    f"{folder} ({origin}): has files named like {spec.name}'s, but their labels "
                    f"are another dataset's (put {spec.title} in a {spec.folder_names[0]}/ sub-folder)"
                )
                continue
            return present
        if present:
            missing = [f.filename for f in spec.files if f.role not in present]
            notes.append(
                f"{folder} ({origin}): has {len(present)} of {len(spec.files)} files, "
                f"missing {', '.join(missing)}"
            )
    if len(notes) == noted:
        subs = ", ".join(f"{sub}/" for sub in spec.folder_names)
        notes.append(f"{base} ({origin}): no {spec.title} files in it or in its sub-folder {subs}")
    return None


def locate(name: str, *, path: str | os.PathLike | None = None, offline: bool | None = None) -> Location:
    """Find where dataset ``name`` is, without reading or downloading anything.

    Returns a :class:`Location`; when nothing is found, its ``origin`` is
    ``"download"`` (or ``"missing"`` if offline) and ``files`` says where each
    file would be saved. Raises :class:`~trainwell.errors.DataError` only for a
    bad argument (unknown name, ``path`` that is not a directory).
    """
    spec = get_spec(name)
    offline = is_offline(offline)
    if spec.bundled is not None:
        return Location(spec.name, "bundled", None)

    places: list[tuple[Path, str]] = []
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_dir():
            what = "is a file" if explicit.exists() else "does not exist"
            raise DataError(
                f"path={str(path)!r} {what}; give the directory that holds the {spec.title} files "
                f"(or a directory with a {spec.folder_names[0]}/ sub-folder holding them)."
            )
        places.append((explicit, "path argument"))
    places += [(folder, "TRAINWELL_DATA") for folder in data_dirs()]
    cache = cache_dir()
    places.append((cache, "cache"))
    places += [(Path(folder), "system") for folder in SYSTEM_DIRS]

    notes: list[str] = []
    seen: set[Path] = set()
    for base, origin in places:
        key = base.resolve()
        if key in seen:
            continue
        seen.add(key)
        found = _search(spec, base, origin, notes)
        if found is not None:
            folder = next(iter(found.values())).parent
            return Location(spec.name, origin, folder, found, searched=tuple(notes))

    # Not found: the files would go to the cache's named sub-folder. Files an
    # earlier, interrupted download already put there are kept.
    target = cache / spec.folder_names[0]
    present = _present_files(spec, target) if target.is_dir() else {}
    files = {f.role: present.get(f.role, target / f.filename) for f in spec.files}
    to_download = tuple(f.role for f in spec.files if f.role not in present)
    origin = "missing" if offline else "download"
    return Location(spec.name, origin, target, files, to_download, tuple(notes))


def not_found_message(location: Location, reason: str) -> str:
    """The error text for a dataset that is not on disk: where we looked, how to fix it."""
    spec = get_spec(location.name)
    lines = [f"Dataset {spec.name!r} ({spec.title}) was not found, and {reason}.", "Looked in:"]
    lines += [f"  - {note}" for note in location.searched]
    names = ", ".join(f.filename for f in spec.files)
    lines.append("To get it, do one of:")
    lines.append(
        f"  - put the files ({names}; .gz or decompressed) in a directory, or in its "
        f"{spec.folder_names[0]}/ sub-folder, and set TRAINWELL_DATA to that directory "
        f"(or pass path=...)"
    )
    if spec.debian_package:
        lines.append(f"  - on Debian or Ubuntu: sudo apt install {spec.debian_package}")
    if spec.mirrors:
        lines.append(
            f"  - allow downloading (offline=False, TRAINWELL_OFFLINE unset): the files come "
            f"from {spec.mirrors[0]} into {location.directory}"
        )
    return "\n".join(lines)
