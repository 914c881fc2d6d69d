"""What a callback needs to decide as every rank decides, under torchrun: a loss added over the ranks,
and rank 0's value of anything.

Under torchrun every rank runs the same fit, and the Trainer calls each callback on every rank,
except those that only write or print (``Callback.rank_zero_only``: rank 0 alone runs them). A
callback that steers the fit (stops it, changes the rate or the weights) must take the same
decision on every rank, or the ranks fall out of step and the next collective fails or hangs.
An epoch's logs are the same on every rank (their sums are added over the ranks); what one rank
sees alone, such as its batch's loss, is agreed through :func:`sum_over_ranks`.

These call ``torch.distributed`` directly (callbacks sit below ``trainwell.train``, which joins the
group); in one process they make no collective and return what they are given.
"""

from __future__ import annotations

from typing import Any

import torch


def in_process_group() -> bool:
    """Whether this process is one of several ranks (torchrun's group is joined)."""
    distributed = torch.distributed
    return distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """``value`` (a tensor of this rank's) added over every rank, in float64: one all-reduce, which every
    rank must make; ``value`` itself in one process. Non-finite on any rank makes it non-finite on all."""
    if not in_process_group():
        return value
    total = value.detach().to(torch.float64).clone()
    torch.distributed.all_reduce(total)
    return total


def from_rank_zero(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank: one broadcast, which every rank must make;
    ``value`` itself in one process."""
    if not in_process_group():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
