"""Every catalog entry runs (smoke budget: one epoch on a few hundred images), reproduce resumes, fails
loudly without its data, and runs the README's block as a script."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainwell import catalog as experiments
from trainwell.cli import main
from trainwell.catalog.context import state_dir
from trainwell.catalog.report import write_report
from trainwell.store import RunStore, store_path


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    import os

    if not os.environ.get("TRAINWELL_DATA"):
        pytest.skip("TRAINWELL_DATA is not set; the catalog needs Fashion-MNIST and MNIST")
    out = tmp_path_factory.mktemp("catalog")
    lines: list[str] = []
    summary = experiments.reproduce(budget="smoke", out=out, jobs=2, echo=lines.append)
    return out, summary, lines


@pytest.mark.slow  # the smoke_run fixture reproduces the whole catalog
def test_every_entry_runs_in_the_smoke_budget(smoke_run):
    out, summary, lines = smoke_run
    assert summary["failed"] == 0, "\n".join(line for line in lines if "FAILED" in line)
    assert summary["finished"] == len(experiments.ids())
    with RunStore(store_path(out)) as store:
        for entry in experiments.entries():
            row = store.run(entry.id, 42, "smoke")
            assert row["status"] == "finished", entry.id
            results = store.results(row["id"])
            for target in entry.targets:
                assert target.metric in results, (entry.id, target.metric)
            if entry.epochs and entry.run is experiments.context.run_config:
                assert store.epochs(row["id"]), entry.id
    assert any("start selu_100 seed 42" in line for line in lines)
    summary_md = (out / "report.md").read_text()
    assert "## The doctor's findings" in summary_md and "### relu_100" in summary_md and "### selu_100" in summary_md
    assert (state_dir(out, "ex8_2", 42, "smoke") / "model.safetensors").exists()


@pytest.mark.slow
def test_budget_free_figures_pass_even_in_the_smoke_budget(smoke_run):
    out, _, _ = smoke_run
    markdown = (out / "report.md").read_text()
    for entry_id, metric in (("selu_constants", "alpha"), ("bn_after_params", "total"), ("lr_finder", "diverges"),
                             ("selu_self_normalization", "min_std"), ("mc_dropout", "uncertain_spread"),
                             ("ex10_2", "same_fraction")):
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {entry_id} |") and f"| {metric} |" in line)
        assert row.endswith("| pass |"), row
    assert "not judged" in markdown and "n/c" in markdown
    for entry_id in experiments.ids():
        assert f"| {entry_id} |" in markdown
    page = (out / "report.html").read_text()
    for entry_id in experiments.ids():
        assert f"id='{entry_id}'" in page


@pytest.mark.slow
def test_reproduce_skips_finished_runs_and_redoes_an_unfinished_one(smoke_run):
    out, _, _ = smoke_run
    with RunStore(store_path(out)) as store:
        kept = store.run("selu_constants", 42, "smoke")
        interrupted = store.run("bn_after_params", 42, "smoke")
        store._write("UPDATE runs SET status = 'running' WHERE id = ?", (interrupted["id"],))  # as if killed
    lines: list[str] = []
    summary = experiments.reproduce(["selu_constants", "bn_after_params"], budget="smoke", out=out, jobs=1,
                                    echo=lines.append, report=False)
    assert summary["finished"] == 2 and summary["failed"] == 0
    assert "1 run(s) already finished" in lines[0] and "1 to run" in lines[0]
    assert not any("start selu_constants" in line for line in lines)
    with RunStore(store_path(out)) as store:
        assert store.run("selu_constants", 42, "smoke")["id"] == kept["id"]
        redone = store.run("bn_after_params", 42, "smoke")
        assert redone["status"] == "finished" and redone["id"] != interrupted["id"]
        assert store.results(redone["id"])["total"] == 271346


def test_cli_reproduce_and_report(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["reproduce", "selu_constants", "--budget", "smoke", "--out", str(out), "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "1 to run" in printed and "report:" in printed
    assert main(["reproduce", "selu_constants", "--budget", "smoke", "--out", str(out)]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert main(["report", str(out), "--tol-long", "0.02"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert main(["reproduce", "--list"]) == 0
    assert "selu_100" in capsys.readouterr().out
    assert main(["reproduce", "no_such_id", "--out", str(out)]) == 2


def test_report_needs_a_store(tmp_path):
    from trainwell.errors import ConfigError

    with pytest.raises(ConfigError, match="no run store"):
        write_report(tmp_path)


# ----------------------------------------------------------------- failing loudly
@pytest.fixture
def no_datasets(tmp_path, monkeypatch):
    """No Fashion-MNIST or MNIST anywhere: an empty TRAINWELL_DATA, cache and no system folders."""
    from trainwell.data import locations

    monkeypatch.setenv("TRAINWELL_DATA", str(tmp_path / "nonexistent"))
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TRAINWELL_OFFLINE", "1")
    monkeypatch.setattr(locations, "SYSTEM_DIRS", ())


def test_reproduce_without_the_data_fails_loudly_and_tries_the_dataset_once(no_datasets, tmp_path, monkeypatch):
    """One attempt at the missing dataset; the runs needing it fail at once; its whole message is shown once."""
    from trainwell.data import datasets as data_loading

    attempts = []
    real_load = data_loading.load
    monkeypatch.setattr(data_loading, "load", lambda name, **kw: attempts.append(name) or real_load(name, **kw))
    lines: list[str] = []
    summary = experiments.reproduce(["selu_constants", "leaky_relu", "prelu", "bn_after"], budget="smoke",
                                    out=tmp_path / "out", jobs=1, echo=lines.append, report=False)
    assert summary["finished"] == 1 and summary["failed"] == 3
    assert attempts == ["fashion_mnist"]
    text = "\n".join(lines)
    assert text.count("To get it, do one of:") == 1, text  # the whole message (its TRAINWELL_DATA hint), once
    assert "was not found" in summary["first_error"] and "TRAINWELL_DATA" in summary["first_error"]
    assert sum("not available" in line for line in lines) == 2, text  # the later runs: a short reference


def test_cli_reproduce_exits_non_zero_when_a_run_failed(no_datasets, tmp_path, capsys):
    assert main(["reproduce", "selu_constants", "leaky_relu", "--budget", "smoke", "--out", str(tmp_path / "o"),
                 "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    assert "1 finished, 1 failed" in captured.out
    assert "TRAINWELL_DATA" in captured.out + captured.err
    assert "1 of 2 runs failed" in captured.err


def test_parallel_reproduce_decides_the_dataset_in_the_parent(no_datasets, tmp_path):
    """Workers are never started for runs whose dataset is missing: the parent fails them at once."""
    lines: list[str] = []
    summary = experiments.reproduce(["leaky_relu", "prelu"], budget="smoke", out=tmp_path / "p", jobs=2,
                                    echo=lines.append, report=False)
    assert summary["failed"] == 2 and not any("start " in line for line in lines)


def readme_reproduce_block() -> str:
    """The Python block of the README's "Reproducing the chapter" section."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Reproducing the chapter"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```", start)]


def test_the_readmes_reproduce_block_runs_as_a_script(tmp_path):
    """Worker processes import the main script again (spawn): a script without a __main__ guard must still work."""
    import re
    import subprocess
    import sys

    block = readme_reproduce_block()
    # the same calls, made cheap: two entries that need no dataset, the smoke budget, two processes
    script = re.sub(r'catalog\.reproduce\(\[[^\]]*\], budget="full", seeds=3',
                    'catalog.reproduce(["selu_constants", "activation_curves"], budget="smoke", jobs=2', block)
    script = script.replace('budget="quick"', 'budget="smoke"')
    assert script.count('budget="smoke"') == 2, script
    (tmp_path / "readme_block.py").write_text(script)
    result = subprocess.run([sys.executable, "readme_block.py"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Error" not in result.stderr, result.stderr
    with RunStore(store_path(tmp_path / "runs" / "bn")) as store:
        assert {run["experiment"] for run in store.runs(status="finished")} == {"selu_constants", "activation_curves"}


def test_reproduce_into_a_file_is_refused_naming_it(tmp_path):
    from trainwell.errors import ConfigError

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="afile: is a file, not a folder"):
        experiments.reproduce(["selu_constants"], budget="smoke", out=blocker)
    assert blocker.read_text() == "x"
