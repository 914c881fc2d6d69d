"""Hostile model files: every bit flip and truncation, and crafted files, through every reader.

A model file must either load exactly as saved (same spec, weights, metadata and extra
tensors: ``handled``) or be refused with one clear line (``clear error``). Three kinds of
cases:

- the bit-flip scan: every single-bit flip and every truncation of a small trained model
  file (``full=True``), or a seeded sample of a few hundred over its header and data, plus
  every flip of the bytes that hold the data preparation (``"scaling"``, ``"pixel_max"``);
  each mutated file goes through ``load_model_file`` and is compared with the original;
- the same scan, sampled, over a checkpoint written by the Checkpoint callback and over a
  resume state (``read_state`` must refuse it or return the very same state);
- crafted files that carry a valid checksum (a checksum is no signature: anyone can
  compute one) but lie in their metadata: a spec whose sizes would take 51 GB, a spec or
  info that is not a JSON object, a non-numeric ``pixel_max``, missing keys, tensors of
  another dtype or shape than the spec says, ... Each goes through ``tw.load_model`` and
  ``trainwell evaluate``, ``predict`` and ``summary``, under an address-space limit so that
  a regression fails the case instead of the machine.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import random
import resource
import shutil
import struct
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from outcomes import HANDLED, WRONG, Case, api_outcome, cli_outcome, run_cli

AREA = "model_files"
SAMPLE_SEED = 15
SAMPLE_FLIPS = 240        # random single-bit flips over the whole file (header and data) in the tests
SAMPLE_TRUNCATIONS = 40
SAMPLE_OTHER_FILES = 60   # flips and truncations of the checkpoint and of the resume state, each

CONFIG = """
name = "hostile"
seed = 5
[data]
name = "digits"
validation_size = 200
[model]
layers = [{type = "flatten"}, {type = "dense", units = 8, activation = "relu"},
          {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 1
[callbacks.checkpoint]
every = 1
"""


# ------------------------------------------------------------------ the files under attack
@lru_cache(maxsize=None)
def originals() -> dict[str, Path]:
    """A model file and a checkpoint from one 1-epoch run on digits, and a resume state (made once)."""
    folder = Path(tempfile.mkdtemp(prefix="hostile-model-files-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "run.toml").write_text(CONFIG)
    result = run_cli(["train", folder / "run.toml", "-o", folder / "run", "--quiet"])
    if result.rc != 0:
        raise RuntimeError(f"could not train the model under attack: {result.stderr}{result.escaped}")
    from trainwell.train.resume import save_state
    from trainwell.model.saving import load_model

    model = load_model(folder / "run" / "model.safetensors")
    state = {"epoch": 1, "step": 9, "target": 2, "model": model.state_dict(), "lr_scale": 0.5,
             "history": {"records": [{"loss": 2.1, "val_loss": float("nan")}], "steps": {"loss": [1, 2]}},
             "rng": {"torch": torch.get_rng_state()}, "mid_epoch": None, "flags": (True, 3)}
    state_path = save_state(folder / "resume", state, step=9)
    return {"model": folder / "run" / "model.safetensors",
            "checkpoint": folder / "run" / "checkpoints" / "checkpoint-epoch001.safetensors",
            "state": state_path}


def header_size(raw: bytes) -> int:
    return 8 + struct.unpack("<Q", raw[:8])[0]


def _same(a: Any, b: Any) -> bool:
    """Equal down to the bits: tensors by bytes and dtype, floats by repr (nan equals nan)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return repr(a) == repr(b)
    return type(a) is type(b) and a == b


def _model_contents(path: Path) -> dict[str, Any]:
    from trainwell.model.saving import load_model_file

    loaded = load_model_file(path)
    return {"spec": loaded.model.spec.to_dict(), "info": loaded.info, "extra": loaded.extra,
            "state": dict(loaded.model.state_dict())}


@lru_cache(maxsize=None)
def truth(kind: str) -> Any:
    """What the untouched file holds, as the readers return it."""
    from trainwell.train.resume import read_state

    path = originals()[kind]
    return read_state(path) if kind == "state" else _model_contents(path)


# ------------------------------------------------------------------ the bit-flip scan
def _mutated_case(kind: str, name: str, mutate: Callable[[bytes], bytes]) -> Case:
    def run(folder: Path) -> str:
        from trainwell.train.resume import read_state

        original = originals()[kind]
        path = folder / original.name
        path.write_bytes(mutate(original.read_bytes()))
        if kind == "state":
            return api_outcome(lambda: read_state(path), correct=lambda state: _same(state, truth(kind)))
        return api_outcome(lambda: _model_contents(path), correct=lambda contents: _same(contents, truth(kind)))

    return Case(AREA, f"{kind}-{name}", run)


def flip(position: int, bit: int) -> Callable[[bytes], bytes]:
    def mutate(raw: bytes) -> bytes:
        changed = bytearray(raw)
        changed[position] ^= 1 << bit
        return bytes(changed)
    return mutate


def truncate(length: int) -> Callable[[bytes], bytes]:
    return lambda raw: raw[:length]


def _value_span(raw: bytes, key: bytes) -> range:
    """The bytes of ``key``'s value inside the (JSON-escaped) info of the header."""
    header = raw[:header_size(raw)]
    start = header.find(key)
    if start < 0:
        raise RuntimeError(f"{key!r} not in the header")
    end = start + len(key)
    while header[end:end + 1] not in (b",", b"}"):
        end += 1
    return range(start, end)


def flip_cases(kind: str, *, full: bool, flips: int, truncations: int, seed: int) -> list[Case]:
    """Every flip and truncation of one file (``full``), or a seeded sample over its header and data."""
    raw = originals()[kind].read_bytes()
    size, header = len(raw), header_size(raw)
    if full:
        spots = [(p, b) for p in range(size) for b in range(8)]
        lengths = list(range(size))
    else:
        rng = random.Random(seed)
        half = flips // 2  # half in the header (JSON: spec, info, offsets), half in the tensors' bytes
        spots = [(rng.randrange(header), rng.randrange(8)) for _ in range(half)]
        spots += [(rng.randrange(header, size), rng.randrange(8)) for _ in range(flips - half)]
        if kind == "model":  # the preparation: a flip here once evaluated to a loss of 115.8
            spots += [(p, b) for key in (b'scaling\\": \\"', b'pixel_max\\": ')
                      for p in _value_span(raw, key)[len(key):] for b in range(8)]
        lengths = sorted(rng.sample(range(size), truncations) + [0, 7, 8, header - 1, header, size - 1])
        spots = sorted(set(spots))
    cases = [_mutated_case(kind, f"flip-{p}-{b}", flip(p, b)) for p, b in spots]
    cases += [_mutated_case(kind, f"truncate-{n}", truncate(n)) for n in sorted(set(lengths))]
    return cases


# ------------------------------------------------------------------ crafted files
@contextlib.contextmanager
def address_space_limit(extra_bytes: int = 3 << 30):
    """At most ``extra_bytes`` more virtual memory while inside: a 51 GB allocation fails fast."""
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _parts(kind: str = "model") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The original's tensors and its metadata, JSON fields decoded."""
    path = originals()[kind]
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    decoded = {k: json.loads(v) if k in ("spec", "info") else v for k, v in metadata.items()}
    return load_file(str(path)), decoded


def write_crafted(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any], *,
                  raw_fields: dict[str, str] | None = None, sign: bool = True) -> Path:
    """A safetensors file with this metadata (JSON fields encoded, or given raw), signed as trainwell signs."""
    from trainwell.model import saving

    encoded = {k: v if isinstance(v, str) and k not in ("spec", "info") else json.dumps(v)
               for k, v in metadata.items() if k != "sha256"}
    encoded.update(raw_fields or {})
    if sign:
        encoded["sha256"] = saving.model_file_digest(tensors, encoded)
    save_file(tensors, str(path), metadata=encoded)
    return path


def _edit(spec: Callable[[dict], None] | None = None, info: Callable[[dict], None] | None = None,
          tensors: Callable[[dict], None] | None = None, metadata: Callable[[dict], None] | None = None,
          raw_fields: dict[str, str] | None = None, sign: bool = True) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        weights, fields = _parts()
        if spec is not None:
            spec(fields["spec"])
        if info is not None:
            info(fields["info"])
        if tensors is not None:
            tensors(weights)
        if metadata is not None:
            metadata(fields)
        return write_crafted(path, weights, fields, raw_fields=raw_fields, sign=sign)
    return make


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Set (or with ``value`` DELETE, remove) a dotted key: ``"data.pixel_max"``, ``"layers.1.units"``."""
    *parents, last = path.split(".")

    def change(tree: Any) -> None:
        for key in parents:
            tree = tree[int(key)] if isinstance(tree, list) else tree[key]
        key = int(last) if isinstance(tree, list) else last
        if value is DELETE:
            del tree[key]
        else:
            tree[key] = value
    return change


DELETE = object()


def _v1(path: Path) -> Path:
    """A genuine version-1 file, as trainwell 0.x wrote them: the checksum covers the weights only."""
    from trainwell.model.saving import weights_digest

    weights, fields = _parts()
    encoded = {k: v if k not in ("spec", "info") else json.dumps(v) for k, v in fields.items()}
    encoded.update(format_version="1", sha256=weights_digest(weights))
    save_file(weights, str(path), metadata=encoded)
    return path


def _v1_flipped_scaling(path: Path) -> Path:
    """A version-1 file whose key "scaling" lost a bit ("scalinf"): its checksum cannot see that."""
    _v1(path)
    raw = path.read_bytes()
    where = raw.index(b'scaling\\"', 0, header_size(raw)) + len("scalin")
    changed = bytearray(raw)
    changed[where] ^= 0b1  # 'g' -> 'f'
    path.write_bytes(bytes(changed))
    return path


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _wide_dtype(weights: dict) -> None:
    weights["dense_1.weight"] = weights["dense_1.weight"].double()


def _half_dtype(weights: dict) -> None:
    weights["dense_1.weight"] = weights["dense_1.weight"].half()


def _int_dtype(weights: dict) -> None:
    weights["dense_1.bias"] = weights["dense_1.bias"].to(torch.int32)


def _drop_tensor(weights: dict) -> None:
    del weights["dense_2.bias"]


def _extra_tensor(weights: dict) -> None:
    weights["dense_3.weight"] = torch.zeros(10, 10)


def _bad_mean(weights: dict) -> None:
    weights["extra.preprocessing.mean"] = torch.zeros(3)
    weights["extra.preprocessing.std"] = torch.ones(3)


def _standardized(weights: dict) -> None:
    weights["extra.preprocessing.mean"] = torch.zeros(8, 8)
    weights["extra.preprocessing.std"] = torch.zeros(8, 8, dtype=torch.float64)


CRAFTED: dict[str, Callable[[Path], Path]] = {
    # sizes: a spec that would allocate far more than the file holds
    "huge-units": _edit(spec=_set("layers.1.units", 200_000_000)),
    # within the parameter bound (740 M parameters, 3 GB), so only the header check stops it
    "big-units": _edit(spec=_set("layers.1.units", 10_000_000)),
    "huge-input-shape": _edit(spec=_set("input_shape", [100_000, 100_000])),
    "units-disagree": _edit(spec=_set("layers.1.units", 9)),
    "input-shape-disagrees": _edit(spec=_set("input_shape", [8, 9])),
    "extra-layer": _edit(spec=lambda s: s["layers"].append({"type": "dense", "units": 10})),
    "missing-layer": _edit(spec=lambda s: s["layers"].pop()),
    "tensor-missing": _edit(tensors=_drop_tensor),
    "tensor-unexpected": _edit(tensors=_extra_tensor),
    "dtype-float64": _edit(tensors=_wide_dtype),
    "dtype-float16": _edit(tensors=_half_dtype),
    "dtype-int32-bias": _edit(tensors=_int_dtype),
    # the spec's structure
    "spec-list": _edit(raw_fields={"spec": "[1, 2]"}),
    "spec-number": _edit(raw_fields={"spec": "3"}),
    "spec-null": _edit(raw_fields={"spec": "null"}),
    "spec-not-json": _edit(raw_fields={"spec": "{'layers': []"}),
    "spec-deep-nesting": _edit(raw_fields={"spec": _nested(20_000)}),
    "spec-missing": _edit(metadata=_set("spec", DELETE)),
    "spec-no-input-shape": _edit(spec=_set("input_shape", DELETE)),
    "spec-input-shape-number": _edit(spec=_set("input_shape", 64)),
    "spec-input-shape-strings": _edit(spec=_set("input_shape", ["8", "8"])),
    "spec-no-layers": _edit(spec=_set("layers", DELETE)),
    "spec-layers-dict": _edit(spec=_set("layers", {"type": "flatten"})),
    "spec-layer-string": _edit(spec=_set("layers.0", "flatten")),
    "spec-layer-no-units": _edit(spec=_set("layers.1.units", DELETE)),
    "spec-units-string": _edit(spec=_set("layers.1.units", "8")),
    "spec-units-float": _edit(spec=_set("layers.1.units", 8.0)),
    "spec-units-bignum": _edit(spec=_set("layers.1.units", 10 ** 400)),
    "spec-activation-list": _edit(spec=_set("layers.1.activation", ["relu"])),
    "spec-activation-number": _edit(spec=_set("layers.1.activation", 3)),
    "spec-activation-dict-no-name": _edit(spec=_set("layers.1.activation", {"alpha": 1})),
    "spec-init-list": _edit(spec=_set("layers.1.init", [1])),
    "spec-unknown-type": _edit(spec=_set("layers.1.type", "conv2d")),
    "spec-type-list": _edit(spec=_set("layers.1.type", ["dense"])),
    "spec-unknown-key": _edit(spec=_set("layers.1.kernel", 1)),
    # info and the data preparation
    "info-list": _edit(raw_fields={"info": "[]"}),
    "info-string": _edit(raw_fields={"info": '"unit"'}),
    "info-null": _edit(raw_fields={"info": "null"}),
    "info-not-json": _edit(raw_fields={"info": "{"}),
    "info-deep-nesting": _edit(raw_fields={"info": '{"x": ' + _nested(20_000) + "}"}),
    "info-missing": _edit(metadata=_set("info", DELETE)),
    "data-missing": _edit(info=_set("data", DELETE)),
    "data-list": _edit(info=_set("data", [])),
    "scaling-missing": _edit(info=_set("data.scaling", DELETE)),
    "scaling-unknown": _edit(info=_set("data.scaling", "unis")),
    "scaling-list": _edit(info=_set("data.scaling", ["unit"])),
    "scaling-dict": _edit(info=_set("data.scaling", {})),
    "pixel-max-missing": _edit(info=_set("data.pixel_max", DELETE)),
    "pixel-max-string": _edit(info=_set("data.pixel_max", "abc")),
    "pixel-max-numeric-string": _edit(info=_set("data.pixel_max", "255")),
    "pixel-max-null": _edit(info=_set("data.pixel_max", None)),
    "pixel-max-bool": _edit(info=_set("data.pixel_max", True)),
    "pixel-max-list": _edit(info=_set("data.pixel_max", [255])),
    "pixel-max-zero": _edit(info=_set("data.pixel_max", 0)),
    "pixel-max-negative": _edit(info=_set("data.pixel_max", -16)),
    "pixel-max-nan": _edit(raw_fields={"info": None}),  # filled in below (JSON's NaN)
    "standardize-no-mean": _edit(info=_set("data.scaling", "standardize")),
    "standardize-mean-wrong-shape": _edit(info=_set("data.scaling", "standardize"), tensors=_bad_mean),
    "standardize-std-float64-zero": _edit(info=_set("data.scaling", "standardize"), tensors=_standardized),
    "dataset-unknown": _edit(info=_set("data.dataset", "nonexistent")),
    "dataset-number": _edit(info=_set("data.dataset", 7)),
    "dataset-missing": _edit(info=_set("data.dataset", DELETE)),
    "validation-size-string": _edit(info=_set("data.validation_size", "200")),
    "validation-size-negative": _edit(info=_set("data.validation_size", -5)),
    "validation-size-huge": _edit(info=_set("data.validation_size", 10 ** 12)),
    "validation-size-float": _edit(info=_set("data.validation_size", 200.5)),
    "classes-string": _edit(info=_set("data.classes", "0,1")),
    "classes-unknown-label": _edit(info=_set("data.classes", [0, 99])),
    "classes-nested": _edit(info=_set("data.classes", [[0], [1]])),
    "loss-missing": _edit(info=_set("loss", DELETE)),
    "loss-unknown": _edit(info=_set("loss", "mse_of_doom")),
    "loss-list": _edit(info=_set("loss", ["mse"])),
    # the format's own fields
    "format-missing": _edit(metadata=_set("format", DELETE)),
    "format-other": _edit(metadata=_set("format", "trainwell-weights")),
    "version-missing": _edit(metadata=_set("format_version", DELETE)),
    "version-99": _edit(metadata=_set("format_version", "99")),
    "digest-missing": _edit(sign=False),
    "genuine-version-1": _v1,
    "v1-downgrade-flipped-scaling": _v1_flipped_scaling,
    "extra-metadata-key": _edit(metadata=_set("comment", "hello")),
}


def _nan_pixel_max(path: Path) -> Path:
    weights, fields = _parts()
    fields["info"]["data"]["pixel_max"] = float("nan")
    return write_crafted(path, weights, fields)


CRAFTED["pixel-max-nan"] = _nan_pixel_max

# What a genuine file may do: load exactly as saved. Every other crafted file must be refused.
LOADS_AS_SAVED = {"genuine-version-1", "extra-metadata-key"}


def _model_intact(path: Path) -> bool:
    """Whether a crafted file's spec and weights are the original's (only other metadata was changed)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            spec = (handle.metadata() or {}).get("spec")
            weights = {name: handle.get_tensor(name) for name in handle.keys() if not name.startswith("extra.")}
    except Exception:  # noqa: BLE001 - unreadable: nothing in it is intact
        return False
    original, fields = _parts()
    return spec == json.dumps(fields["spec"]) and _same(
        weights, {k: v for k, v in original.items() if not k.startswith("extra.")})


def _crafted_case(name: str, make: Callable[[Path], Path], entry: str) -> Case:
    """A crafted file through one reader. ``load_model`` and ``summary`` need only the model: they
    may load a file whose spec and weights are intact (the model is as saved); ``evaluate`` and
    ``predict`` also read the data preparation and the loss, and must refuse every lie in them."""
    def run(folder: Path) -> str:
        path = make(folder / "model.safetensors")
        may_load = name in LOADS_AS_SAVED or (entry in ("load_model", "summary") and _model_intact(path))
        with address_space_limit():
            if entry == "load_model":
                import trainwell as tw

                return api_outcome(lambda: tw.load_model(path), correct=lambda model: may_load and _same(
                    dict(model.state_dict()), truth("model")["state"]))
            argv = [entry, path]
            result = run_cli(argv)
        if result.rc == 0 and result.escaped is None:
            reference = run_cli([entry, originals()["model"]])
            return HANDLED if may_load and result.stdout == reference.stdout else WRONG
        return cli_outcome(result)

    return Case(AREA, f"crafted-{name}-{entry}", run)


def crafted_cases() -> list[Case]:
    return [_crafted_case(name, make, entry) for name, make in CRAFTED.items()
            for entry in ("load_model", "evaluate", "predict", "summary")]


def cases(full: bool) -> list[Case]:
    """The bit-flip scans of a model file, a checkpoint and a resume state, and the crafted files."""
    found = flip_cases("model", full=full, flips=SAMPLE_FLIPS, truncations=SAMPLE_TRUNCATIONS, seed=SAMPLE_SEED)
    for offset, kind in enumerate(("checkpoint", "state"), start=1):
        found += flip_cases(kind, full=full, flips=SAMPLE_OTHER_FILES, truncations=SAMPLE_OTHER_FILES // 4,
                            seed=SAMPLE_SEED + offset)
    return found + crafted_cases()

