"""benchmarks/jax_epoch.py where jax is not installed: its message and exit status, and its thread accounting."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax_epoch

SCRIPT = Path(jax_epoch.__file__)


def test_without_jax_it_says_what_is_missing_and_exits_with_status_3(tmp_path):
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("raise ImportError('No module named jax (a test stand-in)')\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "leaky_relu", "--epochs", "1"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == jax_epoch.MISSING == 3 and done.stdout == ""
    assert "jax and optax are needed to time the JAX side" in done.stderr and "--jax-python" in done.stderr


def test_a_bad_model_or_count_stops_before_anything_runs():
    for argv, message in ((["resnet"], "invalid choice: 'resnet'"), (["selu", "--threads", "0"], "must be positive")):
        done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr


def test_one_thread_turns_xla_multithreading_off_and_pins_one_cpu():
    code = ("import json, os, jax_epoch; limits = jax_epoch.limit_threads(1); "
            "print(json.dumps({**limits, 'affinity': len(os.sched_getaffinity(0)), 'flags': os.environ['XLA_FLAGS']}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=SCRIPT.parent, env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})
    limits = json.loads(done.stdout)
    assert limits["cpus"] == limits["affinity"] == 1
    assert limits["flags"] == "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def test_busy_threads_counts_those_that_did_a_tenth_of_the_work():
    before = {"1": 10.0, "2": 0.0, "3": 5.0}
    after = {"1": 14.0, "2": 0.5, "3": 5.05, "4": 1.0}  # 4.0, 0.5, 0.05 and a new thread's 1.0 of 5.55
    assert jax_epoch.busy_threads(before, after) == 2
    assert str(os.getpid()) in jax_epoch.thread_cpu_seconds()  # the main thread's id is the process's


def test_serve_runs_one_epoch_per_request_until_end():
    import io

    replies, epochs = io.StringIO(), iter([1.5, 1.25])
    served = jax_epoch.serve(lambda: next(epochs), 9.0, io.StringIO("epoch\nepoch\nend\nepoch\n"), replies)
    lines = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert served == 2 and lines == [{"ready": True, "first": 9.0}, {"time": 1.5}, {"time": 1.25}]


def test_serve_stops_on_a_request_it_does_not_know():
    import io

    import pytest

    with pytest.raises(SystemExit, match="unknown request 'epochs'"):
        jax_epoch.serve(lambda: 1.0, 2.0, io.StringIO("epochs\n"), io.StringIO())
