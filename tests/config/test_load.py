"""Config files and --set overrides (trainwell.config.load, yaml_loader, plain, keys)."""

import pytest

from helpers import MINIMAL, PHASED
from trainwell.config import apply_overrides, load_config, validate_config
from trainwell.errors import ConfigError


def test_files_toml_yaml_and_parse_errors(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('seed = 1\n[model]\nlayers = [{type = "dense", units = 2}]\n')
    assert load_config(toml).seed == 1 and load_config(toml).name == "run"
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("seed: 2\nmodel:\n  layers:\n    - {type: dense, units: 2}\n")
    assert load_config(yaml_file).seed == 2
    broken = tmp_path / "broken.toml"
    broken.write_text("seed = = 1\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML.*line 1"):
        load_config(broken)
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("model: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken_yaml)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="must end in"):
        load_config(tmp_path / "run.txt")


def test_overrides():
    data = apply_overrides(MINIMAL, ["train.epochs=2", "optimizer.lr=0.5", "data.classes=[0, 1]", "name=x"])
    assert data["train"]["epochs"] == 2 and data["optimizer"]["lr"] == 0.5 and data["data"]["classes"] == [0, 1]
    assert "train" not in MINIMAL
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(MINIMAL, ["train.epochs"])
    with pytest.raises(ConfigError, match="'model' is not a table"):
        apply_overrides({"model": 3}, ["model.layers=1"])


def test_every_example_config_validates():
    from pathlib import Path

    examples = sorted(Path(__file__).parents[2].joinpath("examples").glob("*.*ml"))
    assert examples
    for path in examples:
        load_config(path)


def test_overrides_address_list_items():
    data = apply_overrides(PHASED, ["model.layers[1].units=50", "phases[1].epochs=4", "phases[0].freeze[0]=1"])
    assert data["model"]["layers"][1]["units"] == 50 and data["model"]["layers"][0] == {"type": "flatten"}
    assert data["phases"][1]["epochs"] == 4 and data["phases"][0]["freeze"] == [1]
    assert PHASED["phases"][1]["epochs"] == 3  # the original is left alone
    config = validate_config(apply_overrides(PHASED, ["model.layers[2].units=10", "phases[0].epochs=5"]))
    assert config.phases[0].epochs == 5


@pytest.mark.parametrize("item, message", [
    ("model.layers[3].units=5", r"--set 'model.layers\[3\].units=5': the config has no model.layers\[3\]: "
                                r"model.layers has 3 entries \(allowed indices: 0\.\.2\)"),
    ("phases[2].epochs=1", r"the config has no phases\[2\]: phases has 2 entries \(allowed indices: 0\.\.1\)"),
    ("model[0].units=5", r"--set 'model\[0\].units=5': model is a table, not a list; "),
    ("model.layers.units=5", r"'model.layers' is not a table \(it is a list: address an item as "
                             r"model.layers\[0\]\)"),
    ("model.layers[x].units=5", r"'model.layers\[x\].units' is not a config key; write keys as in"),
    ("model.layers[-1].units=5", r"is not a config key.*indices count from 0"),
    ("model..units=5", r"is not a config key"),
])
def test_bad_list_overrides_are_one_clear_error(item, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(PHASED, [item])


def test_an_override_of_a_missing_list_says_so():
    with pytest.raises(ConfigError, match=r"--set 'phases\[0\].epochs=2': the config has no phases\[0\]: "
                                          r"phases is not in the config"):
        apply_overrides(MINIMAL, ["phases[0].epochs=2"])


@pytest.mark.parametrize("text,kind", [("[1, 2]\n", "a list"), ("just words\n", "a single str"), ("3\n", "a single int")])
def test_a_yaml_file_that_is_not_a_table_is_one_clear_error(tmp_path, text, kind):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"list.yaml: a config is a table of sections .* this file is {kind}"):
        load_config(path, ['output_dir="r/x"'])


@pytest.mark.parametrize("suffix, text, message", [
    (".yaml", "a0: &a0 [1, 1]\n" + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 6)),
     r"expands to more than 10,000 values once its YAML aliases are written out"),
    (".yaml", "search: &loop {a: *loop}\n", r"nested more than 32 levels deep .*an anchor that contains itself"),
    (".yaml", "seed: 010\n", "'seed' = 010: a leading zero makes this an octal number in YAML"),
    (".yaml", "seed: 1\nseed: 2\n", "'seed' is given twice"),
    (".yaml", "seed: !!binary aGk=\n", "'seed' is binary data"),
    (".yaml", "search: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels deep"),
    (".json", '{"seed": 1, "seed": 2}', "the key 'seed' is given twice"),
    (".json", '{"seed": ' + "9" * 5000 + "}", "a 5000-digit integer"),
    (".json", '{"optimizer": {"lr": NaN}}', "'optimizer.lr' = nan: numbers in a config must be finite"),
    (".toml", "seed = 1979-05-27\n", "'seed' is a date"),
    (".toml", f"seed = {2**64}\n", "'seed' = 18446744073709551616: integers in a config are -2\\*\\*63 to 2\\*\\*63 - 1"),
])
def test_config_files_hold_plain_data_only(tmp_path, suffix, text, message):
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_toml_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfseed = 5\n[model]\nlayers = [{type = \"dense\", units = 2}]\n")
    assert load_config(path).seed == 5


def test_yaml_reads_an_exponent_without_a_dot_as_a_number(tmp_path):
    """YAML 1.1 needs a dot (1.0e-3); `lr: 1e-3`, as Keras users and TOML write it, is the number too."""
    path = tmp_path / "run.yaml"
    path.write_text("data: {name: digits}\nmodel: {layers: [{type: dense, units: 10}]}\n"
                    "optimizer: {name: adam, lr: 1e-3}\nlr_find: {max_lr: 1E+1}\nname: '1e-3'\n")
    config = load_config(path)
    assert config.optimizer["lr"] == 0.001 and config.lr_find.max_lr == 10.0 and config.name == "1e-3"
