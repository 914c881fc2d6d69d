"""TrainwellClassifier behaves as scikit-learn expects: searches, CV, pipelines, clone, pickle."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from trainwell.errors import ConfigError
from trainwell.estimator import TrainwellClassifier
from trainwell.model.layers import BatchNormalization, Dense, Dropout, Flatten


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16).astype(np.float32), y


def test_passes_scikit_learns_estimator_checks():
    results = check_estimator(TrainwellClassifier(hidden_layers=1, units=8, epochs=2, lr=0.1), on_fail=None)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    assert not failed


def test_constructor_arguments_are_the_parameters_and_clone_keeps_them():
    clf = TrainwellClassifier(hidden_layers=3, units=[64, 32, 16], lr=0.01, optimizer="nadam", dropout=0.2)
    params = clf.get_params()
    assert params["units"] == [64, 32, 16] and params["optimizer"] == "nadam" and params["dropout"] == 0.2
    copy = clone(clf).set_params(lr=0.5)
    assert copy.lr == 0.5 and clf.lr == 0.01


def test_spec_follows_the_settings():
    spec = TrainwellClassifier(hidden_layers=2, units=10, dropout=0.1, batch_norm=True).build_spec((8, 8), 3)
    kinds = [type(layer) for layer in spec.layers]
    assert kinds == [Flatten, Dropout, Dense, BatchNormalization, Dropout, Dense, BatchNormalization, Dropout, Dense]
    assert spec.layers[-1].units == 3 and spec.layers[-1].activation == "softmax"
    widths = TrainwellClassifier(units=[5, 7]).build_spec((4,), 2)
    assert [layer.units for layer in widths.layers] == [5, 7, 2]


def test_learns_digits_with_string_labels_and_is_reproducible(digits):
    x, y = digits
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    clf = TrainwellClassifier(hidden_layers=1, units=32, lr=0.1, epochs=5, seed=1).fit(x[:1000], labels[:1000])
    assert clf.score(x[1000:], labels[1000:]) > 0.85
    assert set(clf.predict(x[:20])) <= set(labels)
    proba = clf.predict_proba(x[:5])
    assert proba.shape == (5, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    again = TrainwellClassifier(hidden_layers=1, units=32, lr=0.1, epochs=5, seed=1).fit(x[:1000], labels[:1000])
    np.testing.assert_array_equal(again.predict_proba(x[:5]), proba)
    assert len(clf.history_) == 5
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(x[:5]), proba)


def test_grid_search_over_layers_units_and_learning_rate_in_a_pipeline(digits):
    x, y = digits
    search = GridSearchCV(make_pipeline(StandardScaler(), TrainwellClassifier(epochs=2, seed=0)), {
        "trainwellclassifier__hidden_layers": [1, 2],
        "trainwellclassifier__units": [16, 32],
        "trainwellclassifier__lr": [0.01, 0.05],
    }, cv=2).fit(x[:600], y[:600])
    assert len(search.cv_results_["params"]) == 8
    assert 0.5 < search.best_score_ <= 1
    assert search.best_estimator_.score(x[600:], y[600:]) > 0.5


def test_randomized_search_and_cross_val_score(digits):
    x, y = digits
    search = RandomizedSearchCV(TrainwellClassifier(epochs=2), {"units": [8, 16, 32], "lr": [0.03, 0.1, 0.3]},
                                n_iter=2, cv=2, random_state=0).fit(x[:400], y[:400])
    assert set(search.best_params_) == {"units", "lr"}
    scores = cross_val_score(TrainwellClassifier(hidden_layers=1, units=16, lr=0.3, epochs=5), x[:400], y[:400], cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.5


def test_bad_settings_are_clear_errors(digits):
    x, y = digits
    with pytest.raises(ConfigError, match="units"):
        TrainwellClassifier(units="wide").fit(x[:50], y[:50])
    with pytest.raises(ConfigError, match="hidden_layers"):
        TrainwellClassifier(hidden_layers=-1).fit(x[:50], y[:50])
    with pytest.raises(ConfigError, match="optimizer"):
        TrainwellClassifier(optimizer="adamm").fit(x[:50], y[:50])


# ------------------------------------------------------------ module=: the user's network

def test_a_cnn_module_instance_is_cross_validated_without_sharing_weights(digits):
    import torch
    from helpers import small_cnn

    x, y = digits
    images, labels = x.reshape(-1, 8, 8)[:500], y[:500]
    cnn = small_cnn(seed=0)
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    clf = TrainwellClassifier(module=cnn, optimizer="adam", lr=0.01, epochs=3, seed=0)
    assert clf.get_params()["module"] is cnn
    copy = clone(clf)
    assert copy.module is not cnn and copy.get_params()["units"] == 100
    scores = cross_val_score(clf, images, labels, cv=2)
    assert scores.mean() > 0.7  # chance: 0.1
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())  # the module given never trains
    clf.fit(images, labels)
    first = {k: v.clone() for k, v in clf.model_.state_dict().items()}
    assert clf.model_ is not cnn and clf.spec_ == cnn.spec
    assert clf.score(images, labels) > 0.85
    clf.fit(images, labels)  # a refit starts again from the module's weights
    assert all(torch.equal(first[k], v) for k, v in clf.model_.state_dict().items())


def test_a_factory_is_called_with_the_sizes_or_with_nothing(digits):
    from torch import nn

    x, y = digits
    calls = []

    def linear(n_features, n_classes):
        calls.append((n_features, n_classes))
        return nn.Linear(n_features, n_classes)  # logits: predict_proba applies the softmax

    clf = TrainwellClassifier(module=linear, optimizer="adam", lr=0.01, epochs=3, seed=0).fit(x[:500], y[:500] % 3)
    assert calls == [(64, 3)] and clf.spec_ is None
    proba = clf.predict_proba(x[500:520])
    assert proba.shape == (20, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5) and (proba > 0).all()
    assert clf.score(x[500:], y[500:] % 3) > 0.6
    assert cross_val_score(clone(clf), x[:300], y[:300] % 3, cv=2).shape == (2,)
    seeded = TrainwellClassifier(module=lambda: nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)),
                                 epochs=1, seed=3)
    a, b = clone(seeded).fit(x, y), clone(seeded).fit(x, y)
    np.testing.assert_array_equal(a.predict_proba(x[:5]), b.predict_proba(x[:5]))  # seeded before the factory


@pytest.mark.parametrize("module, message", [
    ("cnn", "module: must be an nn.Module or a factory that returns one"),
    (lambda a, b, c: None, "module: a factory is called with no arguments or with (n_features, n_classes)"),
    (lambda: "not a module", "module: the factory returned str, not an nn.Module"),
])
def test_a_bad_module_is_named(digits, module, message):
    x, y = digits
    with pytest.raises(ConfigError) as error:
        TrainwellClassifier(module=module, epochs=1).fit(x[:50], y[:50])
    assert str(error.value).startswith(message)
