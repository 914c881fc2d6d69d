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
                 metric, direction, trials, sampler, pruner, ... (trainwell.config.search)

A layer table with ``repeat = n`` stands for n copies of itself (the chapter's 100-layer nets).

Unknown keys are errors (a typo must not silently fall back to a default).

Where it lives:

    schema       every section as a pydantic model (RunConfig and its parts); pydantic's errors as messages
    search       the [search] section: its settings and the search space's dimensions
    validate     validate_config: the checks across sections (dataset sizes, layers, optimizer, schedule,
                 phases, [search]'s bounds), before any data is loaded
    tables       a validated config's tables -> the objects the domain takes (schedules, the plateau
                 callback, layer specs)
    load         reading TOML, YAML and JSON files, --set overrides, load_config
    yaml_loader  YAML read strictly (ConfigYamlLoader)
    plain        what a config can hold: plain data, bounded in size and depth
    keys         keys as messages write them (parse_key, key_text, set_key)

This package may use trainwell.errors, trainwell.checks, trainwell.data (the registry's sizes), trainwell.model (layer
specs, losses, selectors), trainwell.metrics (metric names and directions), trainwell.optim (optimizer options), trainwell.schedules (schedule tables),
trainwell.callbacks (the plateau callback) and trainwell.train (device, thread and class weight checks).
"""

from trainwell.config.keys import KEY_SYNTAX, key_text, parse_key, set_key
from trainwell.config.load import CONFIG_SUFFIXES, apply_overrides, load_config, parse_config_text, read_config_file
from trainwell.config.plain import INT_MAX, INT_MIN, INT_RANGE, MAX_DEPTH, MAX_EXPANDED_VALUES, check_plain_data
from trainwell.config.schema import (CallbacksConfig, CheckpointConfig, ConfigSection, CSVLoggerConfig, DataConfig,
                                     DiagnosticsConfig, EarlyStoppingConfig, LRFindConfig, ModelConfig, PhaseConfig,
                                     ReuseConfig, RunConfig, TensorBoardConfig, TrainConfig, validation_error_text)
from trainwell.config.search import Param, ParamSpec, SearchConfig, make_param, parse_search, set_space_key, with_params
from trainwell.config.tables import check_schedule_table, layer_specs, schedule_from_table
from trainwell.config.validate import check_run_name, check_search, loss_of, validate_config, with_dataset_defaults
from trainwell.config.yaml_loader import ConfigYamlLoader, load_yaml

__all__ = [
    "CONFIG_SUFFIXES", "INT_MAX", "INT_MIN", "INT_RANGE", "KEY_SYNTAX", "MAX_DEPTH", "MAX_EXPANDED_VALUES",
    "CallbacksConfig", "CheckpointConfig", "ConfigSection", "ConfigYamlLoader", "DataConfig", "DiagnosticsConfig",
    "EarlyStoppingConfig", "LRFindConfig", "ModelConfig", "Param", "ParamSpec", "PhaseConfig", "ReuseConfig",
    "RunConfig", "SearchConfig", "TrainConfig", "TensorBoardConfig", "CSVLoggerConfig",
    "apply_overrides", "check_plain_data", "check_run_name", "check_schedule_table", "check_search", "key_text",
    "layer_specs", "load_config", "loss_of", "load_yaml", "make_param", "parse_config_text", "parse_key", "parse_search",
    "read_config_file", "schedule_from_table", "set_key", "set_space_key", "validate_config", "with_dataset_defaults",
    "validation_error_text", "with_params",
]
