"""Malformed configs and --set values: every case is one clear error line (or handled exactly)."""

from __future__ import annotations

import time

import pytest

import cases_config
from cases_config import GOOD_TOML, _laughs, _yaml_config, run_cli_child
from outcomes import GOOD, run_cli

from trainwell.config import apply_overrides, load_config
from trainwell.errors import ConfigError


@pytest.mark.parametrize("case", cases_config.cases(full=False), ids=str)
def test_malformed_config(case, tmp_path):
    assert case.run(tmp_path) in GOOD


def test_the_yaml_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_yaml_config(_laughs()))
    started = time.perf_counter()
    result = run_cli_child(["summary", path], cwd=tmp_path, seconds=30)
    assert result.rc == 2 and result.escaped is None, result.stderr
    assert "expands to more than 10,000 values once its YAML aliases are written out" in result.stderr
    assert "(line " in result.stderr
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("text, key", [("train: {epochs: 010}", "'train.epochs' = 010: a leading zero makes this an "
                                                                 "octal number in YAML (8)"),
                                       ("seed: 1\nseed: 2", "'seed' is given twice"),
                                       ("train: {epochs: 1, epochs: 2}", "'train.epochs' is given twice"),
                                       ("seed: 2024-01-01", "'seed' is a date or time"),
                                       ("on: 1", "the key on is not text")])
def test_yaml_surprises_name_the_key(tmp_path, text, key):
    path = tmp_path / "run.yaml"
    path.write_text(text + "\nmodel: {layers: [{type: dense, units: 2}]}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert key in str(error.value) and str(path) in str(error.value)


def test_json_duplicate_keys_are_refused(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"seed": 1, "model": {"layers": [{"type": "dense", "units": 2}]}, "seed": 2}')
    with pytest.raises(ConfigError, match="the key 'seed' is given twice"):
        load_config(path)


@pytest.mark.parametrize("suffix, text", [(".toml", GOOD_TOML), (".yaml", _yaml_config())])
def test_a_byte_order_mark_is_read_as_utf8(tmp_path, suffix, text):
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_config(path).data.name == "digits"


def test_quoted_values_and_explicit_bases_are_still_read(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: '010'\nseed: 0x10\ndata: {name: digits}\nmodel: {layers: [{type: dense, units: 1_000}]}\n")
    config = load_config(path)
    assert config.name == "010" and config.seed == 16 and config.model.layers[0]["units"] == 1000


def test_set_values_are_read_as_strictly_as_files():
    with pytest.raises(ConfigError, match=r"--set 'seed=010': 'seed' = 010: a leading zero"):
        apply_overrides({}, ["seed=010"])
    with pytest.raises(ConfigError, match=r"--set 'search=&a \[\*a\]': .*an anchor that contains itself"):
        apply_overrides({}, ["search=&a [*a]"])
    assert apply_overrides({}, ["seed=10", "name='010'"]) == {"seed": 10, "name": "010"}


def test_huge_layers_are_refused_with_the_count_before_building(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(GOOD_TOML.replace("units = 16", "units = 100000000"))
    result = run_cli(["summary", path])
    assert result.rc == 2
    # 64 inputs x 10**8 units + 2 x 10**8 (bias, PReLU slopes at most) in the first dense layer
    assert "model: 7,900,000,010 parameters (6,500,000,000 in model.layers[1], a dense layer" in result.stderr
    assert "at most 1,000,000,000" in result.stderr


def test_threads_are_bounded_by_the_machine(tmp_path):
    from trainwell.train.threads import OVERSUBSCRIPTION, available_cpus

    limit = OVERSUBSCRIPTION * available_cpus()
    path = tmp_path / "run.toml"
    path.write_text(GOOD_TOML)
    with pytest.raises(ConfigError, match=f"train.threads = {limit + 1}: at most {limit} on this machine"):
        load_config(path, [f"train.threads={limit + 1}"])
    assert load_config(path, [f"train.threads={limit}"]).train.threads == limit


@pytest.mark.parametrize("device", ["meta", "cpu:7", "xla", "cuda:-1"])
def test_devices_trainwell_does_not_train_on_are_refused(tmp_path, device):
    path = tmp_path / "run.toml"
    path.write_text(GOOD_TOML)
    with pytest.raises(ConfigError, match=f"train.device: '{device}' is not a device trainwell trains on; allowed: "
                                          "auto, cpu, cuda, cuda:N, mps"):
        load_config(path, [f"train.device={device}"])


def test_usage_errors_are_one_line(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(GOOD_TOML)
    result = run_cli(["train", path, "--seed", "x"])
    assert result.rc == 2 and result.stderr.strip().startswith("error: Invalid value for '--seed'")
    assert len(result.stderr.strip().splitlines()) == 1 and "trainwell train --help" in result.stderr
