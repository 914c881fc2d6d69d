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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwell.experiments.registry import CLAIMS, Budget, Entry, Outcome, entries, get_budget, judge
from trainwell.fileio import atomic_write_text, json_text
from trainwell.store import RunStore, store_path

STATUS_MARK = {"pass": "pass", "fail": "FAIL", "not comparable": "n/c", "missing": "not run"}


@dataclass
class EntryReport:
    entry: Entry
    runs: list[dict[str, Any]] = field(default_factory=list)       # finished runs (one per seed)
    failed: list[dict[str, Any]] = field(default_factory=list)     # failed or unfinished
    results: list[dict[str, float]] = field(default_factory=list)  # per finished run
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failed and not self.runs:
            return "fail"
        if not self.runs:
            return "missing"
        states = {o.status for o in self.outcomes}
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
        reports.append(report)
    return reports


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


# ----------------------------------------------------------------- formatting
def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if abs(value) >= 1 and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.1f}"


def _measured(outcome: Outcome) -> str:
    if not outcome.values:
        return "-"
    text = _num(outcome.mean)
    if len(outcome.values) > 1:
        text += f" ± {_num(outcome.std)} (n={len(outcome.values)})"
    return text


def _difference(outcome: Outcome) -> str:
    diff = outcome.difference
    return "-" if diff is None else f"{diff:+.4f}"


def _tolerance(outcome: Outcome) -> str:
    if outcome.tolerance is not None:
        return f"±{outcome.tolerance:g}"
    target = outcome.target
    if target.low is not None or target.high is not None:
        return "range"
    return "-"


