"""The run store: records, resume semantics (finished kept, unfinished redone), concurrent readers."""

from __future__ import annotations

import math

from trainwell.store import RunStore


def test_a_run_records_config_epochs_results_series_and_timings(tmp_path):
    with RunStore(tmp_path / "runs.sqlite") as store:
        run = store.start_run("leaky_relu", 42, "quick", config={"seed": 42}, versions={"torch": "x"}, device="cpu")
        store.log_epoch(run, "train", 1, {"loss": 0.5, "val_accuracy": 0.8})
        store.log_epoch(run, "train", 2, {"loss": 0.4, "val_accuracy": 0.82})
        store.log_results(run, {"val_accuracy": 0.82, "nan": math.nan})
        store.log_series(run, "lr", {"step": [0, 1], "value": [0.1, 0.05]})
        store.finish(run)
        row = store.run("leaky_relu", 42, "quick")
        assert row["status"] == "finished" and row["config"] == {"seed": 42} and row["versions"] == {"torch": "x"}
        assert row["device"] == "cpu" and row["duration_s"] >= 0 and row["train_s"] is None  # not measured
        assert [r["val_accuracy"] for r in store.epochs(run)["train"]] == [0.8, 0.82]
        assert store.results(run)["val_accuracy"] == 0.82 and math.isnan(store.results(run)["nan"])
        assert store.series(run)["lr"]["value"] == [0.1, 0.05]
        assert store.is_finished("leaky_relu", 42, "quick") and not store.is_finished("leaky_relu", 42, "full")


def test_starting_again_drops_an_unfinished_attempt_and_everything_it_logged(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        first = store.start_run("a", 42, "quick")
        store.log_epoch(first, "train", 1, {"loss": 1.0})
        store.log_results(first, {"val_accuracy": 0.1})
    with RunStore(path) as store:  # a new process after an interruption
        assert store.status("a", 42, "quick") == "running"
        second = store.start_run("a", 42, "quick")
        assert second != first
        assert store.epochs(second) == {} and store.results(second) == {}
        assert store.epochs(first) == {} and store.results(first) == {}  # cascaded away
        assert len(store.runs()) == 1


def test_failed_runs_keep_their_error_and_meta_round_trips(tmp_path):
    with RunStore(tmp_path / "runs.sqlite") as store:
        run = store.start_run("b", 43, "full")
        store.fail(run, "ValueError: boom")
        store.set_meta("budget", "full")
        assert store.meta("budget") == "full" and store.meta("missing", 3) == 3
        assert store.runs(status="failed")[0]["error"] == "ValueError: boom"
        assert store.budgets() == ["full"]


def test_two_connections_see_each_others_writes(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as writer, RunStore(path) as reader:
        run = writer.start_run("c", 42, "quick")
        writer.set_progress(run, {"epoch": 1, "epochs": 3})
        assert reader.run("c", 42, "quick")["progress"] == {"epoch": 1, "epochs": 3}


def test_non_finite_figures_are_stored_as_valid_json_and_read_back_as_nan(tmp_path):
    from helpers import strict_json

    with RunStore(tmp_path / "runs.sqlite") as store:
        run = store.start_run("relu_100", 42, "quick", config={"optimizer": {"lr": 1.0}})
        store.log_epoch(run, "train", 1, {"loss": math.nan, "accuracy": 0.1})
        store.log_series(run, "lr", {"step": [0, 1], "value": [0.1, math.inf]})
        for (text,) in store._db.execute("SELECT metrics FROM epochs UNION ALL SELECT data FROM series"):
            strict_json(text)
        assert math.isnan(store.epochs(run)["train"][0]["loss"])


def test_a_run_records_its_training_time_and_an_older_store_gains_the_column(tmp_path):
    import sqlite3

    with RunStore(tmp_path / "runs.sqlite") as store:
        store.finish(store.start_run("a", 42, "quick"), train_s=1.5)
        assert store.run("a", 42, "quick")["train_s"] == 1.5
    older = tmp_path / "older.sqlite"  # a store written before runs had train_s
    with RunStore(older) as store:
        store.finish(store.start_run("a", 42, "quick"))
    db = sqlite3.connect(older)
    db.execute("ALTER TABLE runs DROP COLUMN train_s")
    db.commit()
    db.close()
    with RunStore(older) as store:
        assert store.run("a", 42, "quick")["train_s"] is None and store.is_finished("a", 42, "quick")
        store.finish(store.start_run("b", 42, "quick"), train_s=2.0)
        assert store.run("b", 42, "quick")["train_s"] == 2.0
