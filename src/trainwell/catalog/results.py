"""The report's data: every catalog entry with its runs in the store under one budget, each target
judged (:func:`collect`), and the chapter's claims across entries weighed (:func:`claim_verdicts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from trainwell.catalog.judge import Outcome, judge
from trainwell.catalog.registry import CLAIMS, entries
from trainwell.catalog.vocabulary import Budget, Entry, Target
from trainwell.store import RunStore


@dataclass
class EntryReport:
    entry: Entry
    runs: list[dict[str, Any]] = field(default_factory=list)       # finished runs (one per seed)
    failed: list[dict[str, Any]] = field(default_factory=list)     # failed or unfinished
    results: list[dict[str, float]] = field(default_factory=list)  # per finished run
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        """Whether the store holds any run of this entry (finished, failed or unfinished)."""
        return bool(self.runs or self.failed)

    @property
    def status(self) -> str:
        if self.failed and not self.runs:
            return "fail"
        if not self.runs:
            return "missing"
        states = {o.status for o in self.outcomes} - {"shown"}
        if "fail" in states or self.failed:
            return "fail"
        if "pass" in states:
            return "pass" if states <= {"pass"} else "pass (training figures n/c)"
        return "not comparable" if "not comparable" in states else "ran"


def collect(store: RunStore, budget: Budget, *, tolerance_long: float = 0.015,
            tolerance_short: float = 0.025) -> list[EntryReport]:
    """Every catalog entry with its runs under ``budget`` and each target judged."""
    reports = []
    for entry in entries():
        report = EntryReport(entry)
        for run in store.runs(budget=budget.name, experiment=entry.id):
            if run["status"] == "finished":
                report.runs.append(run)
                report.results.append(store.results(run["id"]))
            else:
                report.failed.append(run)
        epochs = budget.epochs(entry) if entry.epochs else 0
        for target in entry.targets:
            values = [r[target.metric] for r in report.results if target.metric in r]
            report.outcomes.append(judge(target, values, epochs=entry.epochs if budget.comparable else epochs,
                                         budget=budget, tolerance_long=tolerance_long,
                                         tolerance_short=tolerance_short))
            if target.spread_seeds:
                report.outcomes += _best_epoch(store, report, target)
        reports.append(report)
    return reports


def _best_epoch(store: RunStore, report: EntryReport, target: Target) -> list[Outcome]:
    """The target's figure at each seed's best epoch (shown, not judged), beside the last epoch's:
    a loss spike near the end moves the last epoch's figure more than the best one's."""
    best = []
    for run in report.runs:
        values = [record[target.metric] for records in store.epochs(run["id"]).values() for record in records
                  if isinstance(record.get(target.metric), (int, float)) and math.isfinite(record[target.metric])]
        if values:
            best.append(max(values))
    if not best:
        return []
    shown = Target(f"{target.metric}, best epoch", target.book, text=target.text)
    return [Outcome(shown, best, status="shown")]


def claim_verdicts(reports: list[EntryReport], budget: Budget | None = None) -> list[tuple[str, str, str]]:
    """(claim, what trainwell measured, pass/fail/not run) for each qualitative claim of the chapter."""
    means: dict[tuple[str, str], float] = {}
    for report in reports:
        for results in [report.results]:
            keys = {k for r in results for k in r}
            for key in keys:
                values = [r[key] for r in results if key in r]
                means[(report.entry.id, key)] = sum(values) / len(values)
    verdicts = []
    for claim in CLAIMS:
        left = means.get(claim.left)
        right = means.get(claim.right) if claim.right else claim.threshold
        if left is None or right is None:
            verdicts.append((claim.text, "not run", "not run"))
            continue
        ok = left > right + (claim.threshold if claim.right else 0.0)
        name = f"{claim.left[0]} {left:.4f}" + (f" vs {claim.right[0]} {right:.4f}" if claim.right else "")
        verdict = "pass" if ok else "FAIL"
        if budget is not None and not budget.comparable:
            verdict += f" ({budget.name} budget)"
        verdicts.append((claim.text, name, verdict))
    return verdicts


def checked_claims(reports: list[EntryReport], budget: Budget) -> tuple[list[tuple[str, str, str]], str]:
    """The claims whose entries ran, and a sentence counting those that could not be checked."""
    verdicts = claim_verdicts(reports, budget)
    checked = [v for v in verdicts if v[2] != "not run"]
    unchecked = len(verdicts) - len(checked)
    return checked, (f"{unchecked} of {len(verdicts)} claims compare entries that did not run." if unchecked else "")


def first_series(store: RunStore, report: EntryReport, name: str) -> list[Any]:
    found = []
    for run in report.runs:
        data = store.series(run["id"]).get(name)
        if data is not None:
            found.append(data)
    return found


def versions_and_devices(store: RunStore, budget: Budget) -> tuple[str, str]:
    runs = store.runs(budget=budget.name)
    versions = next((r["versions"] for r in runs if r["versions"]), {}) or {}
    devices = sorted({r["device"] for r in runs if r["device"]})
    return ", ".join(f"{k} {v}" for k, v in versions.items()), "; ".join(devices)
