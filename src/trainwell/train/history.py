"""History: one record per epoch (loss, metrics, validation figures, learning rate, time).

A list of plain dicts, so it serializes to JSON and CSV as it is and reads back the same.
Per-step series (the learning rate each step used, and the momentum when it is
scheduled) sit beside them in ``history.steps``, a dict of lists; the JSON file then
holds ``{"epochs": [...], "steps": {...}}`` (the CSV holds the epochs only). A non-finite
figure (the loss of a diverged run) is written as ``null``, which keeps the file valid
JSON, and reads back as nan.

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

from trainwell.fileio import atomic_write_text, json_text, null_to_nan


class History:
    """Per-epoch records of a fit, in order."""

    def __init__(self, records: Iterable[dict[str, Any]] = (), steps: dict[str, list[Any]] | None = None):
        self.records: list[dict[str, Any]] = [dict(r) for r in records]
        self.steps: dict[str, list[Any]] = {key: list(values) for key, values in (steps or {}).items()}

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
        return isinstance(other, History) and self.records == other.records and self._series() == other._series()

    def _series(self) -> dict[str, list[Any]]:
        return {key: values for key, values in self.steps.items() if values}

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
        text = json_text(self.records, indent=1)
        if self._series():  # one line per series: thousands of steps stay readable
            series = ",\n".join(f" {json_text(key)}: {json_text(values, indent=None)}"
                                 for key, values in self._series().items())
            text = f'{{"epochs": {text},\n"steps": {{\n{series}\n}}}}'
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> "History":
        text = str(text_or_path)
        if not text.lstrip().startswith(("[", "{")):
            with open(text_or_path, encoding="utf-8") as handle:
                text = handle.read()
        data = null_to_nan(json.loads(text))  # a non-finite figure was written as null
        if isinstance(data, dict):
            return cls(data.get("epochs", []), data.get("steps"))
        return cls(data)

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.keys(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        text = buffer.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text
