"""The run store: one SQLite file that records every catalog run.

A run is one (experiment, seed, budget). The store keeps its config, library
versions, device, per-epoch metrics (by phase: a two-phase fine-tuning has two),
final metrics, the series its figures need (activation curves, per-layer
statistics, the LR finder's sweep, ...), timings and its status. Only a run marked
``finished`` counts: starting a run again replaces whatever an interrupted or
failed attempt left behind, so ``trainwell reproduce`` skips what is finished and
redoes the rest.

Several processes may write at once (``reproduce --jobs``): the file is in WAL mode
and every write is its own short transaction.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from trainwell.fileio import json_text, null_to_nan

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    seed INTEGER NOT NULL,
    budget TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | finished | failed
    config TEXT,                     -- JSON
    versions TEXT,                   -- JSON: trainwell, torch, numpy, python
    device TEXT,
    started REAL,                    -- unix time
    finished REAL,
    duration_s REAL,
    progress TEXT,                   -- JSON: phase, epoch, epochs, step, steps (while running)
    error TEXT,
    UNIQUE (experiment, seed, budget)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    phase TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,           -- JSON: loss, accuracy, val_loss, val_accuracy, lr, time, ...
    PRIMARY KEY (run_id, phase, epoch)
);
CREATE TABLE IF NOT EXISTS results (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS series (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,              -- JSON
    PRIMARY KEY (run_id, name)
);
"""


def _json(value: Any) -> str:
    return json_text(value, indent=None)  # valid JSON: a non-finite figure is null


class RunStore:
    """``RunStore(path)``: open (or create) a store; ``DIR/runs.sqlite`` for ``reproduce --out DIR``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, tuple(args))

    # ------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _json(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    # ------------------------------------------------------------ writing a run
    def status(self, experiment: str, seed: int, budget: str) -> str | None:
        row = self._db.execute("SELECT status FROM runs WHERE experiment = ? AND seed = ? AND budget = ?",
                               (experiment, seed, budget)).fetchone()
        return None if row is None else row["status"]

    def is_finished(self, experiment: str, seed: int, budget: str) -> bool:
        return self.status(experiment, seed, budget) == "finished"

    def start_run(self, experiment: str, seed: int, budget: str, *, config: Any = None,
                  versions: dict[str, str] | None = None, device: str | None = None) -> int:
        """A fresh run record; an unfinished (or failed) earlier attempt and everything it logged is dropped."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM runs WHERE experiment = ? AND seed = ? AND budget = ?",
                             (experiment, seed, budget))
            cursor = self._db.execute(
                "INSERT INTO runs (experiment, seed, budget, status, config, versions, device, started) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (experiment, seed, budget, _json(config), _json(versions or {}), device, time.time()))
        return int(cursor.lastrowid)

    def log_epoch(self, run_id: int, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?)", (run_id, phase, epoch, _json(metrics)))

    def set_progress(self, run_id: int, progress: dict[str, Any]) -> None:
        self._write("UPDATE runs SET progress = ? WHERE id = ?", (_json(progress), run_id))

    def log_results(self, run_id: int, results: dict[str, Any]) -> None:
        rows = [(run_id, key, None if value is None else float(value)) for key, value in results.items()]
        self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)

    def log_series(self, run_id: int, name: str, data: Any) -> None:
        self._write("INSERT OR REPLACE INTO series VALUES (?, ?, ?)", (run_id, name, _json(data)))

    def set_config(self, run_id: int, config: Any) -> None:
        self._write("UPDATE runs SET config = ? WHERE id = ?", (_json(config), run_id))

    def finish(self, run_id: int) -> None:
        now = time.time()
        self._write("UPDATE runs SET status = 'finished', finished = ?, duration_s = ? - started, progress = NULL "
                    "WHERE id = ?", (now, now, run_id))

    def fail(self, run_id: int, error: str) -> None:
        now = time.time()
        self._write("UPDATE runs SET status = 'failed', finished = ?, duration_s = ? - started, error = ? "
                    "WHERE id = ?", (now, now, error, run_id))

    # ------------------------------------------------------------ reading
    def runs(self, *, budget: str | None = None, experiment: str | None = None,
             status: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        for column, value in (("budget", budget), ("experiment", experiment), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        rows = []
        for row in self._db.execute(sql, args):
            record = dict(row)
            for key in ("config", "versions", "progress"):
                record[key] = json.loads(record[key]) if record[key] else None
            rows.append(record)
        return rows

    def run(self, experiment: str, seed: int, budget: str) -> dict[str, Any] | None:
        found = [r for r in self.runs(budget=budget, experiment=experiment) if r["seed"] == seed]
        return found[0] if found else None

    def budgets(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT budget FROM runs GROUP BY budget ORDER BY MAX(id)")]

    def epochs(self, run_id: int) -> dict[str, list[dict[str, Any]]]:
        """Per phase, the epoch records in order."""
        phases: dict[str, list[dict[str, Any]]] = {}
        for row in self._db.execute("SELECT phase, epoch, metrics FROM epochs WHERE run_id = ? ORDER BY rowid",
                                    (run_id,)):
            phases.setdefault(row["phase"], []).append({"epoch": row["epoch"], **null_to_nan(json.loads(row["metrics"]))})
        for records in phases.values():
            records.sort(key=lambda r: r["epoch"])
        return phases

    def results(self, run_id: int) -> dict[str, float]:
        return {row["key"]: (math.nan if row["value"] is None else row["value"])
                for row in self._db.execute("SELECT key, value FROM results WHERE run_id = ?", (run_id,))}

    def series(self, run_id: int) -> dict[str, Any]:
        return {row["name"]: json.loads(row["data"])
                for row in self._db.execute("SELECT name, data FROM series WHERE run_id = ?", (run_id,))}


def store_path(out_dir: str | os.PathLike) -> Path:
    """Where ``reproduce --out DIR`` keeps its store."""
    return Path(out_dir) / "runs.sqlite"
