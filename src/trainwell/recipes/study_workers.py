"""One worker among several on a shared Optuna study: its index, its heartbeat, and when the study is done.

Workers on one study need no coordinator besides the study's database:

- a worker's *index* (0, 1, ...) seeds its sampler (``sampler_seed + index``), so that seeded workers
  propose different trials while a lone worker (index 0) proposes what a seeded run always did. The
  index is claimed by creating a marker study ``<study>.worker-<k>`` in the same storage: study names
  are unique in the database, so the first ``k`` whose creation does not fail is this worker's alone;
  the marker is deleted when the worker ends, and a later lone worker gets 0 again; a killed worker's
  marker is taken back once its heartbeat (a running trial in the marker study) is stale;
- a running trial's *heartbeat* (Optuna's, recorded by a thread while the trial trains) lets the other
  workers, or a rerun, find the trial of a killed worker: once its heartbeat is older than the grace
  period it is marked FAIL and Optuna's retry callback queues the same parameters as a new trial;
- the study is *done* when it has the trials asked for that *finished* (complete, pruned, or diverged:
  a result the search keeps), not when that many were started: a worker whose share is taken waits
  for the trials running elsewhere, which either finish or, killed, come back to be retried.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import warnings
from typing import Any, Iterator

MARKER = "{study}.worker-{index}"


def worker_name() -> str:
    """This process as the trials' ``worker`` attribute shows it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def worker_index(optuna, storage, study: str, index: int | None = None, heartbeat: int = 10) -> Iterator[int]:
    """This worker's index on ``study`` for as long as the block runs: ``index`` when given (nothing is
    claimed), else the lowest one no live worker holds, claimed by a marker study (whose one running
    trial carries this worker's heartbeat, so that a killed worker's index is taken back once stale)."""
    if index is not None:
        yield index
        return
    from optuna.study import StudyDirection

    marker = lease = None
    for k in range(100_000):
        name = MARKER.format(study=study, index=k)
        try:
            marker = storage.create_new_study(directions=[StudyDirection.MINIMIZE], study_name=name)
        except optuna.exceptions.DuplicatedStudyError:
            marker = None
            lease = _take_stale_lease(optuna, storage, name)
        else:
            lease = storage.create_new_trial(marker)
        if lease is not None:
            index = k
            break
    beat = Heartbeat(storage, lease, heartbeat).start() if lease is not None else None
    try:
        yield index if index is not None else 0
    finally:
        if beat is not None:
            beat.stop()
        with contextlib.suppress(Exception):  # the database is gone: the marker goes with it
            storage.delete_study(storage.get_study_id_from_name(MARKER.format(study=study, index=index)))


def _take_stale_lease(optuna, storage, marker: str) -> int | None:
    """A new running trial in the marker study ``marker`` when its worker's heartbeat is stale (the worker
    was killed), else None. Failing the stale trial is the lock: the database lets one worker do it."""
    try:
        marker_id = storage.get_study_id_from_name(marker)
        for trial_id in storage._get_stale_trial_ids(marker_id):
            try:
                if storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                    return storage.create_new_trial(marker_id)
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker took it first
                pass
    except KeyError:  # its worker ended and deleted it just now: the next index is as good
        pass
    return None


class Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a thread, from ``start()`` until ``stop()``.

    A failed write (the database briefly away) is tried again at the next beat rather than ending
    the thread, which would leave a live trial to be taken for a killed one.
    """

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(self.trial_id)
            if self._stop.wait(self.interval):
                return

    def start(self) -> "Heartbeat":
        self.storage.record_heartbeat(self.trial_id)  # at once: a trial without any is never found stale
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def fail_stale_trials(optuna, study) -> None:
    """Mark FAIL the running trials whose heartbeat stopped (their worker was killed); the storage's retry
    callback queues each one's parameters again as a waiting trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def adopt_unbeaten_trials(optuna, storage, study_id: int, trials: list[Any], adopted: set[int]) -> None:
    """Record one heartbeat for each running trial that no trainwell worker owns (no ``worker`` attribute: one
    left running by a worker killed before heartbeats were recorded, whose wait would never end), once per
    trial, so that it too turns stale after the grace period and is run again. A live worker's trial, whose
    ``worker`` is set right after it is asked, keeps its own beat."""
    for trial in trials:
        if trial.state == optuna.trial.TrialState.RUNNING and "worker" not in trial.user_attrs \
                and trial.number not in adopted:
            adopted.add(trial.number)
            with contextlib.suppress(Exception):
                storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))


def counts_as_finished(optuna, trial: Any) -> bool:
    """Whether a trial counts toward the study's total: complete, pruned, or failed by diverging (a result of
    its parameters, recorded with an ``error``); not a killed worker's trial nor one given back."""
    State = optuna.trial.TrialState
    return trial.state in (State.COMPLETE, State.PRUNED) or (trial.state == State.FAIL and "error" in trial.user_attrs)


def slots_left(optuna, trials: list[Any], total: int, mine: int | None = None) -> int:
    """How many more trials the study may start: ``total`` less the finished and running ones (those with a
    number below ``mine`` only, when ``mine`` is this worker's new trial: the lower number was asked first)."""
    State = optuna.trial.TrialState
    taken = sum(counts_as_finished(optuna, t) or (t.state == State.RUNNING and (mine is None or t.number < mine))
                for t in trials)
    return total - taken


def retried_number(optuna, frozen: Any) -> int | None:
    """The number of the killed worker's trial that ``frozen`` runs again, or None."""
    callback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return callback.retried_trial_number(frozen)
