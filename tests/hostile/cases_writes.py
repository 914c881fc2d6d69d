"""Hostile writes: a full disk or a kill at any write of a run.

Every case trains a tiny digits model into a folder that already holds an earlier run's
files (1 epoch), replacing them (--overwrite, 2 epochs), and makes one write fail:

- ``enospc@K``: the K-th atomic write of the run fails with "No space left on device"
  (in this process: the K-th fsync raises), whichever file it is (resume state, a file of
  the output set, the set's manifest);
- ``fsize@N``: a child process whose files may not grow past N bytes (RLIMIT_FSIZE, SIGXFSZ
  ignored: the kernel's EFBIG, which safetensors reports as its own SafetensorError);
- ``kill@K``: a child process SIGKILLed just before its K-th rename, then the same command again.

A full disk must end in one ``error:`` line naming a file in the run's folder, with the
earlier run's files byte for byte as they were and nothing else left behind (resume/ may
stay: it lets the same command finish once there is space). After a kill, a reader sees the
old set or the new one, never a mix, and the command run again completes the new set with
no temporary file left. A diverged run that is kept writes strict JSON (no NaN).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from outcomes import CLEAR, HANDLED, TINY_CONFIG, TRACEBACK, WRONG, Case, is_clear_message, run_cli

AREA = "writes"
SET = ("model.safetensors", "history.json", "history.csv", "metrics.json", "config.json", "curves.png",
       "diagnostics.json")
KEPT_DIRS = ("resume", "checkpoints", "progress")

CONFIG = '\nname = "tiny"' + TINY_CONFIG

CHILD = """
import os, resource, signal, sys
mode, n = sys.argv[1], int(sys.argv[2])
if mode == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
elif mode == "kill":
    real, calls = os.replace, [0]
    def replace(src, dst, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)
    os.replace = replace
from trainwell.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _setup(folder: Path, extra: str = "") -> tuple[Path, Path, dict[str, bytes]]:
    """A config and an output folder holding an earlier (1-epoch) run's files; those files' bytes."""
    config = folder / "tiny.toml"
    config.write_text(CONFIG + extra)
    out = folder / "out"
    result = run_cli(["train", config, "-o", out, "-q"])
    assert result.rc == 0, result.stderr
    return config, out, _set_of(out)


def _set_of(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in SET if (out / name).is_file()}


def _argv(config: Path, out: Path) -> list:
    return ["train", config, "-o", out, "-q", "--epochs", "2", "--overwrite"]


def _strays(out: Path) -> list[str]:
    """What is in the run's folder besides the output set and trainwell's subfolders."""
    return sorted(p.name for p in out.iterdir() if p.name not in SET and p.name not in KEPT_DIRS)


def _temp_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*"))


def _consistent(out: Path, old: dict[str, bytes]) -> str:
    """"old" or "new" when every file of the set is the earlier run's or none is; else "mixed"."""
    now = _set_of(out)
    same = [name for name in now if old.get(name) == now[name]]
    if now.keys() == old.keys() and len(same) == len(now):
        return "old"
    if now.keys() >= {"model.safetensors", "history.json", "metrics.json", "config.json"} and not same:
        return "new"
    return "mixed"


def _failed_cleanly(result, out: Path, old: dict[str, bytes]) -> str:
    """The outcome of a write that was meant to fail: one line naming a file in ``out``, the old set kept."""
    text = result.stderr + result.stdout
    if result.escaped is not None or "Traceback" in text:
        return TRACEBACK
    if result.rc == 0:  # the limit was never reached: the new set must be whole
        return HANDLED if _consistent(out, old) == "new" and not _strays(out) else WRONG
    if _set_of(out) != old or _strays(out):
        return WRONG
    if not is_clear_message(result.stderr) or str(out) not in result.stderr:
        return TRACEBACK
    return CLEAR


def enospc_case(k: int, extra: str = "", label: str = "") -> Case:
    def run(folder: Path) -> str:
        from trainwell import fileio

        config, out, old = _setup(folder, extra)
        real, calls = os.fsync, [0]

        def fsync(fd):
            calls[0] += 1
            if calls[0] == k:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd)

        fileio.os.fsync = fsync  # fileio's os is the os module: restored below
        try:
            result = run_cli(_argv(config, out))
        finally:
            fileio.os.fsync = real
        return _failed_cleanly(result, out, old)

    return Case(AREA, f"enospc@{k}{label}", run)


