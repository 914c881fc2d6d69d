"""A run's prepared data, kept for the next runs of the same process that ask for the same data.

Why: ``trainwell reproduce`` runs some fifty fits in a few worker processes, most of them on
Fashion-MNIST prepared one of two ways. Preparing it again for every run (its splits, its
scaling, some 220 MB of fresh float32 arrays, whose first touch costs most) took 0.5-1.6 s a
run, and the fingerprint's digest of the same arrays 0.1 s more. Inside
:func:`reusing_prepared_data` (the catalog's runs) :func:`prepared` hands a run the arrays an
earlier run prepared from the same data settings and files, once it has checked that no run
changed them (each array's float64 sum, as it was when prepared); outside, the data are
prepared for each run, as always. Data read from the user's own files (``data.format``) are
never kept. ``trainwell tune``'s trials, runs of one config on the same data, reuse them too.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator

import numpy as np

from trainwell import data as datasets

#: How many preparations a process keeps (a few hundred MB each for Fashion-MNIST): the chapter's two scalings.
MOST_KEPT = 2

_kept: OrderedDict[Any, "_Kept"] = OrderedDict()
_depth = 0  # how many reusing_prepared_data() blocks are open


@dataclass
class _Kept:
    data: Any  # a trainwell.recipes.build.PreparedData
    sums: tuple[float, ...]
    digest: str | None = None  # the fingerprint's digest of its arrays, once computed


@contextmanager
def reusing_prepared_data(*, forget_after: bool = False) -> Iterator[None]:
    """Within: :func:`prepared` keeps what it prepares and hands it out again for the same data.

    ``forget_after``: when this block is the outermost one, the kept data go at its end (``trainwell
    tune`` and ``reproduce`` in the caller's process); without, they stay for the process's next block
    (a catalog worker's next run)."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if forget_after and not _depth:
            _kept.clear()


def prepared(config: Any, prepare: Callable[[Any], Any]) -> Any:
    """``prepare(config)``, or within :func:`reusing_prepared_data` the same data prepared by an earlier run."""
    key = _key(config) if _depth else None
    if key is None:
        return prepare(config)
    kept = _kept.get(key)
    if kept is not None and _sums(kept.data) == kept.sums:
        _kept.move_to_end(key)
        return kept.data
    data = prepare(config)
    _kept[key] = _Kept(data, _sums(data))
    _kept.move_to_end(key)
    while len(_kept) > MOST_KEPT:
        _kept.popitem(last=False)
    return data


def data_digest(data: Any, compute: Callable[[], str]) -> str:
    """``compute()``, the fingerprint's digest of ``data``'s arrays, computed once for kept data."""
    kept = next((k for k in _kept.values() if k.data is data), None)
    if kept is None:
        return compute()
    if kept.digest is None:
        kept.digest = compute()
    return kept.digest


def _key(config: Any) -> Any:
    """What the prepared data depend on: the ``[data]`` settings, the seed where they draw samples
    (``per_class``), and the dataset's files; None for data that are not kept."""
    section = config.data
    if section.format is not None or section.name is None:
        return None
    state = datasets.files_state(section.name, path=section.path, offline=section.offline)
    if state is None:
        return None
    settings = json.dumps(section.model_dump(mode="json"), sort_keys=True, default=str)
    return settings, config.seed if section.per_class is not None else None, state


def _sums(data: Any) -> tuple[float, ...]:
    """Each array's float64 sum (about 30 ms for Fashion-MNIST's): a run that wrote into one changes it."""
    arrays = [getattr(data, f.name) for f in fields(data)]
    return tuple(float(np.sum(a, dtype=np.float64)) for a in arrays if isinstance(a, np.ndarray))
