"""The run store: one SQLite file that records runs: every catalog run (``trainwell reproduce``)
and every trial of ``trainwell tune``.

A run is one (experiment, seed, budget). The store keeps its config, library
versions, device, per-epoch metrics (by phase: a two-phase fine-tuning has two),
final metrics, the series its figures need (activation curves, per-layer
statistics, the LR finder's sweep, ...), timings and its status. Only a run marked
``finished`` counts: starting a run again replaces whatever an interrupted or
failed attempt left behind, so ``trainwell reproduce`` skips what is finished and
redoes the rest.

Several processes may write at once (``reproduce --jobs``): the file is in WAL mode
and every write is its own short transaction.

Whatever goes wrong with the file (damaged, full, read-only, a folder, another program's
database, a column that no longer decodes) is one :class:`~trainwell.errors.StoreError`
naming the file, what is wrong and what to do: every method goes through one translation.
The store cannot be rebuilt from the runs' folders: they keep the saved models (and a
config run's history and metrics), but the results of the procedures, the per-epoch rows
of their fits and the figures' series live only here.

It is one module: the schema, the translation of SQLite's errors and the one class that
uses both change together (a new column is a schema line, a method and its translation).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from trainwell.checks import is_number
from trainwell.errors import StoreError
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
    train_s REAL,                    -- of duration_s, the seconds in training (the fits' epochs)
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


COLUMNS = {  # what every table of a store must have (SCHEMA's columns)
    "meta": {"key", "value"},
    "runs": {"id", "experiment", "seed", "budget", "status", "config", "versions", "device", "started", "finished",
             "duration_s", "progress", "error"},
    "epochs": {"run_id", "phase", "epoch", "metrics"},
    "results": {"run_id", "key", "value"},
    "series": {"run_id", "name", "data"},
}

LATER_COLUMNS = {"train_s": "REAL"}  # runs' columns that older stores lack: added when such a store opens

REPRODUCE_ADVICE = ("it cannot be rebuilt from the runs' folders (they keep the saved models, not the results, "
                    "learning curves and figures): move it aside (mv {path} {path}.damaged) and run the same "
                    "`trainwell reproduce` again, which starts a new store and redoes every run")

Method = TypeVar("Method", bound=Callable[..., Any])


def _json(value: Any) -> str:
    return json_text(value, indent=None)  # valid JSON: a non-finite figure is null


def _translated(method: Method) -> Method:
    """Any SQLite error of ``method`` as one StoreError naming the store and what to do."""
    @functools.wraps(method)
    def call(self: "RunStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise self.error(error) from None
        except UnicodeDecodeError as error:  # a text value whose bytes were damaged: SQLite hands them back as they are
            raise self.damaged(f"a text value is not UTF-8: {error.reason} at byte {error.start}") from None
    return call  # type: ignore[return-value]


class RunStore:
    """``RunStore(path)``: open (or create) a store; ``DIR/runs.sqlite`` for ``reproduce --out DIR``.

    ``advice``: what to do with a damaged store, said in its error (``{path}`` is filled in);
    the default is reproduce's.
    """

    def __init__(self, path: str | os.PathLike, *, advice: str = REPRODUCE_ADVICE):
        self.path = Path(path)
        self.advice = advice
        self._db: sqlite3.Connection | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except StoreError:
            self.close()
            raise

    @_translated
    def _open(self) -> None:
        """Connect, check that the file is a sound store (or empty: then make one)."""
        if self.path.is_dir():
            raise StoreError(f"{self.path}: the run store is a folder, not a file; move it aside (or use another "
                             "folder) and run the same command again")
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        else:
            self._check_schema(tables)
            self._add_later_columns()
            if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            lines = [line for problem in problems for line in problem.splitlines() if not line.startswith("***")]
            raise self.damaged(f"SQLite's check: {'; '.join(lines[:2])}")

    def _check_schema(self, tables: set[str]) -> None:
        """A StoreError unless the file has every table of a store with its columns."""
        if "runs" not in tables and "meta" not in tables:
            shown = ", ".join(sorted(t for t in tables if not t.startswith("sqlite_"))[:5])
            raise StoreError(f"{self.path}: not a trainwell run store (a database with the tables {shown}); "
                             "leave it to the program it belongs to and use another folder")
        for table, columns in COLUMNS.items():
            if table not in tables:
                raise self.damaged(f"its table {table!r} is missing")
            found = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if not columns <= found:
                raise self.damaged(f"its table {table!r} lacks the columns {', '.join(sorted(columns - found))}")

    def _add_later_columns(self) -> None:
        """Give a store made before a column was added (``runs.train_s``) that column, empty for its runs;
        a read-only store is read as it is (a missing column reads as None)."""
        found = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        for column, kind in LATER_COLUMNS.items():
            if column not in found:
                try:
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as error:
                    if "readonly" not in str(error).lower():
                        raise

    def damaged(self, what: str) -> StoreError:
        """The error for a store whose contents are wrong: what is wrong, and the advice."""
        return StoreError(f"{self.path}: the run store is damaged ({what}); "
                          + self.advice.format(path=self.path))

    def error(self, error: sqlite3.Error) -> StoreError:
        """A SQLite error in the user's words: which store, what is wrong, what to do."""
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        lowered = text.lower()
        if "readonly" in lowered or "read-only" in lowered:
            return StoreError(f"{self.path}: the run store is read-only ({text}); make the file and its folder "
                              "writable, or use another folder")
        if "full" in lowered:
            return StoreError(f"{self.path}: no space left to write the run store ({text}); free some space and run "
                              "the same command again (the finished runs are kept)")
        if "locked" in lowered or "busy" in lowered:
            return StoreError(f"{self.path}: the run store stayed locked by another process for a minute ({text}); "
                              "run the command again once the other one has ended")
        if "unable to open" in lowered:
            return StoreError(f"{self.path}: cannot open the run store ({text}); check that its folder is writable")
        if isinstance(error, (sqlite3.DatabaseError, sqlite3.OperationalError)):
            return self.damaged(text)
        return StoreError(f"{self.path}: the run store cannot be used ({text})")

    def _decode(self, text: str, where: str) -> Any:
        """A JSON column's value; a StoreError naming the column when it does not decode."""
        try:
            return json.loads(text)
        except ValueError as error:
            raise self.damaged(f"{where} is not valid JSON: {error}") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @_translated
    def _write(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, tuple(args))

    # ------------------------------------------------------------ meta
    @_translated
    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _json(value)))

    @_translated
    def meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else self._decode(row["value"], f"meta {key!r}")

    # ------------------------------------------------------------ writing a run
    @_translated
    def status(self, experiment: str, seed: int, budget: str) -> str | None:
        row = self._db.execute("SELECT status FROM runs WHERE experiment = ? AND seed = ? AND budget = ?",
                               (experiment, seed, budget)).fetchone()
        return None if row is None else row["status"]

    def is_finished(self, experiment: str, seed: int, budget: str) -> bool:
        return self.status(experiment, seed, budget) == "finished"

    @_translated
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

    @_translated
    def log_epoch(self, run_id: int, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?)", (run_id, phase, epoch, _json(metrics)))

    @_translated
    def set_progress(self, run_id: int, progress: dict[str, Any]) -> None:
        self._write("UPDATE runs SET progress = ? WHERE id = ?", (_json(progress), run_id))

    @_translated
    def log_results(self, run_id: int, results: dict[str, Any]) -> None:
        rows = [(run_id, key, None if value is None else float(value)) for key, value in results.items()]
        self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)

    @_translated
    def log_series(self, run_id: int, name: str, data: Any) -> None:
        self._write("INSERT OR REPLACE INTO series VALUES (?, ?, ?)", (run_id, name, _json(data)))

    @_translated
    def set_config(self, run_id: int, config: Any) -> None:
        self._write("UPDATE runs SET config = ? WHERE id = ?", (_json(config), run_id))

    @_translated
    def finish(self, run_id: int, *, train_s: float | None = None) -> None:
        """Mark the run finished; ``train_s``: the seconds of its duration spent training, when measured."""
        now = time.time()
        self._write("UPDATE runs SET status = 'finished', finished = ?, duration_s = ? - started, train_s = ?, "
                    "progress = NULL WHERE id = ?", (now, now, train_s, run_id))

    @_translated
    def fail(self, run_id: int, error: str) -> None:
        now = time.time()
        self._write("UPDATE runs SET status = 'failed', finished = ?, duration_s = ? - started, error = ? "
                    "WHERE id = ?", (now, now, error, run_id))

    # ------------------------------------------------------------ reading
    @_translated
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
                where = f"the {key} of run {record['id']} ({record['experiment']} seed {record['seed']})"
                record[key] = self._decode(record[key], where) if record[key] else None
            rows.append(record)
        return rows

    def run(self, experiment: str, seed: int, budget: str) -> dict[str, Any] | None:
        found = [r for r in self.runs(budget=budget, experiment=experiment) if r["seed"] == seed]
        return found[0] if found else None

    @_translated
    def budgets(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT budget FROM runs GROUP BY budget ORDER BY MAX(id)")]

    @_translated
    def epochs(self, run_id: int) -> dict[str, list[dict[str, Any]]]:
        """Per phase, the epoch records in order."""
        phases: dict[str, list[dict[str, Any]]] = {}
        for row in self._db.execute("SELECT phase, epoch, metrics FROM epochs WHERE run_id = ? ORDER BY rowid",
                                    (run_id,)):
            where = f"the metrics of epoch {row['epoch']} ({row['phase']}) of run {run_id}"
            metrics = self._decode(row["metrics"], where)
            if not isinstance(metrics, dict):
                raise self.damaged(f"{where} are not a JSON object")
            phases.setdefault(row["phase"], []).append({"epoch": row["epoch"], **null_to_nan(metrics)})
        for records in phases.values():
            records.sort(key=lambda r: r["epoch"])
        return phases

    @_translated
    def results(self, run_id: int) -> dict[str, float]:
        found = {}
        for row in self._db.execute("SELECT key, value FROM results WHERE run_id = ?", (run_id,)):
            value = row["value"]
            if value is not None and (not is_number(value)):
                raise self.damaged(f"the result {row['key']!r} of run {run_id} is not a number: {value!r}")
            found[row["key"]] = math.nan if value is None else value
        return found

    @_translated
    def series(self, run_id: int) -> dict[str, Any]:
        return {row["name"]: self._decode(row["data"], f"the series {row['name']!r} of run {run_id}")
                for row in self._db.execute("SELECT name, data FROM series WHERE run_id = ?", (run_id,))}


def store_path(out_dir: str | os.PathLike) -> Path:
    """Where ``reproduce --out DIR`` keeps its store."""
    return Path(out_dir) / "runs.sqlite"
