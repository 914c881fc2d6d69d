"""Running catalog entries: one run per (entry, seed), recorded in the run store.

``reproduce(ids, budget=..., seeds=..., out=...)`` is what ``trainwell reproduce`` does:
it skips every run the store has finished, redoes any unfinished one, runs independent
entries in parallel processes, prints progress, and writes the report. Every run has one
torch thread (``RUN_THREADS``), in a worker or in reproduce's own process alike. Each run gets a state folder ``OUT/runs/<id>/seed<k>/`` for the models it saves
(which entries that reuse them read) and for the training state a killed config entry
and the fit a procedure entry was in (``Context.fit``) resume from (``<state folder>/resume``,
see :mod:`trainwell.train.resume`).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import os
import shutil
import sys
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from trainwell.callbacks import Callback
from trainwell.catalog.registry import Budget, Entry, get, get_budget, with_dependencies
from trainwell.errors import ConfigError, StoreError
from trainwell.catalog.store import RunStore, store_path

BOOK_SEED = 42


def seeds_for(n: int) -> list[int]:
    """The book's seed 42, then 43, 44, ..."""
    return [BOOK_SEED + k for k in range(n)]


def state_dir(out: str | os.PathLike, entry_id: str, seed: int, budget: str) -> Path:
    suffix = "" if budget == "full" else f"-{budget}"
    return Path(out) / "runs" / entry_id / f"seed{seed}{suffix}"


class StoreRecorder(Callback):
    """Logs every epoch into the store, and the run's progress about once a second."""

    def __init__(self, context: "Context", phase: str):
        self.context, self.phase = context, phase
        self._next = 0.0

    def _progress(self, trainer, step_in_epoch: int) -> None:
        self.context.store.set_progress(self.context.run_id, {
            "phase": self.phase, "epoch": trainer.epoch, "epochs": trainer.epochs,
            "step": step_in_epoch, "steps": trainer.steps_per_epoch})

    def on_batch_end(self, trainer, step: int) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 1.0
            self._progress(trainer, trainer.step_in_epoch)

    def _log_history(self, trainer) -> None:
        # Every epoch of the History, not just this one: a fit resumed from a saved state
        # (after the process was killed) brings back epochs this attempt never logged.
        for record in trainer.history.records:
            self.context.store.log_epoch(self.context.run_id, self.phase, record["epoch"], dict(record))

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        self._log_history(trainer)
        self._progress(trainer, trainer.steps_per_epoch)

    def on_fit_end(self, trainer) -> None:
        # A fit killed after its final state was saved resumes with every epoch done: no epoch
        # ends in this attempt, and its epochs are logged here (the new run record has none).
        self._log_history(trainer)


