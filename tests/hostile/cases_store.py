"""Hostile run stores: a damaged, full, read-only or foreign ``runs.sqlite`` (and Optuna's ``study.db``)
under ``trainwell reproduce``, ``report`` and ``tune``.

Each case builds a small store with the library's own API (one finished run with 40 epoch rows,
results and a long series, so the file spans many pages, and one unfinished run that
``reproduce`` redoes), damages it, and runs the command on it. A damaged store must end in one
line naming the store; only an empty (zero-length) file is a store that may be used as it is.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
from pathlib import Path
from typing import Callable, Iterator

from outcomes import CLEAR, HANDLED, TRACEBACK, WRONG, Case, cli_outcome, run_cli

AREA = "store"
PAGE = 4096

TUNE_CONFIG = """
name = "hostile_search"
seed = 0
[data]
name = "digits"
validation_size = 200
train_size = 300
[model]
layers = [{ type = "flatten" }, { type = "dense", units = 8, activation = "relu" },
          { type = "dense", units = 10, activation = "softmax" }]
[optimizer]
name = "sgd"
lr = 0.1
[train]
epochs = 1
batch_size = 64
device = "cpu"
[search]
trials = 1
pruner = "none"
sampler = "random"
sampler_seed = 0
[search.space]
"optimizer.lr" = { low = 0.01, high = 0.5, log = true }
"""


def build_store(path: Path) -> None:
    """A store as reproduce leaves it: leaky_relu finished (40 epochs, results, a long series),
    selu_constants unfinished (as if killed), the budget in the meta table."""
    from trainwell.store import RunStore

    path.parent.mkdir(parents=True, exist_ok=True)
    with RunStore(path) as store:
        store.set_meta("budget", "smoke")
        store.set_meta("seeds", [42])
        run = store.start_run("leaky_relu", 42, "smoke", config={"seed": 42, "train": {"epochs": 40}},
                              versions={"trainwell": "0", "torch": "0"}, device="cpu")
        for epoch in range(1, 41):
            store.log_epoch(run, "train", epoch, {"loss": 1.0 / epoch, "accuracy": 0.5 + epoch / 100,
                                                  "val_loss": 1.1 / epoch, "val_accuracy": 0.5 + epoch / 101})
        store.log_results(run, {"val_accuracy": 0.9, "test_accuracy": 0.89, "train_time_s": 1.0})
        store.log_series(run, "lr", {"step": list(range(1500)), "value": [0.01] * 1500})
        store.finish(run)
        store.start_run("selu_constants", 42, "smoke", config=None, versions={}, device="cpu")


# ----------------------------------------------------------------------------- damage
def truncate(size: Callable[[int], int]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[:max(0, min(len(data), size(len(data))))])
    return damage


def overwrite(offset: Callable[[int], int], count: int, seed: int = 0) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        start = offset(len(data))
        data[start:start + count] = random.Random(seed).randbytes(count)
        path.write_bytes(bytes(data[:len(data)]))
    return damage


def replace_with(content: bytes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.write_bytes(content)
    return damage


def directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")


def sql(*statements: str) -> Callable[[Path], None]:
    """Run raw SQL on the store (no trainwell code): a foreign schema, a bad value in a column."""
    def damage(path: Path) -> None:
        db = sqlite3.connect(path)
        for statement in statements:
            db.execute(statement)
        db.commit()
        db.close()
    return damage


def foreign_database(path: Path) -> None:
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)")
    db.execute("INSERT INTO studies VALUES (1, 'mine')")
    db.commit()
    db.close()


# what is done to the store -> (name, damage, environment); environment: a context manager factory
def _plain(path: Path):
    return contextlib.nullcontext()


@contextlib.contextmanager
def _patched_connect(target: Path, wrap: Callable[[sqlite3.Connection], object] | None = None,
                     read_only: bool = False) -> Iterator[None]:
    """sqlite3.connect to ``target`` (the store's, and SQLAlchemy's through ``sqlite3.dbapi2``) opens it
    read-only, or wraps the connection: for what root cannot produce with permissions, and a full disk."""
    import sqlite3.dbapi2 as dbapi2

    real = sqlite3.connect

    def connect(database, *args, **kwargs):
        if Path(str(database)).resolve() != target.resolve():
            return real(database, *args, **kwargs)
        if read_only:
            kwargs["uri"] = True
            database = f"file:{Path(str(database)).resolve()}?mode=ro"
        db = real(database, *args, **kwargs)
        return wrap(db) if wrap is not None else db

    sqlite3.connect = dbapi2.connect = connect
    try:
        yield
    finally:
        sqlite3.connect = dbapi2.connect = real


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE")


def _refuse_writes(sql: str) -> None:
    if _is_write(sql):
        raise sqlite3.OperationalError("database or disk is full")  # what SQLite says when a write finds no space


class _FullCursor:
    def __init__(self, cursor):
        self._cursor = cursor

    def execute(self, sql, *args):
        _refuse_writes(sql)
        return self._cursor.execute(sql, *args)

    def executemany(self, sql, *args):
        _refuse_writes(sql)
        return self._cursor.executemany(sql, *args)

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def __iter__(self):
        return iter(self._cursor)


class _FullConnection:
    """A connection on a full disk: reads work, every write fails as SQLite's own does."""

    def __init__(self, db: sqlite3.Connection):
        object.__setattr__(self, "_db", db)

    def execute(self, sql, *args):
        if _is_write(sql):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def executemany(self, sql, *args):
        _refuse_writes(sql)
        return self._db.executemany(sql, *args)

    def executescript(self, script):
        if any(_is_write(part) for part in script.split(";")):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.executescript(script)

    def cursor(self, *args):
        return _FullCursor(self._db.cursor(*args))

    def __enter__(self):
        return self._db.__enter__()

    def __exit__(self, *exc):
        return self._db.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._db, name)

    def __setattr__(self, name, value):
        setattr(self._db, name, value)


