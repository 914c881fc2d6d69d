"""Config keys as messages write them: ``model.layers[1].units`` <-> ``["model", "layers", 1, "units"]``.

One syntax for error messages, ``--set`` overrides and ``trainwell tune``'s ``[search.space]``;
:func:`set_key` sets one in a config mapping, with errors that say which part of the key is wrong.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from trainwell.errors import ConfigError

_KEY_PART = re.compile(r"([^.\[\]\s]+)((?:\[\d+\])*)")
KEY_SYNTAX = 'write keys as in "optimizer.lr" or "model.layers[1].units" (list indices count from 0)'


def parse_key(key: str) -> list[str | int]:
    """A config key as error messages write it, split into table keys and list indices.

    One syntax for ``--set`` and ``trainwell tune``'s ``[search.space]``.

    >>> parse_key("model.layers[1].units")
    ['model', 'layers', 1, 'units']
    """
    parts: list[str | int] = []
    for piece in key.strip().split("."):
        match = _KEY_PART.fullmatch(piece)
        if match is None:
            raise ConfigError(f"{key!r} is not a config key; {KEY_SYNTAX}")
        parts.append(match.group(1))
        parts += [int(i) for i in re.findall(r"\d+", match.group(2))]
    return parts


def key_text(parts: Sequence[str | int]) -> str:
    """The inverse of :func:`parse_key`: ``["phases", 1, "epochs"]`` -> ``"phases[1].epochs"``."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(parts))


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (as :func:`parse_key` reads it) in a config mapping, in place.

    Missing tables on the way are made; list items must exist already (an override
    changes a layer or a phase, it does not add one).
    """
    parts = parse_key(key)
    node: Any = data
    for depth in range(len(parts) - 1):
        node = _child(node, parts[:depth + 1], following=parts[depth + 1])
    last = parts[-1]
    if isinstance(last, int):
        _list_item(node, parts)
    else:
        _check_table(node, parts[:-1])
    node[last] = value


def _child(node: Any, parts: Sequence[str | int], *, following: str | int) -> Any:
    """The value at ``parts`` (its parent is ``node``), made as an empty table if missing."""
    part = parts[-1]
    if isinstance(part, int):
        return _list_item(node, parts)
    _check_table(node, parts[:-1])
    if part not in node:
        if isinstance(following, int):
            raise ConfigError(f"the config has no {key_text([*parts, following])}: {key_text(parts)} "
                              "is not in the config")
        node[part] = {}
    return node[part]


def _check_table(node: Any, parts: Sequence[str | int]) -> None:
    if not isinstance(node, dict):
        hint = f" (it is a list: address an item as {key_text([*parts, 0])})" if isinstance(node, list) else ""
        raise ConfigError(f"'{key_text(parts)}' is not a table{hint}")


def _list_item(node: Any, parts: Sequence[str | int]) -> Any:
    """The item ``parts[-1]`` of the list ``node`` (whose key is ``parts[:-1]``), or a clear error."""
    index, where = parts[-1], key_text(parts[:-1])
    if not isinstance(node, list):
        kind = "a table" if isinstance(node, dict) else repr(node)
        raise ConfigError(f"{where} is {kind}, not a list; only lists (model.layers, phases, ...) take an index")
    if index >= len(node):
        allowed = f"allowed indices: 0..{len(node) - 1}" if node else "the list is empty"
        entries = "1 entry" if len(node) == 1 else f"{len(node)} entries"
        raise ConfigError(f"the config has no {key_text(parts)}: {where} has {entries} ({allowed})")
    return node[index]
