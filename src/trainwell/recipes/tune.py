"""Hyperparameter search with Optuna: a ``[search]`` section, one trainwell run per trial.

The search space addresses the config's own keys, written as in error messages:
``"optimizer.lr"``, ``"model.layers[1].units"``, ``"model.layers[1].repeat"`` (the
number of copies of a layer table: the depth). Each key gets a range (``low``,
``high``, optional ``log`` and ``step``; integers when ``low`` and ``high`` are) or a
list of ``choices``. Every trial is an ordinary run of the config with the sampled
values, reporting the validation metric at each epoch end so Optuna's MedianPruner
can stop hopeless trials early.

Optuna's storage is the study: the default is a SQLite file beside the results, and
any database URL Optuna accepts (``postgresql://user:pw@host/db``) lets workers on
several machines share one study. ``trials`` is the study's total: each worker keeps
asking for trials until the study has that many, so two workers never run more. Opening the
storage, with one clear error for each way it fails, is :mod:`trainwell.recipes.study_storage`'s.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Union

from pydantic import Field, ValidationError

from trainwell.callbacks import Callback
from trainwell.config import _format_error, _Section, apply_overrides, parse_key, read_config_file, validate_config
from trainwell.config import set_key as config_set_key
from trainwell.errors import ConfigError, StoreError, TrainingDiverged
from trainwell.fileio import atomic_write_text, json_text
from trainwell.recipes.run_folder import output_dir_for
from trainwell.recipes.study_storage import first_line, load_optuna, open_storage, shown_url
from trainwell.recipes.train import train_config
from trainwell.versions import versions

Number = Union[int, float]


class ParamSpec(_Section):
    """One key of ``[search.space]``: ``{low, high, log, step}`` or ``{choices}``."""

    low: Optional[Number] = None
    high: Optional[Number] = None
    log: bool = False
    step: Optional[Number] = None
    choices: Optional[list[Any]] = None


class SearchConfig(_Section):
    """The ``[search]`` section (besides ``space``, every key has a default)."""

    space: dict[str, ParamSpec]
    metric: str = "val_accuracy"
    direction: Optional[Literal["maximize", "minimize"]] = None  # required unless metric is the default
    trials: int = Field(20, gt=0)  # the study's total, over every worker
    sampler: Literal["tpe", "random"] = "tpe"
    sampler_seed: Optional[int] = None
    pruner: Literal["median", "none"] = "median"
    startup_trials: int = Field(5, ge=0)  # MedianPruner: trials that finish before any is pruned
    warmup_epochs: int = Field(1, ge=0)  # MedianPruner: epochs a trial runs before it can be pruned
    study: Optional[str] = None  # default: the config's name
    storage: Optional[str] = None  # default: sqlite:///<output folder>/study.db

    @property
    def goal(self) -> str:
        return self.direction or "maximize"


class _SearchSection(_Section):  # so that errors name the whole key: search.space...
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    integral = _is_int(spec.low) and _is_int(spec.high) and (spec.step is None or _is_int(spec.step))
    return Param(key, "int" if integral else "float", low=spec.low, high=spec.high, log=spec.log, step=spec.step)


def parse_search(raw: Mapping[str, Any]) -> tuple[SearchConfig, list[Param]]:
    """The ``[search]`` section, checked: its settings and the space's dimensions."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"search: must be a table ([search] with [search.space]), got {raw!r}")
    try:
        search = _SearchSection.model_validate({"search": dict(raw)}).search
    except ValidationError as error:
        raise ConfigError("; ".join(_format_error(e, _SearchSection) for e in error.errors())) from None
    if not search.space:
        raise ConfigError('search.space: empty; add the keys to search, e.g. "optimizer.lr" = '
                          "{ low = 1e-4, high = 1e-1, log = true }")
    if search.direction is None and search.metric != "val_accuracy":
        raise ConfigError(f"search.direction: missing; say whether {search.metric!r} should be "
                          "'maximize'd or 'minimize'd")
    return search, [make_param(key, spec) for key, spec in search.space.items()]


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a ``[search.space]`` key in a config mapping (the syntax of ``--set``); errors name the entry."""
    try:
        config_set_key(data, key, value)
    except ConfigError as error:
        raise ConfigError(f"search.space.{json.dumps(key)}: {error}") from None


def with_params(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping (without ``[search]``) with the sampled values set."""
    result = copy.deepcopy({k: v for k, v in data.items() if k != "search"})
    for key, value in values.items():
        set_key(result, key, value)
    return result


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