@dataclass
class Context:
    """What a catalog procedure gets: its entry, seed, budget, store and state folder."""

    entry: Entry
    seed: int
    budget: Budget
    store: RunStore
    run_id: int
    out: Path
    results: dict[str, float] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        path = state_dir(self.out, self.entry.id, self.seed, self.budget.name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def state_of(self, entry_id: str) -> Path:
        """The state folder of an entry this one needs (same seed, same budget)."""
        return state_dir(self.out, entry_id, self.seed, self.budget.name)

    @property
    def epochs(self) -> int:
        return self.budget.epochs(self.entry)

    def recorder(self, phase: str = "train") -> StoreRecorder:
        return StoreRecorder(self, phase)

    def fit(self, trainer: Any, x: Any, y: Any, *, phase: str = "train", **options: Any):
        """``trainer.fit`` with its state saved in the run's folder at every epoch end.

        A run killed during this fit continues it from the last saved state when reproduce
        runs again; a finished fit's state is removed (redoing it gives the same weights).
        """
        resume = self.state_dir / "resume" / phase.replace(" ", "-")
        history = trainer.fit(x, y, resume_dir=resume, **options)
        shutil.rmtree(resume, ignore_errors=True)
        return history

    def result(self, **values: float) -> None:
        values = {k: float(v) for k, v in values.items()}
        self.results.update(values)
        self.store.log_results(self.run_id, values)

    def series(self, name: str, data: Any) -> None:
        self.store.log_series(self.run_id, name, data)

    def note_config(self, config: Any) -> None:
        self.store.set_config(self.run_id, config)

    def train_size(self, full: int | None = None) -> int | None:
        """The budget's cap on training images (``full``: the entry's own size in the full budget)."""
        if self.budget.train_size is None:
            return full
        return self.budget.train_size if full is None else min(full, self.budget.train_size)


# ----------------------------------------------------------------- config entries
def budget_config(config: dict[str, Any], context: Context, *, epochs: int | None = None) -> dict[str, Any]:
    """The entry's config for this seed and budget: the budget's epochs and training-set size."""
    config = copy.deepcopy(config)
    config["seed"] = context.seed
    config["output_dir"] = str(context.state_dir)
    train = config.setdefault("train", {})
    if config.get("phases"):  # each phase has its epochs (the smoke budget: one each)
        train.pop("epochs", None)
        if context.budget.name == "smoke":
            config["phases"] = [{**phase, "epochs": 1} for phase in config["phases"]]
    else:
        train["epochs"] = epochs if epochs is not None else max(1, context.epochs)
    if context.budget.name == "smoke":  # a few steps per epoch even at batch 128 (1cycle needs some room)
        train["batch_size"] = min(train.get("batch_size", 32), 32)
    data = config.setdefault("data", {})
    size = context.train_size(data.get("train_size"))
    if size is not None:
        data["train_size"] = size
    if context.budget.validation_size is not None:
        data["validation_size"] = min(data.get("validation_size", 5000), context.budget.validation_size)
    return config


def run_config(context: Context, config: dict[str, Any] | None = None, *, phase: str = "train",
               epochs: int | None = None, callbacks: list[Callback] | None = None):
    """Train a config under the budget; record epochs, final metrics and (with a schedule) the rate per step."""
    from trainwell.config import validate_config
    from trainwell.recipes.train import train_config

    config = budget_config(config if config is not None else context.entry.config, context, epochs=epochs)
    context.note_config(config)
    run = train_config(validate_config(config, source=context.entry.id), verbose=False, overwrite=True,
                       callbacks=[context.recorder(phase), *(callbacks or [])])
    context.result(**{k: v for k, v in run.metrics.items() if isinstance(v, (int, float))})
    if "schedule" in config:
        context.series("lr", thin(run.history.steps.get("lr", [])))
    if run.diagnosis is not None:
        context.series("diagnosis", run.diagnosis.to_markdown())
    return run


def thin(values: list[float], points: int = 1500) -> dict[str, list[float]]:
    """At most ``points`` (step, value) pairs of a long per-step series, for plotting."""
    stride = max(1, len(values) // points)
    steps = list(range(0, len(values), stride))
    return {"step": steps, "value": [float(values[i]) for i in steps]}


# ----------------------------------------------------------------- one run
def versions() -> dict[str, str]:
    from trainwell.versions import versions as library_versions

    return library_versions()


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu ({torch.get_num_threads()} torch threads)"


RUN_THREADS = 1  # torch intra-op threads of every catalog run, wherever it runs


def run_one(out: str | os.PathLike, entry_id: str, seed: int, budget: str) -> str:
    """Run one (entry, seed) and record it; returns "finished" or "failed" (the error goes to the store).

    The run has :data:`RUN_THREADS` torch threads whether it runs in a worker or in reproduce's own
    process (as the last pending run does, or any with ``jobs=1``): a float sum split over more
    threads rounds differently, and a run's figures must not depend on how it was scheduled.
    """
    from trainwell.train.threads import using_threads

    with using_threads(RUN_THREADS):
        return _run_one(out, entry_id, seed, budget)


def _run_one(out: str | os.PathLike, entry_id: str, seed: int, budget: str) -> str:
    from trainwell.train.trainer import seed_everything

    entry = get(entry_id)
    store = RunStore(store_path(out))
    try:
        run_id = store.start_run(entry_id, seed, budget, config=entry.config, versions=versions(),
                                 device=device_name())
        context = Context(entry=entry, seed=seed, budget=get_budget(budget), store=store, run_id=run_id,
                          out=Path(out))
        try:
            seed_everything(seed)
            entry.run(context)
        except Exception as error:  # recorded, shown in the report, and redone next time
            store.fail(run_id, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=6)}")
            return "failed"
        store.finish(run_id)
        return "finished"
    finally:
        store.close()


def _worker_init() -> None:
    import torch

    torch.set_num_threads(RUN_THREADS)
    os.environ.setdefault("OMP_NUM_THREADS", str(RUN_THREADS))
    exit_with_parent()


def exit_with_parent(poll_s: float = 1.0) -> None:
    """End this worker process when the process that started it is gone.

    ``kill`` on reproduce's main process (rather than Ctrl-C, which reaches the whole
    process group) would otherwise leave its workers training on, or waiting forever,
    as orphans. The run a worker was in stays unfinished in the store and is redone.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# ----------------------------------------------------------------- reproduce
@dataclass
class Task:
    entry: Entry
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return self.entry.id, self.seed

    @property
    def name(self) -> str:
        return f"{self.entry.id} seed {self.seed}"


def datasets_needed(entry: Entry) -> set[str]:
    """The datasets a run of ``entry`` loads: its config's, those its procedure declares, and its needs'."""
    from trainwell.data import get_spec

    names = set(entry.datasets)
    if entry.config is not None and (entry.config.get("data") or {}).get("name"):
        names.add(entry.config["data"]["name"])
    for need in entry.needs:
        names |= datasets_needed(get(need))
    return {get_spec(name).name for name in names}


class DatasetCheck:
    """Each dataset the runs need, loaded once here (in reproduce's own process) before any run needing it starts.

    Found, it is read and checked against its checksums; missing, it is downloaded into the
    cache, where the runs (and the worker processes) then find it. A dataset that cannot be
    had is remembered for the rest of the invocation: the first run needing it fails with the
    whole message (where trainwell looked, how to get it), every later one at once with a
    short reference to that run, so one invocation never tries a download twice.
    """

    def __init__(self) -> None:
        self.available: set[str] = set()
        self.missing: dict[str, str] = {}  # dataset -> the run that failed with its message

    def problem(self, task: Task) -> str | None:
        """Why ``task`` cannot run for want of a dataset, or None when every dataset it needs is here."""
        from trainwell.data import datasets as loading
        from trainwell.errors import DataError

        for name in sorted(datasets_needed(task.entry)):
            if name in self.missing:
                return f"not run: dataset {name!r} is not available (the failure of {self.missing[name]} says why)"
            if name in self.available:
                continue
            try:
                loading.load(name)
            except DataError as error:
                self.missing[name] = task.name
                return f"DataError: {error}"
            self.available.add(name)
        return None


def first_line(text: str | None) -> str:
    """The first line of an error text ("" for none)."""
    return (text or "").strip().split("\n", 1)[0]


def error_message(text: str) -> str:
    """A recorded error without its traceback: what the user reads to fix it."""
    return text.split("\nTraceback (most recent call last):", 1)[0].strip()


def unguarded_main_call() -> str | None:
    """``"<script>, line <n>"`` when this call comes from the top level of the main script outside an
    ``if __name__ == "__main__":`` block, else None.

    Worker processes (multiprocessing's spawn) import the main script again before they start;
    from such a call they would run the script's calls again and die, so reproduce runs in-process.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(getattr(main, "__spec__", None), "name", "").endswith("__main__"):
        return None  # python -c, the REPL, a notebook, python -m package: the script is not imported again
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None:
        return None
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    line = frame.f_lineno
    if any(isinstance(node, ast.If) and _is_main_guard(node.test) and node.lineno <= line <= node.end_lineno
           for node in tree.body):
        return None
    return f"{path}, line {line}"


def _is_main_guard(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(side, ast.Name) and side.id == "__name__" for side in sides)
            and any(isinstance(side, ast.Constant) and side.value == "__main__" for side in sides))


def plan(selected: list[str], *, seeds: int, budget: Budget) -> list[Task]:
    """The (entry, seed) runs of a reproduce, seed by seed: ``seeds`` each, and in the full
    budget at least ``Entry.full_seeds`` for an entry judged by its spread (and for what it needs)."""
    counts = {entry_id: max(seeds, get(entry_id).full_seeds if budget.comparable else 0) for entry_id in selected}
    for entry_id in reversed(selected):  # an entry's needs run at least its seeds
        for need in get(entry_id).needs:
            counts[need] = max(counts.get(need, seeds), counts[entry_id])
    return [Task(get(entry_id), seed) for seed in seeds_for(max(counts.values(), default=seeds))
            for entry_id in selected if seed < BOOK_SEED + counts[entry_id]]


LOCK_NAME = "reproduce.lock"


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/reproduce.lock`` while reproduce works in ``out``; a StoreError names the process that holds it.

    Two reproduce in one folder would redo each other's runs (starting a run drops the record
    the other is writing) and fail them. The lock is an OS lock on the file (flock), so it goes
    with its process however that ends: a lock file left by a killed reproduce is simply taken.
    The file holds the holder's process id, for the message.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no lock
        yield
        return
    path = out / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise StoreError(f"{out} is in use by another trainwell reproduce (process {holder or 'unknown'}, which "
                             f"holds {path}); wait for it to end, or use another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _fmt(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def reproduce(ids: list[str] | None = None, *, budget: str = "quick", seeds: int = 1, out: str | os.PathLike = "reproduce",
              jobs: int | None = None, report: bool = True, echo: Callable[[str], None] = print,
              status_every: float = 15.0) -> dict[str, Any]:
    """Run the catalog (or ``ids`` and what they need) for ``seeds`` seeds under ``budget``; write the report.

    Returns ``{"runs": n, "finished": n, "failed": n, "skipped": n, "elapsed_s": s, "report": path,
    "first_error": text}``: ``first_error`` is the message of this invocation's first failed run
    (None when none failed), also echoed once at the end; ``trainwell reproduce`` then exits 1.
    """
    from trainwell.catalog.registry import ids as all_ids

    budget_ = get_budget(budget)
    selected = with_dependencies(list(ids) if ids else all_ids())
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder; reproduce keeps its run store and report in a "
                          "folder (e.g. --out reproduce)")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _reproduce(selected, budget_, seeds, out, jobs, report, echo, status_every)


