"""Running catalog entries: ``reproduce`` (what ``trainwell reproduce`` does) and ``run_in_process``.

``reproduce(ids, budget=..., seeds=..., out=...)`` skips every run the store has finished, redoes
any unfinished one, runs independent entries in parallel processes (:mod:`~trainwell.catalog.workers`),
prints progress (:class:`Progress`), and writes the report. What it runs is the plan
(:mod:`~trainwell.catalog.plan`); each run is :func:`~trainwell.catalog.one_run.run_one`, with one
torch thread in a worker or in reproduce's own process alike; one reproduce at a time holds a folder
(:mod:`~trainwell.catalog.folder_lock`).
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

from trainwell.catalog.folder_lock import folder_lock
from trainwell.catalog.one_run import run_one
from trainwell.catalog.plan import BOOK_SEED, DatasetCheck, Task, plan, seeds_for
from trainwell.catalog.registry import with_dependencies
from trainwell.catalog.vocabulary import Budget, get_budget
from trainwell.catalog.workers import run_parallel, unguarded_main_call
from trainwell.errors import ConfigError
from trainwell.store import RunStore, store_path


def first_line(text: str | None) -> str:
    """The first line of an error text ("" for none)."""
    return (text or "").strip().split("\n", 1)[0]


def error_message(text: str) -> str:
    """A recorded error without its traceback: what the user reads to fix it."""
    return text.split("\nTraceback (most recent call last):", 1)[0].strip()


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
    from trainwell.recipes.reuse import reusing_prepared_data

    with folder_lock(out), reusing_prepared_data(forget_after=True):  # this process's runs share their data
        return _reproduce(selected, budget_, seeds, out, jobs, report, echo, status_every)


class Progress:
    """One reproduce's runs as they go: done, failed and pending, the runs that cannot start, and the
    lines it prints (a line per finished run with the time left, the runs in progress)."""

    def __init__(self, store: RunStore, budget: Budget, tasks: list[Task], done: set[tuple[str, int]],
                 jobs: int, echo: Callable[[str], None]):
        self.store, self.budget, self.tasks, self.done, self.jobs, self.echo = store, budget, tasks, done, jobs, echo
        self.pending = [t for t in tasks if t.key not in done]
        self.failed: set[tuple[str, int]] = set()
        self.failures: list[tuple[Task, str]] = []  # in the order they happened
        self.datasets = DatasetCheck()
        self.started = time.monotonic()
        self.total_cost = sum(t.entry.cost for t in self.pending) or 1.0
        self.spent = 0.0

    def eta(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.spent <= 0:
            return f"~{_fmt(self.total_cost / self.jobs)} left (estimate)"
        rate = elapsed / self.spent
        return f"~{_fmt((self.total_cost - self.spent) * rate)} left"

    def ready(self, task: Task) -> bool:
        return all((need, task.seed) in self.done for need in task.entry.needs)

    def unrunnable(self, task: Task) -> str | None:
        for need in task.entry.needs:
            if (need, task.seed) in self.failed:
                return f"not run: it needs {need}, which failed"
        return self.datasets.problem(task)

    def finished_line(self, task: Task, status: str, took: float, error: str | None = None) -> None:
        self.spent += task.entry.cost
        note = ""
        if status == "finished":
            self.done.add(task.key)
        else:
            self.failed.add(task.key)
            if error is None:
                error = (self.store.run(task.entry.id, task.seed, self.budget.name) or {}).get("error")
            error = error or "failed without an error message"
            self.failures.append((task, error))
            note = " FAILED: " + first_line(error)[:200]
        self.echo(f"[{len(self.done) + len(self.failed)}/{len(self.tasks)}] {task.name}: {status} in "
                  f"{_fmt(took)}{note} | {_fmt(time.monotonic() - self.started)} elapsed, {self.eta()}")

    def skip_blocked(self) -> None:
        for task in list(self.pending):
            reason = self.unrunnable(task)
            if reason is not None:
                self.pending.remove(task)
                run_id = self.store.start_run(task.entry.id, task.seed, self.budget.name, config=task.entry.config)
                self.store.fail(run_id, reason)
                self.finished_line(task, "failed", 0.0, reason)

    def show_active(self, active: dict[tuple[str, int], float]) -> None:
        for (entry_id, seed), since in active.items():
            row = self.store.run(entry_id, seed, self.budget.name) or {}
            progress = row.get("progress") or {}
            where = ""
            if progress:
                where = (f" {progress.get('phase')}: epoch {progress.get('epoch')}/{progress.get('epochs')}, "
                         f"step {progress.get('step')}/{progress.get('steps')};")
            self.echo(f"    running {entry_id} seed {seed}:{where} {_fmt(time.monotonic() - since)} elapsed")

    def run_here(self, out: Path) -> None:
        """The pending runs one at a time in this process, each as soon as what it needs is done."""
        while self.pending:
            self.skip_blocked()
            task = next((t for t in self.pending if self.ready(t)), None)
            if task is None:
                break
            self.pending.remove(task)
            self.echo(f"  start {task.name}")
            began = time.monotonic()
            status = run_one(out, task.entry.id, task.seed, self.budget.name)
            self.finished_line(task, status, time.monotonic() - began)


def _jobs(jobs: int | None, pending: int, echo: Callable[[str], None]) -> int:
    """The worker processes to use: ``jobs`` (default: a core each), no more than the runs, and one
    (this process) where worker processes cannot start."""
    jobs = max(1, min(jobs or (os.cpu_count() or 1), pending or 1))
    unguarded = unguarded_main_call() if jobs > 1 else None
    if unguarded is not None:
        echo(f"note: {unguarded} calls reproduce outside `if __name__ == \"__main__\":`, where worker processes "
             "cannot start (each imports the script again), so the runs go one at a time in this process; "
             "put the call under that guard to run them in parallel")
        jobs = 1
    return jobs


def _start_line(selected: list[str], seeds: int, budget: Budget, tasks: list[Task], done: int, pending: int,
                out: Path, jobs: int) -> str:
    more = sorted({(t.entry.id, sum(u.entry.id == t.entry.id for u in tasks)) for t in tasks if t.seed >= BOOK_SEED + seeds})
    more_text = f" ({', '.join(f'{entry_id}: {n} seeds' for entry_id, n in more)})" if more else ""
    return (f"trainwell reproduce: {len(selected)} entries x {seeds} seed(s){more_text}, budget {budget.name}, "
            f"{done} run(s) already finished in {out}, {pending} to run, {jobs} job(s)")


def _reproduce(selected: list[str], budget_: Budget, seeds: int, out: Path, jobs: int | None, report: bool,
               echo: Callable[[str], None], status_every: float) -> dict[str, Any]:
    """reproduce's work, in a folder it holds the lock of."""
    store = RunStore(store_path(out))
    store.set_meta("budget", budget_.name)
    store.set_meta("seeds", seeds_for(seeds))
    store.set_meta("selected", selected)
    tasks = plan(selected, seeds=seeds, budget=budget_)
    done = {t.key for t in tasks if store.is_finished(t.entry.id, t.seed, budget_.name)}
    pending = len(tasks) - len(done)
    jobs = _jobs(jobs, pending, echo)
    echo(_start_line(selected, seeds, budget_, tasks, len(done), pending, out, jobs))
    progress = Progress(store, budget_, tasks, done, jobs, echo)
    interrupted = False
    try:
        if jobs == 1:
            progress.run_here(out)
        else:
            run_parallel(out, progress, jobs, status_every)
    except KeyboardInterrupt:
        interrupted = True
        echo("interrupted: finished runs are kept in the store; run the same command again to resume")
    finally:
        store.close()
    summary = _summary(progress, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return _finish(out, progress, summary, report)


def _summary(progress: Progress, interrupted: bool) -> dict[str, Any]:
    failures = progress.failures
    return {"runs": len(progress.tasks), "finished": len(progress.done), "failed": len(progress.failed),
            "skipped": len(progress.pending), "elapsed_s": time.monotonic() - progress.started, "report": None,
            "interrupted": interrupted, "first_error": error_message(failures[0][1]) if failures else None}


def _finish(out: Path, progress: Progress, summary: dict[str, Any], report: bool) -> dict[str, Any]:
    """Write the report and say how it went: the counts, the first failure, where the report is."""
    echo = progress.echo
    if report:
        from trainwell.catalog.report import write_report

        summary["report"], markdown = write_report(out)
    echo(f"done in {_fmt(summary['elapsed_s'])}: {len(progress.done)} finished, {len(progress.failed)} failed")
    if progress.failures:
        echo(f"the first failure, {progress.failures[0][0].name}:")
        echo(textwrap.indent(summary["first_error"], "  "))
    if report:
        echo(f"report: {summary['report']}")
        echo(f"summary: {markdown}")
    return summary


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
