"""Metrics by name (trainwell.metrics): each against scikit-learn on the same predictions, on the whole set."""

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as sk
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.preprocessing import StandardScaler

from trainwell.errors import ConfigError
from trainwell.metrics import METRICS, check_metrics, compute, direction
from trainwell.model.layers import Dense, build_model
from trainwell.model.losses import get_loss
from trainwell.train.inputs import loss_and_metrics
from trainwell.train.trainer import Trainer


def scaled(loader):
    x, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(x).astype(np.float32), y


def test_binary_metrics_are_scikit_learns_with_positive_class_1():
    x, y = scaled(load_breast_cancer)
    trainer = Trainer(build_model([Dense(1, activation="sigmoid")], input_shape=(30,)), loss="binary_crossentropy",
                      metrics=["accuracy", "precision", "recall", "f1", "auc"], seed=0)
    trainer.fit(x[:400], y[:400], epochs=1, batch_size=64, verbose=False)
    scores = trainer.evaluate(x[400:], y[400:])
    p = trainer.predict(x[400:]).numpy()[:, 0]
    predicted, truth = (p > 0.5).astype(int), y[400:]
    assert scores["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted))
    assert scores["precision"] == pytest.approx(sk.precision_score(truth, predicted))
    assert scores["recall"] == pytest.approx(sk.recall_score(truth, predicted))
    assert scores["f1"] == pytest.approx(sk.f1_score(truth, predicted))
    assert scores["auc"] == pytest.approx(sk.roc_auc_score(truth, p), abs=1e-6)
    assert 0.5 < scores["auc"] <= 1 and scores["precision"] != scores["recall"]


def test_multiclass_metrics_are_macro_averages_and_one_vs_rest_auc():
    x, y = scaled(load_digits)
    for name, targets in [("sparse_categorical_crossentropy", y), ("categorical_crossentropy", np.eye(10)[y])]:
        trainer = Trainer(build_model([Dense(10, activation="softmax")], input_shape=(64,)), loss=name,
                          optimizer={"name": "sgd", "lr": 0.01}, seed=0,
                          metrics=["accuracy", "precision", "recall", "f1", "auc", "top_k_accuracy", "top_2_accuracy"])
        trainer.fit(x[:300], targets[:300], epochs=1, verbose=False)
        scores = trainer.evaluate(x[300:], targets[300:])
        p = trainer.predict(x[300:]).numpy().astype(np.float64)
        truth, predicted = y[300:], p.argmax(axis=1)
        assert scores["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted))
        for metric, score in [("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)]:
            assert scores[metric] == pytest.approx(score(truth, predicted, average="macro", zero_division=0)), metric
        assert scores["auc"] == pytest.approx(sk.roc_auc_score(truth, p / p.sum(1, keepdims=True), multi_class="ovr"),
                                              abs=1e-6)
        assert scores["top_k_accuracy"] == pytest.approx(sk.top_k_accuracy_score(truth, p, k=5))
        assert scores["top_2_accuracy"] == pytest.approx(sk.top_k_accuracy_score(truth, p, k=2))
        assert scores["accuracy"] < scores["top_2_accuracy"] < scores["top_k_accuracy"]


def test_regression_metrics_are_scikit_learns():
    x, y = scaled(load_diabetes)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    trainer = Trainer(build_model([Dense(8, activation="relu"), Dense(1)], input_shape=(10,)), loss="mse",
                      optimizer={"name": "adam", "lr": 0.01}, metrics=["mae", "rmse", "r2"], seed=0)
    history = trainer.fit(x[:350], y[:350], epochs=3, validation_data=(x[350:], y[350:]), verbose=False)
    predicted = trainer.predict(x[350:]).numpy()[:, 0]
    assert history.last["val_mae"] == pytest.approx(sk.mean_absolute_error(y[350:], predicted), rel=1e-5)
    assert history.last["val_rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(y[350:], predicted)), rel=1e-5)
    assert history.last["val_r2"] == pytest.approx(sk.r2_score(y[350:], predicted), rel=1e-4)
    assert history.last["val_loss"] == pytest.approx(history.last["val_rmse"] ** 2, rel=1e-4)


def test_the_auc_of_an_epoch_is_not_the_mean_of_its_batches_aucs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    logits = torch.tensor(y + rng.normal(scale=1.2, size=256) + np.repeat(rng.normal(scale=2, size=8), 32),
                          dtype=torch.float32).reshape(-1, 1)  # each batch of 32 shifted by its own offset
    loss = get_loss("binary_crossentropy")
    targets = loss.prepare_targets(y)
    whole = compute(["auc"], loss, logits, targets)["auc"]
    per_batch = np.mean([sk.roc_auc_score(y[i:i + 32], logits[i:i + 32, 0].numpy()) for i in range(0, 256, 32)])
    assert whole == pytest.approx(sk.roc_auc_score(y, logits[:, 0].numpy()))
    assert abs(whole - per_batch) > 0.05
    assert loss_and_metrics(loss, ["accuracy", "auc"], logits, targets)["auc"] == whole


def test_an_epochs_auc_in_history_is_the_whole_epochs():
    """Training AUC from the meter: the epoch's outputs, collected per step, against one computation on them all."""
    x, y = scaled(load_breast_cancer)
    seen = []

    class Outputs(torch.nn.Module):  # records the training logits of each step
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(30, 1)

        def forward(self, inputs):
            out = self.linear(inputs)
            if self.training:
                seen.append(out.detach().clone())
            return out

    trainer = Trainer(Outputs(), loss="binary_crossentropy", metrics=["auc"], seed=0)
    trainer.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=False)
    logits = torch.cat(seen).numpy()[:, 0]
    assert trainer.history.last["auc"] == pytest.approx(sk.roc_auc_score(y, logits), abs=1e-9)
    per_batch = np.mean([sk.roc_auc_score(y[i:i + 16], logits[i:i + 16]) for i in range(0, len(y), 16)
                         if len(set(y[i:i + 16])) == 2])
    assert trainer.history.last["auc"] != pytest.approx(per_batch, abs=1e-3)


def test_names_are_checked_and_fit_the_loss():
    with pytest.raises(ConfigError, match=f"metrics: unknown metric 'roc_auc'; allowed: {', '.join(METRICS)}"):
        check_metrics(["roc_auc"])
    with pytest.raises(ConfigError, match="metrics: 'auc' does not fit the loss mse, a regression loss"):
        check_metrics(["auc"], get_loss("mse"))
    with pytest.raises(ConfigError, match="metrics: 'r2' does not fit the loss binary_crossentropy"):
        check_metrics(["r2"], get_loss("binary_crossentropy"))
    with pytest.raises(ConfigError, match="'top_k_accuracy' needs a score per class"):
        check_metrics(["top_k_accuracy"], get_loss("binary_crossentropy"))
    with pytest.raises(ConfigError, match="names a metric twice"):
        check_metrics(["auc", "auc"])
    assert check_metrics(["top_3_accuracy", "f1"], get_loss("categorical_crossentropy")) == ("top_3_accuracy", "f1")


def test_directions_by_name():
    assert [direction(f) for f in ("val_auc", "test_r2", "top_7_accuracy", "val_loss", "val_rmse", "mae", "lr")] == \
        ["max", "max", "max", "min", "min", "min", None]


def test_an_undefined_auc_is_nan():
    loss = get_loss("binary_crossentropy")
    assert math.isnan(compute(["auc"], loss, torch.randn(4, 1), loss.prepare_targets([1, 1, 1, 1]))["auc"])
