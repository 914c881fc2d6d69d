"""Safetensors files written atomically and byte for byte the same for the same tensors and metadata.

safetensors writes a file's metadata (``__metadata__``: a model's spec, info and checksum, a
resume state) in the iteration order of a Rust hash map, which differs from one save to the
next, even within one process: two saves of the same model were different files, and a
checksum of the file (``sha256sum model.safetensors``) could not tell a retrained model from
a changed one. :func:`write_tensors` saves with safetensors, then rewrites the header in
place with the metadata's keys sorted: the same JSON values, the same length (reordering keys
changes no byte count), the tensors' bytes untouched, so any safetensors reader reads it as
before.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

from trainwell.fileio import atomic_path

_METADATA = "__metadata__"


def write_tensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    """Save ``tensors`` with ``metadata`` to ``path`` atomically, the metadata's keys in sorted order."""
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_metadata(tmp)
    return target


def _sort_metadata(path: Path) -> None:
    """Rewrite the header of the safetensors file at ``path`` with ``__metadata__``'s keys sorted, in place.

    The header is JSON padded with spaces to its recorded length; the rewritten one is the same
    JSON written compactly as safetensors writes it. Where its length came out different (an
    escaping this encoder writes otherwise), the file is left as safetensors wrote it: valid,
    only not canonical.
    """
    with open(path, "r+b") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        raw = handle.read(size)
        header = json.loads(raw)
        if _METADATA not in header:
            return
        ordered = {_METADATA: dict(sorted(header.pop(_METADATA).items())), **header}
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) != len(raw.rstrip(b" ")):
            return
        handle.seek(8)
        handle.write(text.ljust(size, b" "))
