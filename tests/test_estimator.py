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
