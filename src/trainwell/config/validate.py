"""A config mapping -> a :class:`RunConfig`, checked across sections before any data is loaded.

Beyond the schema's keys and types: the dataset's sizes, the layers' shapes, the device, the
optimizer's options, the schedule table, the LR sweep, the phases and ``[search]``'s bounds, the
loss's options, metrics and class weights against the loss,
each error naming its key.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from pydantic import ValidationError

from trainwell.config.plain import check_plain_data
from trainwell.config.schema import DATA_FORMATS, DataConfig, LRFindConfig, RunConfig, TrainConfig, validation_error_text
from trainwell.config.search import parse_search, with_params
from trainwell.config.tables import check_schedule_table, layer_specs
from trainwell.data.registry import get_spec
from trainwell.errors import ConfigError, DataError
from trainwell.metrics import check_metrics, direction
from trainwell.model.layers import ModelSpec
from trainwell.model.losses import Loss, get_loss
from trainwell.optim import resolve_optimizer_options
from trainwell.train.threads import check_threads
from trainwell.train.weights import check_class_weight


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
        lines = [validation_error_text(e, RunConfig) for e in error.errors()]
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None
    from trainwell.train.devices import check_device_name

    try:
        check_run_name(config.name)
        if config.output_dir is not None and not config.output_dir.strip():
            raise ConfigError("output_dir: is empty; name the folder the run's files go to (e.g. -o runs/first), "
                              "or leave it out for runs/<name>")
        config.data = _with_dataset_defaults(config.data)
        layers = layer_specs(config.model)
        # sizes before anything is built (a reused model's come from its file; files' shapes from the files)
        if config.model.reuse is None and (config.data.format is None or config.model.input_shape):
            shape = tuple(config.model.input_shape or get_spec(config.data.name).image_shape)
            ModelSpec(input_shape=shape, layers=tuple(layers))
        check_device_name(config.train.device)
        check_threads(config.train.threads, what="train.threads")
        check_loss_and_metrics(config.train, config.model.layer_tables()[-1])
        _check_monitors(config)
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
            check_schedule_table(config.schedule, lr0=lr0)
        sweep = config.lr_find or LRFindConfig()
        if sweep.max_lr <= sweep.min_lr:
            raise ConfigError(f"lr_find.max_lr: must be above lr_find.min_lr ({sweep.min_lr!r}), got {sweep.max_lr!r}")
        _check_phases(config, name, options)
        if config.search is not None:
            check_search(data)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config


def check_loss_and_metrics(train: TrainConfig, last_layer: Mapping[str, Any] | None = None) -> None:
    """``[train]``'s loss options, metrics and class weights, checked against the loss (errors name the key),
    and a regression loss against the ``last_layer``'s table (a linear unit, not a softmax or sigmoid)."""
    try:
        loss = loss_of(train)
    except ConfigError as error:
        message = str(error).replace("delta:", "huber_delta:").replace("no such option", "no such option "
                                                                        "(huber_delta is huber's)")
        raise ConfigError(f"train.{message}") from None
    ending = (last_layer or {}).get("activation")
    if loss.regression and ending in ("softmax", "sigmoid"):
        raise ConfigError(f"model.layers: the last layer's activation is {ending}, but train.loss = {loss.name!r} "
                          "is a regression loss, whose model ends in a linear unit: leave out its activation")
    for check in (lambda: check_metrics(train.metrics, loss), lambda: check_class_weight(train.class_weight, loss)):
        try:
            check()
        except ConfigError as error:
            raise ConfigError(f"train.{error}") from None


def _check_monitors(config: RunConfig) -> None:
    """A callback's mode against its monitored figure's known direction (as :class:`trainwell.callbacks.Monitor`)."""
    for name in ("early_stopping", "checkpoint"):
        section = getattr(config.callbacks, name, None) if config.callbacks is not None else None
        known = None if section is None else direction(section.monitor)
        if known is not None and section.mode != known:
            raise ConfigError(f"callbacks.{name}.mode: {section.monitor!r} is better when "
                              f"{'higher' if known == 'max' else 'lower'}, so mode must be {known!r}, "
                              f"got {section.mode!r}")