def _reproduce(selected: list[str], budget_: Budget, seeds: int, out: Path, jobs: int | None, report: bool,
               echo: Callable[[str], None], status_every: float) -> dict[str, Any]:
    """reproduce's work, in a folder it holds the lock of."""
    store = RunStore(store_path(out))
    store.set_meta("budget", budget_.name)
    store.set_meta("seeds", seeds_for(seeds))
    store.set_meta("selected", selected)
    tasks = plan(selected, seeds=seeds, budget=budget_)
    done = {t.key for t in tasks if store.is_finished(t.entry.id, t.seed, budget_.name)}
    pending = [t for t in tasks if t.key not in done]
    failed: set[tuple[str, int]] = set()
    failures: list[tuple[Task, str]] = []  # in the order they happened
    datasets = DatasetCheck()
    jobs = max(1, min(jobs or (os.cpu_count() or 1), len(pending) or 1))
    unguarded = unguarded_main_call() if jobs > 1 else None
    if unguarded is not None:
        echo(f"note: {unguarded} calls reproduce outside `if __name__ == \"__main__\":`, where worker processes "
             "cannot start (each imports the script again), so the runs go one at a time in this process; "
             "put the call under that guard to run them in parallel")
        jobs = 1
    more = sorted({(t.entry.id, sum(u.entry.id == t.entry.id for u in tasks)) for t in tasks if t.seed >= BOOK_SEED + seeds})
    more_text = f" ({', '.join(f'{entry_id}: {n} seeds' for entry_id, n in more)})" if more else ""
    echo(f"trainwell reproduce: {len(selected)} entries x {seeds} seed(s){more_text}, budget {budget_.name}, "
         f"{len(done)} run(s) already finished in {out}, {len(pending)} to run, {jobs} job(s)")
    started = time.monotonic()
    total_cost = sum(t.entry.cost for t in pending) or 1.0
    spent = {"cost": 0.0}

    def eta() -> str:
        elapsed = time.monotonic() - started
        if spent["cost"] <= 0:
            return f"~{_fmt(total_cost / jobs)} left (estimate)"
        rate = elapsed / spent["cost"]
        return f"~{_fmt((total_cost - spent['cost']) * rate)} left"

    def ready(task: Task) -> bool:
        return all((need, task.seed) in done for need in task.entry.needs)

    def unrunnable(task: Task) -> str | None:
        for need in task.entry.needs:
            if (need, task.seed) in failed:
                return f"not run: it needs {need}, which failed"
        return datasets.problem(task)

    def finished_line(task: Task, status: str, took: float, error: str | None = None) -> None:
        spent["cost"] += task.entry.cost
        note = ""
        if status == "finished":
            done.add(task.key)
        else:
            failed.add(task.key)
            if error is None:
                error = (store.run(task.entry.id, task.seed, budget_.name) or {}).get("error")
            error = error or "failed without an error message"
            failures.append((task, error))
            note = " FAILED: " + first_line(error)[:200]
        echo(f"[{len(done) + len(failed)}/{len(tasks)}] {task.name}: {status} in "
             f"{_fmt(took)}{note} | {_fmt(time.monotonic() - started)} elapsed, {eta()}")

    def skip_blocked() -> None:
        for task in list(pending):
            reason = unrunnable(task)
            if reason is not None:
                pending.remove(task)
                run_id = store.start_run(task.entry.id, task.seed, budget_.name, config=task.entry.config)
                store.fail(run_id, reason)
                finished_line(task, "failed", 0.0, reason)

    def show_active(active: dict[tuple[str, int], float]) -> None:
        for (entry_id, seed), since in active.items():
            row = store.run(entry_id, seed, budget_.name) or {}
            progress = row.get("progress") or {}
            where = ""
            if progress:
                where = (f" {progress.get('phase')}: epoch {progress.get('epoch')}/{progress.get('epochs')}, "
                         f"step {progress.get('step')}/{progress.get('steps')};")
            echo(f"    running {entry_id} seed {seed}:{where} {_fmt(time.monotonic() - since)} elapsed")

    interrupted = False
    try:
        if jobs == 1:
            while pending:
                skip_blocked()
                task = next((t for t in pending if ready(t)), None)
                if task is None:
                    break
                pending.remove(task)
                echo(f"  start {task.name}")
                began = time.monotonic()
                status = run_one(out, task.entry.id, task.seed, budget_.name)
                finished_line(task, status, time.monotonic() - began)
        else:
            _run_parallel(out, budget_.name, pending, jobs, ready, skip_blocked, finished_line, show_active,
                          echo, status_every)
    except KeyboardInterrupt:
        interrupted = True
        echo("interrupted: finished runs are kept in the store; run the same command again to resume")
    finally:
        store.close()
    elapsed = time.monotonic() - started
    summary = {"runs": len(tasks), "finished": len(done), "failed": len(failed), "skipped": len(pending),
               "elapsed_s": elapsed, "report": None, "interrupted": interrupted,
               "first_error": error_message(failures[0][1]) if failures else None}
    if interrupted:
        raise KeyboardInterrupt
    if report:
        from trainwell.catalog.report import write_report

        summary["report"], markdown = write_report(out)
    echo(f"done in {_fmt(elapsed)}: {len(done)} finished, {len(failed)} failed")
    if failures:
        echo(f"the first failure, {failures[0][0].name}:")
        echo(textwrap.indent(summary["first_error"], "  "))
    if report:
        echo(f"report: {summary['report']}")
        echo(f"summary: {markdown}")
    return summary


