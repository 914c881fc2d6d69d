"""TerminateOnNaN: the fit stops at the first loss that is not finite and names the last good checkpoint."""

import pytest
import torch

from helpers import dense_bn_dropout_model as small_model
from trainwell.callbacks import Callback, Checkpoint, TerminateOnNaN, checkpoint_name
from trainwell.errors import TrainingDiverged
from trainwell.model.saving import load_model
from trainwell.train.trainer import Trainer


class Poison(Callback):
    """Puts a nan into the first layer's weights when an epoch begins."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            with torch.no_grad():
                trainer.model[0].weight[0, 0] = float("nan")


def test_terminate_on_nan_stops_and_names_the_last_good_checkpoint(blobs, tmp_path):
    x, y = blobs
    checkpoint = Checkpoint(tmp_path / "ckpt")
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[Poison(3), checkpoint, TerminateOnNaN()], seed=0)
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit(x, y, epochs=5, batch_size=100, verbose=False)
    good = tmp_path / "ckpt" / checkpoint_name(2)
    assert str(error.value) == (
        f"training diverged: the loss became nan at step 13 (epoch 3, batch 1 of 6); the last good checkpoint is "
        f"{good}; try a lower learning rate or gradient clipping")
    assert len(trainer.history) == 3
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [checkpoint_name(1), checkpoint_name(2)]
    assert all(torch.isfinite(t).all() for t in load_model(good).state_dict().values() if t.is_floating_point())


def test_terminate_on_nan_without_checkpoints_says_so(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[Poison(1), TerminateOnNaN()], seed=0)
    with pytest.raises(TrainingDiverged, match="at step 1 .*; no checkpoint was written"):
        trainer.fit(x, y, epochs=2, verbose=False)
