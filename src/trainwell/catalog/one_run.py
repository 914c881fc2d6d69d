"""One catalog run: an (entry, seed, budget) run, recorded in the run store, with one torch thread."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from trainwell.catalog.context import Context
from trainwell.catalog.registry import get
from trainwell.catalog.vocabulary import get_budget
from trainwell.store import RunStore, store_path
from trainwell.versions import versions



def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu ({torch.get_num_threads()} torch threads)"


RUN_THREADS = 1  # torch intra-op threads of every catalog run, wherever it runs


def run_one(out: str | os.PathLike, entry_id: str, seed: int, budget: str) -> str:
    """Run one (entry, seed) and record it; returns "finished" or "failed" (the error goes to the store).

    The run has :data:`RUN_THREADS` torch threads whether it runs in a worker or in reproduce's own
    process (as the last pending run does, or any with ``jobs=1``): a float sum split over more
    threads rounds differently, and a run's figures must not depend on how it was scheduled. The data a run
    prepares are kept for the process's next runs on the same data (:mod:`trainwell.recipes.reuse`).
    """
    from trainwell.recipes.reuse import reusing_prepared_data
    from trainwell.train.threads import using_threads

    with using_threads(RUN_THREADS), reusing_prepared_data():  # the next runs of this process reuse its data
        return _run_one(out, entry_id, seed, budget)


def _run_one(out: str | os.PathLike, entry_id: str, seed: int, budget: str) -> str:
    from trainwell.train.trainer import seed_everything

    entry = get(entry_id)
    store = RunStore(store_path(out))
    try:
        run_id = store.start_run(entry_id, seed, budget, config=entry.config, versions=versions(),
                                 device=device_name())
        context = Context(entry=entry, seed=seed, budget=get_budget(budget), store=store, run_id=run_id,
                          out=Path(out))
        try:
            seed_everything(seed)
            entry.run(context)
        except Exception as error:  # recorded, shown in the report, and redone next time
            store.fail(run_id, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=6)}")
            return "failed"
        store.finish(run_id, train_s=context.train_s)
        return "finished"
    finally:
        store.close()
