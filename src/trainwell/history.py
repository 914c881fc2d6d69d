"""History: one record per epoch (loss, metrics, validation figures, learning rate, time).

A list of plain dicts, so it serializes to JSON and CSV as it is and reads back the same.

>>> h = History([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
>>> h["loss"]
[0.5, 0.25]
>>> History.from_json(h.to_json()) == h
True
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Iterable, Iterator

from trainwell.fileio import atomic_write_text


class History:
    """Per-epoch records of a fit, in order."""

    def __init__(self, records: Iterable[dict[str, Any]] = ()):
        self.records: list[dict[str, Any]] = [dict(r) for r in records]

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str) -> list[Any]:
        """All epochs' values of one figure, e.g. ``history["val_accuracy"]``."""
        return [record.get(key) for record in self.records]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.records == other.records

    def __repr__(self) -> str:
        return f"History({len(self.records)} epochs, keys={self.keys()})"

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1] if self.records else {}

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps(self.records, indent=1)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> "History":
        text = str(text_or_path)
        if not text.lstrip().startswith("["):
            with open(text_or_path, encoding="utf-8") as handle:
                text = handle.read()
        return cls(json.loads(text))

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.keys(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        text = buffer.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text
