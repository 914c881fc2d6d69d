"""Worker processes for ``reproduce --jobs``: their start (one torch thread, exit with the parent), the
pool that runs the pending runs in them, and the record of a worker that died.

Worker processes (multiprocessing's spawn) import the main script again; :func:`unguarded_main_call`
tells reproduce when that would fail, so it runs in its own process instead.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.catalog.one_run import RUN_THREADS, run_one
from trainwell.catalog.plan import Task
from trainwell.errors import StoreError
from trainwell.store import RunStore, store_path

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.catalog.runner import Progress


def worker_init() -> None:
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


def run_parallel(out: Path, progress: "Progress", jobs: int, status_every: float) -> None:
    """Run ``progress``'s pending runs in ``jobs`` worker processes, each as soon as what it needs is done."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pending, budget, echo = progress.pending, progress.budget.name, progress.echo
    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    active: dict[Any, tuple[Task, float]] = {}
    last_status = time.monotonic()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=worker_init) as pool:
        try:
            while pending or active:
                progress.skip_blocked()
                # the costliest ready runs first, so the long ones do not end up alone at the end
                for task in sorted((t for t in pending if progress.ready(t)), key=lambda t: -t.entry.cost):
                    if len(active) >= jobs:
                        break
                    pending.remove(task)
                    echo(f"  start {task.name}")
                    try:
                        active[pool.submit(run_one, str(out), task.entry.id, task.seed, budget)] = (task, time.monotonic())
                    except BrokenProcessPool as error:  # an earlier worker died: no new one starts
                        progress.finished_line(task, "failed", 0.0, record_worker_death(out, task, budget, error))
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
                        status, error = "failed", record_worker_death(out, task, budget, died)
                    progress.finished_line(task, status, time.monotonic() - began, error)
                if time.monotonic() - last_status >= status_every and active:
                    last_status = time.monotonic()
                    progress.show_active({t.key: began for t, began in active.values()})
        except (KeyboardInterrupt, StoreError):
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def record_worker_death(out: Path, task: Task, budget: str, error: BaseException) -> str:
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
