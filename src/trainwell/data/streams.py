"""Data that streams: a ``torch.utils.data.Dataset`` or ``DataLoader`` given where arrays are allowed.

Arrays held in memory are moved to the device whole and sliced there. A Dataset or a
DataLoader is read a batch at a time instead, so data larger than memory can be used:
this module says what counts as streamed data (:func:`is_stream`), splits a collated batch
into its parts (:func:`batch_parts`: items ``(x, y)``, or ``x`` alone where only inputs
are needed) and iterates streamed data in order for evaluation and prediction
(:func:`ordered_batches`). The training side (orders, shards, resume) is
:mod:`trainwell.train.streamed`.

>>> from torch.utils.data import TensorDataset
>>> data = TensorDataset(torch.zeros(5, 2), torch.arange(5))
>>> is_stream(data), is_stream(torch.zeros(5, 2))
(True, False)
>>> [tuple(x.shape) for x, y in ordered_batches(data, 2)]
[(2, 2), (2, 2), (1, 2)]
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from trainwell.errors import ArrayError

__all__ = ["is_stream", "stream_length", "batch_parts", "ordered_batches", "loader_batches", "STREAM_ITEMS"]

#: What the items of streamed data must be, as the messages say it.
STREAM_ITEMS = "items (x, y): a pair of an input and its target"


#: Words of the errors torch's default collation raises for items that cannot be stacked into one batch.
_COLLATE_WORDS = ("stack expects", "equal size", "collate", "same size", "resize")


def is_stream(value: Any) -> bool:
    """Whether ``value`` is a torch Dataset or DataLoader (read a batch at a time) rather than an array."""
    return isinstance(value, (Dataset, DataLoader))


def stream_length(data: Dataset | DataLoader, what: str) -> int:
    """The number of items of a Dataset, or of batches of a DataLoader; an ArrayError when it has none
    (an IterableDataset: its length, and so the steps of an epoch, are unknown)."""
    dataset = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(dataset, IterableDataset):
        raise ArrayError(f"{what}: an IterableDataset has no length, so an epoch's steps are unknown; give a "
                         "map-style Dataset (with __len__ and __getitem__) or a DataLoader over one")
    try:
        length = len(data)
    except TypeError:
        raise ArrayError(f"{what}: {type(data).__name__} has no len(); a Dataset needs __len__ and "
                         "__getitem__") from None
    if length == 0:
        raise ArrayError(f"{what}: no samples")
    return length


def batch_parts(batch: Any, what: str, *, targets: bool = True) -> tuple[Any, Any]:
    """``(x, y)`` of a collated batch; with ``targets=False`` also a batch of inputs alone, ``(x, None)``.

    Items of three parts are ``(x, y, sample_weight)`` as Keras reads them: refused, by name,
    since a streamed fit does not weight samples.
    """
    if isinstance(batch, (tuple, list)):
        for part, name in zip(batch[:2], ("x", "y")):
            if isinstance(part, (list, tuple)):  # torch's collate turns items' lists into a list of columns
                raise ArrayError(f"{what}: each item's {name} is a Python list (or tuple), which torch batches "
                                 f"column by column; return a NumPy array or a tensor from __getitem__ "
                                 f"(np.asarray({name}, dtype=np.float32))")
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 3:
            raise ArrayError(f"{what}: items of three parts (x, y, sample_weight); sample weights are not supported "
                             "for a Dataset or DataLoader: give items (x, y)")
        if len(batch) == 1 and not targets:
            return batch[0], None
        parts = "one part (inputs without targets?)" if len(batch) == 1 else f"{len(batch)} parts"
        raise ArrayError(f"{what}: items of {parts}; expected {STREAM_ITEMS}")
    if not targets and (torch.is_tensor(batch) or hasattr(batch, "__array__")):
        return batch, None
    kind = "a single tensor (inputs without targets?)" if torch.is_tensor(batch) else type(batch).__name__
    raise ArrayError(f"{what}: items are {kind}; expected {STREAM_ITEMS}")


def ordered_batches(data: Dataset | DataLoader, batch_size: int, what: str = "data") -> Iterator[Any]:
    """The collated batches of ``data`` in order: a DataLoader's as it gives them, a Dataset's by
    ``batch_size`` in its own order. A loader made here draws nothing from torch's global generator."""
    if isinstance(data, DataLoader):
        loader = data
    else:
        stream_length(data, what)
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, generator=torch.Generator().manual_seed(0))
    yield from loader_batches(loader, what)


def loader_batches(loader: DataLoader, what: str, *, name: Callable[[int], str] | None = None) -> Iterator[Any]:
    """A loader's batches; items that cannot be batched together (other shapes, not numbers) are an ArrayError
    naming the batch: ``name(i)`` for the i-th (from 0), by default "batch <i + 1>"."""
    name = name or (lambda number: f"batch {number + 1}")
    iterator = iter(loader)
    number = 0
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (RuntimeError, TypeError) as error:
            message = " ".join(str(error).split())[:300]
            if not any(word in message for word in _COLLATE_WORDS):
                raise
            raise ArrayError(f"{what}: the items of {name(number)} cannot be put together into one batch "
                             f"({message}); every item's x (and y) must have the shape of the others'") from None
        number += 1
        yield batch