# ----------------------------------------------------------------- figures
def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(ncols: int = 1, width: float = 7.0, height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    for axis in axes:
        axis.grid(alpha=0.3)
    return figure, axes


def _curve(phases: dict[str, list[dict[str, Any]]], key: str) -> tuple[list[float], list[str]]:
    values, labels = [], []
    for phase, records in phases.items():
        for record in records:
            values.append(record.get(key, math.nan))
            labels.append(phase)
    return values, labels


def learning_curves(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> str | None:
    """Validation (solid) and training (dashed) accuracy per epoch; thin lines per seed, thick the mean."""
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
                      markersize=3, label=f"{name} {'validation' if key.startswith('val') else 'training'}")
    for boundary in sorted(boundaries):
        axis.axvline(boundary, color="gray", linestyle=":", linewidth=1)
    axis.set_xlabel("epoch (all phases in a row)" if boundaries else "epoch")
    axis.set_ylabel("accuracy")
    axis.set_title(f"{report.entry.id}: learning curves")
    axis.legend(fontsize=7, loc="lower right")
    return _png(figure)


def _first_series(store: RunStore, report: EntryReport, name: str) -> list[Any]:
    found = []
    for run in report.runs:
        data = store.series(run["id"]).get(name)
        if data is not None:
            found.append(data)
    return found


def chapter_figures(store: RunStore, report: EntryReport, others: dict[str, EntryReport]) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of the chapter's own figures for this entry."""
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
        axis.legend(fontsize=8)
        axis.set_title("activation functions (dotted: -1, dashed: -1.758)")
        figures.append(("The chapter's activation curves.", _png(figure)))
    depth = _first_series(store, report, "selu_depth")
    if depth:
        figure, (axis,) = _axes()
        for i, data in enumerate(depth):
            axis.plot(data["layer"], data["mean"], color="tab:blue", alpha=0.8, linewidth=1, label="mean" if not i else None)
            axis.plot(data["layer"], data["std"], color="tab:orange", alpha=0.8, linewidth=1, label="std" if not i else None)
        axis.axhspan(0.83, 1.0, color="tab:orange", alpha=0.1, label="book's std range")
        axis.axhspan(-0.02, 0.05, color="tab:blue", alpha=0.1, label="book's mean range")
        axis.set_xlabel("layer")
        axis.set_title("SELU through 1,000 layers: per-layer mean and std (one line per seed)")
        axis.legend(fontsize=8)
        figures.append(("Self-normalization: the signal keeps mean ~0 and std ~1 at every depth.", _png(figure)))
    lrs = _first_series(store, report, "lr")
    if lrs:
        figure, (axis,) = _axes()
        axis.plot(lrs[0]["step"], lrs[0]["value"], color="tab:blue", linewidth=1.5)
        axis.set_xlabel("step")
        axis.set_ylabel("learning rate")
        axis.set_title(f"{entry_id}: the rate at each step (seed {report.runs[0]['seed']})")
        figures.append(("The learning-rate schedule as the run used it.", _png(figure)))
    for data in _first_series(store, report, "lr_find")[:1]:
        figure, (axis,) = _axes()
        axis.plot(data["lrs"], data["losses"], color="tab:blue", alpha=0.3, linewidth=1, label="loss")
        axis.plot(data["lrs"], data["smoothed"], color="tab:blue", linewidth=2, label="smoothed loss")
        axis.axvline(data["suggestion"], color="tab:red", linestyle="--", label=f"suggestion {data['suggestion']:.3g}")
        axis.set_xscale("log")
        finite = [v for v in data["smoothed"] if math.isfinite(v)]
        if finite:
            axis.set_ylim(min(finite) * 0.9, max(finite[0] * 1.5, min(finite) * 2))
        axis.set_xlabel("learning rate (log scale)")
        axis.set_ylabel("training loss")
        axis.set_title("LR finder")
        axis.legend(fontsize=8)
        figures.append(("The LR finder: the loss falls, then shoots up as the rate grows.", _png(figure)))
    for data in _first_series(store, report, "mc_dropout")[:1]:
        figure, axes = _axes(2, width=9)
        axes[0].hist(data["spread"], bins=40, color="tab:blue")
        axes[0].set_xlabel("largest per-class std over 100 passes")
        axes[0].set_ylabel("test images")
        axes[0].set_title("MC dropout spread")
        classes = list(range(len(data["plain"])))
        axes[1].bar([c - 0.2 for c in classes], data["plain"], width=0.4, label="one deterministic pass")
        axes[1].bar([c + 0.2 for c in classes], data["mc_mean"], width=0.4, yerr=data["mc_std"],
                    label="MC mean ± std")
        axes[1].set_xticks(classes)
        axes[1].set_title(f"test image {data['image']} (label {data['label']})")
        axes[1].legend(fontsize=7)
        figures.append(("MC dropout: the spread over the test set, and one image the plain model is sure of "
                        "while the stochastic passes disagree.", _png(figure)))
    for data in _first_series(store, report, "search")[:1]:
        figure, (axis,) = _axes()
        lrs = [c["params"]["lr"] for c in data["candidates"]]
        scores = [c["score"] for c in data["candidates"]]
        axis.scatter(lrs, scores, color="tab:blue")
        best = data["best"]
        axis.scatter([best["params"]["lr"]], [best["score"]], color="tab:red", s=80, label=f"best {best['params']}")
        axis.set_xscale("log")
        axis.set_xlabel("learning rate")
        axis.set_ylabel("mean cross-validation accuracy")
        axis.legend(fontsize=7)
        axis.set_title("randomized search")
        figures.append(("Each candidate's cross-validated accuracy.", _png(figure)))
    if entry_id == "transfer_b_on_a" and report.results and "transfer_model_b" in others and others["transfer_model_b"].results:
        error_b = [1 - r["test_accuracy"] for r in others["transfer_model_b"].results]
        error_ba = [1 - r["test_accuracy"] for r in report.results]
        mean_b, mean_ba = sum(error_b) / len(error_b), sum(error_ba) / len(error_ba)
        figure, (axis,) = _axes(width=5)
        axis.bar(["model B (scratch)", "B on A"], [mean_b, mean_ba], color=["tab:gray", "tab:green"])
        axis.bar(["book B", "book B on A"], [1 - 0.9705, 1 - 0.9925], color=["silver", "lightgreen"])
        ratio = mean_b / mean_ba if mean_ba > 0 else math.inf
        axis.set_ylabel("test error rate")
        axis.set_title(f"error-rate ratio: trainwell {ratio:.2f}x, book {(1 - 0.9705) / (1 - 0.9925):.2f}x")
        figures.append(("Transfer learning: test error rates of model B and of B on A.", _png(figure)))
    return figures


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


def markdown(store: RunStore, reports: list[EntryReport], budget: Budget) -> str:
    seeds = sorted({run["seed"] for r in reports for run in r.runs})
    versions, devices = _versions(store, budget)
    lines = ["# trainwell reproduces \"Training Deep Neural Networks\"", "",
             _budget_sentence(budget), "",
             f"Seeds: {', '.join(map(str, seeds)) or '-'}. Versions: {versions or '-'}. Device: {devices or '-'}.", ""]
    counts: dict[str, int] = {}
    for report in reports:
        for outcome in report.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
    ran = sum(1 for r in reports if r.runs)
    lines += [f"{ran} of {len(reports)} entries ran; figures: " + ", ".join(
        f"{n} {STATUS_MARK.get(s, s)}" for s, n in sorted(counts.items())) + ".", "",
        "| id | kind | figure | book | trainwell | difference | tolerance | verdict |",
        "|---|---|---|---|---|---|---|---|"]
    for report in reports:
        entry = report.entry
        if not report.outcomes:
            state = "ran" if report.runs else ("FAIL" if report.failed else "not run")
            lines.append(f"| {entry.id} | {entry.kind} | - | {entry.book or '-'} | - | - | - | {state} |")
        for outcome in report.outcomes:
            status = STATUS_MARK.get(outcome.status, outcome.status)
            if report.failed and outcome.status != "fail":
                status += f" ({len(report.failed)} run(s) failed)"
            lines.append(f"| {entry.id} | {entry.kind} | {outcome.target.metric} | {outcome.target.book_text()} | "
                         f"{_measured(outcome)} | {_difference(outcome)} | {_tolerance(outcome)} | {status} |")
    lines += ["", "## The chapter's qualitative claims", "", "| claim | trainwell | verdict |", "|---|---|---|"]
    for text, measured, verdict in claim_verdicts(reports, budget):
        lines.append(f"| {text} | {measured} | {verdict} |")
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
.kind{font-size:12px;background:#eee;border-radius:3px;padding:1px 6px;margin-left:.5em}
"""


def _status_class(status: str) -> str:
    return {"pass": "pass", "fail": "fail"}.get(status.split(" ")[0], "nc")


def _config_text(store: RunStore, report: EntryReport) -> str:
    config = report.runs[0]["config"] if report.runs else report.entry.config
    return json_text(config, indent=1) if config is not None else "(a procedure without a config: see its module)"


def html_page(store: RunStore, reports: list[EntryReport], budget: Budget) -> str:
    e = html.escape
    seeds = sorted({run["seed"] for r in reports for run in r.runs})
    versions, devices = _versions(store, budget)
    by_id = {r.entry.id: r for r in reports}
    body = ["<h1>trainwell reproduces &ldquo;Training Deep Neural Networks&rdquo;</h1>",
            f"<p>{_md_inline(_budget_sentence(budget))}</p>",
            f"<p>Seeds: {e(', '.join(map(str, seeds)) or '-')}. Versions: {e(versions or '-')}. "
            f"Device: {e(devices or '-')}.</p>", "<h2>Summary</h2>",
            "<table><tr><th>id</th><th>kind</th><th>figure</th><th>book</th><th>trainwell</th><th>difference</th>"
            "<th>tolerance</th><th>verdict</th></tr>"]
    for report in reports:
        outcomes = report.outcomes or [None]
        for outcome in outcomes:
            if outcome is None:
                state = "ran" if report.runs else ("FAIL" if report.failed else "not run")
                cells = ["-", e(report.entry.book or "-"), "-", "-", "-", f"<span class='{_status_class(state.lower())}'>{state}</span>"]
            else:
                status = outcome.status
                cells = [e(outcome.target.metric), e(outcome.target.book_text()), _measured(outcome),
                         _difference(outcome), _tolerance(outcome),
                         f"<span class='{_status_class(status)}'>{STATUS_MARK.get(status, status)}</span>"]
            body.append(f"<tr><td><a href='#{report.entry.id}'>{report.entry.id}</a></td><td>{report.entry.kind}</td>"
                        + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body.append("</table><h2>The chapter's qualitative claims</h2><table><tr><th>claim</th><th>trainwell</th>"
                "<th>verdict</th></tr>")
    for text, measured, verdict in claim_verdicts(reports, budget):
        body.append(f"<tr><td>{e(text)}</td><td>{e(measured)}</td>"
                    f"<td class='{_status_class(verdict.lower())}'>{e(verdict)}</td></tr>")
    body.append("</table>")
    for report in reports:
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
                        "<th>tolerance</th><th>verdict</th></tr>")
            for outcome in report.outcomes:
                per_seed = ", ".join(_num(v) for v in outcome.values) or "-"
                body.append(f"<tr><td>{e(outcome.target.metric)}</td><td>{e(outcome.target.book_text())}</td>"
                            f"<td class='num'>{_measured(outcome)}</td><td>{per_seed}</td>"
                            f"<td class='num'>{_difference(outcome)}</td><td>{_tolerance(outcome)}</td>"
                            f"<td class='{_status_class(outcome.status)}'>{STATUS_MARK.get(outcome.status)}</td></tr>")
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
        curves = learning_curves(store, report, by_id)
        images = ([("Learning curves (mean over seeds; thin lines: each seed).", curves)] if curves else []) + \
            chapter_figures(store, report, by_id)
        for caption, png in images:
            body.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,{png}'>"
                        f"<figcaption>{e(caption)}</figcaption></figure>")
        for data in _first_series(store, report, "summary")[:1]:
            body.append(f"<pre>{e(str(data))}</pre>")
        for data in _first_series(store, report, "diagnosis")[:1]:
            body.append(f"<h3>The doctor's findings</h3><pre>{e(str(data))}</pre>")
        body.append(f"<details><summary>config</summary><pre>{e(_config_text(store, report))}</pre></details>")
        body.append("</section>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>trainwell reproduce report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _md_inline(text: str) -> str:
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def write_report(out: str | os.PathLike, *, budget: str | None = None, tolerance_long: float = 0.015,
                 tolerance_short: float = 0.025) -> tuple[Path, Path]:
    """Write ``OUT/report.html`` and ``OUT/report.md`` from ``OUT/runs.sqlite``; return their paths."""
    from trainwell.errors import ConfigError

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
        atomic_write_text(html_path, html_page(store, reports, budget_))
        atomic_write_text(md_path, markdown(store, reports, budget_))
        return html_path, md_path
    finally:
        store.close()
