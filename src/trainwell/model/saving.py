"""Save and load models as safetensors files: the spec and weights, never code.

A trainwell model file is a safetensors file whose metadata holds the model spec
(JSON), what the model was trained for (loss, data preparation) and a SHA-256 of the
weights and of every other metadata entry; loading reads only tensors and JSON, so a
file can never run code. Writes are atomic: a crash leaves the previous file in place,
not half a new one.

A file either loads exactly as saved or not at all: the checksum covers everything
that changes a prediction (format version 2), the spec and info must be JSON objects
with their required keys, and the spec's sizes are checked against the tensors the
file holds before a model is built (a 20 KB file cannot make the loader allocate
gigabytes). Version-1 files (trainwell before format 2) still load, because runs
folders are full of them, but their checksum covers the weights only: loading one
warns that its spec and data preparation are unverified, and saving it again
(:func:`resave_model_file`) protects them.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from trainwell.errors import ConfigError, ModelFileError, shown
from trainwell.fileio import json_text
from trainwell.model.layers import Model, ModelSpec, build_model
from trainwell.tensorfile import write_tensors

FORMAT = "trainwell-model"
FORMAT_VERSION = "2"          # the checksum covers the tensors and all other metadata
UNVERIFIED_VERSION = "1"      # read, with a warning: its checksum covers the tensors only
EXTRA_PREFIX = "extra."
DIGEST_KEY = "sha256"


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


def model_file_digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """SHA-256 of a version-2 model file: the tensors and every metadata entry but the digest itself.

    Entries are hashed as a sorted list of ``[key, value]`` pairs, so a changed, added or
    removed key (``"scaling"``, ``"pixel_max"``, the spec) changes the digest as surely as
    a changed weight.
    """
    entries = sorted((key, value) for key, value in metadata.items() if key != DIGEST_KEY)
    text = json.dumps(entries, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(f"{weights_digest(tensors)}|{text}".encode()).hexdigest()


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
    }
    metadata[DIGEST_KEY] = model_file_digest(tensors, metadata)
    return write_tensors(tensors, path, metadata)


def resave_model_file(path: str | os.PathLike) -> Path:
    """Rewrite a model file in the current format (a version-1 file gets a checksum over its metadata too).

    Only for a file the user trusts: a version-1 file's spec and info are unverified, and
    what they hold now is what the new checksum protects.
    """
    with warnings.catch_warnings():  # the version-1 warning: resaving is what it asks for
        warnings.simplefilter("ignore", UserWarning)
        loaded = load_model_file(path)
    return save_model(loaded.model, path, info=loaded.info, extra=loaded.extra)


def save_weights(module: nn.Module, path: str | os.PathLike) -> Path:
    """Save any module's ``state_dict`` (weights only) to a safetensors file, atomically."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    return write_tensors(tensors, path, {"format": "trainwell-weights", "sha256": weights_digest(tensors)})


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
    """Tensors and metadata of a trainwell file whose checksum matches (model or weights file)."""
    file = Path(path)
    if file.is_dir():
        hint = " (a run's model is <folder>/model.safetensors)" if (file / "model.safetensors").is_file() else ""
        raise ModelFileError(f"{file}: is a folder, not a model file{hint}")
    if not file.is_file():
        raise ModelFileError(f"{file}: no such model file")
    try:
        tensors, metadata = read_safetensors(file)
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{file}: not a readable safetensors model file ({error})") from None
    expected = metadata.get(DIGEST_KEY)
    if expected is None:
        raise ModelFileError(f"{file}: the file has no checksum ({DIGEST_KEY!r}); it was not written by trainwell")
    covers_metadata = metadata.get("format") == FORMAT and metadata.get("format_version") != UNVERIFIED_VERSION
    actual = model_file_digest(tensors, metadata) if covers_metadata else weights_digest(tensors)
    if actual != expected:
        raise ModelFileError(f"{file}: the file does not match its checksum; it is corrupted")
    return tensors, metadata


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Load a model saved by :func:`save_model`, with its metadata and extra tensors.

    Exactly as saved, or a ModelFileError naming the file and what is wrong: the
    checksum, a required key, a spec that is not valid, or tensors that do not fit it
    (checked before the model is built, so a spec cannot make it allocate more than the
    file holds).
    """
    tensors, metadata = _read(path)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a trainwell model file (format {metadata.get('format')!r}); "
                             "weights-only files load with load_weights into a model you build")
    version = metadata.get("format_version")
    if version not in (FORMAT_VERSION, UNVERIFIED_VERSION):
        raise ModelFileError(f"{path}: model file version {version!r} is not supported "
                             f"(this trainwell reads versions {UNVERIFIED_VERSION} and {FORMAT_VERSION})")
    if version == UNVERIFIED_VERSION:
        warnings.warn(f"{path}: a version-1 model file: its checksum covers the weights but not the spec and "
                      "data preparation, which are unverified; trainwell.model.saving.resave_model_file(path) writes "
                      f"it as version {FORMAT_VERSION}, which covers them", UserWarning, stacklevel=2)
    spec = _spec_of(path, _json_object(path, metadata, "spec"))
    info = _json_object(path, metadata, "info")
    extra = {k[len(EXTRA_PREFIX):]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
    weights = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    _check_tensors_fit(path, spec, weights)
    model = build_model(spec)
    _load_state(model, weights, path)
    return ModelFile(model=model, info=info, extra=extra)


def _json_object(path: str | os.PathLike, metadata: Mapping[str, str], key: str) -> dict[str, Any]:
    """The metadata entry ``key``, which must be there and hold a JSON object."""
    if key not in metadata:
        raise ModelFileError(f"{path}: the model file has no {key!r} entry in its metadata")
    try:
        value = json.loads(metadata[key])
    except (json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ModelFileError(f"{path}: the model file's {key!r} is not readable JSON ({reason})") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: the model file's {key!r} must be a JSON object, "
                             f"got {type(value).__name__} {shown(value)}")
    return value


def _spec_of(path: str | os.PathLike, data: dict[str, Any]) -> ModelSpec:
    """The model spec of a file, with its required keys; ModelFileError naming what is not valid."""
    for key in ("input_shape", "layers"):
        if key not in data:
            raise ModelFileError(f"{path}: the model spec in the file has no {key!r}")
    try:
        return ModelSpec.from_dict(data)
    except ConfigError as error:
        raise ModelFileError(f"{path}: the model spec in the file is not valid ({error})") from None


def expected_tensors(spec: ModelSpec) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor a model built from ``spec`` holds, allocating nothing.

    The model is built on PyTorch's ``meta`` device, which records shapes without memory,
    so a spec asking for 200 million units costs nothing to check.
    """
    try:
        with torch.device("meta"):
            model = build_model(spec)
    except (RuntimeError, TypeError, OverflowError) as error:  # sizes torch cannot represent
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"the model cannot be built: {reason}") from None
    return {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}


