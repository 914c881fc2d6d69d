"""The same tensors and metadata make the same file, byte for byte, and every reader reads it as before."""

import hashlib
import json
import struct
import subprocess
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

import trainwell as tw
from trainwell.tensorfile import write_tensors
from trainwell.train.resume import read_state, save_state


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metadata_keys(path):
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    return list(json.loads(raw[8:8 + size])["__metadata__"])


def test_saving_the_same_tensors_twice_writes_the_same_bytes(tmp_path):
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3, dtype=torch.float64)}
    metadata = {key: f"value of {key}" for key in "qwertyuiopasdfgh"}  # safetensors shuffles these on each save
    digests = {_digest(write_tensors(tensors, tmp_path / f"{i}.safetensors", metadata)) for i in range(6)}
    assert len(digests) == 1
    path = tmp_path / "0.safetensors"
    assert _metadata_keys(path) == sorted(metadata)
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == metadata
    loaded = load_file(str(path))
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_metadata_with_escapes_and_other_scripts_is_kept_exactly(tmp_path):
    metadata = {"name": "poids \u00e9t\u00e9 \u4e2d\u6587", "text": 'a "quote", a \\ and\na newline\t\x01', "z": "/"}
    path = write_tensors({"x": torch.ones(2)}, tmp_path / "m.safetensors", metadata)
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == metadata
    assert _metadata_keys(path) == sorted(metadata)


def test_a_model_saved_in_two_processes_is_the_same_file(tmp_path):
    script = ("import sys, torch, trainwell as tw\n"
              "torch.manual_seed(0)\n"
              "model = tw.build_model([tw.Dense(4, activation='relu'), tw.Dense(2, activation='softmax')],"
              " input_shape=(3,))\n"
              "tw.save_model(model, sys.argv[1], info={'loss': 'sparse_categorical_crossentropy', 'b': 1, 'a': 2})\n")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{name}.safetensors")], check=True)
    assert _digest(tmp_path / "a.safetensors") == _digest(tmp_path / "b.safetensors")
    assert isinstance(tw.load_model(tmp_path / "a.safetensors"), torch.nn.Module)


def test_a_resume_state_saved_twice_is_the_same_file_and_reads_back(tmp_path):
    state = {"epoch": 2, "step": 7, "model": {"w": torch.randn(3, 2)}, "history": {"records": [{"loss": 1.5}]}}
    first, second = (save_state(tmp_path / name, state, step=7) for name in ("one", "two"))
    assert _digest(first) == _digest(second)
    back = read_state(first)
    assert back["epoch"] == 2 and torch.equal(back["model"]["w"], state["model"]["w"])


def test_the_readmes_retrained_model_has_the_same_checksum(tmp_path):
    """The README: a run trained again into the same folder (``--overwrite``) writes the same model file."""
    from helpers import tiny_digits

    from trainwell.cli import main

    config = tmp_path / "run.toml"
    config.write_text(tiny_digits(epochs=2))
    assert main(["train", str(config), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    first = _digest(tmp_path / "out" / "model.safetensors")
    assert main(["train", str(config), "-o", str(tmp_path / "out"), "--quiet", "--overwrite"]) == 0
    assert _digest(tmp_path / "out" / "model.safetensors") == first