def loss_of(train: TrainConfig) -> Loss:
    """The :class:`~trainwell.model.losses.Loss` that ``[train]`` names, with its options (loss,
    label_smoothing, huber_delta): the registry's own object when no option is set."""
    return get_loss(train.loss, label_smoothing=train.label_smoothing, delta=train.huber_delta)


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


def with_dataset_defaults(config: RunConfig) -> RunConfig:
    """``config`` with its dataset's defaults filled in, as :func:`validate_config` fills them: for a
    RunConfig made directly (``RunConfig(**data)``), which skips that step. A validated config comes back equal."""
    return config.model_copy(update={"data": _with_dataset_defaults(config.data)})


#: The keys of [data] that only files use, and the formats each applies to.
FILE_KEYS = {"target": ("csv", "parquet"), "features": ("csv", "parquet"), "target_path": ("npy",),
             "test_path": DATA_FORMATS, "test_target_path": ("npy",), "image_size": ("image_folder",),
             "color_mode": ("image_folder",)}
#: The default scaling of files: pixels into [0, 1] for images, standardized features for tables and arrays.
FILE_SCALING = {"image_folder": "unit", "idx": "unit"}


def _with_file_defaults(section: DataConfig) -> DataConfig:
    """A files section (``format`` set) checked across its keys, with its format's default scaling."""
    if section.name is not None and "name" in section.model_fields_set:
        raise ConfigError(f"data.name = {section.name!r} and data.format = {section.format!r}: a run reads a "
                          "registered dataset (name) or files (format and path), not both")
    if section.path is None:
        raise ConfigError(f"data.path: missing; data.format = {section.format!r} reads the file or folder it names")
    for key, formats in FILE_KEYS.items():
        if getattr(section, key) is not None and section.format not in formats:
            raise ConfigError(f"data.{key}: is for data.format = {' or '.join(map(repr, formats))}, not "
                              f"{section.format!r}")
    if section.classes is not None:
        raise ConfigError("data.classes: selects classes of a registered dataset by label; for files, keep only "
                          "the rows or folders you want in the files")
    if section.validation_size is not None and section.validation_split is not None:
        raise ConfigError(f"data.validation_size = {section.validation_size} and data.validation_split = "
                          f"{section.validation_split}: give one (a count, or a fraction of the training data)")
    update: dict = {"name": None}
    if "scaling" not in section.model_fields_set:
        update["scaling"] = FILE_SCALING.get(section.format, "standardize")
    return section.model_copy(update=update)


def _with_dataset_defaults(section: DataConfig) -> DataConfig:
    """The data section with the dataset's default validation size filled in, checked against the
    dataset's size: the registry knows both without the files, so a bad value fails before any work."""
    if section.format is not None:
        return _with_file_defaults(section)
    for key in FILE_KEYS:
        if getattr(section, key) is not None:
            raise ConfigError(f"data.{key}: is a key for files (with data.format); {section.name!r} is a "
                              "registered dataset")
    if section.name is None:
        raise ConfigError("data.name: null; name a registered dataset, or read files with data.format and data.path")
    if section.validation_split is not None:  # a fraction of the dataset's training images, the first ones
        if section.validation_size is not None:
            raise ConfigError(f"data.validation_size = {section.validation_size} and data.validation_split = "
                              f"{section.validation_split}: give one (a count, or a fraction of the training data)")
        try:
            train_size = get_spec(section.name).train_size
        except DataError as error:
            raise ConfigError(f"data.name: {error}".rstrip(".")) from None
        section = section.model_copy(update={"validation_size": round(section.validation_split * train_size),
                                             "validation_split": None})
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


def check_search(data: Mapping[str, Any]) -> None:
    """Check a config's ``[search]`` section: its settings, and that every bound of every
    dimension gives a valid config (so a typo in a key fails now, not at trial 7)."""
    _, params = parse_search(data["search"])
    for param in params:
        for value in param.extremes():
            try:
                validate_config(with_params(data, {param.key: value}), source="")
            except ConfigError as error:
                raise ConfigError(f"search.space.{json.dumps(param.key)} = {value!r} gives a bad config: "
                                  f"{str(error).removeprefix(': ')}") from None
