"""Callbacks that watch a figure (EarlyStopping, Checkpoint, ReduceLROnPlateau) watch any metric by name."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import StandardScaler

from trainwell.callbacks import Checkpoint, EarlyStopping, Monitor, ReduceLROnPlateau
from trainwell.errors import ConfigError
from trainwell.model.layers import Dense, build_model
from trainwell.model.saving import load_model
from trainwell.train.trainer import Trainer


def test_early_stopping_and_checkpoint_on_val_auc_keep_the_best_auc_epoch(tmp_path):
    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x).astype(np.float32)
    stopper = EarlyStopping("val_auc", mode="max", patience=2, restore_best_weights=True)
    best = Checkpoint(tmp_path, every=0, save_best=True, monitor="val_auc", mode="max", save_final=False)
    trainer = Trainer(build_model([Dense(4, activation="relu"), Dense(1, activation="sigmoid")], input_shape=(30,)),
                      loss="binary_crossentropy", metrics=["auc"], optimizer={"name": "sgd", "lr": 0.5},
                      callbacks=[stopper, best], seed=0)
    history = trainer.fit(x[:100], y[:100], epochs=12, batch_size=16, validation_data=(x[100:], y[100:]),
                          verbose=False)
    aucs = history["val_auc"]
    assert stopper.best_epoch == 1 + int(np.argmax(aucs))  # the first epoch with the highest auc
    assert trainer.evaluate(x[100:], y[100:])["auc"] == pytest.approx(max(aucs))
    restored = Trainer(load_model(tmp_path / "best.safetensors"), loss="binary_crossentropy", metrics=["auc"])
    assert restored.evaluate(x[100:], y[100:])["auc"] == pytest.approx(max(aucs))


def test_the_plateau_watches_val_rmse_of_a_regression():
    x, y = load_diabetes(return_X_y=True)
    x, y = StandardScaler().fit_transform(x).astype(np.float32), ((y - y.mean()) / y.std()).astype(np.float32)
    plateau = ReduceLROnPlateau("val_rmse", mode="min", patience=0, factor=0.5)
    trainer = Trainer(build_model([Dense(1)], input_shape=(10,)), loss="mse", metrics=["rmse"],
                      optimizer={"name": "sgd", "lr": 0.5}, callbacks=[plateau], seed=0)
    history = trainer.fit(x[:300], y[:300], epochs=6, validation_data=(x[300:], y[300:]), verbose=False)
    rmse, lrs = history["val_rmse"], history["lr"]
    worse = [i for i in range(1, len(rmse) - 1) if rmse[i] >= min(rmse[:i])]
    assert worse, "the rate is large enough for val_rmse to stall"
    assert lrs[worse[0] + 1] == pytest.approx(lrs[worse[0]] * 0.5)


@pytest.mark.parametrize("monitor, mode, better", [("val_auc", "min", "higher"), ("val_f1", "min", "higher"),
                                                   ("val_rmse", "max", "lower"), ("val_loss", "max", "lower")])
def test_a_mode_that_contradicts_a_known_figure_is_refused(monitor, mode, better):
    with pytest.raises(ConfigError, match=f"mode: '{monitor}' is better when {better}"):
        Monitor(monitor, mode=mode)
    with pytest.raises(ConfigError, match=f"mode: '{monitor}' is better when {better}"):
        EarlyStopping(monitor, mode=mode)
    with pytest.raises(ConfigError, match=f"mode: '{monitor}' is better when {better}"):
        ReduceLROnPlateau(monitor, mode=mode)
    Monitor("lr", mode=mode)  # a figure of no known direction: as said
