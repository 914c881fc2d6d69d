"""The catalog report: reads the run store, writes one self-contained HTML page and a Markdown summary.

It never trains. Per entry: what it shows, trainwell's figures (mean and spread over
seeds) beside the book's with the difference and a verdict, the known reasons for a
difference, the config, the learning curves, and the chapter's own figures (activation
curves, SELU's statistics over depth, schedules, the LR finder, MC dropout's spread,
the transfer error-rate ratio). Images are PNGs embedded as base64, so the page needs
no network. A run of a budget that is not comparable (quick, smoke) is shown but not
judged against the book: only figures that do not depend on training length are.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwell.catalog.registry import CLAIMS, Budget, Entry, Outcome, Target, entries, get_budget, judge
from trainwell.fileio import atomic_write_text, json_text
from trainwell.store import RunStore, store_path

STATUS_MARK = {"pass": "pass", "fail": "FAIL", "not comparable": "n/c", "missing": "not run", "shown": "shown"}


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


def _per_seed(report: EntryReport) -> str:
    """The failing figures seed by seed, so one bad seed stands out from a shifted mean."""
    parts = []
    for outcome in report.outcomes:
        if outcome.status == "fail":
            metric = outcome.target.metric
            seeds = [f"{run['seed']}: {_num(result[metric])}" for run, result in zip(report.runs, report.results)
                     if metric in result]
            parts.append(f"{metric} by seed {', '.join(seeds)}")
    return "; ".join(parts)


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


def _checked_claims(reports: list[EntryReport], budget: Budget) -> tuple[list[tuple[str, str, str]], str]:
    """The claims whose entries ran, and a sentence counting those that could not be checked."""
    verdicts = claim_verdicts(reports, budget)
    checked = [v for v in verdicts if v[2] != "not run"]
    unchecked = len(verdicts) - len(checked)
    return checked, (f"{unchecked} of {len(verdicts)} claims compare entries that did not run." if unchecked else "")


# ----------------------------------------------------------------- formatting
def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if abs(value) >= 1 and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.1f}"


def _measured(outcome: Outcome, *, by_seed: bool = True) -> str:
    """Mean ± std (n); seed by seed too where the spread is what counts (unless shown beside)."""
    if not outcome.values:
        return "-"
    text = _num(outcome.mean)
    if len(outcome.values) > 1:
        by_seed = f"; by seed: {', '.join(_num(v) for v in outcome.values)}" if by_seed and _spread_shown(outcome) else ""
        text += f" ± {_num(outcome.std)} (n={len(outcome.values)}{by_seed})"
    return text


def _spread_shown(outcome: Outcome) -> bool:
    return outcome.by_spread or outcome.status == "shown"


def _verdict(outcome: Outcome) -> str:
    mark = STATUS_MARK.get(outcome.status, outcome.status)
    return f"{mark} ({outcome.reason})" if outcome.reason else mark


def _difference(outcome: Outcome) -> str:
    diff = outcome.difference
    return "-" if diff is None else f"{diff:+.4f}"


def _judged_range(outcome: Outcome) -> str:
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


# ----------------------------------------------------------------- figures
def _png(figure) -> str:
    from trainwell.plots import png_bytes

    return base64.b64encode(png_bytes(figure, dpi=90)).decode("ascii")


def _axes(ncols: int = 1, width: float = 8.0, height: float = 3.2):
    from trainwell.plots import new_figure

    figure, axes = new_figure(1, ncols, width=width, height=height)
    return figure, axes[0]


def _curve(phases: dict[str, list[dict[str, Any]]], key: str) -> tuple[list[float], list[str]]:
    values, labels = [], []
    for phase, records in phases.items():
        for record in records:
            values.append(record.get(key, math.nan))
            labels.append(phase)
    return values, labels


def learning_curves_figure(store: RunStore, report: EntryReport, others: dict[str, EntryReport]):
    """Validation (solid) and training (dashed) accuracy per epoch; thin lines per seed, thick the mean."""
    from trainwell.plots import legend, whole_number_ticks

    series: list[tuple[str, list[dict[str, list[dict[str, Any]]]]]] = [
        (report.entry.id, [store.epochs(run["id"]) for run in report.runs])]
    for other in report.entry.compare_curves:
        if other in others:
            series.append((other, [store.epochs(run["id"]) for run in others[other].runs]))
    if not any(any(p for p in runs) for _, runs in series):
        return None
    figure, (axis,) = _axes()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    boundaries = set()
    for (name, runs), color in zip(series, colors):
        for key, style in (("val_accuracy", "-"), ("accuracy", "--")):
            curves = []
            for phases in runs:
                values, labels = _curve(phases, key)
                if values and not all(math.isnan(v) for v in values):
                    curves.append(values)
                    boundaries.update(i + 0.5 for i in range(1, len(labels)) if labels[i] != labels[i - 1])
            if not curves:
                continue
            for values in curves if len(curves) > 1 else []:
                axis.plot(range(1, len(values) + 1), values, style, color=color, alpha=0.25, linewidth=0.8)
            length = min(len(c) for c in curves)
            mean = [sum(c[i] for c in curves) / len(curves) for i in range(length)]
            axis.plot(range(1, length + 1), mean, style, color=color, linewidth=1.8, marker="o" if length < 30 else None,
                      markersize=3, label=f"{name}\n{'validation' if key.startswith('val') else 'training'}")
    for boundary in sorted(boundaries):
        axis.axvline(boundary, color="gray", linestyle=":", linewidth=1)
    axis.set_xlabel("epoch (all phases in a row)" if boundaries else "epoch")
    whole_number_ticks(axis)
    axis.set_ylabel("accuracy")
    axis.set_title(f"{report.entry.id}: learning curves")
    legend(axis)
    return figure


def _first_series(store: RunStore, report: EntryReport, name: str) -> list[Any]:
    found = []
    for run in report.runs:
        data = store.series(run["id"]).get(name)
        if data is not None:
            found.append(data)
    return found


def _setting(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(params.items()))


def chapter_figures(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """(caption, Figure) of the chapter's own figures for this entry."""
    from trainwell.plots import legend, whole_number_ticks

    figures = []
    entry_id = report.entry.id
    for data in _first_series(store, report, "activation_curves")[:1]:
        figure, (axis,) = _axes()
        for name, values in data.items():
            if name != "z":
                axis.plot(data["z"], values, label=name, linewidth=1.8)
        axis.axhline(-1.0, color="gray", linestyle=":", linewidth=1)
        axis.axhline(-1.7581, color="gray", linestyle="--", linewidth=1)
        axis.set_ylim(-2.2, 2.5)
        axis.set_xlabel("z")
        legend(axis)
        axis.set_title("activation functions (dotted: -1, dashed: -1.758)")
        figures.append(("The chapter's activation curves.", figure))
    depth = _first_series(store, report, "selu_depth")
    if depth:
        figure, (axis,) = _axes()
        for i, data in enumerate(depth):
            axis.plot(data["layer"], data["mean"], color="tab:blue", alpha=0.8, linewidth=1, label="mean" if not i else None)
            axis.plot(data["layer"], data["std"], color="tab:orange", alpha=0.8, linewidth=1, label="std" if not i else None)
        axis.axhspan(0.83, 1.0, color="tab:orange", alpha=0.1, label="book's std\nrange")
        axis.axhspan(-0.02, 0.05, color="tab:blue", alpha=0.1, label="book's mean\nrange")
        axis.set_xlabel("layer")
        whole_number_ticks(axis)
        axis.set_title("SELU through 1,000 layers: per-layer mean and std (one line per seed)")
        legend(axis)
        figures.append(("Self-normalization: the signal keeps mean ~0 and std ~1 at every depth.", figure))
    lrs = _first_series(store, report, "lr")
    if lrs:
        figure, (axis,) = _axes()
        axis.plot(lrs[0]["step"], lrs[0]["value"], color="tab:blue", linewidth=1.5)
        axis.set_xlabel("step")
        whole_number_ticks(axis)
        axis.set_ylabel("learning rate")
        axis.set_title(f"{entry_id}: the rate at each step (seed {report.runs[0]['seed']})")
        figures.append(("The learning-rate schedule as the run used it.", figure))
    for data in _first_series(store, report, "lr_find")[:1]:
        figure, (axis,) = _axes()
        axis.plot(data["lrs"], data["losses"], color="tab:blue", alpha=0.3, linewidth=1, label="loss")
        axis.plot(data["lrs"], data["smoothed"], color="tab:blue", linewidth=2, label="smoothed loss")
        axis.axvline(data["suggestion"], color="tab:red", linestyle="--", label=f"suggestion\n{data['suggestion']:.3g}")
        axis.set_xscale("log")
        finite = [v for v in data["smoothed"] if math.isfinite(v)]
        if finite:
            axis.set_ylim(min(finite) * 0.9, max(finite[0] * 1.5, min(finite) * 2))
        axis.set_xlabel("learning rate (log scale)")
        axis.set_ylabel("training loss")
        axis.set_title("LR finder")
        legend(axis)
        figures.append(("The LR finder: the loss falls, then shoots up as the rate grows.", figure))
    for data in _first_series(store, report, "mc_dropout")[:1]:
        figure, axes = _axes(2, width=10)
        axes[0].hist(data["spread"], bins=40, color="tab:blue")
        axes[0].set_xlabel("largest per-class std over 100 passes")
        axes[0].set_ylabel("test images")
        axes[0].set_title("MC dropout spread")
        classes = list(range(len(data["plain"])))
        axes[1].bar([c - 0.2 for c in classes], data["plain"], width=0.4, label="one deterministic\npass")
        axes[1].bar([c + 0.2 for c in classes], data["mc_mean"], width=0.4, yerr=data["mc_std"],
                    label="MC mean ± std")
        axes[1].set_xticks(classes)
        axes[1].set_xlabel("class")
        axes[1].set_title(f"test image {data['image']} (label {data['label']})")
        legend(axes[1])
        figures.append(("MC dropout: the spread over the test set, and one image the plain model is sure of "
                        "while the stochastic passes disagree.", figure))
    for data in _first_series(store, report, "search")[:1]:
        figure, (axis,) = _axes()
        lrs = [c["params"]["lr"] for c in data["candidates"]]
        scores = [c["score"] for c in data["candidates"]]
        axis.scatter(lrs, scores, color="tab:blue", label="a candidate")
        best = data["best"]
        axis.scatter([best["params"]["lr"]], [best["score"]], color="tab:red", s=80, label="the best")
        axis.set_xscale("log")
        axis.set_xlabel("learning rate")
        axis.set_ylabel("mean cross-validation accuracy")
        legend(axis)
        axis.set_title("randomized search")
        figures.append((f"Each candidate's cross-validated accuracy; best: {_setting(best['params'])}.", figure))
    if entry_id == "transfer_b_on_a" and report.results and "transfer_model_b" in others and others["transfer_model_b"].results:
        error_b = [1 - r["test_accuracy"] for r in others["transfer_model_b"].results]
        error_ba = [1 - r["test_accuracy"] for r in report.results]
        mean_b, mean_ba = sum(error_b) / len(error_b), sum(error_ba) / len(error_ba)
        figure, (axis,) = _axes(width=5.5)
        axis.bar(["model B\n(scratch)", "B on A"], [mean_b, mean_ba], color=["tab:gray", "tab:green"])
        axis.bar(["book B", "book\nB on A"], [1 - 0.9705, 1 - 0.9925], color=["silver", "lightgreen"])
        ratio = mean_b / mean_ba if mean_ba > 0 else math.inf
        axis.set_ylabel("test error rate")
        axis.set_title(f"error-rate ratio: trainwell {ratio:.2f}x, book {(1 - 0.9705) / (1 - 0.9925):.2f}x")
        figures.append(("Transfer learning: test error rates of model B and of B on A.", figure))
    return figures


