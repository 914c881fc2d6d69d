"""Config files (TOML, YAML or JSON) and ``--set`` overrides -> a validated :class:`RunConfig`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from trainwell.config.keys import parse_key, set_key
from trainwell.config.plain import INT_RANGE, MAX_DEPTH, MAX_INT_DIGITS, check_plain_data
from trainwell.config.schema import RunConfig
from trainwell.config.validate import validate_config
from trainwell.config.yaml_loader import Refused, load_yaml
from trainwell.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json keeps the last one silently)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise Refused(f"the key '{key}' is given twice in one object; a key appears once")
        result[key] = value
    return result


def _json_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise Refused(f"a {len(digits)}-digit integer; integers in a config are {INT_RANGE}")
    return int(text)


def parse_config_text(text: str, suffix: str, *, source: str = "config") -> dict[str, Any]:
    """Parse TOML, YAML or JSON text into a mapping, with the parser's line number on errors.

    Whatever the format, the result is plain data (:func:`check_plain_data`); YAML is read by
    :class:`ConfigYamlLoader` and JSON refuses duplicate keys, so no format can expand,
    nest or overflow beyond what the text says.
    """
    text = text.removeprefix("\ufeff")  # a byte-order mark (Windows editors write one)
    fmt = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
        else:
            data = load_yaml(text)
            data = {} if data is None else data
    except Refused as error:
        raise ConfigError(f"{source}: {error}{error.where}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML ({error})") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not valid JSON ({error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML ({str(error).splitlines()[0]}"
                          f"{_yaml_position(error)})") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid {fmt}: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as error:  # Python's own limit on the length of integers (4,300 digits)
        raise ConfigError(f"{source}: not valid {fmt}: an integer too long to read ({str(error).split(':')[0]}); "
                          f"integers in a config are {INT_RANGE}") from None
    try:
        check_plain_data(data)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return data


def _yaml_position(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a config file into a plain mapping (not yet validated)."""
    file = Path(path)
    if file.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError(f"{file}: config files must end in {', '.join(CONFIG_SUFFIXES)}")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: cannot read the config file ({error})") from None
    data = parse_config_text(text, file.suffix.lower(), source=str(file))
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single {type(data).__name__}" if data is not None else "empty"
        raise ConfigError(f"{file}: a config is a table of sections (name, [data], [model], ...), but this file "
                          f"is {kind}; see examples/ for configs to copy")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (values parsed as YAML scalars: 0.1, true, [1, 2]).

    Keys are written as in error messages, list items by index:
    ``model.layers[1].units=50``, ``phases[1].epochs=4``.
    """
    check_plain_data(data)  # a copy through JSON would expand, or fail on, anything else
    result = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {_shown(item)}: expected KEY=VALUE, e.g. train.epochs=2")
        try:
            parts = parse_key(key)
            try:
                value = load_yaml(raw, where=parts)
            except Refused as error:
                raise ConfigError(str(error)) from None
            except yaml.YAMLError:
                value = raw
            except RecursionError:
                raise ConfigError(f"nested more than {MAX_DEPTH} levels deep") from None
            check_plain_data(value, where=parts)
            set_key(result, key, value)
        except ConfigError as error:
            raise ConfigError(f"--set {_shown(item)}: {error}") from None
    return result


def _shown(item: str, limit: int = 80) -> str:
    """An override as messages quote it: cut short when it is long (a 5,000-digit number)."""
    return repr(item) if len(item) <= limit else repr(item[:limit]) + f" (cut; {len(item)} characters)"


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (),
                values: Mapping[str, Any] | None = None) -> RunConfig:
    """Read, override and validate a config file.

    The run's name defaults to the file's stem, so ``examples/leaky_relu.toml`` writes
    to ``runs/leaky_relu`` unless ``output_dir`` says otherwise. ``values`` are top-level
    keys set as given, after the overrides and without parsing them as text (a path from
    the command line: any characters a file name may hold arrive unchanged).
    """
    data = apply_overrides(read_config_file(path), overrides)
    data.update(values or {})
    data.setdefault("name", Path(path).stem)
    return validate_config(data, source=str(path))
