"""How the report writes a figure, a verdict, a judged range and its summary sentences: shared by the
HTML page and the Markdown summary, so the two say the same."""

from __future__ import annotations

import math
import os

from trainwell.catalog.judge import Outcome
from trainwell.catalog.results import EntryReport
from trainwell.catalog.vocabulary import Budget

STATUS_MARK = {"pass": "pass", "fail": "FAIL", "not comparable": "n/c", "missing": "not run", "shown": "shown"}


def num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if abs(value) >= 1 and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.1f}"


def measured(outcome: Outcome, *, by_seed: bool = True) -> str:
    """Mean ± std (n); seed by seed too where the spread is what counts (unless shown beside)."""
    if not outcome.values:
        return "-"
    text = num(outcome.mean)
    if len(outcome.values) > 1:
        by_seed = f"; by seed: {', '.join(num(v) for v in outcome.values)}" if by_seed and _spread_shown(outcome) else ""
        text += f" ± {num(outcome.std)} (n={len(outcome.values)}{by_seed})"
    return text


def _spread_shown(outcome: Outcome) -> bool:
    return outcome.by_spread or outcome.status == "shown"


def verdict(outcome: Outcome) -> str:
    mark = STATUS_MARK.get(outcome.status, outcome.status)
    return f"{mark} ({outcome.reason})" if outcome.reason else mark


def difference(outcome: Outcome) -> str:
    diff = outcome.difference
    return "-" if diff is None else f"{diff:+.4f}"


def judged_range(outcome: Outcome) -> str:
    """The interval the verdict applied, so a figure that passes is visibly inside what is shown."""
    if outcome.status == "shown":
        return "not judged"
    if outcome.status not in ("pass", "fail"):
        return "-"
    low, high = outcome.band
    if outcome.by_spread:
        return f"book within the {len(outcome.values)} seeds' [{low:.6g}, {high:.6g}]"
    prefix = f"±{outcome.tolerance:g}: " if outcome.tolerance else ""
    if low is not None and high is not None:
        return f"exactly {low:.6g}" if low == high else f"{prefix}[{low:.6g}, {high:.6g}]"
    if high is not None:
        return f"≤ {high:.6g}"
    return f"≥ {low:.6g}" if low is not None else "-"


def per_seed(report: EntryReport) -> str:
    """The failing figures seed by seed, so one bad seed stands out from a shifted mean."""
    parts = []
    for outcome in report.outcomes:
        if outcome.status == "fail":
            metric = outcome.target.metric
            seeds = [f"{run['seed']}: {num(result[metric])}" for run, result in zip(report.runs, report.results)
                     if metric in result]
            parts.append(f"{metric} by seed {', '.join(seeds)}")
    return "; ".join(parts)


def budget_sentence(budget: Budget) -> str:
    if budget.comparable:
        return ("Budget **full**: the book's epochs and data. Each figure is judged against the book's: within "
                "the tolerance of a run of its length (default 0.015 for 10 or more epochs, 0.025 for shorter).")
    return (f"Budget **{budget.name}**: fewer epochs and fewer training images than the book, so training figures "
            "are shown beside the book's but **not judged** (\"n/c\": not comparable); only figures that do not "
            "depend on training (parameter counts, constants, demonstrations, qualitative checks) get pass/fail. "
            "Run `trainwell reproduce --budget full` for the comparison.")


def not_run_lines(reports: list[EntryReport], budget: Budget, out: str | os.PathLike | None) -> list[str]:
    """The entries without a run, as two Markdown lines (their ids; the command that runs them),
    or none: a report of a few entries names the rest once instead of a row each."""
    missing = [r.entry.id for r in reports if not r.ran]
    if not missing:
        return []
    # the seeds asked for: the fewest an entry ran (one judged by its spread runs more)
    seeds = min((len({run["seed"] for run in r.runs}) for r in reports if r.runs), default=1)
    seed_option = f" --seeds {seeds}" if seeds > 1 else ""
    where = f" --out {out}" if out is not None else ""
    return [f"{len(missing)} of {len(reports)} entries have no run in this store for the {budget.name} budget: "
            + ", ".join(missing) + ".",
            f"Run them with `trainwell reproduce --budget {budget.name}{seed_option}{where}` (finished runs are "
            f"skipped), or name the ones you want: `trainwell reproduce ID ... --budget {budget.name}{where}`."]


def figure_counts(reports: list[EntryReport]) -> str:
    counts: dict[str, int] = {}
    for report in reports:
        for outcome in report.outcomes:
            if report.ran:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
    ran = sum(1 for r in reports if r.ran)
    missing = f" ({len(reports) - ran} not run: see below)" if ran < len(reports) else ""
    return f"{ran} of {len(reports)} entries ran{missing}; figures: " + ", ".join(
        f"{n} {STATUS_MARK.get(s, s)}" for s, n in sorted(counts.items())) + "."