def spread_figures(report: EntryReport) -> list[tuple[str, Any]]:
    """For a figure judged by its spread: one dot per seed (last epoch; best epoch below), the
    seeds' range shaded and the book's value as a line, so the verdict can be seen."""
    from trainwell.plots import legend

    judged = [o for o in report.outcomes if o.by_spread and o.values]
    best = {o.target.metric.split(",")[0]: o for o in report.outcomes if o.status == "shown"}
    drawn = []
    for outcome in judged:
        rows = [("last epoch", outcome.values)]
        if outcome.target.metric in best:
            rows.append(("best epoch", best[outcome.target.metric].values))
        figure, (axis,) = _axes(height=1.2 + 0.55 * len(rows))
        low, high = outcome.band
        axis.axvspan(low, high, color="tab:blue", alpha=0.1, label="seeds' range\n(last epoch)")
        for y, (_, values) in enumerate(rows):
            axis.scatter(values, [y] * len(values), color="tab:blue", alpha=0.7, s=28,
                         label="a seed" if y == 0 else None)
        axis.axvline(outcome.target.book, color="tab:red", linewidth=1.5, label=f"book {outcome.target.book:g}")
        axis.set_yticks(range(len(rows)), [name for name, _ in rows])
        axis.set_ylim(-0.6, len(rows) - 0.4)
        axis.set_xlabel(outcome.target.metric)
        legend(axis)
        drawn.append((f"The book's figure against trainwell's {len(outcome.values)} seeds: each dot is one seed's "
                      f"{outcome.target.metric} (at the last epoch, and at its best epoch); the verdict is "
                      f"{_verdict(outcome)}, the book's value against the seeds' range.", figure))
    return drawn


