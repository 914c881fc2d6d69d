"""The catalog by id: every section's entries in the chapter's order, and the claims across them.

Each section module lists what it adds (``ENTRIES``, ``CLAIMS``); this module collects them, so
the sections know nothing of the registry and the registry nothing of how an entry runs.
"""

from __future__ import annotations

from trainwell.catalog.sections import (activations, batchnorm, exercise8, exercise9, exercise10, regularization,
                                        schedules, transfer)
from trainwell.catalog.vocabulary import Claim, Entry

SECTIONS = (activations, batchnorm, transfer, schedules, regularization, exercise8, exercise9, exercise10)


def _collect() -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for section in SECTIONS:
        for entry in section.ENTRIES:
            if entry.id in found:
                raise ValueError(f"catalog id registered twice: {entry.id}")
            found[entry.id] = entry
    return found


_ENTRIES = _collect()
CLAIMS: list[Claim] = [claim for section in SECTIONS for claim in section.CLAIMS]


def entries() -> list[Entry]:
    return list(_ENTRIES.values())


def ids() -> list[str]:
    return [entry.id for entry in entries()]


def get(entry_id: str) -> Entry:
    from trainwell.errors import ConfigError

    if entry_id not in _ENTRIES:
        raise ConfigError(f"unknown catalog id {entry_id!r}; `trainwell reproduce --list` shows them")
    return _ENTRIES[entry_id]


def with_dependencies(selected: list[str]) -> list[str]:
    """The selected ids plus what they need, in catalog order."""
    wanted: set[str] = set()

    def add(entry_id: str) -> None:
        if entry_id not in wanted:
            wanted.add(entry_id)
            for need in get(entry_id).needs:
                add(need)

    for entry_id in selected:
        add(entry_id)
    return [entry_id for entry_id in ids() if entry_id in wanted]
