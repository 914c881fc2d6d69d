"""The epoch's batches: gathered a chunk at a time, they are the rows the epoch's order names, batch by batch."""

import pytest
import torch

from trainwell.train import batches as batches_module
from trainwell.train.batches import Batches


def make(n, batch_size, *, weights=False, x=None):
    x = torch.arange(n * 6, dtype=torch.float32).reshape(n, 2, 3) if x is None else x
    y = torch.arange(n) * 10
    w = torch.arange(n, dtype=torch.float32) / 7 if weights else None
    return Batches(x, y, batch_size, shuffle=True, order=torch.Generator().manual_seed(3), device=torch.device("cpu"),
                   sharding=None, weights=w)


def one_by_one(b, first=0):
    """The batches as one gather per batch makes them."""
    for start in range(first, b.n, b.batch_size):
        rows = b.indices[start:start + b.batch_size]
        wb = None if b.weights is None else b.weights[rows]
        yield start, b.x[rows], b.y[rows], len(rows), 1.0, wb


@pytest.mark.parametrize("chunk_bytes", [1, 100, 1000, 1 << 20])  # a batch a chunk, a few, many, all
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("first", [0, 8])  # a resumed epoch starts at a batch's first sample
def test_chunked_batches_are_the_batches_of_the_epochs_order(monkeypatch, chunk_bytes, weights, first):
    monkeypatch.setattr(batches_module, "_CHUNK_BYTES", chunk_bytes)
    b = make(37, 4, weights=weights)  # a short last batch of one
    b.start_epoch()
    got, expected = list(b(first)), list(one_by_one(b, first))
    assert [batch[0] for batch in got] == list(range(first, 37, 4))
    assert len(got) == len(expected)
    for (start, xb, yb, count, weight, wb), (s, x, y, c, w, wbe) in zip(got, expected):
        assert (start, count, weight) == (s, c, w)
        assert xb.is_contiguous() and torch.equal(xb, x) and torch.equal(yb, y)
        assert (wb is None) == (wbe is None) and (wb is None or torch.equal(wb, wbe))


def test_a_batch_changed_in_place_leaves_the_other_batches_and_the_data_alone():
    b = make(12, 3)
    before = b.x.clone()
    b.start_epoch()
    seen = []
    for _, xb, _, _, _, _ in b():
        seen.append(xb.clone())
        xb.fill_(-1.0)  # as a model with an in-place first layer would
    assert torch.equal(b.x, before)
    assert torch.equal(torch.cat(seen), before[b.indices])
