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

import os
from pathlib import Path

from trainwell.checks import is_number
from trainwell.catalog.html_page import html_page
from trainwell.catalog.markdown import markdown
from trainwell.catalog.results import collect
from trainwell.catalog.vocabulary import get_budget
from trainwell.fileio import atomic_write_text
from trainwell.store import RunStore, store_path


def write_report(out: str | os.PathLike, *, budget: str | None = None, tolerance_long: float = 0.015,
                 tolerance_short: float = 0.025) -> tuple[Path, Path]:
    """Write ``OUT/report.html`` and ``OUT/report.md`` from ``OUT/runs.sqlite``; return their paths."""
    from trainwell.errors import ConfigError

    for key, value in (("tolerance_long", tolerance_long), ("tolerance_short", tolerance_short)):
        if not is_number(value) or not 0 <= value <= 1:  # nan fails too
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