def _check_tensors_fit(path: str | os.PathLike, spec: ModelSpec, tensors: Mapping[str, torch.Tensor]) -> None:
    """The file's tensors are exactly those the spec builds, with the same shapes and dtypes (else ModelFileError)."""
    try:
        expected = expected_tensors(spec)
    except ConfigError as error:
        raise ModelFileError(f"{path}: the model spec in the file is not valid ({error})") from None
    _check_names(path, list(expected), list(tensors))
    problems = []
    for name, (shape, dtype) in expected.items():
        held = tensors[name]
        if tuple(held.shape) != shape:
            problems.append(f"layer {name.rsplit('.', 1)[0]!r}: {name} has shape {tuple(held.shape)} in the file "
                            f"but the spec makes {shape}")
        elif held.dtype != dtype:
            problems.append(f"{name} is {str(held.dtype).removeprefix('torch.')} in the file but the model "
                            f"holds {str(dtype).removeprefix('torch.')}")
    if problems:
        raise ModelFileError(f"{path}: the tensors do not fit the model spec: " + "; ".join(problems[:3])
                             + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))


def _check_names(path: str | os.PathLike, expected: list[str], held: list[str]) -> None:
    missing = [name for name in expected if name not in held]
    unexpected = [name for name in held if name not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing in the file: {', '.join(missing)}")
        if unexpected:
            parts.append(f"not in the model: {', '.join(unexpected)}")
        raise ModelFileError(f"{path}: the file does not match the model ({'; '.join(parts)})")


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
    _check_names(path, list(expected), list(tensors))
    mismatches = [
        f"layer {name.rsplit('.', 1)[0]!r}: {name} has shape {tuple(tensors[name].shape)} in the file "
        f"but the model expects {tuple(wanted.shape)}"
        for name, wanted in expected.items() if tuple(tensors[name].shape) != tuple(wanted.shape)]
    if mismatches:
        raise ModelFileError(f"{path}: " + "; ".join(mismatches))
    module.load_state_dict(tensors)
