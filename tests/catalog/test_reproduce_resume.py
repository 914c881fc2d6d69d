"""reproduce after a kill: a resumed run keeps every epoch row, and a run's figures do not depend on
how it was scheduled (alone in reproduce's process or in a worker)."""

from __future__ import annotations

import os

import pytest

from trainwell import catalog as experiments
from trainwell.store import RunStore, store_path

needs_data = pytest.mark.skipif(not os.environ.get("TRAINWELL_DATA"), reason="TRAINWELL_DATA is not set")


def _epoch_rows(out, entry_id: str) -> tuple[str, int]:
    with RunStore(store_path(out)) as store:
        row = store.run(entry_id, 42, "smoke")
        return row["status"], sum(len(records) for records in store.epochs(row["id"]).values())


@needs_data
@pytest.mark.parametrize("entry_id", ["leaky_relu", "ex10_3"])  # a config entry, a procedure's Context.fit
def test_a_run_killed_after_its_last_state_was_saved_keeps_its_epoch_rows(entry_id, tmp_path, monkeypatch):
    from trainwell.train.trainer import Trainer

    reference = tmp_path / "reference"
    experiments.reproduce([entry_id], budget="smoke", out=reference, jobs=1, report=False, echo=lambda line: None)
    status, rows = _epoch_rows(reference, entry_id)
    assert status == "finished" and rows > 0

    save = Trainer._save

    def save_then_kill_at_the_end(self, directory, callbacks, order, target, mid_epoch=None):
        save(self, directory, callbacks, order, target, mid_epoch)
        if mid_epoch is None and len(self.history) >= target:  # the fit's final state is on disk
            raise KeyboardInterrupt

    out = tmp_path / "killed"
    monkeypatch.setattr(Trainer, "_save", save_then_kill_at_the_end)
    with pytest.raises(KeyboardInterrupt):
        experiments.reproduce([entry_id], budget="smoke", out=out, jobs=1, report=False, echo=lambda line: None)
    monkeypatch.setattr(Trainer, "_save", save)
    experiments.reproduce([entry_id], budget="smoke", out=out, jobs=1, report=False, echo=lambda line: None)
    assert _epoch_rows(out, entry_id) == ("finished", rows)


def _results(out, entry_id: str) -> dict[str, float]:
    with RunStore(store_path(out)) as store:
        row = store.run(entry_id, 42, "smoke")
        assert row["status"] == "finished", row["error"]
        return {k: v for k, v in store.results(row["id"]).items() if not k.endswith("time_s")}


@needs_data
def test_a_run_gives_the_same_figures_alone_in_reproduces_process_as_in_a_worker(tmp_path):
    """A single pending run goes in reproduce's own process, which has as many torch threads as the
    machine gives it; a worker has the workers' setting. The run's figures must not tell them apart."""
    import torch

    from trainwell.catalog.one_run import run_one

    entry_id = "l2"  # a config entry whose float sums do change with the thread count
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)  # reproduce's own process on a machine with 4 cores
        assert run_one(tmp_path / "alone", entry_id, 42, "smoke") == "finished"
        assert torch.get_num_threads() == 4  # the process's own setting is left as it was
        torch.set_num_threads(1)  # a worker's (see worker_init)
        assert run_one(tmp_path / "worker", entry_id, 42, "smoke") == "finished"
    finally:
        torch.set_num_threads(threads)
    alone, worker = _results(tmp_path / "alone", entry_id), _results(tmp_path / "worker", entry_id)
    assert alone == worker and "val_loss" in alone
