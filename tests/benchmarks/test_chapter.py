"""benchmarks/chapter.py (``suite.py --chapter``): what it reads from a reproduce's output folder, and the
RESULTS.md section it writes."""

from __future__ import annotations

import datetime
import importlib.util
from pathlib import Path

import pytest

from trainwell.store import RunStore, store_path

ROOT = Path(__file__).resolve().parents[2]


def _chapter():
    spec = importlib.util.spec_from_file_location("chapter", ROOT / "benchmarks" / "chapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_output(out: Path, began: float) -> None:
    """A full-budget store: leaky_relu at the book's figure, prelu far below it, relu_100 over two seeds."""
    runs = [("leaky_relu", 42, 10.0, 40.0, 26.0, {"val_accuracy": 0.8430}),
            ("prelu", 42, 10.0, 30.0, 16.0, {"val_accuracy": 0.70}),
            ("relu_100", 42, 30.0, 60.0, 27.0, {"val_accuracy": 0.70}),
            ("relu_100", 43, 40.0, 70.0, 28.0, {"val_accuracy": 0.71})]
    with RunStore(store_path(out)) as store:
        for entry_id, seed, start, end, train_s, results in runs:
            run = store.start_run(entry_id, seed, "full")
            store.log_results(run, results)
            store.finish(run, train_s=train_s)
            store._db.execute("UPDATE runs SET started = ?, finished = ?, duration_s = ? WHERE id = ?",
                              (began + start, began + end, end - start, run))


def test_chapter_results_reads_the_runs_times_and_the_judged_figures(tmp_path):
    chapter = _chapter()
    began = 1_000_000.0
    _fake_output(tmp_path, began)
    result = chapter.chapter_results(tmp_path, wall_s=80.0, jobs=2, began=began)
    assert result["runs"] == 4 and result["train_s"] == pytest.approx(97.0)
    assert result["entries"]["relu_100"] == {"runs": 2, "train_s": 55.0, "whole_s": 60.0, "failed": 0}
    assert list(result["entries"]) == ["relu_100", "leaky_relu", "prelu"]  # longest first
    assert result["passing"] == 1 and result["figures"] >= 2  # leaky_relu passes, prelu misses the book
    assert result["not_training_share"] == pytest.approx(1 - 97.0 / 160.0)
    parts = result["not_training"]
    assert parts["start-up"] == pytest.approx(20.0)             # the first run began 10 s in, on 2 cores
    assert parts["in runs, outside fits"] == pytest.approx(13.0)  # 110 s in runs, 97 s of them training
    assert parts["idle cores between runs"] == pytest.approx(2 * 60.0 - 110.0)
    assert parts["the end (report, exit)"] == pytest.approx(20.0)  # the last run ended 10 s before the wall time
    assert sum(parts.values()) == pytest.approx(160.0 - 97.0)


def test_the_section_goes_on_top_of_the_results_file_and_keeps_the_older_ones(tmp_path):
    chapter = _chapter()
    began = 1_000_000.0
    _fake_output(tmp_path, began)
    with RunStore(store_path(tmp_path)) as store:  # interrupted: started, never finished
        store.start_run("bn_after", 42, "full")
    result = chapter.chapter_results(tmp_path, wall_s=80.0, jobs=2, began=began)
    result["command"] = "trainwell reproduce --budget full --seeds 1 --jobs 2"
    section = chapter.chapter_markdown(result, when=datetime.datetime(2026, 12, 2, 0, 30))
    assert section.startswith("## 2026-12-02 00:30 UTC: the whole chapter, `trainwell reproduce --budget full")
    assert "Wall time **1:20** (80 s)" in section and f"**1 of {result['figures']} pass**" in section
    assert "**39% of the wall time is not training**" in section
    assert "| relu_100 | 2 | 55.0 s | 60.0 s | 8% |" in section
    assert "| bn_after | 1 (1 failed or unfinished) | 0.0 s | 0.0 s | 0% |" in section
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## 2026-12-01: an older run\n\nits table\n", encoding="utf-8")
    chapter.add_section(results, section)
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\n## 2026-12-02 00:30 UTC")
    assert text.index("## 2026-12-02") < text.index("## 2026-12-01: an older run") and text.endswith("its table\n")
    chapter.add_section(tmp_path / "new.md", section)  # no file yet: the title, then the section
    assert (tmp_path / "new.md").read_text(encoding="utf-8").startswith("# Benchmark results\n\n## 2026-12-02")