def figures(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, Any]]:
    """(caption, Figure) of every figure the report draws for this entry: the seeds' spread and
    the learning curves first."""
    curves = learning_curves_figure(store, report, others)
    return spread_figures(report) + (
        [("Learning curves (mean over seeds; thin lines: each seed).", curves)] if curves is not None else []) \
        + chapter_figures(store, report, others)


# ----------------------------------------------------------------- the pages
def _versions(store: RunStore, budget: Budget) -> tuple[str, str]:
    runs = store.runs(budget=budget.name)
    versions = next((r["versions"] for r in runs if r["versions"]), {}) or {}
    devices = sorted({r["device"] for r in runs if r["device"]})
    return ", ".join(f"{k} {v}" for k, v in versions.items()), "; ".join(devices)


def _budget_sentence(budget: Budget) -> str:
    if budget.comparable:
        return ("Budget **full**: the book's epochs and data. Each figure is judged against the book's: within "
                "the tolerance of a run of its length (default 0.015 for 10 or more epochs, 0.025 for shorter).")
    return (f"Budget **{budget.name}**: fewer epochs and fewer training images than the book, so training figures "
            "are shown beside the book's but **not judged** (\"n/c\": not comparable); only figures that do not "
            "depend on training (parameter counts, constants, demonstrations, qualitative checks) get pass/fail. "
            "Run `trainwell reproduce --budget full` for the comparison.")


