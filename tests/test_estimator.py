"""TrainwellClassifier behaves as scikit-learn expects: its estimator checks, searches, CV, pipelines,
clone, pickle, random_state, sample_weight, warm_start and partial_fit."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from trainwell.errors import ArrayError, ConfigError
from trainwell.estimator import TrainwellClassifier
from trainwell.model.layers import BatchNormalization, Dense, Dropout, Flatten


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16).astype(np.float32), y


@parametrize_with_checks([TrainwellClassifier()])
def test_passes_scikit_learns_estimator_checks_with_its_defaults(estimator, check):
    check(estimator)


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
    clf = TrainwellClassifier(hidden_layers=1, units=32, lr=0.1, epochs=5, random_state=1).fit(x[:1000], labels[:1000])
    assert clf.score(x[1000:], labels[1000:]) > 0.85
    assert set(clf.predict(x[:20])) <= set(labels)
    proba = clf.predict_proba(x[:5])
    assert proba.shape == (5, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    again = TrainwellClassifier(hidden_layers=1, units=32, lr=0.1, epochs=5, random_state=1).fit(x[:1000], labels[:1000])
    np.testing.assert_array_equal(again.predict_proba(x[:5]), proba)
    assert len(clf.history_) == 5
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(x[:5]), proba)


def test_grid_search_over_layers_units_and_learning_rate_in_a_pipeline(digits):
    x, y = digits
    search = GridSearchCV(make_pipeline(StandardScaler(), TrainwellClassifier(epochs=2, random_state=0)), {
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
    clf = TrainwellClassifier(module=cnn, optimizer="adam", lr=0.01, epochs=3, random_state=0)
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

    clf = TrainwellClassifier(module=linear, optimizer="adam", lr=0.01, epochs=3, random_state=0).fit(x[:500], y[:500] % 3)
    assert calls == [(64, 3)] and clf.spec_ is None
    proba = clf.predict_proba(x[500:520])
    assert proba.shape == (20, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5) and (proba > 0).all()
    assert clf.score(x[500:], y[500:] % 3) > 0.6
    assert cross_val_score(clone(clf), x[:300], y[:300] % 3, cv=2).shape == (2,)
    seeded = TrainwellClassifier(module=lambda: nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)),
                                 epochs=1, random_state=3)
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


# ------------------------------------------------------------ random_state: reproducible, and no global side effect

def global_draws() -> tuple:
    return torch_rand(), np.random.rand(3).tolist(), random.random()


def torch_rand() -> list:
    import torch

    return torch.rand(3).tolist()


def seed_globals(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@pytest.mark.parametrize("module", [None, "factory"])
def test_fit_leaves_the_callers_random_generators_as_they_were(digits, module):
    from torch import nn

    x, y = digits
    factory = (lambda n_features, n_classes: nn.Linear(n_features, n_classes)) if module else None
    seed_globals(5)
    expected = global_draws()
    seed_globals(5)
    TrainwellClassifier(hidden_layers=1, units=8, epochs=1, dropout=0.2, random_state=0, module=factory).fit(x[:200], y[:200])
    assert global_draws() == expected


def test_random_state_none_draws_from_numpy_as_scikit_learn_and_leaves_torch_alone(digits):
    import torch

    x, y = digits
    torch.manual_seed(5)
    expected = torch_rand()
    torch.manual_seed(5)
    a = TrainwellClassifier(hidden_layers=1, units=8, epochs=1, random_state=None).fit(x[:200], y[:200])
    b = TrainwellClassifier(hidden_layers=1, units=8, epochs=1, random_state=None).fit(x[:200], y[:200])
    assert torch_rand() == expected
    assert not np.array_equal(a.predict_proba(x[:5]), b.predict_proba(x[:5]))  # a fresh seed at each fit
    np.random.seed(3)
    c = TrainwellClassifier(hidden_layers=1, units=8, epochs=1, random_state=None).fit(x[:200], y[:200])
    np.random.seed(3)
    d = TrainwellClassifier(hidden_layers=1, units=8, epochs=1, random_state=None).fit(x[:200], y[:200])
    np.testing.assert_array_equal(c.predict_proba(x[:5]), d.predict_proba(x[:5]))


def test_a_random_state_instance_gives_a_new_seed_at_each_fit_and_the_same_sequence_again(digits):
    x, y = digits
    settings = {"hidden_layers": 1, "units": 8, "epochs": 1}
    clf = TrainwellClassifier(**settings, random_state=np.random.RandomState(0))
    first = clf.fit(x[:200], y[:200]).predict_proba(x[:5])
    second = clf.fit(x[:200], y[:200]).predict_proba(x[:5])
    assert not np.array_equal(first, second)
    again = TrainwellClassifier(**settings, random_state=np.random.RandomState(0)).fit(x[:200], y[:200])
    np.testing.assert_array_equal(again.predict_proba(x[:5]), first)


@pytest.mark.parametrize("random_state", [-1, 2**63, 1.5, "0", np.random.default_rng(0)])
def test_a_bad_random_state_is_named(digits, random_state):
    x, y = digits
    with pytest.raises(ConfigError, match="random_state: must be an integer from 0 to 2\\*\\*63 - 1"):
        TrainwellClassifier(epochs=1, random_state=random_state).fit(x[:50], y[:50])


def test_seed_is_the_deprecated_name_of_random_state(digits):
    x, y = digits
    with pytest.warns(FutureWarning, match="random_state"):
        old = TrainwellClassifier(hidden_layers=1, units=8, epochs=1, seed=7).fit(x[:200], y[:200])
    new = TrainwellClassifier(hidden_layers=1, units=8, epochs=1, random_state=7).fit(x[:200], y[:200])
    np.testing.assert_array_equal(old.predict_proba(x[:5]), new.predict_proba(x[:5]))
    with pytest.raises(ConfigError, match="seed: is the old name of random_state"):
        TrainwellClassifier(epochs=1, seed=7, random_state=8).fit(x[:50], y[:50])


def test_the_mlp_trains_in_the_inputs_precision(digits):
    import torch

    x, y = digits
    wide = TrainwellClassifier(hidden_layers=1, units=8, epochs=1).fit(x[:100].astype(np.float64), y[:100])
    assert next(wide.model_.parameters()).dtype == torch.float64
    narrow = TrainwellClassifier(hidden_layers=1, units=8, epochs=1).fit((x[:100] * 16).astype(np.int64), y[:100])
    assert next(narrow.model_.parameters()).dtype == torch.float32
    assert narrow.predict(x[:3]).shape == wide.predict(x[:3].astype(np.float64)[::-1]).shape == (3,)


# ------------------------------------------------------------ sample_weight

def test_integer_sample_weights_train_as_repeated_rows(digits):
    x, y = digits
    x, y = x[:60].astype(np.float64), y[:60]
    weights = np.random.default_rng(0).integers(0, 4, size=len(y))
    settings = {"hidden_layers": 1, "units": 16, "epochs": 5, "lr": 0.1, "batch_size": 256, "random_state": 0}
    weighted = TrainwellClassifier(**settings).fit(x, y, sample_weight=weights)
    repeated = TrainwellClassifier(**settings).fit(x.repeat(weights, axis=0), y.repeat(weights))
    unweighted = TrainwellClassifier(**settings).fit(x, y)
    np.testing.assert_allclose(weighted.predict_proba(x), repeated.predict_proba(x), rtol=1e-9)
    assert not np.allclose(weighted.predict_proba(x), unweighted.predict_proba(x), rtol=1e-3)
    # Weights are relative: scaling them all leaves the training as it was, in small batches too.
    small = {**settings, "batch_size": 16}
    once = TrainwellClassifier(**small).fit(x, y, sample_weight=weights).predict_proba(x)
    thrice = TrainwellClassifier(**small).fit(x, y, sample_weight=list(3 * weights)).predict_proba(x)
    np.testing.assert_allclose(once, thrice, rtol=1e-9)


@pytest.mark.parametrize("weights, message", [
    (np.ones(10), "sample_weight: shape (10,), but there are 50 samples"),
    (np.ones((50, 2)), "sample_weight: shape (50, 2), but there are 50 samples"),
    (-np.ones(50), "sample_weight: weights must be finite numbers >= 0"),
    (np.full(50, np.nan), "sample_weight: weights must be finite numbers >= 0"),
    (np.zeros(50), "sample_weight: every weight is zero"),
    (["heavy"] * 50, "sample_weight: expected one number >= 0 per sample"),
])
def test_bad_sample_weights_are_named(digits, weights, message):
    x, y = digits
    with pytest.raises(ArrayError) as error:
        TrainwellClassifier(epochs=1).fit(x[:50], y[:50], sample_weight=weights)
    assert str(error.value).startswith(message)


# ------------------------------------------------------------ warm_start and partial_fit

def test_warm_start_continues_the_fitted_network(digits):
    import torch

    x, y = digits
    settings = {"hidden_layers": 1, "units": 16, "epochs": 2, "optimizer": "adam", "random_state": 0}
    clf = TrainwellClassifier(**settings, warm_start=True).fit(x[:500], y[:500])
    model, losses = clf.model_, clf.history_["loss"]
    first = {k: v.clone() for k, v in model.state_dict().items()}
    clf.fit(x[:500], y[:500])
    assert clf.model_ is model and len(clf.history_) == 4 and clf.history_.last["epoch"] == 4
    assert clf.history_["loss"][2] < losses[-1] < losses[0]  # it went on from where it was
    cold = TrainwellClassifier(**settings).fit(x[:500], y[:500]).fit(x[:500], y[:500])
    assert len(cold.history_) == 2
    assert all(torch.equal(first[k], v) for k, v in cold.model_.state_dict().items())  # each fit starts again
    with pytest.raises(ArrayError, match="warm_start continues a fit on the same classes"):
        clf.fit(x[:500], y[:500] % 3)
    with pytest.raises(ValueError, match="features"):
        clf.fit(x[:500, :32], y[:500])


def test_partial_fit_trains_one_epoch_per_call_on_the_classes_given_first(digits):
    x, y = digits
    clf = TrainwellClassifier(hidden_layers=1, units=32, optimizer="adam", random_state=0)
    with pytest.raises(ArrayError, match="the first partial_fit needs classes="):
        clf.partial_fit(x[:100], y[:100])
    scores = []
    for _ in range(2):  # two passes over 1000 images, 250 at a time
        for start in range(0, 1000, 250):
            clf.partial_fit(x[start:start + 250], y[start:start + 250], classes=np.arange(10) if not start else None)
        scores.append(clf.score(x[1000:], y[1000:]))
    assert len(clf.history_) == 8 and clf.classes_.tolist() == list(range(10))
    assert 0.5 < scores[0] < scores[1] and scores[1] > 0.85
    with pytest.raises(ArrayError, match="label 10 is not one of the classes"):
        clf.partial_fit(x[:3], np.array([1, 2, 10]))
    with pytest.raises(ArrayError, match="but the first partial_fit had"):
        clf.partial_fit(x[:3], y[:3], classes=[0, 1])
