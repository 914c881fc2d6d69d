"""The whole chapter timed: ``trainwell reproduce --budget full --seeds 1 --jobs 2`` into a fresh folder.

``suite.py --chapter`` runs it as a subprocess (the environment passed through, TRAINWELL_DATA
included) and reads what it needs from the output folder, not from what it prints: each run's
``duration_s`` (its whole time in the worker: data, model, fits, evaluation, the figures' series,
saving) and ``train_s`` (the part of it in training: the fits' epochs) from the run store, and
the figures passing from the report's own judgement (:func:`trainwell.catalog.results.collect`).

The wall time's cores that did not train (``jobs`` x wall minus the runs' training) fall into
four parts: start-up (before the first run began: the interpreter, imports, the dataset check,
the worker processes), inside the runs but outside their fits, idle between the first run's
start and the last run's end (a core waiting for a free run or a needed one, or running
nothing while the last run ends alone), and the end (the report, the exit).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HEADER = "# Benchmark results"


def run_chapter(*, budget: str = "full", seeds: int = 1, jobs: int = 2, python: str = sys.executable) -> dict[str, Any]:
    """Time ``trainwell reproduce`` into a fresh temporary folder; its results (:func:`chapter_results`)."""
    command = [python, "-m", "trainwell.cli", "reproduce", "--budget", budget, "--seeds", str(seeds),
               "--jobs", str(jobs)]
    with tempfile.TemporaryDirectory(prefix="trainwell-chapter-") as out:
        began, started = time.time(), time.perf_counter()
        done = subprocess.run([*command, "--out", out], capture_output=True, text=True, env=dict(os.environ))
        wall = time.perf_counter() - started
        result = chapter_results(Path(out), wall_s=wall, jobs=jobs, began=began, budget=budget)
    result.update(command=" ".join(["trainwell", *command[3:]]), returncode=done.returncode,
                  last_lines=done.stdout.strip().splitlines()[-3:] + done.stderr.strip().splitlines()[-3:])
    return result


def chapter_results(out: Path, *, wall_s: float, jobs: int, began: float, budget: str = "full") -> dict[str, Any]:
    """What a reproduce into ``out`` took: per entry and in all, and where the cores' time went.

    ``began``: the unix time the command started (the runs' times in the store are unix times).
    """
    from trainwell.catalog.results import collect
    from trainwell.catalog.vocabulary import get_budget
    from trainwell.store import RunStore, store_path

    with RunStore(store_path(out)) as store:  # an interrupted reproduce leaves runs unfinished: counted as failed
        runs = store.runs(budget=budget)
        reports = collect(store, get_budget(budget))
    entries: dict[str, dict[str, Any]] = {}
    for run in runs:
        entry = entries.setdefault(run["experiment"], {"runs": 0, "train_s": 0.0, "whole_s": 0.0, "failed": 0})
        entry["runs"] += 1
        entry["failed"] += run["status"] != "finished"
        entry["whole_s"] += run["duration_s"] or 0.0
        entry["train_s"] += run.get("train_s") or 0.0
    judged = [o.status for r in reports if r.ran for o in r.outcomes if o.status != "shown"]
    train = sum(e["train_s"] for e in entries.values())
    inside = sum(e["whole_s"] for e in entries.values())
    first = min((r["started"] for r in runs if r["started"]), default=began)
    last = max((r["finished"] for r in runs if r["finished"]), default=began + wall_s)
    startup, ending = max(0.0, first - began), max(0.0, began + wall_s - last)
    cores = jobs * wall_s
    return {"budget": budget, "jobs": jobs, "wall_s": wall_s, "runs": len(runs),
            "figures": len(judged), "passing": judged.count("pass"),
            "train_s": train, "not_training_share": 1 - train / cores if cores > 0 else 0.0,
            "not_training": {"start-up": jobs * startup, "in runs, outside fits": inside - train,
                             "idle cores between runs": max(0.0, jobs * (last - first) - inside),
                             "the end (report, exit)": jobs * ending},
            "entries": dict(sorted(entries.items(), key=lambda item: -item[1]["whole_s"]))}


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def chapter_markdown(result: dict[str, Any], *, when: datetime.datetime | None = None, note: str = "") -> str:
    """The dated RESULTS.md section of one timing: wall time, figures, the non-training share, the entries."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    import torch

    cores = result["jobs"] * result["wall_s"]
    lines = [f"## {when:%Y-%m-%d %H:%M} UTC: the whole chapter, `{result.get('command', 'trainwell reproduce')}`", "",
             f"{os.cpu_count()} CPUs, torch {torch.__version__}. Wall time **{_clock(result['wall_s'])}** "
             f"({result['wall_s']:.0f} s); {result['runs']} runs; figures: **{result['passing']} of "
             f"{result['figures']} pass**"
             + ("" if result.get("returncode", 0) == 0 else f"; exit status {result['returncode']}") + ".", "",
             f"Training (the fits' epochs, summed over the runs) took {result['train_s']:.0f} s of the "
             f"{cores:.0f} core-seconds ({result['jobs']} jobs x the wall time): **{result['not_training_share']:.0%} "
             "of the wall time is not training**: "
             + "; ".join(f"{name} {seconds:.0f} s" for name, seconds in result["not_training"].items()) + "."]
    if note:
        lines += ["", note]
    lines += ["", "| entry | runs | training | whole | not training |", "|---|---|---|---|---|"]
    for name, entry in result["entries"].items():
        share = 1 - entry["train_s"] / entry["whole_s"] if entry["whole_s"] > 0 else 0.0
        failed = f" ({entry['failed']} failed or unfinished)" if entry["failed"] else ""
        lines.append(f"| {name} | {entry['runs']}{failed} | {entry['train_s']:.1f} s | {entry['whole_s']:.1f} s | "
                     f"{share:.0%} |")
    return "\n".join(lines) + "\n"


def add_section(path: Path, section: str) -> None:
    """Put ``section`` at the top of the results file, under its title, keeping every older section; atomic."""
    from trainwell.fileio import atomic_write_text

    text = path.read_text(encoding="utf-8") if path.exists() else HEADER + "\n"
    head, _, rest = text.partition("\n")
    if head.strip() != HEADER:
        head, rest = HEADER, text
    atomic_write_text(path, f"{head}\n\n{section.rstrip()}\n\n{rest.lstrip()}".rstrip() + "\n")