def _not_run(reports: list[EntryReport], budget: Budget, out: str | os.PathLike | None) -> list[str]:
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


def _figure_counts(reports: list[EntryReport]) -> str:
    counts: dict[str, int] = {}
    for report in reports:
        for outcome in report.outcomes:
            if report.ran:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
    ran = sum(1 for r in reports if r.ran)
    missing = f" ({len(reports) - ran} not run: see below)" if ran < len(reports) else ""
    return f"{ran} of {len(reports)} entries ran{missing}; figures: " + ", ".join(
        f"{n} {STATUS_MARK.get(s, s)}" for s, n in sorted(counts.items())) + "."


def markdown(store: RunStore, reports: list[EntryReport], budget: Budget, *,
             out: str | os.PathLike | None = None) -> str:
    seeds = sorted({run["seed"] for r in reports for run in r.runs})
    versions, devices = _versions(store, budget)
    lines = ["# trainwell reproduces \"Training Deep Neural Networks\"", "",
             _budget_sentence(budget), "",
             f"Seeds: {', '.join(map(str, seeds)) or '-'}. Versions: {versions or '-'}. Device: {devices or '-'}.", ""]
    lines += [_figure_counts(reports), "",
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
            status = _verdict(outcome)
            if report.failed and outcome.status != "fail":
                status += f" ({len(report.failed)} run(s) failed)"
            lines.append(f"| {entry.id} | {entry.kind} | {outcome.target.metric} | {outcome.target.book_text()} | "
                         f"{_measured(outcome)} | {_difference(outcome)} | {_judged_range(outcome)} | {status} |")
    not_run = _not_run(reports, budget, out)
    if not_run:
        lines += ["", "## Not run", "", not_run[0], "", not_run[1]]
    checked, unchecked = _checked_claims(reports, budget)
    lines += ["", "## The chapter's qualitative claims", ""]
    if checked:
        lines += ["| claim | trainwell | verdict |", "|---|---|---|"]
        lines += [f"| {text} | {measured} | {verdict} |" for text, measured, verdict in checked]
    if unchecked:
        lines += ["", unchecked] if checked else [unchecked]
    findings = [(r.entry.id, data) for r in reports for data in _first_series(store, r, "diagnosis")[:1]]
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
                lines.append(f"- **{report.entry.id}** misses the book ({_per_seed(report)})" + (
                    ": " + " ".join(report.entry.notes) if report.entry.notes else " (no known reason)."))
    return "\n".join(lines) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#17632a;font-weight:600}.fail{color:#b00020;font-weight:700}.nc{color:#777}
section.entry{border-top:2px solid #ddd;margin-top:2em;padding-top:.5em}
.note{background:#fff8e1;border-left:4px solid #f0c000;padding:.3em .8em;margin:.4em 0}
.error{background:#fdecea;border-left:4px solid #b00020;padding:.3em .8em;white-space:pre-wrap;font-family:monospace;
font-size:12px}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}img{max-width:100%}
table.md td{vertical-align:top;overflow-wrap:anywhere}
.kind{font-size:12px;background:#eee;border-radius:3px;padding:1px 6px;margin-left:.5em}
"""


def _status_class(status: str) -> str:
    return {"pass": "pass", "fail": "fail"}.get(status.split(" ")[0], "nc")


def _config_text(store: RunStore, report: EntryReport) -> str:
    config = report.runs[0]["config"] if report.runs else report.entry.config
    return json_text(config, indent=1) if config is not None else "(a procedure without a config: see its module)"


def html_page(store: RunStore, reports: list[EntryReport], budget: Budget, *,
              out: str | os.PathLike | None = None) -> str:
    e = html.escape
    seeds = sorted({run["seed"] for r in reports for run in r.runs})
    versions, devices = _versions(store, budget)
    by_id = {r.entry.id: r for r in reports}
    body = ["<h1>trainwell reproduces &ldquo;Training Deep Neural Networks&rdquo;</h1>",
            f"<p>{_md_inline(_budget_sentence(budget))}</p>",
            f"<p>Seeds: {e(', '.join(map(str, seeds)) or '-')}. Versions: {e(versions or '-')}. "
            f"Device: {e(devices or '-')}.</p>", "<h2>Summary</h2>", f"<p>{e(_figure_counts(reports))}</p>",
            "<table><tr><th>id</th><th>kind</th><th>figure</th><th>book</th><th>trainwell</th><th>difference</th>"
            "<th>judged range</th><th>verdict</th></tr>"]
    for report in (r for r in reports if r.ran):
        outcomes = report.outcomes or [None]
        for outcome in outcomes:
            if outcome is None:
                state = "ran" if report.runs else "FAIL"
                cells = ["-", e(report.entry.book or "-"), "-", "-", "-", f"<span class='{_status_class(state.lower())}'>{state}</span>"]
            else:
                status = outcome.status
                cells = [e(outcome.target.metric), e(outcome.target.book_text()), _measured(outcome),
                         _difference(outcome), e(_judged_range(outcome)),
                         f"<span class='{_status_class(status)}'>{e(_verdict(outcome))}</span>"]
            body.append(f"<tr><td><a href='#{report.entry.id}'>{report.entry.id}</a></td><td>{report.entry.kind}</td>"
                        + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body.append("</table>")
    not_run = _not_run(reports, budget, out)
    if not_run:
        body.append("<h2>Not run</h2>" + "".join(f"<p>{_md_inline(line)}</p>" for line in not_run))
    checked, unchecked = _checked_claims(reports, budget)
    body.append("<h2>The chapter's qualitative claims</h2>")
    if checked:
        body.append("<table><tr><th>claim</th><th>trainwell</th><th>verdict</th></tr>")
        for text, measured, verdict in checked:
            body.append(f"<tr><td>{e(text)}</td><td>{e(measured)}</td>"
                        f"<td class='{_status_class(verdict.lower())}'>{e(verdict)}</td></tr>")
        body.append("</table>")
    if unchecked:
        body.append(f"<p>{e(unchecked)}</p>")
    for report in (r for r in reports if r.ran):
        entry = report.entry
        status = report.status
        body.append(f"<section class='entry' id='{entry.id}'><h2>{entry.id}<span class='kind'>{e(entry.section)} · "
                    f"{entry.kind}</span> <span class='{_status_class(status)}'>{e(status)}</span></h2>")
        body.append(f"<p>{e(entry.shows)}</p><p><b>Book:</b> {e(entry.book or '-')}. <b>Runs:</b> "
                    f"{len(report.runs)} finished" + (f", {len(report.failed)} failed or unfinished" if report.failed else "")
                    + (f", {budget.epochs(entry)} epoch(s) each in this budget (book: {entry.epochs})" if entry.epochs else "")
                    + ".</p>")
        if report.outcomes:
            body.append("<table><tr><th>figure</th><th>book</th><th>trainwell</th><th>per seed</th><th>difference</th>"
                        "<th>judged range</th><th>verdict</th></tr>")
            for outcome in report.outcomes:
                per_seed = ", ".join(_num(v) for v in outcome.values) or "-"
                body.append(f"<tr><td>{e(outcome.target.metric)}</td><td>{e(outcome.target.book_text())}</td>"
                            f"<td class='num'>{_measured(outcome, by_seed=False)}</td><td>{per_seed}</td>"
                            f"<td class='num'>{_difference(outcome)}</td><td>{e(_judged_range(outcome))}</td>"
                            f"<td class='{_status_class(outcome.status)}'>{e(_verdict(outcome))}</td></tr>")
            body.append("</table>")
        other = sorted({k for r in report.results for k in r} - {t.metric for t in entry.targets})
        if other:
            means = {k: [r[k] for r in report.results if k in r] for k in other}
            body.append("<p><b>Also measured</b> (mean over seeds): " + ", ".join(
                f"{e(k)} {_num(sum(v) / len(v))}" for k, v in means.items()) + "</p>")
        for note in entry.notes:
            body.append(f"<div class='note'>{e(note)}</div>")
        for run in report.failed:
            body.append(f"<div class='error'>seed {run['seed']}: {e(run['status'])}\n{e(run.get('error') or '')}</div>")
        for caption, figure in figures(store, report, by_id):
            body.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,{_png(figure)}'>"
                        f"<figcaption>{e(caption)}</figcaption></figure>")
        for data in _first_series(store, report, "summary")[:1]:
            body.append(f"<pre>{e(str(data))}</pre>")
        for data in _first_series(store, report, "diagnosis")[:1]:
            body.append(f"<h3>The doctor's findings</h3>{markdown_html(str(data))}")
        body.append(f"<details><summary>config</summary><pre>{e(_config_text(store, report))}</pre></details>")
        body.append("</section>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>trainwell reproduce report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _md_inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _table_cells(line: str) -> list[str]:
    """The cells of one Markdown table row (an escaped ``\\|`` stays inside its cell)."""
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)]


def markdown_html(text: str) -> str:
    """The Markdown the report embeds (the doctor's findings: paragraphs and pipe tables) as HTML.

    Shown in a ``<pre>``, a wide table ran off the page's right edge as raw pipes; as
    an HTML table its cells wrap.
    """
    blocks: list[str] = []
    lines = text.strip().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|") and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1].strip()):
            header = "".join(f"<th>{_md_inline(c)}</th>" for c in _table_cells(line))
            rows, i = [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append("<tr>" + "".join(f"<td>{_md_inline(c)}</td>" for c in _table_cells(lines[i])) + "</tr>")
                i += 1
            blocks.append(f"<table class='md'><tr>{header}</tr>{''.join(rows)}</table>")
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith("|"):
            paragraph.append(lines[i].strip())
            i += 1
        if paragraph:
            blocks.append(f"<p>{_md_inline(' '.join(paragraph))}</p>")
        else:
            i += 1
    return "\n".join(blocks)


def write_report(out: str | os.PathLike, *, budget: str | None = None, tolerance_long: float = 0.015,
                 tolerance_short: float = 0.025) -> tuple[Path, Path]:
    """Write ``OUT/report.html`` and ``OUT/report.md`` from ``OUT/runs.sqlite``; return their paths."""
    from trainwell.errors import ConfigError

    for key, value in (("tolerance_long", tolerance_long), ("tolerance_short", tolerance_short)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # nan fails too
            raise ConfigError(f"{key} (--{key.replace('tolerance', 'tol').replace('_', '-')}) = {value!r}: "
                              "a tolerance is an accuracy difference; allowed: 0 to 1, e.g. 0.015")
    out = Path(out)
    path = store_path(out)
    if not path.exists():
        raise ConfigError(f"{out}: no run store here ({path.name}); run `trainwell reproduce --out {out}` first")
    store = RunStore(path)
    try:
        name = budget or store.meta("budget") or (store.budgets() or ["quick"])[-1]
        budget_ = get_budget(name)
        reports = collect(store, budget_, tolerance_long=tolerance_long, tolerance_short=tolerance_short)
        html_path, md_path = out / "report.html", out / "report.md"
        atomic_write_text(html_path, html_page(store, reports, budget_, out=out))
        atomic_write_text(md_path, markdown(store, reports, budget_, out=out))
        return html_path, md_path
    finally:
        store.close()
