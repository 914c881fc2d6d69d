"""The report: a self-contained HTML page and a Markdown summary, the range each verdict applied, the seeds' spread."""

from __future__ import annotations

import html
import re

from trainwell.catalog import entries
from trainwell.catalog.report import write_report
from trainwell.store import RunStore, store_path


def _fake_full_store(out):
    """A full-budget store with one passing, one failing and one crashed entry (no training)."""
    with RunStore(store_path(out)) as store:
        store.set_meta("budget", "full")
        for entry_id, value in (("leaky_relu", 0.8450), ("prelu", 0.70)):
            run = store.start_run(entry_id, 42, "full", config={"name": entry_id})
            for epoch in range(1, 11):
                store.log_epoch(run, "train", epoch, {"accuracy": 0.5 + epoch / 30, "val_accuracy": value - 0.01 / epoch})
            store.log_results(run, {"val_accuracy": value})
            store.finish(run)
        crashed = store.start_run("bn_after", 42, "full")
        store.fail(crashed, "RuntimeError: out of memory")


def test_report_of_a_full_run_shows_pass_fail_and_failures(tmp_path):
    _fake_full_store(tmp_path)
    html_path, md_path = write_report(tmp_path)
    markdown = md_path.read_text()
    assert "| leaky_relu | book | val_accuracy | 0.843 | 0.8450 | +0.0020 | ±0.015: [0.828, 0.858] | pass |" in markdown
    assert "| prelu | book | val_accuracy | 0.8372 | 0.7000 | -0.1372 | ±0.015: [0.8222, 0.8522] | FAIL |" in markdown
    assert "bn_after** seed 42: failed: RuntimeError: out of memory" in markdown
    assert "**prelu** misses the book (val_accuracy by seed 42: 0.7000): " in markdown
    not_run = _not_run_ids(markdown)
    for entry in entries():  # every catalog entry has a row or is named among those not run
        assert (f"| {entry.id} |" in markdown) != (entry.id in not_run), entry.id
    page = html_path.read_text()
    assert "out of memory" in page and "data:image/png;base64," in page
    _, md_wide = write_report(tmp_path, tolerance_long=0.2)
    assert "| prelu | book | val_accuracy | 0.8372 | 0.7000 | -0.1372 | ±0.2: [0.6372, 1.0372] | pass |" in md_wide.read_text()


def test_html_is_self_contained(tmp_path):
    _fake_full_store(tmp_path)
    page = write_report(tmp_path)[0].read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page


def _store_with_a_doctor_table(out):
    """A relu_100 run whose diagnosis is the doctor's Markdown table, as the runner stores it."""
    from trainwell.doctor.findings import Diagnosis, Finding

    finding = Finding("dying_relu", "dying ReLUs", "70 of 100 layers have 30% or more dead units; worst: dense_83 45%",
                      "leaky_relu or elu instead of relu", layers=tuple(f"dense_{i}" for i in range(15, 101)),
                      numbers={"layers": 70, "worst": 0.455})
    with RunStore(store_path(out)) as store:
        store.set_meta("budget", "quick")
        run = store.start_run("relu_100", 42, "quick", config={"name": "relu_100"})
        store.log_results(run, {"val_accuracy": 0.28})
        store.log_series(run, "diagnosis", Diagnosis([finding]).to_markdown() + "\n\nMeasured: gradient flow 0.9x.")
        store.finish(run)


def test_the_doctors_table_is_an_html_table_in_the_page_and_a_markdown_table_in_the_summary(tmp_path):
    _store_with_a_doctor_table(tmp_path)
    html_path, md_path = write_report(tmp_path)
    page = html_path.read_text()
    section = page[page.index("The doctor's findings"):]
    section = section[:section.index("<details>")]  # the config follows in a <pre>
    assert "<pre>" not in section and "|---" not in section
    assert "<th>finding</th>" in section and "<th>advice</th>" in section
    assert "<td><b>dying ReLUs</b>: 70 of 100 layers" in section
    assert "<td>leaky_relu or elu instead of relu</td>" in section
    assert "<p>Measured: gradient flow 0.9x.</p>" in section
    markdown = md_path.read_text()
    table = markdown[markdown.index("### relu_100"):].splitlines()
    assert table[1] == "" and table[2] == "| | finding | layers | numbers | advice |" and table[3].startswith("|---|")


