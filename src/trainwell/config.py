"""Config files (TOML or YAML) -> validated settings, with errors that name the key.

A config has five parts; every key but ``model.layers`` has a default:

    name = "leaky_relu"          # used for the default output folder runs/<name>
    seed = 42
    [data]       name, path, validation_size (default: the dataset's), scaling, classes, offline
    [model]      input_shape (default: the dataset's), layers = [{type = "dense", ...}, ...],
                 presets (named layer defaults: [model.presets.regularized_dense] type = "dense", ...)
    [optimizer]  name and the optimizer's own options (Keras names: lr, momentum, rho, ...)
    [schedule]   optional: name (constant, power, exponential, piecewise_constant, one_cycle, cosine,
                 plateau), per = "step" | "epoch", and the schedule's options (trainwell.schedules)
    [lr_find]    optional: min_lr, max_lr, steps, batch_size, stop_factor, smoothing
    [train]      epochs, batch_size, loss, metrics, clipvalue, clipnorm, global_clipnorm, device, threads
    [callbacks]  optional: terminate_on_nan, [callbacks.early_stopping] monitor, mode, patience,
                 min_delta, restore_best_weights; [callbacks.checkpoint] every, keep, save_best,
                 monitor, mode, min_delta
    [diagnostics] optional: every (record per-layer statistics every N steps), steps (trainwell doctor)
    [search]     optional, for trainwell tune: [search.space] "optimizer.lr" = {low, high, log}, ...,
                 metric, direction, trials, sampler, pruner, ... (trainwell.recipes.tune)

A layer table with ``repeat = n`` stands for n copies of itself (the chapter's 100-layer nets).

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainwell.data.registry import get_spec
from trainwell.errors import ConfigError, DataError
from trainwell.model.layers import ModelSpec, expand_presets, expand_repeats, layer_from_dict
from trainwell.model.losses import LOSSES
from trainwell.optim import resolve_optimizer_options
from trainwell.schedules import check_schedule
from trainwell.train.threads import check_threads

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DataConfig(_Section):
    name: str = "fashion_mnist"
    path: Optional[str] = None
    # None: the dataset's own default (the registry's: 5000 for Fashion-MNIST and MNIST, as the book)
    validation_size: Optional[int] = Field(None, ge=0)
    scaling: Literal["unit", "standardize", "none"] = "unit"
    classes: Optional[list[int]] = None
    per_class: Optional[int] = Field(None, gt=0)
    train_size: Optional[int] = Field(None, gt=0)
    offline: Optional[bool] = None


class ReuseConfig(_Section):
    """``[model.reuse]``: start from the lowest layers of a saved model (transfer learning).

    ``layers`` counts from the bottom; a negative number counts from the top, so -1
    reuses every layer but the output layer. ``model.layers`` then lists the new head.
    """

    model: str
    layers: int
    share: bool = False


class ModelConfig(_Section):
    input_shape: Optional[list[int]] = Field(None, min_length=1)  # [] is not "the default": leave it out
    reuse: Optional[ReuseConfig] = None
    layers: list[dict[str, Any]] = Field(min_length=1)
    # Named layer factories: [model.presets.regularized_dense] type = "dense", activation = "elu", ...
    # used as { type = "regularized_dense", units = 300 } (the layer's own keys win).
    presets: Optional[dict[str, dict[str, Any]]] = None

    def layer_tables(self) -> list[dict[str, Any]]:
        """The layers with every preset expanded into its built-in type and keys, and every
        ``repeat = n`` table into n copies."""
        return expand_repeats(expand_presets(self.layers, self.presets))


class TrainConfig(_Section):
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0)
    loss: Literal[tuple(LOSSES)] = "sparse_categorical_crossentropy"  # type: ignore[valid-type]
    metrics: list[Literal["accuracy"]] = ["accuracy"]
    clipvalue: Optional[float] = Field(None, gt=0)
    clipnorm: Optional[float] = Field(None, gt=0)
    global_clipnorm: Optional[float] = Field(None, gt=0)
    device: str = "auto"
    threads: Optional[int] = Field(None, gt=0)  # CPU threads while fitting; default: by the model's shape
    eval_batch_size: int = Field(1024, gt=0)
    cache_frozen: bool = True  # compute frozen lowest layers' outputs once (same results, faster)
    # The hand-written forward/backward step for plain dense stacks (trainwell.train.fused), used
    # where it applies; false runs the standard autograd step everywhere.
    fused: bool = True
    # Save the whole training state in <output_dir>/resume/ at every epoch end (and every
    # save_every_steps steps), so running the same command again continues a killed run.
    resumable: bool = True
    skip_nonfinite_batches: bool = False  # skip batches whose loss is nan/inf instead of training on them
    save_every_steps: Optional[int] = Field(None, gt=0)
    # A run whose final loss is nan or infinite fails (nothing saved) unless this is true.
    allow_nonfinite_loss: bool = False
    # Replace the files of a finished run in output_dir (by default that is refused).
    overwrite: bool = False
    # Drop an interrupted run's saved state in output_dir/resume and train from epoch 1
    # (by default the same fit resumes, and another fit's state is refused).
    restart: bool = False


class PhaseConfig(_Section):
    """One ``[[phases]]`` entry: train ``epochs`` epochs after freezing/unfreezing layers.

    Layers are selected by index (2, -1), name ('dense_1', 'dense_*') or slice ('0:-1').
    ``optimizer`` options override the run's ``[optimizer]`` and build a fresh optimizer
    for the phase, as recompiling a Keras model does; ``unfreeze_lr_scale`` instead keeps
    the optimizer and gives the unfrozen layers that fraction of its learning rate.
    """

    epochs: int = Field(gt=0)
    freeze: list[Union[int, str]] = []
    unfreeze: list[Union[int, str]] = []
    unfreeze_lr_scale: Optional[float] = Field(None, gt=0)
    optimizer: Optional[dict[str, Any]] = None


class LRFindConfig(_Section):
    """``trainwell lr-find``: an exponential sweep from min_lr to max_lr (the chapter's defaults)."""

    min_lr: float = Field(1e-5, gt=0)
    max_lr: float = Field(10.0, gt=0)
    steps: Optional[int] = Field(None, gt=1)  # default: one epoch at batch_size, at least 100 steps
    batch_size: int = Field(128, gt=0)
    stop_factor: float = Field(4.0, gt=1)
    smoothing: float = Field(0.98, ge=0, lt=1)


class EarlyStoppingConfig(_Section):
    """``[callbacks.early_stopping]``: trainwell.callbacks.EarlyStopping (Keras' defaults)."""

    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(0, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best_weights: bool = False


class CheckpointConfig(_Section):
    """``[callbacks.checkpoint]``: trainwell.callbacks.Checkpoint, writing into <output_dir>/checkpoints/."""

    every: int = Field(1, ge=0)
    keep: Optional[int] = Field(None, ge=1)
    save_best: bool = False
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    min_delta: float = Field(0.0, ge=0)


class CallbacksConfig(_Section):
    early_stopping: Optional[EarlyStoppingConfig] = None
    checkpoint: Optional[CheckpointConfig] = None
    terminate_on_nan: bool = False


class DiagnosticsConfig(_Section):
    """``[diagnostics]``: record per-layer statistics every ``every`` steps during ``trainwell train``
    (findings go to <output_dir>/diagnostics.json); ``steps`` is how long ``trainwell doctor`` trains."""

    every: int = Field(100, gt=0)
    steps: int = Field(200, gt=0)


class RunConfig(_Section):
    """A whole training run, as read from a config file."""

    name: Optional[str] = None
    seed: int = Field(42, ge=0, le=2**63 - 1)  # as trainwell.train.trainer.check_seed
    output_dir: Optional[str] = None
    data: DataConfig = DataConfig()
    model: ModelConfig
    optimizer: dict[str, Any] = Field(default_factory=lambda: {"name": "sgd"})
    schedule: Optional[dict[str, Any]] = None  # checked by trainwell.schedules
    lr_find: Optional[LRFindConfig] = None  # None: LRFindConfig's defaults
    train: TrainConfig = TrainConfig()
    callbacks: Optional[CallbacksConfig] = None
    diagnostics: Optional[DiagnosticsConfig] = None
    phases: Optional[list[PhaseConfig]] = Field(None, min_length=1)
    search: Optional[dict[str, Any]] = None  # trainwell tune's [search]: checked by trainwell.recipes.tune

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _format_error(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    key = key_text(error["loc"])
    if error["type"] == "extra_forbidden":
        section = _section_fields(model, error["loc"][:-1])
        allowed = f"; allowed keys here: {', '.join(section)}" if section else ""
        return f"unknown key '{key}'{allowed}"
    if error["type"] == "missing":
        return f"'{key}' is missing"
    message = error["msg"]
    if error["type"] == "literal_error":
        message = message.replace("Input should be", "must be")
    else:
        message = message.replace("Input should be", "must be").replace("Input", "value")
    return f"'{key}' = {error.get('input')!r}: {message}"


def _section_fields(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
        # Optional[Section]: look inside the union for the section's own fields.
        current = next((arg for arg in get_args(current) if hasattr(arg, "model_fields")), current)
    return list(getattr(current, "model_fields", {}))


def validate_config(data: Mapping[str, Any], *, source: str = "config") -> RunConfig:
    """Check a config mapping and return the :class:`RunConfig`; raise ConfigError naming the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a table of keys, got {type(data).__name__}")
    try:
        check_plain_data(data)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    try:
        config = RunConfig.model_validate(dict(data))
    except ValidationError as error:
        lines = [_format_error(e, RunConfig) for e in error.errors()]
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None
    from trainwell.train.trainer import check_device_name

    try:
        check_run_name(config.name)
        if config.output_dir is not None and not config.output_dir.strip():
            raise ConfigError("output_dir: is empty; name the folder the run's files go to (e.g. -o runs/first), "
                              "or leave it out for runs/<name>")
        config.data = _with_dataset_defaults(config.data)
        layers = [layer_from_dict(layer, where=f"model.layers[{index}]")
                  for index, layer in enumerate(config.model.layer_tables())]
        if config.model.reuse is None:  # sizes before anything is built (a reused model's come from its file)
            shape = tuple(config.model.input_shape or get_spec(config.data.name).image_shape)
            ModelSpec(input_shape=shape, layers=tuple(layers))
        check_device_name(config.train.device)
        check_threads(config.train.threads, what="train.threads")
    except ConfigError as error:
        message = str(error)
        raise ConfigError(f"{source}: {'train.' if message.startswith('device:') else ''}{message}") from None
    try:
        options = dict(config.optimizer)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError("optimizer.name: missing; say which optimizer, e.g. name = \"sgd\"")
        lr0 = resolve_optimizer_options(name, options)["lr"]
        if config.schedule is not None:
            check_schedule(config.schedule, lr0=lr0)
        sweep = config.lr_find or LRFindConfig()
        if sweep.max_lr <= sweep.min_lr:
            raise ConfigError(f"lr_find.max_lr: must be above lr_find.min_lr ({sweep.min_lr!r}), got {sweep.max_lr!r}")
        _check_phases(config, name, options)
        if config.search is not None:
            from trainwell.recipes.tune import check_search

            check_search(data)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config


_NOT_IN_A_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_run_name(name: str | None) -> None:
    """ConfigError unless ``name`` is one folder name: the run's files go to ``runs/<name>``, so a
    separator, ``..`` or an absolute path would put them elsewhere, and a leading dot would hide them."""
    if name is None:
        return
    if not name or name.startswith(".") or _NOT_IN_A_NAME.search(name) or len(name.encode("utf-8", "replace")) > 200:
        raise ConfigError(f"name: {name!r} is not a run name: it names the folder runs/<name>, so it must be one "
                          "folder name: no / or \\ or control characters, not starting with a dot, at most 200 bytes "
                          "(e.g. name = \"leaky_relu\"); to write somewhere else, set output_dir (or -o)")


def _with_dataset_defaults(section: DataConfig) -> DataConfig:
    """The data section with the dataset's default validation size filled in, checked against the
    dataset's size: the registry knows both without the files, so a bad value fails before any work."""
    try:
        spec = get_spec(section.name)
    except DataError as error:
        raise ConfigError(f"data.name: {error}".rstrip(".")) from None
    size = spec.default_validation_size if section.validation_size is None else section.validation_size
    if size >= spec.train_size:
        raise ConfigError(f"data.validation_size: {size} leaves no training images ({spec.name} has "
                          f"{spec.train_size}; its default is {spec.default_validation_size})")
    return section.model_copy(update={"validation_size": size})


def _check_phases(config: RunConfig, optimizer_name: str, optimizer_options: Mapping[str, Any]) -> None:
    """Phases replace train.epochs; their selectors and optimizer overrides are checked now."""
    if not config.phases:
        return
    if "epochs" in config.train.model_fields_set:  # from the file, or from --epochs / --set train.epochs
        epochs = ", ".join(f"phases[{i}].epochs = {phase.epochs}" for i, phase in enumerate(config.phases))
        raise ConfigError(f"train.epochs = {config.train.epochs}: this config trains in [[phases]], each with its "
                          f"own epochs ({epochs}); set those instead, e.g. --set phases[{len(config.phases) - 1}]"
                          f".epochs={config.train.epochs} (and leave out --epochs and train.epochs)")
    from trainwell.model.transfer import parse_selector

    for index, phase in enumerate(config.phases):
        for key in ("freeze", "unfreeze"):
            for selector in getattr(phase, key):
                try:
                    parse_selector(selector)
                except ConfigError as error:
                    raise ConfigError(f"phases[{index}].{key}: {error}") from None
        if phase.optimizer:
            overrides = dict(phase.optimizer)
            name = overrides.pop("name", optimizer_name)
            merged = {**optimizer_options, **overrides} if name == optimizer_name else overrides
            try:
                resolve_optimizer_options(name, merged)
            except ConfigError as error:
                raise ConfigError(f"phases[{index}].{error}") from None


# What a config can hold, whatever its format: tables with text keys, lists, text, booleans,
# null, finite numbers and integers that fit in 64 bits (what PyTorch, NumPy and the run
# store can hold), nested at most MAX_DEPTH deep (the deepest real config is about 6).
MAX_DEPTH = 32
# Values (tables, lists and scalars) a YAML config may hold once its aliases are written out: the
# chapter's largest config has about 300; an alias bomb of a few lines has billions.
MAX_EXPANDED_VALUES = 10_000
INT_MIN, INT_MAX = -2**63, 2**63 - 1
INT_RANGE = "-2**63 to 2**63 - 1"
_MAX_INT_DIGITS = 30  # longer integers are refused before Python converts them (it stops at 4,300 digits)
_YAML_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}
_YAML_TAG_NAMES = {"tag:yaml.org,2002:timestamp": "a date or time", "tag:yaml.org,2002:binary": "binary data (!!binary)",
                   "tag:yaml.org,2002:set": "a set (!!set)", "tag:yaml.org,2002:omap": "an ordered map (!!omap)",
                   "tag:yaml.org,2002:pairs": "a list of pairs (!!pairs)", "tag:yaml.org,2002:merge": "a merge key (<<)",
                   "tag:yaml.org,2002:value": "a value key (=)"}
_PLAIN = "a config holds only tables, lists, text, numbers, true/false and null"
_YAML_OCTAL = re.compile(r"[-+]?0[0-7_]+")  # YAML 1.1 reads 010 as 8 (YAML 1.2 and TOML as 10)
_YAML_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")  # YAML 1.1: 1:30 is 90


class _Refused(Exception):
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
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", _at(self.peek_event().start_mark))
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
            raise _Refused(f"the config expands to more than {MAX_EXPANDED_VALUES:,} values once its YAML aliases are "
                           "written out (a few lines of aliases of aliases can expand to billions); write the values "
                           "out, or put repeated layer settings in [model.presets]", _at(node.start_mark))
        if len(path) - len(where) > MAX_DEPTH:
            raise _Refused(f"'{key_text(path[:len(where) + 3])}...': nested more than {MAX_DEPTH} levels deep once its YAML aliases are "
                           "written out (an anchor that contains itself never ends)", _at(node.start_mark))
        if node.tag not in _YAML_PLAIN_TAGS:
            kind = _YAML_TAG_NAMES.get(node.tag, f"the tag {node.tag}")
            raise _Refused(f"{_quoted(key)} is {kind}; {_PLAIN} (quote it if it is text)", _at(node.start_mark))
        if isinstance(node, yaml.ScalarNode):
            if node.tag.endswith(":int"):
                _check_yaml_int(node.value, key, node.start_mark)
            elif node.tag.endswith(":float") and _YAML_SEXAGESIMAL.fullmatch(node.value):
                raise _Refused(f"'{key}' = {node.value}: YAML 1.1 reads this as a base-60 number; "
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
                    raise _Refused(f"{_quoted(key)}: the key {shown} is not text (YAML reads it as "
                                   f"{key_node.tag.rsplit(':', 1)[-1]}); quote it", _at(key_node.start_mark))
                if name in seen:
                    raise _Refused(f"'{key_text([*path, name])}' is given twice; a key appears once",
                                   _at(key_node.start_mark))
                seen.add(name)
                stack.append((value_node, [*path, name]))


def _quoted(key: str) -> str:
    return f"'{key}'" if key else "the top level"


def _check_yaml_int(text: str, key: str, mark: Any) -> None:
    digits = text.lstrip("+-").replace("_", "")
    if _YAML_OCTAL.fullmatch(text):
        raise _Refused(f"'{key}' = {text}: a leading zero makes this an octal number in YAML ({int(digits, 8)}); "
                       "write it without the zero (or quote it if it is text)", _at(mark))
    if _YAML_SEXAGESIMAL.fullmatch(text):
        raise _Refused(f"'{key}' = {text}: YAML 1.1 reads this as a base-60 number; write the number itself "
                       "(or quote it if it is text)", _at(mark))
    if len(digits) > _MAX_INT_DIGITS:
        raise _Refused(f"'{key}' is a {len(digits)}-digit integer; integers in a config are {INT_RANGE}", _at(mark))


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json keeps the last one silently)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"the key '{key}' is given twice in one object; a key appears once")
        result[key] = value
    return result


def _json_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _MAX_INT_DIGITS:
        raise _Refused(f"a {len(digits)}-digit integer; integers in a config are {INT_RANGE}")
    return int(text)


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
        key = _quoted(key_text(path))
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
            raise ConfigError(f"{key} is {kind}; {_PLAIN} (quote it if it is text)")


def load_yaml(text: str, *, where: Sequence[str | int] = ()) -> Any:
    """YAML text as plain data, through :class:`ConfigYamlLoader` (raises _Refused or yaml.YAMLError);
    ``where``: the key whose value the text is, for the messages."""
    loader = ConfigYamlLoader(text, where)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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
    except _Refused as error:
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
            except _Refused as error:
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
