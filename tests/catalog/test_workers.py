"""Worker processes: they start with one torch thread, exit with their parent, and a worker that dies is recorded."""

from __future__ import annotations

import pytest

from trainwell.store import RunStore, store_path


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_workers_exit_when_reproduce_is_killed(tmp_path):
    """A worker of a killed reproduce process does not live on as an orphan."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", f"""
import os, time
from trainwell.catalog.workers import exit_with_parent
child = os.fork()
if child == 0:
    exit_with_parent(poll_s=0.1)
    open({str(pid_file)!r}, "w").write(str(os.getpid()))
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the worker outlived its parent"
        time.sleep(0.1)


def test_a_worker_that_dies_before_its_run_starts_is_recorded_with_its_reason(tmp_path, monkeypatch):
    """No IndexError and no empty message when a worker process dies before it could start the run."""
    from concurrent.futures.process import BrokenProcessPool

    from trainwell.catalog import runner

    def broken(*args, **kwargs):
        raise BrokenProcessPool("A child process terminated abruptly")

    class DeadPool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        submit = staticmethod(broken)

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", DeadPool)
    lines: list[str] = []
    summary = runner.reproduce(["selu_constants", "activation_curves"], budget="smoke", out=tmp_path, jobs=2,
                               echo=lines.append, report=False)
    assert summary["failed"] == 2
    assert "worker process" in summary["first_error"] and "__main__" in summary["first_error"]
    with RunStore(store_path(tmp_path)) as store:
        assert all("terminated abruptly" in run["error"] for run in store.runs(status="failed"))


def test_workers_start_with_the_threads_every_run_gets(monkeypatch):
    import torch

    from trainwell.catalog import workers

    monkeypatch.setattr(workers, "exit_with_parent", lambda: None)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        workers.worker_init()
        assert torch.get_num_threads() == workers.RUN_THREADS == 1
    finally:
        torch.set_num_threads(threads)
