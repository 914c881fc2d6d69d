"""Checkpoint: files written mid-run load back identically; keep the last k, the best only; arguments checked."""

import pytest
import torch

from helpers import Script, dense_bn_dropout_model as small_model, same_state
from trainwell.callbacks import Checkpoint, checkpoint_name
from trainwell.errors import ConfigError
from trainwell.model.saving import load_model, load_model_file
from trainwell.train.trainer import Trainer


def test_checkpoint_written_mid_run_loads_back_into_an_identical_model(blobs, tmp_path):
    x, y = blobs
    script = Script([3.0, 2.0, 2.5, 1.0, 1.5])
    checkpoint = Checkpoint(tmp_path / "ckpt", every=2, save_best=True, info={"loss": "sparse_categorical_crossentropy"})
    trainer = Trainer(small_model(), optimizer={"name": "adam"}, callbacks=[script, checkpoint], seed=0)
    trainer.fit(x, y, epochs=5, verbose=False)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["best.safetensors", "checkpoint-epoch002.safetensors", "checkpoint-epoch004.safetensors",
                     "final.safetensors"]
    loaded = load_model_file(tmp_path / "ckpt" / checkpoint_name(2))
    assert loaded.info == {"loss": "sparse_categorical_crossentropy", "epoch": 2}
    assert same_state(loaded.model.state_dict(), script.weights[2])  # BN statistics included
    rebuilt = small_model()
    rebuilt.load_state_dict(script.weights[2])
    probe = torch.randn(20, 4)
    assert torch.equal(loaded.model.eval()(probe), rebuilt.eval()(probe))  # identical outputs
    assert same_state(load_model(tmp_path / "ckpt" / "best.safetensors").state_dict(), script.weights[4])
    assert same_state(load_model(tmp_path / "ckpt" / "final.safetensors").state_dict(), script.weights[5])
    assert checkpoint.last_saved == tmp_path / "ckpt" / "final.safetensors"


def test_checkpoint_keeps_the_last_k_and_best_only(blobs, tmp_path):
    x, y = blobs
    keep = Checkpoint(tmp_path / "keep", keep=2, save_final=False)
    best = Checkpoint(tmp_path / "best", every=0, save_best=True, monitor="val_accuracy", mode="max",
                      save_final=False)
    Trainer(small_model(), optimizer="sgd", callbacks=[keep, best], seed=0).fit(
        x[:500], y[:500], epochs=5, validation_data=(x[500:], y[500:]), verbose=False)
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == [checkpoint_name(4), checkpoint_name(5)]
    assert [p.name for p in (tmp_path / "best").iterdir()] == ["best.safetensors"]


@pytest.mark.parametrize("make, message", [
    (lambda: Checkpoint("d", keep=0), "checkpoint.keep: must be an integer >= 1, got 0"),
    (lambda: Checkpoint("d", every=1.5), "checkpoint.every: must be an integer >= 0, got 1.5"),
])
def test_bad_callback_arguments_name_the_key(make, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make()
