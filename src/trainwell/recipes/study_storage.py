"""Optuna and the storage of its studies: a database URL opened with one clear error per way it can fail.

Optuna is optional (``trainwell[tune]``): it is imported when a study runs, and its absence is
a ConfigError saying what to install. A study's storage is any database Optuna accepts: a SQLite
file beside the results by default, or a server (``postgresql://user:pw@host/db``) that workers
on several machines share; passwords are hidden in every message.
"""

from __future__ import annotations

import random
import time

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


def open_storage(url: str):
    """Optuna's RDB storage at ``url``, connected now, so a wrong URL is one clear error."""
    optuna = load_optuna()
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    engine = None
    if url.startswith("postgresql"):
        url = _postgresql_driver(url)
        engine = {"connect_args": {"connect_timeout": 10}}
    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine)
            except (IntegrityError, ProgrammingError):
                # Workers starting together on a fresh database race to create Optuna's tables
                # (PostgreSQL: duplicate key in pg_type); the loser finds them made on a retry.
                if attempt == 4:
                    raise
                time.sleep(0.2 + random.random())
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
        advice = (f"; if it is a damaged or foreign file, move it aside (the study's trials in it are lost) or pass "
                  "another --storage" if url.startswith("sqlite:") else "")
        raise ConfigError(f"search.storage: cannot open {shown_url(url)} ({first_line(error)}){advice}") from None


def _postgresql_driver(url: str) -> str:
    """``postgresql://`` with whichever driver is installed (SQLAlchemy's default changed from
    psycopg2 to psycopg 3 in 2.1); a URL that names its driver is left alone."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg")):
        if importlib.util.find_spec(module) is not None:
            return dialect + url[len("postgresql"):]
    return url


def first_line(error: BaseException) -> str:
    """The first line of an error's message (the database driver's own error, when it carries one)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
