"""Argument checks: an integer in a range, a number in a range, a boolean, one of some choices, a seed.

Every public function of trainwell checks its arguments where they come in, so that a wrong
value fails at once with a message naming the argument, not deep inside PyTorch. The checks
are all alike: ``True`` is an ``int`` in Python but never a count, ``nan`` fails every
comparison, and the message quotes what was given. Written once here, each caller states
only its message (the text before ``, got <value>``) and its bounds.

Each check returns the value unchanged (no conversion: the caller keeps what it was given)
and raises ``error`` (:class:`~trainwell.errors.ConfigError` unless told otherwise) with
``f"{message}, got {shown(value)}{end}"``.

>>> check_integer(3, "epochs: must be a positive integer", minimum=1)
3
>>> check_integer(True, "epochs: must be a positive integer", minimum=1)
Traceback (most recent call last):
...
trainwell.errors.ConfigError: epochs: must be a positive integer, got True
>>> check_number(float("nan"), "factor: must be a number in (0, 1)", above=0, below=1)
Traceback (most recent call last):
...
trainwell.errors.ConfigError: factor: must be a number in (0, 1), got nan
"""

from __future__ import annotations

import math
from typing import Any, Callable, Collection

import numpy as np

from trainwell.errors import ConfigError

__all__ = ["SEED_MAX", "is_integer", "is_number", "check_integer", "check_number", "check_bool", "check_choice",
           "check_seed", "digits_shown"]

#: The largest seed: PyTorch takes seeds of at most 64 bits, and a signed 64-bit integer is what every
#: generator accepts.
SEED_MAX = 2**63 - 1


def is_integer(value: Any, *, numpy: bool = False) -> bool:
    """Whether ``value`` is an integer and not a bool (``numpy``: NumPy's integer scalars count too)."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer) if numpy else int)


def is_number(value: Any, *, numpy: bool = False) -> bool:
    """Whether ``value`` is an int or a float and not a bool (``numpy``: NumPy's number scalars count too)."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.number) if numpy else (int, float))


def _fail(value: Any, message: str, error: type[Exception], end: str, shown: Callable[[Any], str]) -> None:
    raise error(f"{message}, got {shown(value)}{end}")


def check_integer(value: Any, message: str, *, minimum: int | None = None, maximum: int | None = None,
                  numpy: bool = False, error: type[Exception] = ConfigError, end: str = "",
                  shown: Callable[[Any], str] = repr) -> Any:
    """``value`` if it is an integer (not a bool) from ``minimum`` to ``maximum`` (both included, either may be None)."""
    if (not is_integer(value, numpy=numpy) or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        _fail(value, message, error, end, shown)
    return value


def check_number(value: Any, message: str, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, below: float | None = None, finite: bool = False, numpy: bool = False,
                 error: type[Exception] = ConfigError, end: str = "") -> Any:
    """``value`` if it is an int or a float (not a bool) within the bounds given: ``minimum`` and ``maximum`` are
    included, ``above`` and ``below`` are not; ``finite`` refuses inf and nan. A bound is never met by nan."""
    if (not is_number(value, numpy=numpy) or (finite and not math.isfinite(value))
            or (minimum is not None and not value >= minimum) or (above is not None and not value > above)
            or (maximum is not None and not value <= maximum) or (below is not None and not value < below)):
        _fail(value, message, error, end, repr)
    return value


def check_bool(value: Any, message: str, *, error: type[Exception] = ConfigError) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0 or 1: a config's ``1`` is not a yes)."""
    if not isinstance(value, bool):
        _fail(value, message, error, "", repr)
    return value


def check_choice(value: Any, choices: Collection[Any], message: str, *, error: type[Exception] = ConfigError) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        _fail(value, message, error, "", repr)
    return value


def digits_shown(value: Any) -> str:
    """``repr(value)``, but an integer of 30 digits or more is told by its length (its digits would fill the
    screen, and Python refuses to print one of over 4,300).

    >>> digits_shown(12), digits_shown(10**40)
    ('12', "'a 41-digit integer'")
    """
    if not isinstance(value, int) or abs(value) < 10**30:
        return repr(value)
    return repr(f"a {len(str(abs(value)))}-digit integer")


def check_seed(seed: object, *, what: str = "seed") -> int:
    """A seed is an integer from 0 to 2**63 - 1: PyTorch refuses seeds beyond 64 bits, and
    Python's random module folds a negative seed onto its absolute value (-3 seeds as 3)."""
    return check_integer(seed, f"{what}: must be an integer from 0 to 2**63 - 1", minimum=0, maximum=SEED_MAX,
                         shown=digits_shown)