def _is_write(sql: str) -> bool:
    """A statement that needs space: but CREATE ... IF NOT EXISTS of a table that is there does not."""
    text = " ".join(sql.split()).upper()
    return text.startswith(WRITES) and "IF NOT EXISTS" not in text


def _full(path: Path):
    return _patched_connect(path, wrap=_FullConnection)


@contextlib.contextmanager
def _read_only_file(path: Path) -> Iterator[None]:
    path.chmod(0o444)
    try:
        if os.geteuid() == 0:  # permissions do not stop root: open it read-only
            with _patched_connect(path, read_only=True):
                yield
        else:
            yield
    finally:
        path.chmod(0o644)


@contextlib.contextmanager
def _read_only_folder(path: Path) -> Iterator[None]:
    folder = path.parent
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:
            with _patched_connect(path, read_only=True):
                yield
        else:
            yield
    finally:
        folder.chmod(0o755)


DAMAGES: list[tuple[str, Callable[[Path], None], Callable]] = [
    ("zero-length file", truncate(lambda n: 0), _plain),
    ("truncated to 50 bytes", truncate(lambda n: 50), _plain),
    ("truncated to 100 bytes (the header)", truncate(lambda n: 100), _plain),
    ("truncated to 1000 bytes", truncate(lambda n: 1000), _plain),
    ("truncated to one page", truncate(lambda n: PAGE), _plain),
    ("truncated to two pages", truncate(lambda n: 2 * PAGE), _plain),
    ("truncated to half", truncate(lambda n: n // 2 // PAGE * PAGE), _plain),
    ("truncated by one page", truncate(lambda n: n - PAGE), _plain),
    ("truncated by 100 bytes", truncate(lambda n: n - 100), _plain),
    ("truncated by one byte", truncate(lambda n: n - 1), _plain),
    ("garbage over the magic string", overwrite(lambda n: 0, 16), _plain),
    ("garbage over the header fields", overwrite(lambda n: 16, 84), _plain),
    ("garbage over the schema page", overwrite(lambda n: 100, 400, seed=1), _plain),
    ("garbage over the second page", overwrite(lambda n: PAGE, PAGE, seed=2), _plain),
    ("garbage over the last page", overwrite(lambda n: n - PAGE, PAGE, seed=3), _plain),
    ("garbage in the middle", overwrite(lambda n: n // 2, 64, seed=4), _plain),
    ("random bytes, same size", lambda p: p.write_bytes(random.Random(5).randbytes(p.stat().st_size)), _plain),
    ("a text file", replace_with(b"these are my notes, not a database\n" * 20), _plain),
    ("a directory in place of the file", directory, _plain),
    ("read-only file", lambda p: None, _read_only_file),
    ("read-only folder", lambda p: None, _read_only_folder),
    ("full disk", lambda p: None, _full),
    ("another program's database", foreign_database, _plain),
    ("runs table without its columns", sql("DROP TABLE runs", "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)"),
     _plain),
    ("epochs table missing", sql("DROP TABLE epochs"), _plain),
    ("bad JSON in runs.config", sql("UPDATE runs SET config = '{not json'"), _plain),
    ("bad JSON in runs.versions", sql("UPDATE runs SET versions = '[1, 2'"), _plain),
    ("bad JSON in runs.progress", sql("UPDATE runs SET progress = 'nan nan'"), _plain),
    ("bad JSON in epochs.metrics", sql("UPDATE epochs SET metrics = '{\"loss\": }' WHERE epoch = 7"), _plain),
    ("epochs.metrics not an object", sql("UPDATE epochs SET metrics = '[1, 2]' WHERE epoch = 3"), _plain),
    ("bad JSON in series.data", sql("UPDATE series SET data = '{\"step\": [1, 2'"), _plain),
    ("bad JSON in meta.value", sql("UPDATE meta SET value = 'smoke' WHERE key = 'budget'"), _plain),
    ("a result that is not a number", sql("UPDATE results SET value = 'high' WHERE key = 'val_accuracy'"), _plain),
]

HANDLED_AS_EMPTY = {"zero-length file"}  # an empty file is an empty store: used as it is
HARMLESS_FOR_REPRODUCE = {"bad JSON in meta.value"}  # reproduce writes the budget anew, never reading it
REPORT_MAY_WORK = {"read-only file", "read-only folder", "full disk"}  # report only reads the store
NOT_READ_BY_TUNE = {"bad JSON in runs.config"}  # tune only adds its trials' runs


# ----------------------------------------------------------------------------- commands
def _store_ok(path: Path, *, redone: bool) -> bool:
    """The store opens, passes SQLite's check and (``redone``) has selu_constants finished."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        ok = db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        status = db.execute("SELECT status FROM runs WHERE experiment = 'selu_constants'").fetchone()
        db.close()
    except sqlite3.Error:
        return False
    return ok and (not redone or (status is not None and status[0] == "finished"))


def reproduce_case(name: str, damage, environment) -> Case:
    def run(folder: Path) -> str:
        out = folder / "out"
        path = out / "runs.sqlite"
        build_store(path)
        damage(path)
        with environment(path):
            result = run_cli(["reproduce", "selu_constants", "--budget", "smoke", "--out", out, "--jobs", "1"])
        correct = None
        if name in HANDLED_AS_EMPTY or name in HARMLESS_FOR_REPRODUCE:
            correct = lambda: _store_ok(path, redone=True) and (out / "report.md").exists()  # noqa: E731
        return _named(result, cli_outcome(result, correct=correct), path)
    return Case(AREA, f"reproduce: {name}", run)


def report_case(name: str, damage, environment) -> Case:
    def run(folder: Path) -> str:
        out = folder / "out"
        path = out / "runs.sqlite"
        build_store(path)
        damage(path)
        with environment(path):
            result = run_cli(["report", out])
        correct = None
        if name in HANDLED_AS_EMPTY or name in REPORT_MAY_WORK:
            correct = lambda: (out / "report.md").exists()  # noqa: E731
        return _named(result, cli_outcome(result, correct=correct), path)
    return Case(AREA, f"report: {name}", run)


def tune_case(name: str, damage, environment, *, file: str = "runs.sqlite") -> Case:
    def run(folder: Path) -> str:
        config = folder / "search.toml"
        config.write_text(TUNE_CONFIG)
        out = folder / "tune"
        path = out / file
        if file == "runs.sqlite":
            build_store(path)
        else:
            out.mkdir(parents=True)
            assert run_cli(["tune", config, "-o", out, "-q"]).rc == 0  # a study with one trial
            (out / "runs.sqlite").unlink()
        damage(path)
        with environment(path):
            result = run_cli(["tune", config, "-o", out, "-q", "--trials", "2"])
        correct = None
        if name in HANDLED_AS_EMPTY or (name in NOT_READ_BY_TUNE and file == "runs.sqlite"):
            correct = lambda: (out / "best_config.json").exists()  # noqa: E731
        return _named(result, cli_outcome(result, correct=correct), path)
    return Case(AREA, f"tune ({file}): {name}", run)


def _named(result, outcome: str, path: Path) -> str:
    """A clear error must name the store it is about."""
    if outcome == CLEAR and path.name not in result.stderr and str(path.parent) not in result.stderr:
        return TRACEBACK
    return outcome


TUNE_DAMAGES = {"zero-length file", "truncated to 1000 bytes", "truncated by one page", "garbage over the second page",
                "a text file", "a directory in place of the file", "read-only file", "full disk",
                "another program's database", "bad JSON in runs.config"}
STUDY_DAMAGES = {"truncated to 1000 bytes", "truncated by one page", "garbage over the schema page", "a text file",
                 "a directory in place of the file", "read-only file", "full disk"}


def concurrent_reproduce(folder: Path) -> str:
    """Two ``reproduce`` into one folder at once: one waits or says who holds the folder; no run is lost."""
    import subprocess
    import sys

    out = folder / "out"
    argv = [sys.executable, "-m", "trainwell.cli", "reproduce", "leaky_relu", "--budget", "smoke",
            "--out", str(out), "--jobs", "1"]
    procs = [subprocess.Popen(argv, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    done = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    if any("Traceback" in stderr for _, _, stderr in done):
        return TRACEBACK
    refused = [stderr for rc, _, stderr in done if rc != 0]
    if len(refused) == 2 or (refused and not ("in use" in refused[0] and str(out) in refused[0]
                                              and "error: " in refused[0] and "runs failed" not in refused[0])):
        return WRONG
    if not _store_ok(out / "runs.sqlite", redone=False):
        return WRONG
    db = sqlite3.connect(out / "runs.sqlite")
    rows = db.execute("SELECT r.status, COUNT(e.epoch) FROM runs r LEFT JOIN epochs e ON e.run_id = r.id "
                      "WHERE r.experiment = 'leaky_relu' GROUP BY r.id").fetchall()
    db.close()
    if rows != [("finished", 1)]:  # the smoke budget: one epoch
        return WRONG
    return CLEAR if refused else HANDLED


def cases(full: bool) -> list[Case]:
    """Every damage under reproduce and report, some under tune (its store, Optuna's study file), and two
    reproduce at once; the sample: five each of reproduce and report, two of tune, and the concurrent one."""
    import importlib.util

    with_tune = importlib.util.find_spec("optuna") is not None
    found: dict[str, list[Case]] = {"reproduce": [], "report": [], "tune": []}
    for name, damage, environment in DAMAGES:
        found["reproduce"].append(reproduce_case(name, damage, environment))
        found["report"].append(report_case(name, damage, environment))
        if with_tune and name in TUNE_DAMAGES:
            found["tune"].append(tune_case(name, damage, environment))
        if with_tune and name in STUDY_DAMAGES:
            found["tune"].append(tune_case(name, damage, environment, file="study.db"))
    concurrent = Case(AREA, "two reproduce into one folder", concurrent_reproduce)
    if full:
        return [*found["reproduce"], *found["report"], *found["tune"], concurrent]
    rng = random.Random(15)
    sample = []
    for command, count in (("reproduce", 5), ("report", 5), ("tune", 2)):
        pool = found[command]
        sample += sorted(rng.sample(pool, min(count, len(pool))), key=pool.index)
    return [*sample, concurrent]
