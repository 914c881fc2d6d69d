"""Optuna and the storage of its studies: a database URL opened with one clear error per way it can fail.

Optuna is optional (``trainwell[tune]``): it is imported when a study runs, and its absence is
a ConfigError saying what to install. A study's storage is any database Optuna accepts: a SQLite
file beside the results by default, or a server (``postgresql://user:pw@host/db``) that workers
on several machines share; passwords are hidden in every message.
"""

from __future__ import annotations

import os
import random
import time
import warnings

from trainwell.errors import ConfigError


def load_optuna():
    """The optuna module, quiet but for warnings; a ConfigError when it is not installed."""
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError("trainwell tune needs Optuna: pip install 'trainwell[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def shown_url(url: str) -> str:
    """The URL with its password hidden, for messages and files."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: the error says so
        return url


def open_storage(url: str, *, heartbeat: int | None = None, grace: int | None = None, retries: int | None = None):
    """Optuna's RDB storage at ``url``, connected now, so a wrong URL is one clear error.

    ``heartbeat`` (seconds) has each running trial's worker record that it is alive; a trial silent for
    ``grace`` seconds is marked failed and run again, at most ``retries`` times (Optuna's
    RetryHeartbeatStaleTrialCallback). Workers that open a fresh database together race to create its
    tables; the losers wait a moment and find them made.
    """
    optuna = load_optuna()
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    url = driver_url(url)
    if url.split("?")[0] in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):  # a database that ends with the worker
        raise ConfigError(f"search.storage: {url!r} is a database in memory, lost when this worker ends and unseen "
                          "by any other; name a file (sqlite:///study.db) or a server (postgresql://...)")
    engine = None
    if url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": 10}}
    elif url.startswith("sqlite:"):  # several workers write one file: wait for its lock rather than fail
        engine = {"connect_args": {"timeout": 60}}
    options: dict = {}
    if heartbeat is not None:
        options = {"heartbeat_interval": heartbeat, "grace_period": grace,
                   "heartbeat_stale_trial_callback": _retry_callback(optuna, retries)}
    try:
        for attempt in range(RACE_ATTEMPTS):
            try:
                with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna: not the user's concern
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                    try:
                        return optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
                    except TypeError:  # Optuna before 4.9 names the callback failed_trial_callback
                        if "heartbeat_stale_trial_callback" not in options:
                            raise
                        options["failed_trial_callback"] = options.pop("heartbeat_stale_trial_callback")
                        return optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
            except (IntegrityError, ProgrammingError, OperationalError) as error:
                # SQLite says "table ... already exists" or "database is locked" (OperationalError),
                # PostgreSQL a duplicate key in pg_type or "relation ... already exists".
                if attempt == RACE_ATTEMPTS - 1 or not (isinstance(error, (IntegrityError, ProgrammingError))
                                                        or _is_creation_race(error)):
                    raise
                time.sleep(min(0.1 * 2 ** attempt, 2.0) * (0.5 + random.random()))
    except (ArgumentError, ValueError) as error:
        if "Could not parse" in str(error) or isinstance(error, ArgumentError):
            raise ConfigError(f"search.storage: {url!r} is not a database URL; e.g. sqlite:///study.db or "
                              "postgresql://user:password@host:5432/database") from None
        raise ConfigError(f"search.storage: cannot open {shown_url(url)} ({first_line(error)})") from None
    except ImportError:
        raise ConfigError(f"search.storage: {shown_url(url)} needs a database driver that is not installed; for "
                          "PostgreSQL: pip install 'trainwell[tune]' (psycopg2-binary)") from None
    except OperationalError as error:  # nothing answers there, or it refuses us
        raise ConfigError(f"search.storage: cannot reach {shown_url(url)} ({first_line(error)})") from None
    except Exception as error:  # a file that is not a study database, a damaged one
        advice = ("; if it is a damaged or foreign file, move it aside (the study's trials in it are lost) or pass "
                  "another --storage" if url.startswith("sqlite:") else "")
        raise ConfigError(f"search.storage: cannot open {shown_url(url)} ({first_line(error)}){advice}") from None


RACE_ATTEMPTS = 10  # backoff from 0.1 s doubling to 2 s: about 10 s in all


def _is_creation_race(error: BaseException) -> bool:
    """Whether a database error is another worker creating the tables at the same moment (not a database
    that cannot be reached)."""
    text = str(getattr(error, "orig", None) or error).lower()
    return "already exists" in text or "locked" in text or "duplicate" in text


def _retry_callback(optuna, retries: int | None):
    callback = (getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
                or optuna.storages.RetryFailedTrialCallback)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return callback(max_retry=retries)


def driver_url(url: str) -> str:
    """The URL as trainwell uses, prints and stores it: ``postgresql://`` names its driver,
    ``postgresql+psycopg2://`` (what ``trainwell[tune]`` installs; psycopg 3 where only it is), since
    SQLAlchemy 2.1 takes a bare ``postgresql://`` for psycopg 3 and fails without it, in
    ``optuna.load_study`` and optuna-dashboard too. A URL that names its driver is kept.

    >>> driver_url("postgresql+psycopg://user@host/db")
    'postgresql+psycopg://user@host/db'
    """
    return _absolute_sqlite(_postgresql_driver(url)) if isinstance(url, str) else url


def _absolute_sqlite(url: str) -> str:
    """``sqlite:///relative/study.db`` with its path made absolute, so that the URL trainwell prints
    and stores in best_trial.json opens the same file from any folder; other URLs as they are.

    >>> _absolute_sqlite("sqlite:////data/study.db")
    'sqlite:////data/study.db'
    """
    prefix = "sqlite:///"
    path, query = url[len(prefix):].partition("?")[::2] if url.startswith(prefix) else ("", "")
    if not path or path.startswith("/") or path == ":memory:":
        return url
    return prefix + os.path.abspath(path) + (f"?{query}" if query else "")


def _postgresql_driver(url: str) -> str:
    """``postgresql://`` with whichever driver is installed (SQLAlchemy's default changed from
    psycopg2 to psycopg 3 in 2.1); a URL that names its driver is left alone."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg")):
        if importlib.util.find_spec(module) is not None:
            return dialect + url[len("postgresql"):]
    return "postgresql+psycopg2" + url[len("postgresql"):]  # neither: the error names the package to install


def first_line(error: BaseException) -> str:
    """The first line of an error's message (the database driver's own error, when it carries one)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
