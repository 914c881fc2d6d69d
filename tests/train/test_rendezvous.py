"""Each torchrun attempt finds its peers under keys of its own in the store torchrun keeps across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from trainwell.train import rendezvous

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="this PyTorch build has no torch.distributed with gloo")

# A rank of a torchrun job as init_from_env joins it: one all-reduce, then it leaves.
WORKER = """
import os, time
import torch
from trainwell.train import distributed
time.sleep(float(os.environ.get("LATE", "0")))
distributed.init_from_env(timeout=20)
total = torch.ones(1)
torch.distributed.all_reduce(total)
print("sum", total.item(), flush=True)
distributed.shutdown(together=True)
"""


def _kept_store() -> torch.distributed.TCPStore:
    """A store like torchrun's agent keeps for the whole job, across its restarts."""
    return torch.distributed.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                                      timeout=timedelta(seconds=60))


def _torchrun_env(store: torch.distributed.TCPStore, rank: int, restart: int) -> dict[str, str]:
    return {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": "2",
            "RANK": str(rank), "LOCAL_RANK": str(rank), "TORCHELASTIC_RESTART_COUNT": str(restart),
            "TORCHELASTIC_USE_AGENT_STORE": "True", "GROUP_WORLD_SIZE": "1", "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": ""}


def test_the_keys_of_one_attempt_are_not_seen_by_the_next(monkeypatch):
    store = _kept_store()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(store.port))
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "1")  # one torchrun agent: every rank has its restart count
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    first = rendezvous.store_of_this_attempt(0, 2, timedelta(seconds=5))
    first.set("rank_1", "address of the first attempt")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    second = rendezvous.store_of_this_attempt(0, 2, None)
    assert not second.check(["rank_1"])
    assert first.check(["rank_1"]) and first.get("rank_1") == b"address of the first attempt"


@pytest.mark.parametrize("environment", [{"GROUP_WORLD_SIZE": "2"}, {"TORCHELASTIC_USE_AGENT_STORE": "False"},
                                         {"TORCHELASTIC_USE_AGENT_STORE": None}])
def test_torchs_own_store_where_the_restart_counts_may_differ_or_no_agent_keeps_the_store(monkeypatch, environment):
    """Several torchrun agents (machines) count restarts each its own; without the agent's store (rank 0 hosts
    a fresh one each attempt, or no torchrun) nothing is kept from an attempt before."""
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "1")
    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    assert rendezvous.attempt_prefix() is None and rendezvous.store_of_this_attempt(0, 2, None) is None


@pytest.mark.parametrize("restarts, agents, rank, warns", [("3", "2", 0, True), ("0", "2", 0, False),
                                                           ("3", "1", 0, False), ("3", "2", 1, False)])
def test_rank_0_says_how_to_give_each_restart_its_store_on_several_machines(monkeypatch, restarts, agents, rank,
                                                                             warns):
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("GROUP_WORLD_SIZE", agents)
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", restarts)
    if agents == "1":  # one agent: keys of its own, from torchrun's store (here a store of the test's)
        store = _kept_store()
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
        monkeypatch.setenv("MASTER_PORT", str(store.port))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rendezvous.store_of_this_attempt(rank, 2, timedelta(seconds=5))
    said = [str(w.message) for w in caught if "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in str(w.message)]
    assert len(said) == (1 if warns else 0), said


@pytest.mark.slow  # four processes, a few seconds each
def test_a_restarted_job_connects_when_a_rank_comes_late(tmp_path: Path):
    """The second attempt's rank 1 starts 3 s after rank 0. Before each attempt had its keys, rank 0 read rank
    1's address of the first attempt and the two waited in gloo's connect, each for the other, until killed
    (and a process-group timeout did not end that wait)."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    store = _kept_store()
    for restart in (0, 1):
        started = time.monotonic()
        ranks = [subprocess.Popen([sys.executable, str(worker)], env={
            **_torchrun_env(store, rank, restart), "LATE": "3" if restart and rank == 1 else "0"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
        try:
            outputs = [rank.communicate(timeout=90)[0] for rank in ranks]
        except subprocess.TimeoutExpired:
            for rank in ranks:
                rank.kill()
            pytest.fail(f"attempt {restart}: the ranks did not connect within "
                        f"{time.monotonic() - started:.0f} s")
        assert [rank.returncode for rank in ranks] == [0, 0], outputs
        assert all("sum 2.0" in output for output in outputs), outputs
