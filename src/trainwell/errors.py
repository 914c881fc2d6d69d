"""The exceptions trainwell raises for user mistakes.

Each kind of mistake has its own type so the CLI can catch them at its edge and
print one line, while Python users can catch exactly what they expect.
"""


class TrainwellError(Exception):
    """Base class: a problem the user can fix (bad input), not a bug."""


class ConfigError(TrainwellError, ValueError):
    """A configuration value is missing, has the wrong type or is not allowed."""


class ArrayError(ConfigError):
    """An array given to fit, evaluate or predict has the wrong shape, type or values (names the array)."""


class DataError(TrainwellError):
    """A dataset cannot be found, read, downloaded or verified."""


class ModelFileError(TrainwellError):
    """A saved model file is missing, corrupted or does not match the model."""


class StoreError(TrainwellError):
    """A run store (or a tuning study's database) is damaged, full, read-only, locked or not a store; names the file."""


class TrainingDiverged(TrainwellError):
    """The loss became nan or infinite; the message says when and which checkpoint is the last good one."""


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` as a message quotes it: cut after ``limit`` characters (a crafted file's value can be huge).

    >>> shown("x" * 100, limit=5)
    "'xxxx..."
    """
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def reject_unknown(given, allowed, *, what: str) -> None:
    """ConfigError naming the arguments in ``given`` that ``allowed`` lacks (``what``: e.g. "activation 'elu'").

    >>> reject_unknown({"alpha": 1}, ("alpha",), what="activation 'elu'")
    """
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                          f"for {what}; allowed: {', '.join(allowed) or 'none'}")
