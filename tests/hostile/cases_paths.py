"""Hostile paths: run names that are paths, output folders with any characters, odd resume folders.

- ``name = "../../escape"``, ``"/abs/dir"``, ``"."``, ...: for train, lr-find, plot-schedule and
  tune, one clear line saying what a name may be, and nothing written anywhere; a name with
  spaces or non-ASCII letters is a name (the files go to ``runs/<name>``);
- ``-o`` (and ``--set output_dir=``) with an emoji, accents, or bytes that are not UTF-8: the
  files go exactly there;
- a ``resume/config.json`` that is not UTF-8 (or is a folder): the run is not this one's, so
  it is replaced, not a traceback; a symlinked ``resume/``: the link is removed once the run
  is finished, its target (the user's folder) is kept;
- a file where a folder should be: the error names it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from outcomes import CLEAR, HANDLED, TINY_CONFIG, TRACEBACK, WRONG, Case, cli_outcome, run_cli

AREA = "paths"

CONFIG = TINY_CONFIG
SEARCH = '\n[search]\ntrials = 1\n[search.space]\n"optimizer.lr" = {low = 0.001, high = 0.1, log = true}\n'

BAD_NAMES = ["../../escape", "../escape", "/abs/dir", ".", "..", ".hidden", "a/b", "a\\b", "", "x\ny", "a\x00b"]
GOOD_NAMES = ["with space", "übung", "名前", "a.b-c_d"]


@contextlib.contextmanager
def inside(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _everything(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _command(command: str) -> list[str]:
    return {"train": ["train", "run.toml", "-q"],
            "lr-find": ["lr-find", "run.toml", "--steps", "5"],
            "plot-schedule": ["plot-schedule", "run.toml"],
            "tune": ["tune", "run.toml", "-q"]}[command]


def name_case(command: str, name: str) -> Case:
    """A name that is a path is refused before anything is written (the folder holds only the config)."""
    def run(folder: Path) -> str:
        work = folder / "a" / "b"  # "../../escape" from runs/ would land in folder/a
        work.mkdir(parents=True)
        (work / "run.toml").write_text(f"name = {_toml_string(name)}\n" + CONFIG + (SEARCH if command == "tune" else ""))
        if name.startswith("/abs"):
            (work / "run.toml").write_text((work / "run.toml").read_text().replace(
                _toml_string(name), _toml_string(str(folder / name.lstrip("/")))))
        before = _everything(folder)
        with inside(work):
            result = run_cli(_command(command))
        outcome = cli_outcome(result)
        if outcome == CLEAR and (_everything(folder) != before or "name" not in result.stderr):
            return WRONG
        return outcome

    return Case(AREA, f"{command} name={name!r}", run)


def good_name_case(name: str) -> Case:
    def run(folder: Path) -> str:
        (folder / "run.toml").write_text(f"name = {_toml_string(name)}\n" + CONFIG)
        with inside(folder):
            result = run_cli(_command("plot-schedule"))
        return cli_outcome(result, correct=lambda: (folder / "runs" / name / "schedule.png").is_file())

    return Case(AREA, f"plot-schedule name={name!r}", run)


def _toml_string(text: str) -> str:
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text) + '"'


def output_case(command: str, target: str, *, via_set: bool = False) -> Case:
    """``-o TARGET`` (or ``--set output_dir=TARGET``): the files are written at exactly that path."""
    def run(folder: Path) -> str:
        (folder / "run.toml").write_text('name = "tiny"\n' + CONFIG)
        argv = _command(command)
        argv += ["--set", f"output_dir={target}"] if via_set else ["-o", target]
        with inside(folder):
            result = run_cli(argv)
        expected = folder / target / "model.safetensors" if command == "train" else folder / target
        return cli_outcome(result, correct=lambda: expected.is_file() and not (folder / "runs").exists())

    return Case(AREA, f"{command} {'--set output_dir' if via_set else '-o'} {target!r}", run)


def resume_config_case(content: bytes | None, label: str) -> Case:
    """resume/config.json that cannot be read (not UTF-8; a folder): not this run's; the run trains."""
    def run(folder: Path) -> str:
        (folder / "run.toml").write_text('name = "tiny"\n' + CONFIG)
        saved = folder / "out" / "resume" / "config.json"
        saved.parent.mkdir(parents=True)
        if content is None:
            saved.mkdir()
        else:
            saved.write_bytes(content)
        result = run_cli(["train", folder / "run.toml", "-o", folder / "out", "-q"])
        outcome = cli_outcome(result, correct=lambda: (folder / "out" / "model.safetensors").is_file())
        if outcome == CLEAR and "config.json" not in result.stderr:
            return WRONG
        return outcome

    return Case(AREA, f"resume/config.json {label}", run)


def symlinked_resume_case() -> Case:
    """out/resume is a link to the user's folder: the finished run removes the link, never the folder."""
    def run(folder: Path) -> str:
        (folder / "run.toml").write_text('name = "tiny"\n' + CONFIG)
        theirs = folder / "elsewhere"
        theirs.mkdir()
        (theirs / "keep.txt").write_text("mine")
        out = folder / "out"
        out.mkdir()
        (out / "resume").symlink_to(theirs, target_is_directory=True)
        result = run_cli(["train", folder / "run.toml", "-o", out, "-q"])
        if result.escaped is not None or "Traceback" in result.stderr:
            return TRACEBACK
        if result.rc != 0:
            return cli_outcome(result)
        ok = (not os.path.lexists(out / "resume") and (theirs / "keep.txt").read_text() == "mine"
              and (out / "model.safetensors").is_file())
        if not ok:
            return WRONG
        again = run_cli(["train", folder / "run.toml", "-o", out, "-q"])  # finished: refused, not redone
        return CLEAR if again.rc == 2 and "already holds a finished run" in again.stderr else WRONG

    return Case(AREA, "symlinked resume/", run)


def file_in_the_way_case(command: str) -> Case:
    """The output folder's parent is a file: one line naming it."""
    def run(folder: Path) -> str:
        (folder / "run.toml").write_text('name = "tiny"\n' + CONFIG)
        (folder / "afile").write_text("not a folder")
        target = "afile/out" if command == "train" else "afile/x.png"
        with inside(folder):
            result = run_cli([*_command(command), "-o", target])
        outcome = cli_outcome(result)
        return WRONG if outcome == CLEAR and "afile" not in result.stderr else outcome

    return Case(AREA, f"{command} -o under a file", run)


NOT_UTF8 = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: a name a UTF-8 system cannot decode


def cases(full: bool) -> list[Case]:
    found = [name_case(command, name) for command in ("train", "lr-find", "plot-schedule", "tune")
             for name in (BAD_NAMES if full else BAD_NAMES[:5])]
    found += [good_name_case(name) for name in (GOOD_NAMES if full else GOOD_NAMES[:2])]
    found += [output_case("train", "out😀"), output_case("plot-schedule", "😀/s.png"),
              output_case("train", "out😀", via_set=True), output_case("train", NOT_UTF8)]
    if full:
        found += [output_case("lr-find", "😀/l.png"), output_case("plot-schedule", "été/s.png"),
                  output_case("train", "été"), output_case("plot-schedule", NOT_UTF8 + "/s.png")]
    found += [resume_config_case(b"\xff\xfe\x00garbage", "not UTF-8"), resume_config_case(None, "a folder"),
              symlinked_resume_case(), file_in_the_way_case("train"), file_in_the_way_case("plot-schedule")]
    if full:
        found += [resume_config_case(b"", "empty"), file_in_the_way_case("lr-find")]
    return found
