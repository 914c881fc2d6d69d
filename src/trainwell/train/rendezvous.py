"""Where the ranks of one torchrun attempt find each other: torchrun's store, with keys of their own.

torchrun's agent keeps one store (``MASTER_ADDR:MASTER_PORT``) across the restarts of a job,
and gloo finds each rank's address there under the same key at every attempt. A restarted
rank could read its peer's address from the attempt before, still there until the peer
wrote its new one, and then both ranks waited in gloo's connect, each for the other: one
restart in two hung five minutes and ended in a failed job (PyTorch issue 135712 tells the
same of NCCL's unique id). With the keys prefixed by torchrun's restart count, each attempt
reads only its own.

The count is the agent's own: with one agent (one machine) every rank has the same, but
the agents of several machines count apart (a machine that restarts because another failed,
or a replacement, counts otherwise). There torch's own store is used, as before, and the
README says to start torchrun with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, which gives
every attempt a store of its own.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta

import torch

#: torch's default for a gloo group; a store's waits follow the group's timeout, as in init_process_group.
DEFAULT_TIMEOUT = timedelta(minutes=30)


def attempt_prefix() -> str | None:
    """The prefix of this attempt's keys: torchrun's restart count, where every rank has the same (see the
    module); None outside torchrun's shared store, or where several agents count restarts apart."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or os.environ.get("GROUP_WORLD_SIZE") != "1":
        return None
    return f"attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def store_of_this_attempt(rank: int, world_size: int, timeout: timedelta | None) -> torch.distributed.Store | None:
    """The store ``init_process_group`` would make from ``env://``, as this attempt's own (see the module);
    None where :func:`attempt_prefix` is: ``init_process_group`` then makes torch's own."""
    prefix = attempt_prefix()
    if prefix is None:
        if rank == 0 and _restarts_share_one_store_across_machines():
            warnings.warn("trainwell: torchrun may restart this job on several machines, and keeps one store for all "
                          "its restarts: a restarted rank can read a peer's address of the attempt before and wait "
                          "for it until the timeout. Start torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its "
                          "environment on every machine: each restart then has a store of its own.", stacklevel=3)
        return None
    waits = DEFAULT_TIMEOUT if timeout is None else timeout
    store, _, _ = next(torch.distributed.rendezvous("env://", rank, world_size, timeout=waits))
    store.set_timeout(waits)
    return torch.distributed.PrefixStore(prefix, store)


def _restarts_share_one_store_across_machines() -> bool:
    """Several torchrun agents, restarts allowed, and the agents' one store (see the module)."""
    return (os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and os.environ.get("GROUP_WORLD_SIZE", "1") != "1"
            and os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") != "0")
