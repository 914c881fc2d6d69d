"""Hostile model files, checkpoints and resume states: each is refused clearly or loads exactly as saved."""

import json

import pytest
import torch

import cases_model_files as model_files
from outcomes import GOOD, run_cli

SAMPLE = model_files.cases(full=False)
pytestmark = pytest.mark.filterwarnings("ignore:.*a version-1 model file:UserWarning")


@pytest.mark.parametrize("case", SAMPLE, ids=str)
def test_case_is_refused_clearly_or_loads_exactly(case, tmp_path):
    assert case.run(tmp_path) in GOOD


def test_the_sample_flips_bits_in_the_header_and_in_the_data():
    raw = model_files.originals()["model"].read_bytes()
    header = model_files.header_size(raw)
    flipped = [int(c.name.split("-")[2]) for c in SAMPLE if c.name.startswith("model-flip-")]
    assert sum(p < header for p in flipped) >= 100 and sum(p >= header for p in flipped) >= 100
    assert any(c.name.startswith("model-truncate-") for c in SAMPLE)


def test_a_flipped_scaling_bit_is_refused_by_evaluate(tmp_path):
    """The issue's case: one bit of "scaling": "unit" flipped gave exit 0 and a loss of 115.8 (true 2.11)."""
    raw = model_files.originals()["model"].read_bytes()
    key = b'scaling\\": \\"'
    where = model_files._value_span(raw, key)[len(key)]
    path = tmp_path / "model.safetensors"
    path.write_bytes(model_files.flip(where, 0)(raw))
    result = run_cli(["evaluate", path])
    assert result.rc == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {path}: the file does not match its checksum; it is corrupted"


def test_a_version_1_file_evaluates_as_before_with_one_warning_line(tmp_path):
    reference = run_cli(["evaluate", model_files.originals()["model"]])
    path = model_files._v1(tmp_path / "old.safetensors")
    result = run_cli(["evaluate", path])
    assert result.rc == 0 and result.stdout == reference.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"warning: {path}: a version-1 model file")


@pytest.mark.parametrize("crafted, message", [
    ("huge-units", "a model has at most 1,000,000,000"),  # 51 GB: refused by the spec's own size bound
    ("big-units", "dense_1.weight has shape (8, 64) in the file but the spec makes (10000000, 64)"),  # 3 GB
])
def test_a_crafted_spec_asking_for_gigabytes_is_refused_before_anything_is_built(tmp_path, crafted, message):
    path = model_files.CRAFTED[crafted](tmp_path / "model.safetensors")
    assert path.stat().st_size < 20_000
    with model_files.address_space_limit(1 << 30):
        result = run_cli(["evaluate", path])
    assert result.rc == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_a_resume_state_with_a_valid_checksum_but_no_state_inside_is_refused(tmp_path):
    from safetensors.torch import save_file

    from trainwell.train.resume import STATE_FORMAT, ResumeError, _digest, read_state

    for number, text in enumerate(["[" * 20_000 + "]" * 20_000, json.dumps({"__tensor__": "missing"}),
                                   json.dumps({"__ndarray__": "s.x", "dtype": "no such dtype"})]):
        tensors = {"s.x": torch.zeros(2)}
        path = tmp_path / f"state-{number:09d}.safetensors"
        save_file(tensors, str(path), metadata={"format": STATE_FORMAT, "state": text, "sha256": _digest(tensors, text)})
        with pytest.raises(ResumeError, match="contents are not a state trainwell wrote"):
            read_state(path)
