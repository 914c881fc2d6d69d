"""YAML read strictly (:class:`ConfigYamlLoader`): no aliases that explode, no dates, octal or duplicate keys."""

from __future__ import annotations

import re
from typing import Any, Sequence

import yaml

from trainwell.config.keys import key_text
from trainwell.config.plain import INT_RANGE, MAX_DEPTH, MAX_EXPANDED_VALUES, MAX_INT_DIGITS, PLAIN_DATA, quoted

_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_YAML_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}
_YAML_TAG_NAMES = {"tag:yaml.org,2002:timestamp": "a date or time", "tag:yaml.org,2002:binary": "binary data (!!binary)",
                   "tag:yaml.org,2002:set": "a set (!!set)", "tag:yaml.org,2002:omap": "an ordered map (!!omap)",
                   "tag:yaml.org,2002:pairs": "a list of pairs (!!pairs)", "tag:yaml.org,2002:merge": "a merge key (<<)",
                   "tag:yaml.org,2002:value": "a value key (=)"}
_YAML_OCTAL = re.compile(r"[-+]?0[0-7_]+")  # YAML 1.1 reads 010 as 8 (YAML 1.2 and TOML as 10)
_YAML_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")  # YAML 1.1: 1:30 is 90


class Refused(Exception):
    """A config the parser read but that is not allowed (aliases, dates, octal, ...); ``where``: line/column."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


def _at(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


class ConfigYamlLoader(yaml.SafeLoader):
    """YAML's safe loader, stricter where a config could mislead or exhaust its reader.

    Anchors, aliases (``*name``) and merge keys (``<<: *name``) are read, but a config may
    expand to at most :data:`MAX_EXPANDED_VALUES` values once they are written out (a
    billion-laughs file of a few lines expands to 10**11 strings) and an anchor may not
    contain itself. Refused, each naming its key and line: those, tags that make
    something other than plain data (dates, ``!!binary``, ``!!set``, ...), YAML 1.1's
    octal (``010`` is 8) and base-60 (``1:30`` is 90) integers, integers too long to be
    meant, duplicate keys (YAML keeps the last one silently), keys that are not text
    (``on:`` is the boolean true) and nesting deeper than :data:`MAX_DEPTH`.
    """

    def __init__(self, stream: Any, where: Sequence[str | int] = ()):
        super().__init__(stream)
        self._depth = 0
        self._where = list(where)  # the key the text is the value of (a --set value's key)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(f"nested more than {MAX_DEPTH} levels deep", _at(self.peek_event().start_mark))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Any) -> Any:
        _check_yaml_nodes(node, self._where)
        return super().construct_document(node)


# YAML 1.1 wants a dot in a float, so `lr: 1e-3` (as Keras users write it, and as TOML, JSON and
# YAML 1.2 read it) would be the text "1e-3"; in a config it is the number.
ConfigYamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(f"^{_EXPONENT_NUMBER.pattern}$"),
                                       list("-+0123456789."))


def _check_yaml_nodes(root: Any, where: Sequence[str | int] = ()) -> None:
    """Refuse what :class:`ConfigYamlLoader` refuses, walking the composed nodes with their keys."""
    stack: list[tuple[Any, list[str | int]]] = [(root, list(where))]
    values = 0
    while stack:
        node, path = stack.pop()
        key = key_text(path) if path else ""
        values += 1  # a node an alias points to counts each time it is used: the size the config expands to
        if values > MAX_EXPANDED_VALUES:
            raise Refused(f"the config expands to more than {MAX_EXPANDED_VALUES:,} values once its YAML aliases are "
                           "written out (a few lines of aliases of aliases can expand to billions); write the values "
                           "out, or put repeated layer settings in [model.presets]", _at(node.start_mark))
        if len(path) - len(where) > MAX_DEPTH:
            raise Refused(f"'{key_text(path[:len(where) + 3])}...': nested more than {MAX_DEPTH} levels deep once its YAML aliases are "
                           "written out (an anchor that contains itself never ends)", _at(node.start_mark))
        if node.tag not in _YAML_PLAIN_TAGS:
            kind = _YAML_TAG_NAMES.get(node.tag, f"the tag {node.tag}")
            raise Refused(f"{quoted(key)} is {kind}; {PLAIN_DATA} (quote it if it is text)", _at(node.start_mark))
        if isinstance(node, yaml.ScalarNode):
            if node.tag.endswith(":int"):
                _check_yaml_int(node.value, key, node.start_mark)
            elif node.tag.endswith(":float") and _YAML_SEXAGESIMAL.fullmatch(node.value):
                raise Refused(f"'{key}' = {node.value}: YAML 1.1 reads this as a base-60 number; "
                               "write the number itself (or quote it if it is text)", _at(node.start_mark))
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, [*path, i]) for i, item in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *base, its keys under this table's own
                    stack.append((value_node, path))
                    continue
                if key_node.tag != "tag:yaml.org,2002:str" or name is None:
                    shown = name if name is not None else "a list or table"
                    raise Refused(f"{quoted(key)}: the key {shown} is not text (YAML reads it as "
                                   f"{key_node.tag.rsplit(':', 1)[-1]}); quote it", _at(key_node.start_mark))
                if name in seen:
                    raise Refused(f"'{key_text([*path, name])}' is given twice; a key appears once",
                                   _at(key_node.start_mark))
                seen.add(name)
                stack.append((value_node, [*path, name]))



def _check_yaml_int(text: str, key: str, mark: Any) -> None:
    digits = text.lstrip("+-").replace("_", "")
    if _YAML_OCTAL.fullmatch(text):
        raise Refused(f"'{key}' = {text}: a leading zero makes this an octal number in YAML ({int(digits, 8)}); "
                       "write it without the zero (or quote it if it is text)", _at(mark))
    if _YAML_SEXAGESIMAL.fullmatch(text):
        raise Refused(f"'{key}' = {text}: YAML 1.1 reads this as a base-60 number; write the number itself "
                       "(or quote it if it is text)", _at(mark))
    if len(digits) > MAX_INT_DIGITS:
        raise Refused(f"'{key}' is a {len(digits)}-digit integer; integers in a config are {INT_RANGE}", _at(mark))



def load_yaml(text: str, *, where: Sequence[str | int] = ()) -> Any:
    """YAML text as plain data, through :class:`ConfigYamlLoader` (raises Refused or yaml.YAMLError);
    ``where``: the key whose value the text is, for the messages."""
    loader = ConfigYamlLoader(text, where)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
