"""The report's Markdown summary (``OUT/report.md``): the table of figures, the entries not run, the
chapter's claims, the doctor's findings, and the misses and failures."""

from __future__ import annotations

import os

from trainwell.catalog.formatting import (budget_sentence, difference, figure_counts, judged_range, measured, not_run_lines,
                                          per_seed, verdict)
from trainwell.catalog.results import EntryReport, checked_claims, first_series, versions_and_devices
from trainwell.catalog.vocabulary import Budget
from trainwell.store import RunStore


def markdown(store: RunStore, reports: list[EntryReport], budget: Budget, *,
             out: str | os.PathLike | None = None) -> str:
    seeds = sorted({run["seed"] for r in reports for run in r.runs})
    versions, devices = versions_and_devices(store, budget)
    lines = ["# trainwell reproduces \"Training Deep Neural Networks\"", "",
             budget_sentence(budget), "",
             f"Seeds: {', '.join(map(str, seeds)) or '-'}. Versions: {versions or '-'}. Device: {devices or '-'}.", ""]
    lines += [figure_counts(reports), "",
              "| id | kind | figure | book | trainwell | difference | judged range | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for report in reports:
        entry = report.entry
        if not report.ran:
            continue
        if not report.outcomes:
            state = "ran" if report.runs else "FAIL"
            lines.append(f"| {entry.id} | {entry.kind} | - | {entry.book or '-'} | - | - | - | {state} |")
        for outcome in report.outcomes:
            status = verdict(outcome)
            if report.failed and outcome.status != "fail":
                status += f" ({len(report.failed)} run(s) failed)"
            lines.append(f"| {entry.id} | {entry.kind} | {outcome.target.metric} | {outcome.target.book_text()} | "
                         f"{measured(outcome)} | {difference(outcome)} | {judged_range(outcome)} | {status} |")
    missing = not_run_lines(reports, budget, out)
    if missing:
        lines += ["", "## Not run", "", missing[0], "", missing[1]]
    checked, unchecked = checked_claims(reports, budget)
    lines += ["", "## The chapter's qualitative claims", ""]
    if checked:
        lines += ["| claim | trainwell | verdict |", "|---|---|---|"]
        lines += [f"| {text} | {figure} | {mark} |" for text, figure, mark in checked]
    if unchecked:
        lines += ["", unchecked] if checked else [unchecked]
    findings = [(r.entry.id, data) for r in reports for data in first_series(store, r, "diagnosis")[:1]]
    if findings:
        lines += ["", "## The doctor's findings", ""]
        for entry_id, data in findings:
            lines += [f"### {entry_id}", "", str(data).strip(), ""]
    misses = [r for r in reports if r.failed or any(o.status == "fail" for o in r.outcomes)]
    if misses:
        lines += ["", "## Misses and failures", ""]
        for report in misses:
            for run in report.failed:
                error = (run.get("error") or "unfinished").splitlines()[0]
                lines.append(f"- **{report.entry.id}** seed {run['seed']}: {run['status']}: {error}")
            if any(o.status == "fail" for o in report.outcomes):
                lines.append(f"- **{report.entry.id}** misses the book ({per_seed(report)})" + (
                    ": " + " ".join(report.entry.notes) if report.entry.notes else " (no known reason)."))
    return "\n".join(lines) + "\n"