def _run_parallel(out: Path, budget: str, pending: list[Task], jobs: int, ready, skip_blocked, finished_line,
                  show_active, echo, status_every: float) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    active: dict[Any, tuple[Task, float]] = {}
    last_status = time.monotonic()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init) as pool:
        try:
            while pending or active:
                skip_blocked()
                # the costliest ready runs first, so the long ones do not end up alone at the end
                for task in sorted((t for t in pending if ready(t)), key=lambda t: -t.entry.cost):
                    if len(active) >= jobs:
                        break
                    pending.remove(task)
                    echo(f"  start {task.name}")
                    try:
                        active[pool.submit(run_one, str(out), task.entry.id, task.seed, budget)] = (task, time.monotonic())
                    except BrokenProcessPool as error:  # an earlier worker died: no new one starts
                        finished_line(task, "failed", 0.0, _record_worker_death(out, task, budget, error))
                if not active:
                    break
                finished, _ = wait(list(active), timeout=2.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    task, began = active.pop(future)
                    try:
                        status, error = future.result(), None
                    except StoreError:  # the store is damaged, full or read-only: no other run can record either
                        raise
                    except Exception as died:  # the worker process died
                        status, error = "failed", _record_worker_death(out, task, budget, died)
                    finished_line(task, status, time.monotonic() - began, error)
                if time.monotonic() - last_status >= status_every and active:
                    last_status = time.monotonic()
                    show_active({t.key: began for t, began in active.values()})
        except (KeyboardInterrupt, StoreError):
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _record_worker_death(out: Path, task: Task, budget: str, error: BaseException) -> str:
    """Record in the store that ``task``'s worker process died (also when it died before it could start the run).

    Returns the message: the error, and the usual cause of workers that die at once.
    """
    message = (f"the worker process died: {type(error).__name__}: {error or 'no message'}\n"
               "Worker processes import the main script again when they start: a script that calls "
               "trainwell.catalog.reproduce outside `if __name__ == \"__main__\":` (or one that ends its "
               "process on import) stops them; the process's own error, above, says more.")
    with RunStore(store_path(out)) as store:
        row = store.run(task.entry.id, task.seed, budget)
        if row is None or row["status"] != "finished":
            run_id = row["id"] if row is not None else store.start_run(task.entry.id, task.seed, budget,
                                                                       config=task.entry.config)
            store.fail(run_id, message)
    return message


def run_in_process(entry_id: str, *, budget: str = "smoke", seed: int = BOOK_SEED,
                   out: str | os.PathLike) -> dict[str, Any]:
    """Run one entry (and what it needs) here, for tests and notebooks; returns its results."""
    Path(out).mkdir(parents=True, exist_ok=True)
    with folder_lock(Path(out)):
        for needed in with_dependencies([entry_id]):
            store = RunStore(store_path(out))
            finished = store.is_finished(needed, seed, budget)
            store.close()
            if not finished:
                run_one(out, needed, seed, budget)
    store = RunStore(store_path(out))
    try:
        row = store.run(entry_id, seed, budget)
        return {"status": row["status"], "error": row["error"], "results": store.results(row["id"]),
                "series": store.series(row["id"]), "epochs": store.epochs(row["id"])}
    finally:
        store.close()


def as_list(values: Any) -> list[float]:
    return np.asarray(values, dtype=np.float64).ravel().tolist()