class PruningCallback(Callback):
    """Reports the monitored metric to an Optuna trial at each epoch end and stops
    training (``trainer.stop_training``) when the pruner says the trial is hopeless."""

    def __init__(self, trial: Any, metric: str):
        self.trial = trial
        self.metric = metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        if self.metric not in logs:
            available = ", ".join(k for k in logs if k not in ("epoch", "time"))
            raise ConfigError(f"search.metric: {self.metric!r} is not logged by this run; available: {available}")
        self.trial.report(float(logs[self.metric]), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.stop_training = True


@dataclass
class TrialRecord:
    """What one trial did, as the CLI prints it."""

    number: int
    state: str  # "complete", "pruned", "failed"
    value: float | None
    params: dict[str, Any]
    epochs: int
    note: str = ""


@dataclass
class TuneResult:
    study_name: str
    storage: str
    output_dir: Path
    metric: str
    direction: str
    ran: list[TrialRecord] = field(default_factory=list)  # by this worker
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_config: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)  # the whole study's trials by state


def tune(config: str | Path, *, trials: int | None = None, storage: str | None = None, study: str | None = None,
         overrides: list[str] | tuple[str, ...] = (), output_dir: str | Path | None = None,
         on_trial: Callable[[TrialRecord], None] | None = None) -> TuneResult:
    """Run trials of the config's ``[search]`` until the study has ``trials`` of them.

    Writes ``best_config.json`` (the config with the best trial's values, ready for
    ``trainwell train``) and ``best_trial.json`` into the output folder
    (``runs/<name>/tune`` unless given). Several processes may call this on one
    study (the same ``storage`` and ``study``) at once.
    """
    data = apply_overrides(read_config_file(config), list(overrides))
    data.setdefault("name", Path(config).stem)
    run_config = validate_config(data, source=str(config))
    if run_config.search is None:
        raise ConfigError(f"{config}: no [search] section; add [search.space] with the keys to search, e.g. "
                          '"optimizer.lr" = { low = 1e-4, high = 1e-1, log = true }')
    search, params = parse_search(run_config.search)
    total = trials if trials is not None else search.trials
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ConfigError(f"--trials: must be a positive integer, got {total!r}")
    out = Path(output_dir) if output_dir is not None else output_dir_for(run_config) / "tune"
    out.mkdir(parents=True, exist_ok=True)
    url = storage or search.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    name = study or search.study or run_config.name or "study"

    optuna = load_optuna()
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _run_study(optuna, data, run_config, search, params, total, out, url, name, on_trial)
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as error:
        raise StoreError(f"search.storage: the study in {shown_url(url)} failed to read or write "
                         f"({_root_cause(error)}); for a SQLite file, check that it and its folder are writable and "
                         "the disk has space; a damaged one cannot be repaired: move it aside and run tune again "
                         f"(its trials are lost; {out / 'best_trial.json'} keeps the best one so far)") from None


