"""Save and load models as safetensors files: the spec and weights, never code.

A trainwell model file is a safetensors file whose metadata holds the model spec
(JSON), what the model was trained for (loss, data preparation) and a SHA-256 of the
weights; loading reads only tensors and JSON, so a file can never run code. Writes
are atomic: a crash leaves the previous file in place, not half a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from trainwell.errors import ConfigError, ModelFileError
from trainwell.fileio import atomic_path, json_text
from trainwell.layers import Model, ModelSpec, build_model

FORMAT = "trainwell-model"
FORMAT_VERSION = "1"
EXTRA_PREFIX = "extra."


@dataclass
class ModelFile:
    """What a model file holds besides the model: its metadata and extra tensors."""

    model: Model
    info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes of the tensors, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(model: nn.Module, path: str | os.PathLike, *, info: Mapping[str, Any] | None = None,
               extra: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Save a model built by trainwell (spec + weights) to ``path``, atomically.

    ``info`` is JSON-serializable metadata (e.g. the loss and data preparation);
    ``extra`` are additional tensors (e.g. standardization mean and std).
    """
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise ConfigError("save_model needs a model built by trainwell (from layer specs); "
                          "for any other nn.Module use save_weights")
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    for name, tensor in (extra or {}).items():
        tensors[EXTRA_PREFIX + name] = tensor.detach().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": json_text(spec.to_dict(), indent=None),
        "info": json_text(dict(info or {}), indent=None),
        "sha256": weights_digest(tensors),
    }
    return _write(tensors, path, metadata)


def save_weights(module: nn.Module, path: str | os.PathLike) -> Path:
    """Save any module's ``state_dict`` (weights only) to a safetensors file, atomically."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    return _write(tensors, path, {"format": "trainwell-weights", "sha256": weights_digest(tensors)})


def _write(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return target


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; OSError or ValueError if it cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return load_file(str(path)), metadata
    except SafetensorError as error:
        raise ValueError(str(error)) from None


def _read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    file = Path(path)
    if not file.is_file():
        raise ModelFileError(f"{file}: no such model file")
    try:
        tensors, metadata = read_safetensors(file)
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{file}: not a readable safetensors model file ({error})") from None
    expected = metadata.get("sha256")
    if expected is None:
        raise ModelFileError(f"{file}: the file has no weights checksum; it was not written by trainwell")
    if weights_digest(tensors) != expected:
        raise ModelFileError(f"{file}: the weights do not match their checksum; the file is corrupted")
    return tensors, metadata


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Load a model saved by :func:`save_model`, with its metadata and extra tensors."""
    tensors, metadata = _read(path)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a trainwell model file (format {metadata.get('format')!r}); "
                             "weights-only files load with load_weights into a model you build")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model file version {metadata.get('format_version')!r} is not supported "
                             f"(this trainwell reads version {FORMAT_VERSION})")
    try:
        spec = ModelSpec.from_dict(json.loads(metadata["spec"]))
        info = json.loads(metadata.get("info", "{}"))
    except (KeyError, json.JSONDecodeError, ConfigError) as error:
        raise ModelFileError(f"{path}: the model spec in the file is unreadable ({error})") from None
    model = build_model(spec)
    extra = {k[len(EXTRA_PREFIX):]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
    weights = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    _load_state(model, weights, path)
    return ModelFile(model=model, info=info, extra=extra)


def load_model(path: str | os.PathLike) -> Model:
    """Load a model saved by :func:`save_model`."""
    return load_model_file(path).model


def load_weights(module: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights saved by :func:`save_weights` or :func:`save_model` into ``module``."""
    tensors, _ = _read(path)
    weights = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    _load_state(module, weights, path)
    return module


def _load_state(module: nn.Module, tensors: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Copy tensors into ``module``, naming the layer and shapes on any mismatch."""
    expected = module.state_dict()
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing in the file: {', '.join(missing)}")
        if unexpected:
            parts.append(f"not in the model: {', '.join(unexpected)}")
        raise ModelFileError(f"{path}: the file does not match the model ({'; '.join(parts)})")
    mismatches = [
        f"layer {name.rsplit('.', 1)[0]!r}: {name} has shape {tuple(tensors[name].shape)} in the file "
        f"but the model expects {tuple(wanted.shape)}"
        for name, wanted in expected.items() if tuple(tensors[name].shape) != tuple(wanted.shape)]
    if mismatches:
        raise ModelFileError(f"{path}: " + "; ".join(mismatches))
    module.load_state_dict(tensors)
