"""EarlyStopping: patience, min_delta, mode, the best weights restored; its arguments checked."""

import pytest

from helpers import Script, dense_bn_dropout_model as small_model, same_state
from trainwell.callbacks import EarlyStopping, Monitor
from trainwell.errors import ConfigError
from trainwell.train.trainer import Trainer


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(blobs):
    x, y = blobs
    script = Script([1.0, 0.5, 0.6, 0.55, 0.7, 0.1, 0.1, 0.1])
    stopper = EarlyStopping("val_loss", patience=3, restore_best_weights=True)
    trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.1}, callbacks=[script, stopper], seed=0)
    history = trainer.fit(x, y, epochs=8, verbose=False)
    assert len(history) == 5  # best at epoch 2, then 3 epochs without improvement
    assert (stopper.best_epoch, stopper.stopped_epoch, stopper.restored) == (2, 5, True)
    assert isinstance(stopper.watch, Monitor)
    assert same_state(trainer.model.state_dict(), script.weights[2])
    assert not same_state(script.weights[2], script.weights[5])


def test_early_stopping_min_delta_mode_max_and_no_restore(blobs):
    x, y = blobs
    script = Script([0.80, 0.805, 0.809, 0.9], key="val_accuracy")
    stopper = EarlyStopping("val_accuracy", mode="max", patience=2, min_delta=0.01)
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[script, stopper], seed=0)
    trainer.fit(x, y, epochs=4, verbose=False)
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1 and not stopper.restored
    assert same_state(trainer.model.state_dict(), script.weights[3])


def test_early_stopping_on_a_figure_that_is_not_logged_names_it(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), optimizer="sgd", callbacks=[EarlyStopping("val_acc")], seed=0)
    with pytest.raises(ConfigError) as error:
        trainer.fit(x, y, epochs=2, verbose=False)
    assert str(error.value).startswith("early_stopping.monitor: 'val_acc' is not logged; available: epoch, loss")


@pytest.mark.parametrize("make, message", [
    (lambda: EarlyStopping(patience=-1), "early_stopping.patience: must be an integer >= 0, got -1"),
    (lambda: EarlyStopping(mode="auto"), "mode: must be 'min' or 'max', got 'auto'"),
    (lambda: EarlyStopping(restore_best_weights="yes"), "early_stopping.restore_best_weights: must be true or false"),
])
def test_bad_callback_arguments_name_the_key(make, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make()
