"""The ``[search]`` section of ``trainwell tune``: its settings and the space's dimensions, checked.

The search space addresses the config's own keys, written as in error messages (see
:mod:`trainwell.config.keys`); :func:`parse_search` checks the section, :func:`with_params`
sets sampled values into a copy of the config. Whether every bound gives a valid config is
checked with the rest of the config (:func:`trainwell.config.validate.check_search`).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Union

from pydantic import Field, ValidationError

from trainwell.checks import is_integer
from trainwell.config.keys import parse_key
from trainwell.config.keys import set_key as config_set_key
from trainwell.config.schema import ConfigSection, validation_error_text
from trainwell.errors import ConfigError
from trainwell.metrics import direction

Number = Union[int, float]


class ParamSpec(ConfigSection):
    """One key of ``[search.space]``: ``{low, high, log, step}`` or ``{choices}``."""

    low: Optional[Number] = None
    high: Optional[Number] = None
    log: bool = False
    step: Optional[Number] = None
    choices: Optional[list[Any]] = None


class SearchConfig(ConfigSection):
    """The ``[search]`` section (besides ``space``, every key has a default)."""

    space: dict[str, ParamSpec]
    metric: str = "val_accuracy"
    # None: from the metric's name (maximize accuracy, auc, f1, r2...; minimize loss, mae, rmse:
    # trainwell.metrics.direction); required for any other figure
    direction: Optional[Literal["maximize", "minimize"]] = None
    trials: int = Field(20, gt=0)  # the study's total of finished trials, over every worker
    sampler: Literal["tpe", "random"] = "tpe"
    sampler_seed: Optional[int] = Field(None, ge=0, le=2**32 - 1)  # NumPy's seeds: 0 to 2**32 - 1
    pruner: Literal["median", "none"] = "median"
    startup_trials: int = Field(5, ge=0)  # MedianPruner: trials that finish before any is pruned
    warmup_epochs: int = Field(1, ge=0)  # MedianPruner: epochs a trial runs before it can be pruned
    study: Optional[str] = None  # default: the config's name
    storage: Optional[str] = None  # default: sqlite:///<output folder>/study.db
    # a running trial's worker records that it is alive every heartbeat_interval seconds; a trial silent
    # for heartbeat_grace seconds (default 3 intervals) was a killed worker's: it is marked failed and
    # its parameters are run again, at most trial_retries times
    # at most a day: Python's timed waits overflow far above, and a beat that rare finds no killed worker
    heartbeat_interval: int = Field(10, gt=0, le=86_400)
    heartbeat_grace: Optional[int] = Field(None, gt=0, le=7 * 86_400)
    trial_retries: int = Field(3, ge=0)

    @property
    def grace(self) -> int:
        """Seconds without a heartbeat after which a running trial is taken for a killed worker's."""
        return self.heartbeat_grace if self.heartbeat_grace is not None else 3 * self.heartbeat_interval

    @property
    def goal(self) -> str:
        """"maximize" or "minimize": the direction said, else the metric's own (see :func:`inferred_direction`)."""
        return self.direction or inferred_direction(self.metric) or "maximize"


def inferred_direction(metric: str) -> str | None:
    """The direction of a logged figure by its name ("maximize" for val_auc, "minimize" for val_rmse), or None."""
    known = direction(metric)
    return None if known is None else {"max": "maximize", "min": "minimize"}[known]


class _SearchSection(ConfigSection):  # so that errors name the whole key: search.space...
    search: SearchConfig