def test_each_row_shows_the_range_it_was_judged_against(tmp_path):
    """selu_self_normalization's figures lie outside the book's range but inside the wider one judged."""
    with RunStore(store_path(tmp_path)) as store:
        store.set_meta("budget", "quick")
        run = store.start_run("selu_self_normalization", 42, "quick", config=None)
        store.log_results(run, {"max_abs_mean": 0.0617, "min_std": 0.9471, "max_std": 1.0263})
        store.finish(run)
        run = store.start_run("bn_after_params", 42, "quick", config=None)
        store.log_results(run, {"total": 271346, "trainable": 268978, "non_trainable": 2368})
        store.finish(run)
    html_path, md_path = write_report(tmp_path)
    markdown = md_path.read_text()
    assert "| judged range | verdict |" in markdown
    assert "| max_abs_mean | mean between -0.02 and 0.05 at layers 0, 100, ..., 900 | 0.0617 | - | ≤ 0.1 | pass |" in markdown
    assert "| min_std | std between 0.83 and 1.00 | 0.9471 | - | ≥ 0.75 | pass |" in markdown
    assert "| max_std | std between 0.83 and 1.00 | 1.0263 | - | ≤ 1.1 | pass |" in markdown
    assert "| total | 271346 | 271,346 | +0.0000 | exactly 271346 | pass |" in markdown
    page = html_path.read_text()
    assert "<th>judged range</th>" in page and "<td>≤ 0.1</td>" in page and "<td>exactly 271346</td>" in page


def _not_run_ids(markdown: str) -> list[str]:
    section = markdown[markdown.index("## Not run"):].splitlines()
    return [name.strip("` ") for name in section[2].split(":", 1)[1].rstrip(".").split(",")]


def test_a_report_of_a_few_entries_names_the_others_in_one_short_section(tmp_path):
    with RunStore(store_path(tmp_path)) as store:
        store.set_meta("budget", "quick")
        for seed in (42, 43):
            run = store.start_run("selu_constants", seed, "quick", config=None)
            store.log_results(run, {"alpha": 1.6733, "scale": 1.0507})
            store.finish(run)
    html_path, md_path = write_report(tmp_path)
    markdown = md_path.read_text()
    others = [entry.id for entry in entries() if entry.id != "selu_constants"]
    assert "not run |" not in markdown  # no row per entry that did not run
    assert "| selu_constants | demo | alpha |" in markdown
    assert _not_run_ids(markdown) == others
    section = markdown[markdown.index("## Not run"):].split("\n## ")[0]
    assert len(section.splitlines()) <= 6
    assert f"`trainwell reproduce --budget quick --seeds 2 --out {tmp_path}`" in section
    assert "1 of 41 entries ran (40 not run: see below); figures: 2 pass." in markdown
    assert "3 of 3 claims compare entries that did not run." in markdown and "| claim |" not in markdown
    page = html_path.read_text()
    assert "id='selu_constants'" in page and "id='leaky_relu'" not in page  # no empty section per entry
    assert page.count("<td>not run</td>") == 0 and "<h2>Not run</h2>" in page
    assert ", ".join(others) in page


# ----------------------------------------------------------------- figures judged by their spread over seeds
RELU_100_SEEDS = [0.61, 0.66, 0.72, 0.58, 0.69, 0.74, 0.63, 0.65, 0.70, 0.60]


def _relu_100_store(out, values):
    with RunStore(store_path(out)) as store:
        store.set_meta("budget", "full")
        for seed, value in enumerate(values, start=42):
            run = store.start_run("relu_100", seed, "full", config={"name": "relu_100"})
            for epoch, accuracy in enumerate((0.4, value + 0.03, 0.5, value), start=1):  # a spike before the end
                store.log_epoch(run, "train", epoch, {"accuracy": accuracy, "val_accuracy": accuracy})
            store.log_results(run, {"val_accuracy": value})
            store.finish(run)


def test_the_report_shows_the_seeds_the_spread_and_the_best_epoch(tmp_path):
    _relu_100_store(tmp_path, RELU_100_SEEDS)
    html_path, md_path = write_report(tmp_path)
    markdown = md_path.read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| relu_100 | book | val_accuracy |"))
    assert "(n=10; by seed: 0.6100, 0.6600, 0.7200, 0.5800" in row
    assert row.endswith("| book within the 10 seeds' [0.58, 0.74] | pass |"), row
    best = next(line for line in markdown.splitlines() if line.startswith("| relu_100 | book | val_accuracy, best epoch |"))
    assert "| 0.6880 ± " in best and "n=10" in best and best.endswith("| not judged | shown |"), best
    assert "relu_100** misses" not in markdown
    page = html_path.read_text()
    assert "per seed" in page and "The book's figure against trainwell's 10 seeds" in html.unescape(page)


def test_too_few_seeds_of_a_chaotic_figure_is_not_a_miss(tmp_path):
    _relu_100_store(tmp_path, RELU_100_SEEDS[:3])
    markdown = write_report(tmp_path)[1].read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| relu_100 | book | val_accuracy |"))
    assert row.endswith("| n/c (3 of 10 seeds) |"), row
    assert "relu_100** misses" not in markdown and "FAIL" not in row
