"""The README's promises, run as written: the same seed gives the same model in Python as in the CLI."""

from __future__ import annotations

import numpy as np
import torch

import trainwell as tw
from trainwell.config import load_config
from trainwell.data import load, scale_unit, validation_split
from trainwell.recipes.train import train_config

# not helpers.tiny_digits: the README's Python recipe (nadam, elu, unit scaling) written as a config
DIGITS = """
name = "digits_same"
seed = 7
[data]
name = "digits"
validation_size = 300
scaling = "unit"
[model]
layers = [
  { type = "flatten" },
  { type = "dense", units = 32, init = "he_normal", activation = "elu" },
  { type = "dense", units = 10, activation = "softmax" },
]
[optimizer]
name = "nadam"
lr = 0.01
[train]
epochs = 2
batch_size = 32
"""


def test_the_python_recipe_with_a_seed_trains_the_same_model_as_the_cli(tmp_path):
    config_file = tmp_path / "digits.toml"
    config_file.write_text(DIGITS)
    cli = train_config(load_config(config_file), verbose=False, save=False)

    data = load("digits")
    x_train, y_train, x_valid, y_valid = validation_split(scale_unit(data.x_train, data.pixel_max), data.y_train, 300)
    model = tw.build_model([tw.Flatten(), tw.Dense(32, activation="elu", init="he_normal"),
                            tw.Dense(10, activation="softmax")], input_shape=data.x_train.shape[1:], seed=7)
    trainer = tw.Trainer(model, optimizer=tw.optimizer("nadam", lr=0.01), seed=7)
    history = trainer.fit(x_train, y_train, epochs=2, batch_size=32, validation_data=(x_valid, y_valid), verbose=False)

    assert history["val_accuracy"] == cli.history["val_accuracy"]
    for (name, ours), theirs in zip(model.state_dict().items(), cli.model.state_dict().values()):
        assert torch.equal(ours, theirs), name


def test_build_model_with_a_seed_leaves_the_global_stream_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    a = tw.build_model([tw.Dense(5)], input_shape=(4,), seed=11)
    assert torch.equal(torch.rand(4), expected)
    b = tw.build_model([tw.Dense(5)], input_shape=(4,), seed=11)
    c = tw.build_model([tw.Dense(5)], input_shape=(4,), seed=12)
    assert torch.equal(a.dense_1.weight, b.dense_1.weight)
    assert not torch.equal(a.dense_1.weight, c.dense_1.weight)
    assert np.isfinite(a.dense_1.weight.detach().numpy()).all()


# ------------------------------------------------------------------ every Python block of the README runs

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What the test shrinks so that the suite stays fast: each (README text, replacement) must
#: occur in the README exactly once, so a block that changes fails here until this table says
#: how to run it. Everything else runs exactly as written.
SHRINK = [
    ("validation_split(scale_unit(data.x_train, 255), data.y_train, 5000)",
     "validation_split(scale_unit(data.x_train[:8000], 255), data.y_train[:8000], 5000)"),
    ("epochs=100, validation_data=(x_valid, y_valid))", "epochs=2, validation_data=(x_valid, y_valid))"),
    ('budget="full", seeds=3, out="runs/bn")', 'budget="smoke", seeds=1, out="runs/bn")'),
    ("TrainwellClassifier(epochs=10)", "TrainwellClassifier(epochs=1)"),
    ("}, n_iter=20, cv=3).fit(x_train, y_train)", "}, n_iter=2, cv=2).fit(x_train[:3000], y_train[:3000])"),
    ("trainer.fit(x_train, y_train, epochs=5)", "trainer.fit(x_train, y_train, epochs=1)"),
    ("tw.mc_predict(model, x_test, samples=100)", "tw.mc_predict(model, x_test, samples=5)"),  # 1M rows: half a minute
]

#: Blocks that start processes of their own run as a script each, as a user would save them.
ON_THEIR_OWN = ("experiments.reproduce(",)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The README's ```python blocks: (line number, code)."""
    return [(text[:match.start()].count("\n") + 2, match.group(1))
            for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)]


def test_the_readme_has_python_blocks_and_every_shrink_applies():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(python_blocks(text)) >= 8
    for old, _ in SHRINK:
        assert text.count(old) == 1, f"the README no longer has {old!r} exactly once: update SHRINK"


@pytest.mark.skipif(not os.environ.get("TRAINWELL_DATA"), reason="TRAINWELL_DATA is not set; the README uses Fashion-MNIST")
def test_every_python_block_of_the_readme_runs(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for old, new in SHRINK:
        text = text.replace(old, new)
    blocks = python_blocks(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the README's paths are from the project's root
    # The transfer block reuses model A, which the README trains first with `trainwell train`.
    subprocess.run([sys.executable, "-m", "trainwell.cli", "train", str(ROOT / "examples/transfer_model_a.toml"),
                    "-q", "--epochs", "1", "--set", "data.train_size=2000", "-o", "runs/transfer_model_a"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    together = [f"# README line {line}\n{code}" for line, code in blocks if not any(s in code for s in ON_THEIR_OWN)]
    alone = [(line, code) for line, code in blocks if any(s in code for s in ON_THEIR_OWN)]
    scripts = [("readme_blocks.py", "\n".join(together))] + [(f"readme_line_{line}.py", code) for line, code in alone]
    for name, code in scripts:
        (tmp_path / name).write_text(code, encoding="utf-8")
        done = subprocess.run([sys.executable, name], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