def _child(folder: Path, mode: str, n: int, argv: list) -> subprocess.CompletedProcess:
    script = folder / "child.py"
    script.write_text(CHILD)
    return subprocess.run([sys.executable, str(script), mode, str(n), *map(str, argv)], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def fsize_case(n: int, extra: str = "", label: str = "") -> Case:
    def run(folder: Path) -> str:
        from outcomes import CliResult

        config, out, old = _setup(folder, extra)
        done = _child(folder, "fsize", n, _argv(config, out))
        return _failed_cleanly(CliResult(done.returncode, done.stdout, done.stderr), out, old)

    return Case(AREA, f"fsize@{n}{label}", run)


def figure_case(command: str, suffix: str, n: int) -> Case:
    """plot-schedule / lr-find on a full disk: one line naming the user's file (matplotlib's JPEG writer
    ignored the error and left a truncated file; its PDF writer raised an AttributeError)."""
    def run(folder: Path) -> str:
        from outcomes import CliResult

        config = folder / "tiny.toml"
        config.write_text(CONFIG)
        target = folder / "figs" / f"plot{suffix}"
        argv = [command, config, "-o", target, *(["--steps", "5"] if command == "lr-find" else [])]
        done = _child(folder, "fsize", n, argv)
        result = CliResult(done.returncode, done.stdout, done.stderr)
        if "Traceback" in done.stderr:
            return TRACEBACK
        if done.returncode == 0:
            return HANDLED if target.stat().st_size < n else WRONG
        if target.exists() or any((folder / "figs").glob(".*")):
            return WRONG
        return CLEAR if is_clear_message(result.stderr) and str(target) in result.stderr else TRACEBACK

    return Case(AREA, f"{command} {suffix} fsize@{n}", run)


def kill_case(k: int) -> Case:
    def run(folder: Path) -> str:
        try:
            from trainwell.fileio import finish_pending_sets
        except ImportError:  # a trainwell without output sets: the folder is read as it is
            def finish_pending_sets(out):
                return None

        config, out, old = _setup(folder)
        done = _child(folder, "kill", k, _argv(config, out))
        if "Traceback" in done.stderr:
            return TRACEBACK
        finish_pending_sets(out)  # what evaluate and predict do before they read
        seen = _consistent(out, old)
        if seen == "mixed":
            return WRONG
        again = run_cli(_argv(config, out))
        if again.escaped is not None or "Traceback" in again.stderr or again.rc != 0:
            return TRACEBACK if again.rc != 2 else WRONG
        if _consistent(out, old) != "new" or _strays(out) or _temp_files(out):
            return WRONG
        return HANDLED

    return Case(AREA, f"kill@{k}", run)


def leftovers_case() -> Case:
    """A killed run's temporary files (old and new style names) go; a live writer's, and the user's, stay."""
    def run(folder: Path) -> str:
        config, out, old = _setup(folder)
        dead = 2 ** 22 + 12345  # above the default pid_max: no process has it
        stale = [out / f".model.safetensors.{dead}-1a2b3c4d.tmp", out / ".history.json.9f8e7d6c.tmp",
                 out / "checkpoints" / f".best.safetensors.{dead}-00ff00ff.tmp"]
        stale_set = out / f".outputs.{dead}-0badc0de.new"
        live = out / f".metrics.json.{os.getpid()}-12345678.tmp"
        mine = [out / ".notes.tmp", out / "notes.txt"]
        for path in [*stale, live, *mine]:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"partial")
        stale_set.mkdir()
        (stale_set / "model.safetensors").write_bytes(b"half a model")  # no manifest: incomplete
        result = run_cli(_argv(config, out))
        if result.escaped is not None or "Traceback" in result.stderr or result.rc != 0:
            return TRACEBACK
        gone = not any(p.exists() for p in stale) and not stale_set.exists()
        kept = live.exists() and all(p.read_bytes() == b"partial" for p in mine)
        return HANDLED if gone and kept and _consistent(out, old) == "new" else WRONG

    return Case(AREA, "stale temporary files", run)


def diverged_case() -> Case:
    """A run that diverges, kept by train.allow_nonfinite_loss: history.json and metrics.json are strict JSON."""
    def run(folder: Path) -> str:
        config = folder / "tiny.toml"
        config.write_text(CONFIG.replace("lr = 0.01", "lr = 1e30").replace('"adam"', '"sgd"')
                          + "allow_nonfinite_loss = true\nresumable = false\n")
        out = folder / "out"
        result = run_cli(["train", config, "-o", out, "-q"])
        if result.escaped is not None or "Traceback" in result.stderr or result.rc != 0:
            return TRACEBACK

        def refuse(constant):
            raise ValueError(constant)

        try:
            history = json.loads((out / "history.json").read_text(), parse_constant=refuse)
            json.loads((out / "metrics.json").read_text(), parse_constant=refuse)
        except ValueError:
            return WRONG
        losses = [r.get("loss") for r in (history["epochs"])]
        return HANDLED if None in losses else WRONG  # it did diverge, and the nan was written as null

    return Case(AREA, "diverged run kept: strict JSON", run)


DIAGNOSTICS = "\n[diagnostics]\nevery = 2\n"


def cases(full: bool) -> list[Case]:
    found = [leftovers_case(), diverged_case()]
    if not full:
        # a resume state, the model of the set, a later file of the set, the manifest; a real EFBIG
        # at the first file of the set; a kill while the set is staged and one while it is moved in
        return [*found, enospc_case(2), enospc_case(4), enospc_case(7), enospc_case(9), enospc_case(9, DIAGNOSTICS, "+diag"),
                fsize_case(3000, "resumable = false\n", "-noresume"), kill_case(9), kill_case(12),
                figure_case("plot-schedule", ".jpg", 1000), figure_case("plot-schedule", ".pdf", 1000)]
    found += [figure_case(command, suffix, n) for command in ("plot-schedule", "lr-find")
              for suffix in (".png", ".jpg", ".pdf", ".svg", ".eps") for n in (0, 1000, 10000)]
    found += [enospc_case(k) for k in range(1, 12)]
    found += [enospc_case(k, DIAGNOSTICS, "+diag") for k in range(1, 13)]
    found += [enospc_case(k, "resumable = false\n", "-noresume") for k in range(1, 9)]
    sizes = [0, 1, 64, 256, 512, 1024, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000, 32000, 64000]
    found += [fsize_case(n) for n in sizes]
    found += [fsize_case(n, "resumable = false\n", "-noresume") for n in sizes]
    found += [kill_case(k) for k in range(1, 16)]
    return found
