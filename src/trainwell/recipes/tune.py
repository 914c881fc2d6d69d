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
several machines share one study. ``trials`` is the study's total of finished trials: each worker
keeps asking for trials until the study has that many, so two workers never run more, and a killed
worker's trial is run again rather than counted. Opening the storage, with one clear error for each
way it fails, is :mod:`trainwell.recipes.study_storage`'s; what workers agree on through it (their
index, heartbeats, when the study is done), :mod:`trainwell.recipes.study_workers`'.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from trainwell.checks import is_integer
from trainwell.callbacks import Callback
from trainwell.config import (Param, SearchConfig, apply_overrides, parse_search, read_config_file, validate_config,
                              with_params)
from trainwell.errors import ConfigError, StoreError, TrainingDiverged
from trainwell.fileio import atomic_write_text, json_text
from trainwell.recipes.run_folder import output_dir_for
from trainwell.recipes.study_storage import driver_url, first_line, load_optuna, open_storage, shown_url
from trainwell.recipes.study_workers import (Heartbeat, adopt_unbeaten_trials, fail_stale_trials, retried_number,
                                             slots_left, worker_index as claimed_index, worker_name)
from trainwell.recipes.reuse import reusing_prepared_data
from trainwell.recipes.train import train_config
from trainwell.versions import versions


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
    retry_of: int | None = None  # the killed worker's trial whose parameters this one runs again


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
         on_trial: Callable[[TrialRecord], None] | None = None, worker_index: int | None = None,
         on_wait: Callable[[list[int]], None] | None = None) -> TuneResult:
    """Run trials of the config's ``[search]`` until the study has ``trials`` finished ones.

    Writes ``best_config.json`` (the config with the best trial's values, ready for
    ``trainwell train``) and ``best_trial.json`` into the output folder
    (``runs/<name>/tune`` unless given). Several processes may call this on one
    study (the same ``storage`` and ``study``) at once: each seeds its sampler with
    ``sampler_seed + worker_index`` (the index is claimed in the storage unless given; a lone
    worker's is 0), and a killed one's trial is run again by the others or by a rerun.
    ``on_wait`` is called with the numbers of the trials running elsewhere when this worker
    waits for them to finish (or, killed, to come back for a retry).
    """
    data = apply_overrides(read_config_file(config), list(overrides))
    data.setdefault("name", Path(config).stem)
    run_config = validate_config(data, source=str(config))
    if run_config.search is None:
        raise ConfigError(f"{config}: no [search] section; add [search.space] with the keys to search, e.g. "
                          '"optimizer.lr" = { low = 1e-4, high = 1e-1, log = true }')
    search, params = parse_search(run_config.search)
    total = trials if trials is not None else search.trials
    if not is_integer(total) or total < 1:
        raise ConfigError(f"--trials: must be a positive integer, got {total!r}")
    if worker_index is not None and (not is_integer(worker_index) or worker_index < 0):
        raise ConfigError(f"--worker-index: must be a non-negative integer, got {worker_index!r}")
    out = Path(output_dir) if output_dir is not None else output_dir_for(run_config) / "tune"
    out.mkdir(parents=True, exist_ok=True)
    url = driver_url(storage or search.storage or f"sqlite:///{(out / 'study.db').resolve()}")
    name = study or search.study or run_config.name or "study"

    optuna = load_optuna()
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _run_study(optuna, data, run_config, search, params, total, out, url, name, on_trial, worker_index,
                          on_wait)
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
               name: str, on_trial, index: int | None, on_wait) -> TuneResult:
    """tune's trials on the study ``name`` in ``url``, each recorded in ``out/runs.sqlite``; then the best trial's
    files (a storage failure is turned into a StoreError by ``tune``)."""
    from trainwell.store import RunStore

    storage = open_storage(url, heartbeat=search.heartbeat_interval, grace=search.grace, retries=search.trial_retries)
    with claimed_index(optuna, storage, name, index, search.heartbeat_interval) as index:
        seed = None if search.sampler_seed is None else (search.sampler_seed + index) % 2**32  # NumPy's range
        sampler = (optuna.samplers.RandomSampler(seed=seed) if search.sampler == "random"
                   else optuna.samplers.TPESampler(seed=seed))
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials,
                                              n_warmup_steps=search.warmup_epochs)
                  if search.pruner == "median" else optuna.pruners.NopPruner())
        the_study = optuna.create_study(study_name=name, storage=storage, direction=search.goal,
                                        sampler=sampler, pruner=pruner, load_if_exists=True)
        result = TuneResult(study_name=name, storage=shown_url(url), output_dir=out, metric=search.metric,
                            direction=search.goal)
        store = RunStore(out / "runs.sqlite", advice=TUNE_STORE_ADVICE)  # every trial as a run
        try:
            with reusing_prepared_data(forget_after=True):  # each trial trains on the data the first prepared
                _trials(optuna, the_study, storage, data, search, params, total, name, store, result, on_trial,
                        on_wait)
        finally:
            store.close()
    return _best(optuna, the_study, data, run_config, search, name, out, result)