def _root_cause(error: BaseException) -> str:
    """The first line of the innermost error under ``error`` (the database's own words)."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    return first_line(error)


TUNE_STORE_ADVICE = ("it only records the trials' runs (the study itself is in the storage): move it aside "
                     "(mv {path} {path}.damaged) and run tune again, which starts a new one")


def _run_study(optuna, data, run_config, search: SearchConfig, params: list[Param], total: int, out: Path, url: str,
               name: str, on_trial) -> TuneResult:
    """tune's trials on the study ``name`` in ``url``, each recorded in ``out/runs.sqlite``; then the best trial's
    files (a storage failure is turned into a StoreError by ``tune``)."""
    from trainwell.catalog.store import RunStore

    sampler = (optuna.samplers.RandomSampler(seed=search.sampler_seed) if search.sampler == "random"
               else optuna.samplers.TPESampler(seed=search.sampler_seed))
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials, n_warmup_steps=search.warmup_epochs)
              if search.pruner == "median" else optuna.pruners.NopPruner())
    the_study = optuna.create_study(study_name=name, storage=open_storage(url), direction=search.goal,
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
    result = TuneResult(study_name=name, storage=shown_url(url), output_dir=out, metric=search.metric,
                        direction=search.goal)
    State = optuna.trial.TrialState
    store = RunStore(out / "runs.sqlite", advice=TUNE_STORE_ADVICE)  # every trial as a run: config, epochs, metrics
    while len(the_study.get_trials(deepcopy=False)) < total:
        trial = the_study.ask()
        if trial.number >= total:  # another worker took the last trial between our count and our ask
            trial.set_user_attr("skipped", f"the study already had {total} trials")
            the_study.tell(trial, state=State.FAIL)
            break
        values = {param.key: param.suggest(trial) for param in params}
        record = TrialRecord(number=trial.number, state="complete", value=None, params=values, epochs=0)
        pruning = PruningCallback(trial, search.metric)
        run_id = store.start_run(f"tune:{name}", trial.number, "tune", config=with_params(data, values),
                                 versions=versions())
        try:
            trial_config = validate_config(with_params(data, values), source=f"trial {trial.number}")
            run = train_config(trial_config, verbose=False, save=False, callbacks=[pruning])
        except TrainingDiverged as error:  # a legitimate outcome of a too-high learning rate: the search goes on
            record.state, record.note = "failed", str(error).splitlines()[0]
            trial.set_user_attr("error", record.note)
            the_study.tell(trial, state=State.FAIL)
            store.fail(run_id, record.note)
        except BaseException as error:
            the_study.tell(trial, state=State.FAIL)
            store.fail(run_id, f"{type(error).__name__}: {error}")
            raise
        else:
            record.epochs = len(run.history)
            trial.set_user_attr("epochs", record.epochs)
            for key, value in run.metrics.items():
                if key.startswith("val_") or key == "train_time_s":
                    trial.set_user_attr(key, float(value))
            if pruning.pruned_at is not None:
                record.state, record.note = "pruned", f"pruned after epoch {pruning.pruned_at}"
                the_study.tell(trial, state=State.PRUNED)
            else:
                value = run.metrics.get(search.metric, run.history.last.get(search.metric))
                record.value = float(value)
                the_study.tell(trial, record.value)
            for epoch in run.history.records:
                store.log_epoch(run_id, "trial", epoch["epoch"], epoch)
            store.log_results(run_id, {k: v for k, v in run.metrics.items() if isinstance(v, (int, float))})
            store.finish(run_id)
        result.ran.append(record)
        if on_trial is not None:
            on_trial(record)

    store.close()
    finished = the_study.get_trials(deepcopy=False)
    result.counts = {state.name.lower(): sum(t.state == state for t in finished) for state in State
                     if any(t.state == state for t in finished)}
    if any(t.state == State.COMPLETE for t in finished):
        best = the_study.best_trial
        result.best_number, result.best_value, result.best_params = best.number, best.value, dict(best.params)
        best_data = with_params(data, best.params)
        best_data.pop("output_dir", None)
        best_data["name"] = f"{run_config.name}_best"
        result.best_config = out / "best_config.json"
        atomic_write_text(result.best_config, json_text(best_data, indent=1) + "\n")
        atomic_write_text(out / "best_trial.json", json_text({
            "study": name, "storage": result.storage, "metric": search.metric, "direction": search.goal,
            "number": best.number, "value": best.value, "params": best.params, "user_attrs": best.user_attrs,
            "trials": result.counts}, indent=1) + "\n")
    return result
