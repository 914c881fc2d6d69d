"""Where the ranks of one torchrun attempt find each other: torchrun's store, with keys of their own.

torchrun keeps one store (``MASTER_ADDR:MASTER_PORT``) across the restarts of a job, and gloo
finds each rank's address there under the same key at every attempt. A restarted rank could
read its peer's address from the attempt before, still there until the peer wrote its new
one, and then both ranks waited in gloo's connect, each for the other: one restart in two
hung five minutes and ended in a failed job. With the keys prefixed by torchrun's restart
count, each attempt reads only its own.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch

#: torch's default for a gloo group; a store's waits follow the group's timeout, as in init_process_group.
DEFAULT_TIMEOUT = timedelta(minutes=30)


def attempt_prefix() -> str:
    """The prefix of this attempt's keys: torchrun's restart count (0 outside torchrun's restarts)."""
    return f"attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def store_of_this_attempt(rank: int, world_size: int, timeout: timedelta | None) -> torch.distributed.Store:
    """The store ``init_process_group`` would make from ``env://``, as that attempt's own (see the module)."""
    waits = DEFAULT_TIMEOUT if timeout is None else timeout
    store, _, _ = next(torch.distributed.rendezvous("env://", rank, world_size, timeout=waits))
    store.set_timeout(waits)
    return torch.distributed.PrefixStore(attempt_prefix(), store)