def _trials(optuna, the_study, storage, data, search: SearchConfig, params: list[Param], total: int, name: str,
            store, result: TuneResult, on_trial, on_wait) -> None:
    """Ask for trials and run them until the study has ``total`` finished ones; while the rest of them
    run in other workers, wait for those to finish or, killed, to be marked failed and queued again."""
    State = optuna.trial.TrialState
    study_id = storage.get_study_id_from_name(name)
    waited_for: list[int] = []
    adopted: set[int] = set()
    while True:
        fail_stale_trials(optuna, the_study)  # a killed worker's trial: FAIL, and its parameters queued again
        trials = the_study.get_trials(deepcopy=False)
        if slots_left(optuna, trials, total) <= 0:
            running = [t.number for t in trials if t.state == State.RUNNING]
            if not running:
                return
            if running != waited_for and on_wait is not None:
                on_wait(running)
            waited_for = running
            adopt_unbeaten_trials(optuna, storage, study_id, trials, adopted)
            time.sleep(min(search.heartbeat_interval, 5))
            continue
        with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for Study.optimize: we beat
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = the_study.ask()
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        heartbeat = Heartbeat(storage, trial_id, search.heartbeat_interval).start()
        try:
            if slots_left(optuna, the_study.get_trials(deepcopy=False), total, mine=trial.number) <= 0:
                # other workers asked first for the last trials: give this one back, wait for theirs
                trial.set_user_attr("skipped", f"the study already had {total} trials")
                the_study.tell(trial, state=State.FAIL)
                continue
            trial.set_user_attr("worker", worker_name())
            try:
                record = _run_trial(optuna, the_study, trial, data, search, params, name, store)
            except optuna.exceptions.UpdateFinishedTrialError:  # marked failed meanwhile: run again, not counted
                record = TrialRecord(number=trial.number, state="failed", value=None, params=dict(trial.params),
                                     epochs=0, note=TAKEN_FOR_KILLED)
            record.retry_of = retried_number(optuna, storage.get_trial(trial_id))
        finally:
            heartbeat.stop()
        result.ran.append(record)
        if on_trial is not None:
            on_trial(record)


def _run_trial(optuna, the_study, trial, data, search: SearchConfig, params: list[Param], name: str,
               store) -> TrialRecord:
    """One trial: its run trained, recorded in the run store, and its outcome told to the study."""
    State = optuna.trial.TrialState
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
        _tell(optuna, the_study, trial, state=State.FAIL)
        store.fail(run_id, record.note)
        return record
    except BaseException as error:
        the_study.tell(trial, state=State.FAIL, skip_if_finished=True)
        store.fail(run_id, TAKEN_FOR_KILLED if isinstance(error, optuna.exceptions.UpdateFinishedTrialError)
                   else f"{type(error).__name__}: {error}")
        raise
    record.epochs = len(run.history)
    trial.set_user_attr("epochs", record.epochs)
    for key, value in run.metrics.items():
        if key.startswith("val_") or key == "train_time_s":
            trial.set_user_attr(key, float(value))
    if pruning.pruned_at is not None:
        record.state, record.note = "pruned", f"pruned after epoch {pruning.pruned_at}"
        _tell(optuna, the_study, trial, state=State.PRUNED)
    else:
        value = run.metrics.get(search.metric, run.history.last.get(search.metric))
        record.value = float(value)
        _tell(optuna, the_study, trial, record.value)
    for epoch in run.history.records:
        store.log_epoch(run_id, "trial", epoch["epoch"], epoch)
    store.log_results(run_id, {k: v for k, v in run.metrics.items() if isinstance(v, (int, float))})
    store.finish(run_id)
    return record


TAKEN_FOR_KILLED = ("failed: another worker took it for a killed worker's trial (its heartbeat was later than "
                    "search.heartbeat_grace) and runs it again")


def _tell(optuna, the_study, trial, value: float | None = None, state=None) -> None:
    """Tell the study a trial's outcome; UpdateFinishedTrialError when another worker has marked it failed
    meanwhile (its heartbeat was late: the process was stopped, the machine slept)."""
    told = the_study.tell(trial, value, state=state, skip_if_finished=True)
    if told.state != (state or optuna.trial.TrialState.COMPLETE):
        raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial.number} is {told.state.name} already")


def _best(optuna, the_study, data, run_config, search: SearchConfig, name: str, out: Path,
          result: TuneResult) -> TuneResult:
    """The study's counts by state and its best trial, written as best_config.json and best_trial.json."""
    State = optuna.trial.TrialState
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
        results = {k: v for k, v in best.user_attrs.items() if k != "worker"}  # not which process ran it
        atomic_write_text(out / "best_trial.json", json_text({
            "study": name, "storage": result.storage, "metric": search.metric, "direction": search.goal,
            "number": best.number, "value": best.value, "params": best.params, "user_attrs": results,
            "trials": result.counts}, indent=1) + "\n")
    return result
