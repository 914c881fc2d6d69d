"""What a config can hold, whatever its format: plain data of bounded size (:func:`check_plain_data`)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from trainwell.config.keys import key_text
from trainwell.errors import ConfigError

# What a config can hold, whatever its format: tables with text keys, lists, text, booleans,
# null, finite numbers and integers that fit in 64 bits (what PyTorch, NumPy and the run
# store can hold), nested at most MAX_DEPTH deep (the deepest real config is about 6).
MAX_DEPTH = 32
# Values (tables, lists and scalars) a YAML config may hold once its aliases are written out: the
# chapter's largest config has about 300; an alias bomb of a few lines has billions.
MAX_EXPANDED_VALUES = 10_000
INT_MIN, INT_MAX = -2**63, 2**63 - 1
INT_RANGE = "-2**63 to 2**63 - 1"
MAX_INT_DIGITS = 30  # longer integers are refused before Python converts them (it stops at 4,300 digits)
PLAIN_DATA = "a config holds only tables, lists, text, numbers, true/false and null"


def quoted(key: str) -> str:
    return f"'{key}'" if key else "the top level"


def check_plain_data(data: Any, *, where: Sequence[str | int] = ()) -> None:
    """Refuse anything a config cannot hold, naming its key: see :data:`MAX_DEPTH` and :data:`INT_RANGE`.

    Dates and times (TOML and YAML make them), bytes, sets, non-text keys, nan and infinities,
    integers beyond 64 bits and deeper nesting stop here, before anything copies or validates
    the mapping. Walks without recursion, so depth itself cannot crash it.
    """
    stack: list[tuple[Any, list[str | int]]] = [(data, list(where))]
    base = len(where)
    while stack:
        value, path = stack.pop()
        key = quoted(key_text(path))
        if len(path) - base > MAX_DEPTH:
            raise ConfigError(f"'{key_text(path[:base + MAX_DEPTH])}': nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, Mapping):
            for name, item in value.items():
                if not isinstance(name, str):
                    raise ConfigError(f"{key}: the key {name!r} is not text; keys are text")
                stack.append((item, [*path, name]))
        elif isinstance(value, (list, tuple)):
            stack += [(item, [*path, i]) for i, item in enumerate(value)]
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                shown = value if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit integer"
                raise ConfigError(f"{key} = {shown}: integers in a config are {INT_RANGE}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"{key} = {value}: numbers in a config must be finite (not nan or infinite)")
        else:
            kind = {"date": "a date", "datetime": "a date and time", "time": "a time", "bytes": "binary data",
                    "set": "a set"}.get(type(value).__name__, f"a {type(value).__name__}")
            raise ConfigError(f"{key} is {kind}; {PLAIN_DATA} (quote it if it is text)")
