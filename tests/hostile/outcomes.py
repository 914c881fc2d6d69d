"""How a hostile case ended, in the five words of the hostile-input table.

Every case of ``tests/hostile`` is a function that takes a fresh folder and returns one
of :data:`OUTCOMES`:

- ``handled``: the input was harmless, and trainwell did exactly the right thing with it
  (a flipped bit in unused padding: the file loads bit-identical);
- ``clear error``: a non-zero exit (or a TrainwellError / OSError raised from the Python
  API) with one line that names what is wrong, and no traceback;
- ``traceback``: any other exception, or a traceback printed;
- ``wrong result``: exit 0 (or no exception) with a result that differs from the truth;
- ``code executed``: something the input smuggled in ran (a sentinel file appeared).

The tests assert that each case ends ``handled`` or ``clear error``; ``scan.py`` runs the
full scans and prints the counts as a table.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from trainwell.errors import TrainwellError

# A run small enough to train in a case (digits, one epoch, 300 images); without a name, so a
# case sets its own (``'name = "tiny"\n' + TINY_CONFIG``).
TINY_CONFIG = """
seed = 3
[data]
name = "digits"
validation_size = 100
train_size = 300
[model]
layers = [{type = "flatten"}, {type = "dense", units = 16, activation = "relu"},
          {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 1
batch_size = 64
"""

HANDLED, CLEAR, TRACEBACK, WRONG, EXECUTED = "handled", "clear error", "traceback", "wrong result", "code executed"
OUTCOMES = (HANDLED, CLEAR, TRACEBACK, WRONG, EXECUTED)
GOOD = (HANDLED, CLEAR)


@dataclass(frozen=True)
class Case:
    """One hostile input: ``run(folder)`` tries it in an empty folder and returns an outcome."""

    area: str
    name: str
    run: Callable[[Path], str]

    def __str__(self) -> str:  # pytest ids
        return self.name


@dataclass
class CliResult:
    rc: int | None
    stdout: str
    stderr: str
    escaped: BaseException | None = None  # an exception that got past main()


def run_cli(argv: list[str], *, stdin: str | None = None) -> CliResult:
    """``trainwell ARGV`` in this process (``trainwell.cli.main``), with its output captured."""
    from trainwell.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    escaped = None
    rc: int | None = None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as stop:
            rc = stop.code if isinstance(stop.code, int) else 1
        except BaseException as error:  # noqa: BLE001 - that is what is being counted
            escaped = error
    return CliResult(rc, stdout.getvalue(), stderr.getvalue(), escaped)


def run_cli_process(argv: list[str], *, cwd: Path, timeout: float, env: dict | None = None) -> CliResult:
    """``trainwell ARGV`` in a child process with a time limit: for inputs that could hang or abort."""
    try:
        done = subprocess.run([sys.executable, "-m", "trainwell.cli", *map(str, argv)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        return CliResult(None, "", f"timed out after {timeout} s", escaped=error)
    return CliResult(done.returncode, done.stdout, done.stderr)


def is_clear_message(text: str) -> bool:
    """One non-empty line that starts with ``error:`` (what the CLI prints), and no traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return "Traceback" not in text and len(errors) == 1 and len(errors[0]) > len("error: ") + 10


def cli_outcome(result: CliResult, *, correct: Callable[[], bool] | None = None) -> str:
    """The outcome of a CLI call: exit 0 is ``handled`` if ``correct()`` (default: it must have failed)."""
    if result.escaped is not None or "Traceback" in result.stderr or "Traceback" in result.stdout:
        return TRACEBACK
    if result.rc == 0:
        return HANDLED if correct is not None and correct() else WRONG
    return CLEAR if is_clear_message(result.stderr) else TRACEBACK


def api_outcome(call: Callable[[], object], *, correct: Callable[[object], bool] | None = None) -> str:
    """The outcome of a Python call: a TrainwellError or OSError with a message is a clear error."""
    try:
        value = call()
    except (TrainwellError, OSError) as error:
        return CLEAR if str(error).strip() and "\n" not in str(error).strip() else TRACEBACK
    except Exception:  # noqa: BLE001
        return TRACEBACK
    return HANDLED if correct is not None and correct(value) else WRONG


def tally(cases: Iterable[Case], folder: Path, *, sentinel: Path | None = None) -> dict[str, dict[str, int]]:
    """Run every case, each in its own subfolder of ``folder``; counts per area and outcome.

    A case after which ``sentinel`` exists counts as ``code executed`` whatever it returned.
    """
    counts: dict[str, dict[str, int]] = {}
    for index, case in enumerate(cases):
        place = folder / f"case-{index:05d}"
        place.mkdir(parents=True)
        outcome = case.run(place)
        if sentinel is not None and sentinel.exists():
            outcome = EXECUTED
            sentinel.unlink()
        row = counts.setdefault(case.area, dict.fromkeys(OUTCOMES, 0))
        row[outcome] += 1
    return counts


def table(counts: dict[str, dict[str, int]]) -> str:
    """The hostile-input table in Markdown: cases tried / handled / clear error / traceback / wrong / executed."""
    lines = ["| area | cases tried | " + " | ".join(OUTCOMES) + " |", "|---|---:|" + "---:|" * len(OUTCOMES)]
    total = dict.fromkeys(OUTCOMES, 0)
    for area, row in counts.items():
        lines.append(f"| {area} | {sum(row.values())} | " + " | ".join(str(row[o]) for o in OUTCOMES) + " |")
        for outcome in OUTCOMES:
            total[outcome] += row[outcome]
    lines.append(f"| **all** | {sum(total.values())} | " + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
    return "\n".join(lines)
