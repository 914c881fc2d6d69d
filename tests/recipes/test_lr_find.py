"""trainwell lr-find: the sweep on a config's model and data, its CLI, and the chapter's SELU model."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.lr_finder import find_lr
from trainwell.recipes.lr_find import find_lr_for_config

EXAMPLES = Path(__file__).parents[2] / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


DIGITS = """
name = "finder"
seed = 1
[data]
name = "digits"
validation_size = 300
[model]
layers = [{type = "flatten"}, {type = "dense", units = 32, activation = "selu", init = "lecun_normal"},
          {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "sgd"
[lr_find]
min_lr = 1e-4
max_lr = 100.0
batch_size = 16
"""


def test_lr_find_cli(tmp_path, capsys):
    config = tmp_path / "finder.toml"
    config.write_text(DIGITS)
    out = tmp_path / "finder.png"
    assert main(["lr-find", str(config), "-o", str(out), "--steps", "75"]) == 0
    printed = capsys.readouterr().out
    assert "suggested learning rate: " in printed and "swept " in printed
    assert out.read_bytes()[:8] == PNG
    record = json.loads(out.with_suffix(".json").read_text())
    assert set(record) == {"lrs", "losses", "smoothed", "suggestion", "min_loss_lr", "stopped_early"}
    assert len(record["lrs"]) <= 75 and record["lrs"][0] == pytest.approx(1e-4)

    assert main(["lr-find", str(config), "--max-lr", "1e-5"]) == 2
    assert "'lr_find.max_lr: must be above lr_find.min_lr (0.0001), got 1e-05" in "'" + capsys.readouterr().err.split(
        "finder.toml: ")[1]
    assert main(["lr-find", str(config), "--set", "lr_find.min_lr=-1"]) == 2
    assert "'lr_find.min_lr' = -1: must be greater than 0" in capsys.readouterr().err


def test_lr_find_and_plot_schedule_refuse_a_figure_format_before_any_work(tmp_path, capsys, monkeypatch):
    import trainwell.recipes.lr_find

    config = tmp_path / "finder.toml"
    config.write_text(DIGITS)
    monkeypatch.setattr(trainwell.recipes.lr_find, "find_lr_for_config", lambda *a, **k: pytest.fail("the sweep ran"))
    for command in ("lr-find", "plot-schedule"):
        assert main([command, str(config), "-o", str(tmp_path / "x.txt")]) == 2
        assert "--output: " in capsys.readouterr().err
        assert not list(tmp_path.glob("x.*"))
    with pytest.raises(ConfigError, match=r"x.txt' must end in one of .png"):
        from trainwell.plots import plot_schedule
        plot_schedule([0.1, 0.1], tmp_path / "x.txt")


def test_lr_finder_on_the_chapters_selu_model(needs_real_data, tmp_path):
    """The book's sweep (1e-5 to 10 over one epoch at batch 128) on SELU 300-100: the loss falls, then diverges."""
    config = load_config(EXAMPLES / "lr_finder.toml")
    from trainwell.recipes.build import build_from_config, prepare_data
    from trainwell.train.trainer import seed_everything

    result = find_lr_for_config(config)
    finite = [v for v in result.smoothed if math.isfinite(v)]
    assert min(finite) < 0.5 * result.smoothed[0]  # falls...
    assert result.stopped_early and len(result.lrs) < 430  # ...then diverges before 10
    assert 1e-3 < result.suggestion < 1.0
    result.plot(tmp_path / "finder.png")
    # the sweep left the model as it was: same seed, same initial weights
    seed_everything(config.seed)
    prepared = prepare_data(config)
    seed_everything(config.seed)
    model = build_from_config(config, prepared.input_shape)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    find_lr(model, prepared.x_train[:12_800], prepared.y_train[:12_800], optimizer={"name": "sgd"}, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert np.isfinite(result.suggestion)


def test_lr_find_cli_on_a_cnn(tmp_path, capsys):
    from helpers import DIGITS_CNN

    config = tmp_path / "cnn.toml"
    config.write_text(DIGITS_CNN + "[lr_find]\nmin_lr = 1e-4\nmax_lr = 10.0\nbatch_size = 32\n")
    out = tmp_path / "cnn.png"
    assert main(["lr-find", str(config), "-o", str(out), "--steps", "60"]) == 0
    assert "suggested learning rate: " in capsys.readouterr().out
    record = json.loads(out.with_suffix(".json").read_text())
    assert 1e-4 <= record["suggestion"] <= 10.0 and len(record["lrs"]) <= 60
    assert min(record["smoothed"]) < record["smoothed"][0]
