"""Dense weights stored column by column while the fused SGD step trains them, where MKL updates them faster so.

Why: with plain SGD the fused step updates a weight inside the product that computes its
gradient, ``W.addmm_(g.T, x, alpha=-lr)`` (:class:`~trainwell.train.fused_stages.Gradients`),
and how fast MKL runs that product depends on how ``W`` lies in memory. On 2 threads at a
batch of 32 (an AVX-512 Xeon, torch 2.13's MKL), a 784-300 layer's update took 75 us with
``W`` stored row by row, ``nn.Linear``'s own ``(out, in)`` layout, against 56 us with the same
matrix stored column by column; its forward product took the same either way, and the input
gradient of a 300-100 layer 8.7 us against 10.7. The gain is for layers with more inputs than
outputs, at small batches, on more than one thread: on one thread the row layout was the faster
(86 against 98 us), at a batch of 128 the two were within a few percent, and a 300-784 layer
(more outputs than inputs) was 34 us slower a step by column. :func:`column_weights` picks the
layers by those measurements.

So a fit that takes the fused step with plain SGD stores those weights by column for as long
as it runs (:func:`stored_by_column`: ``param.data`` becomes a column-major copy of itself, the
same values, the same Parameter), and puts them back row by row when it ends, however it
ends: outside a fit a model's parameters are laid out as PyTorch makes them (contiguous, for
checkpoints, ``view`` and the optimizers that need it). Plain SGD keeps no state to lay out
alike, and a step that falls back to autograd gets its gradient in the weight's own layout
(PyTorch's gradient layout contract), so only the rounding changes: MKL adds up the same
products in another order (up to one float32 ulp per update).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from trainwell.train.fused_stages import LinearStage

__all__ = ["column_weights", "stored_by_column"]

#: The layers whose weights go by column: at least this many inputs per output ...
INPUTS_PER_OUTPUT = 2
#: ... and this many weights (a 256-64 layer, 16k weights, gained nothing; 300-100, 30k, 2-7 us a step) ...
WEIGHTS = 25_000
#: ... in a fit whose batches are at most this large (the gain fades by 128) ...
BATCH = 64
#: ... on at least this many threads.
THREADS = 2


def column_weights(stages: Sequence[object], *, batch_size: int, threads: int) -> list[torch.Tensor]:
    """The weights of ``stages``' Dense layers that the fused SGD step updates faster stored by column."""
    if threads < THREADS or batch_size > BATCH:
        return []
    weights = [stage.weight for stage in stages if isinstance(stage, LinearStage)]
    return [w for w in weights if w.device.type == "cpu" and w.dim() == 2
            and w.shape[1] >= INPUTS_PER_OUTPUT * w.shape[0] and w.numel() >= WEIGHTS]


@contextlib.contextmanager
def stored_by_column(weights: Sequence[torch.Tensor]) -> Iterator[None]:
    """Store each of ``weights`` column by column inside the block (the same values), contiguous after it
    (whatever replaced one inside the block, ``param.data = ...`` or a load, is kept, made contiguous)."""
    for weight in weights:
        weight.data = weight.data.t().contiguous().t()
    try:
        yield
    finally:
        for weight in weights:
            if not weight.is_contiguous():
                weight.data = weight.data.contiguous()
