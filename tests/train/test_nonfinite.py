"""Non-finite values in a fit: batches with nan inputs skipped or refused, a nan loss that stops the run."""

import numpy as np
import pytest
import torch
from helpers import small_model

import trainwell as tw
from trainwell.callbacks import TerminateOnNaN
from trainwell.errors import TrainingDiverged


def nan_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    x[5] = np.nan
    return x, y


def model():
    return small_model(8, classes=2)


def test_nan_batches_can_be_skipped():
    x, y = nan_data()
    trainer = tw.Trainer(model(), optimizer={"name": "sgd", "lr": 0.1}, skip_nonfinite=True, seed=0)
    history = trainer.fit(x, y, epochs=2, batch_size=16, verbose=False)
    assert history["skipped_batches"] == [1, 2]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nan_inputs_are_refused_before_training_unless_their_batches_are_skipped():
    x, y = nan_data()
    trainer = tw.Trainer(model(), optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    with pytest.raises(tw.ArrayError, match=r"training data x: 4 values are NaN or infinite \(sample 5\).*skip_nonfinite"):
        trainer.fit(x, y, epochs=1, batch_size=16, verbose=False)


def test_without_skipping_a_nan_loss_stops_the_run_with_a_clear_message():
    x, y = nan_data()
    x[5] = 0.0
    trainer = tw.Trainer(model(), optimizer={"name": "sgd", "lr": 1e30}, callbacks=[TerminateOnNaN()], seed=0)
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf) at step \d+ \(epoch 1"):
        trainer.fit(x, y, epochs=2, batch_size=16, verbose=False)