@dataclass(frozen=True)
class Param:
    """A checked search dimension: ``kind`` is "int", "float" or "categorical"."""

    key: str
    kind: str
    low: Number | None = None
    high: Number | None = None
    log: bool = False
    step: Number | None = None
    choices: tuple[Any, ...] = ()

    def extremes(self) -> list[Any]:
        """The values that bound this dimension (checked against the config before any trial runs)."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


def make_param(key: str, spec: ParamSpec) -> Param:
    """Check one ``[search.space]`` entry and say what kind of dimension it is.

    >>> make_param("optimizer.lr", ParamSpec(low=1e-4, high=1e-1, log=True)).kind
    'float'
    >>> make_param("model.layers[1].repeat", ParamSpec(low=1, high=3)).kind
    'int'
    """
    where = f"search.space.{json.dumps(key)}"
    try:
        parse_key(key)
    except ConfigError as error:
        raise ConfigError(f"search.space: {error}") from None
    if spec.choices is not None:
        if spec.low is not None or spec.high is not None or spec.step is not None or spec.log:
            raise ConfigError(f"{where}: give either choices or a range (low, high, log, step), not both")
        if not spec.choices:
            raise ConfigError(f"{where}: choices is empty; list at least one value")
        bad = [c for c in spec.choices if c is not None and not isinstance(c, (str, int, float, bool))]
        if bad:
            raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null, got {bad[0]!r}")
        return Param(key, "categorical", choices=tuple(spec.choices))
    if spec.low is None or spec.high is None:
        raise ConfigError(f"{where}: give low and high (a range) or choices (a list)")
    for name, value in (("low", spec.low), ("high", spec.high)):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
    if spec.low >= spec.high:
        raise ConfigError(f"{where}: low ({spec.low!r}) must be below high ({spec.high!r})")
    if spec.log and spec.low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {spec.low!r}")
    if spec.step is not None:
        if spec.log:
            raise ConfigError(f"{where}: step and log cannot be combined (Optuna samples either on a grid or "
                              "on a log scale)")
        if spec.step <= 0:
            raise ConfigError(f"{where}: step must be positive, got {spec.step!r}")
    integral = is_integer(spec.low) and is_integer(spec.high) and (spec.step is None or is_integer(spec.step))
    return Param(key, "int" if integral else "float", low=spec.low, high=spec.high, log=spec.log, step=spec.step)


def parse_search(raw: Mapping[str, Any]) -> tuple[SearchConfig, list[Param]]:
    """The ``[search]`` section, checked: its settings and the space's dimensions."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"search: must be a table ([search] with [search.space]), got {raw!r}")
    try:
        search = _SearchSection.model_validate({"search": dict(raw)}).search
    except ValidationError as error:
        raise ConfigError("; ".join(validation_error_text(e, _SearchSection) for e in error.errors())) from None
    if not search.space:
        raise ConfigError('search.space: empty; add the keys to search, e.g. "optimizer.lr" = '
                          "{ low = 1e-4, high = 1e-1, log = true }")
    if search.direction is None and inferred_direction(search.metric) is None:
        raise ConfigError(f"search.direction: missing; say whether {search.metric!r} should be "
                          "'maximize'd or 'minimize'd")
    if search.direction is not None and inferred_direction(search.metric) not in (None, search.direction):
        raise ConfigError(f"search.direction: {search.metric!r} is better when "
                          f"{'higher' if inferred_direction(search.metric) == 'maximize' else 'lower'}; "
                          f"direction = {search.direction!r} contradicts it (leave direction out to infer it)")
    if search.grace <= search.heartbeat_interval:
        raise ConfigError(f"search.heartbeat_grace: {search.grace} s must be longer than heartbeat_interval "
                          f"({search.heartbeat_interval} s), or every live trial is taken for a killed one; "
                          "e.g. 3 intervals (the default)")
    return search, [make_param(key, spec) for key, spec in search.space.items()]


def set_space_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a ``[search.space]`` key in a config mapping (the syntax of ``--set``); errors name the entry."""
    try:
        config_set_key(data, key, value)
    except ConfigError as error:
        raise ConfigError(f"search.space.{json.dumps(key)}: {error}") from None


def with_params(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping (without ``[search]``) with the sampled values set."""
    result = copy.deepcopy({k: v for k, v in data.items() if k != "search"})
    for key, value in values.items():
        set_space_key(result, key, value)
    return result
