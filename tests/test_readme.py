"""The README's promises, run as written: the same seed gives the same model in Python as in the CLI."""

from __future__ import annotations

import numpy as np
import torch

import trainwell as tw
from trainwell.config import load_config
from trainwell.data import load, scale_unit, validation_split
from trainwell.experiment import train_config

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
