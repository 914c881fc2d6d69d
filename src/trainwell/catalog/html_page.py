"""The report's HTML page (``OUT/report.html``): one self-contained page, its figures PNGs embedded as
base64 so it needs no network; and the Markdown it embeds (the doctor's findings) as HTML."""

from __future__ import annotations

import html
import os
import re

from trainwell.catalog.chapter_figures import figures, png
from trainwell.catalog.formatting import (budget_sentence, difference, figure_counts, judged_range, measured, not_run_lines,
                                          num, verdict)
from trainwell.catalog.results import EntryReport, checked_claims, first_series, versions_and_devices
from trainwell.catalog.vocabulary import Budget
from trainwell.fileio import json_text
from trainwell.store import RunStore


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
    versions, devices = versions_and_devices(store, budget)
    by_id = {r.entry.id: r for r in reports}
    body = ["<h1>trainwell reproduces &ldquo;Training Deep Neural Networks&rdquo;</h1>",
            f"<p>{md_inline(budget_sentence(budget))}</p>",
            f"<p>Seeds: {e(', '.join(map(str, seeds)) or '-')}. Versions: {e(versions or '-')}. "
            f"Device: {e(devices or '-')}.</p>", "<h2>Summary</h2>", f"<p>{e(figure_counts(reports))}</p>"]
    body += _summary_table(reports)
    missing = not_run_lines(reports, budget, out)
    if missing:
        body.append("<h2>Not run</h2>" + "".join(f"<p>{md_inline(line)}</p>" for line in missing))
    body += _claims(reports, budget)
    for report in (r for r in reports if r.ran):
        body += _entry_section(store, report, budget, by_id)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>trainwell reproduce report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _summary_table(reports: list[EntryReport]) -> list[str]:
    """One row per figure of every entry that ran, each linked to its entry's section."""
    e = html.escape
    body = ["<table><tr><th>id</th><th>kind</th><th>figure</th><th>book</th><th>trainwell</th><th>difference</th>"
            "<th>judged range</th><th>verdict</th></tr>"]
    for report in (r for r in reports if r.ran):
        outcomes = report.outcomes or [None]
        for outcome in outcomes:
            if outcome is None:
                state = "ran" if report.runs else "FAIL"
                cells = ["-", e(report.entry.book or "-"), "-", "-", "-", f"<span class='{_status_class(state.lower())}'>{state}</span>"]
            else:
                status = outcome.status
                cells = [e(outcome.target.metric), e(outcome.target.book_text()), measured(outcome),
                         difference(outcome), e(judged_range(outcome)),
                         f"<span class='{_status_class(status)}'>{e(verdict(outcome))}</span>"]
            body.append(f"<tr><td><a href='#{report.entry.id}'>{report.entry.id}</a></td><td>{report.entry.kind}</td>"
                        + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body.append("</table>")
    return body


def _claims(reports: list[EntryReport], budget: Budget) -> list[str]:
    e = html.escape
    checked, unchecked = checked_claims(reports, budget)
    body = ["<h2>The chapter's qualitative claims</h2>"]
    if checked:
        body.append("<table><tr><th>claim</th><th>trainwell</th><th>verdict</th></tr>")
        for text, figure, mark in checked:
            body.append(f"<tr><td>{e(text)}</td><td>{e(figure)}</td>"
                        f"<td class='{_status_class(mark.lower())}'>{e(mark)}</td></tr>")
        body.append("</table>")
    if unchecked:
        body.append(f"<p>{e(unchecked)}</p>")
    return body


def _entry_section(store: RunStore, report: EntryReport, budget: Budget, by_id: dict[str, EntryReport]) -> list[str]:
    """An entry's section: what it shows, its figures judged, its notes and failures, its figures, its config."""
    e = html.escape
    entry = report.entry
    status = report.status
    body = [f"<section class='entry' id='{entry.id}'><h2>{entry.id}<span class='kind'>{e(entry.section)} · "
            f"{entry.kind}</span> <span class='{_status_class(status)}'>{e(status)}</span></h2>"]
    body.append(f"<p>{e(entry.shows)}</p><p><b>Book:</b> {e(entry.book or '-')}. <b>Runs:</b> "
                f"{len(report.runs)} finished" + (f", {len(report.failed)} failed or unfinished" if report.failed else "")
                + (f", {budget.epochs(entry)} epoch(s) each in this budget (book: {entry.epochs})" if entry.epochs else "")
                + ".</p>")
    body += _outcomes_table(report)
    other = sorted({k for r in report.results for k in r} - {t.metric for t in entry.targets})
    if other:
        means = {k: [r[k] for r in report.results if k in r] for k in other}
        body.append("<p><b>Also measured</b> (mean over seeds): " + ", ".join(
            f"{e(k)} {num(sum(v) / len(v))}" for k, v in means.items()) + "</p>")
    for note in entry.notes:
        body.append(f"<div class='note'>{e(note)}</div>")
    for run in report.failed:
        body.append(f"<div class='error'>seed {run['seed']}: {e(run['status'])}\n{e(run.get('error') or '')}</div>")
    for caption, figure in figures(store, report, by_id):
        body.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,{png(figure)}'>"
                    f"<figcaption>{e(caption)}</figcaption></figure>")
    for data in first_series(store, report, "summary")[:1]:
        body.append(f"<pre>{e(str(data))}</pre>")
    for data in first_series(store, report, "diagnosis")[:1]:
        body.append(f"<h3>The doctor's findings</h3>{markdown_html(str(data))}")
    body.append(f"<details><summary>config</summary><pre>{e(_config_text(store, report))}</pre></details>")
    body.append("</section>")
    return body


def _outcomes_table(report: EntryReport) -> list[str]:
    """An entry's figures, seed by seed, each with its verdict (none when the entry has no target)."""
    e = html.escape
    if not report.outcomes:
        return []
    body = ["<table><tr><th>figure</th><th>book</th><th>trainwell</th><th>per seed</th><th>difference</th>"
            "<th>judged range</th><th>verdict</th></tr>"]
    for outcome in report.outcomes:
        per_seed = ", ".join(num(v) for v in outcome.values) or "-"
        body.append(f"<tr><td>{e(outcome.target.metric)}</td><td>{e(outcome.target.book_text())}</td>"
                    f"<td class='num'>{measured(outcome, by_seed=False)}</td><td>{per_seed}</td>"
                    f"<td class='num'>{difference(outcome)}</td><td>{e(judged_range(outcome))}</td>"
                    f"<td class='{_status_class(outcome.status)}'>{e(verdict(outcome))}</td></tr>")
    body.append("</table>")
    return body


def md_inline(text: str) -> str:
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
            header = "".join(f"<th>{md_inline(c)}</th>" for c in _table_cells(line))
            rows, i = [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append("<tr>" + "".join(f"<td>{md_inline(c)}</td>" for c in _table_cells(lines[i])) + "</tr>")
                i += 1
            blocks.append(f"<table class='md'><tr>{header}</tr>{''.join(rows)}</table>")
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith("|"):
            paragraph.append(lines[i].strip())
            i += 1
        if paragraph:
            blocks.append(f"<p>{md_inline(' '.join(paragraph))}</p>")
        else:
            i += 1
    return "\n".join(blocks)
