"""A scikit-learn classifier around a trainwell network, for GridSearchCV and friends.

Exercise 8.3 tunes a network's depth, width and learning rate with cross-validation;
scikit-learn already does the searching, folding and scoring, so trainwell only has
to look like a scikit-learn estimator: every setting is a plain constructor argument
(stored untouched, so ``clone`` and ``get_params``/``set_params`` work), and everything
learned ends in ``_`` and is made by ``fit``.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
>>> clf = TrainwellClassifier(hidden_layers=1, units=8, lr=0.1, epochs=3, random_state=0).fit(x, y)
>>> clf.predict_proba(x[:2]).shape, clf.classes_.tolist()
((2, 2), [0, 1])

Any network of the user's takes the MLP's place through ``module=``, as in skorch: an
``nn.Module`` (each fit trains a deep copy of it, so two fits, and the module given, share
no weights) or a factory, called at each fit with no arguments or with
``(n_features, n_classes)``:

>>> from torch import nn
>>> clf = TrainwellClassifier(module=lambda n_features, n_classes: nn.Linear(n_features, n_classes), epochs=2).fit(x, y)
>>> clf.predict(x[:3]).shape
(3,)

The randomness follows scikit-learn's ``random_state`` (an int, None or a RandomState) and
stays inside ``fit``: the caller's global torch, NumPy and Python generators are left as they
were (an int draws from none of them; None and a RandomState draw one seed from NumPy's, as
every scikit-learn estimator does).
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch import nn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from trainwell.checks import check_integer, check_seed, is_integer
from trainwell.data.arrays import model_dtype, model_inputs
from trainwell.errors import ArrayError, ConfigError
from trainwell.model.layers import BatchNormalization, Dense, Dropout, Flatten, ModelSpec, build_model
from trainwell.model.modules import final_activation
from trainwell.train.devices import resolve_device
from trainwell.train.trainer import Trainer

_FLOATS = [np.float32, np.float64]  # the inputs' dtypes kept as they are (others become float32)
_DEPRECATED = "deprecated"  # the default of ``seed``, the old name of ``random_state``


class TrainwellClassifier(ClassifierMixin, BaseEstimator):
    """An MLP classifier: ``hidden_layers`` Dense layers of ``units`` each, then a softmax.

    ``units`` is one width for every hidden layer or a list with one width per layer
    (its length then sets the depth). ``dropout`` > 0 puts a Dropout layer before each
    Dense layer; ``batch_norm`` puts BatchNormalization after each hidden one. Inputs
    of any shape are flattened. ``fit`` leaves ``model_`` (a plain ``nn.Module``),
    ``spec_`` (its :class:`~trainwell.model.layers.ModelSpec`), ``history_`` and ``classes_``.

    The defaults (SGD at Keras' learning rate 0.01, 10 epochs of batches of 32) train a small
    table well in about a second. The MLP trains in the inputs' precision, as scikit-learn's
    MLPClassifier: float64 arrays in float64, the rest in float32 (``module=``: in its own). ``random_state``: an int (the same int, the same
    model), None (a fresh seed at each fit) or a ``numpy.random.RandomState``; ``seed`` is
    its old name, still taken with a FutureWarning. ``fit(X, y, sample_weight=w)`` weighs
    sample i's loss by ``w[i]``, the weights scaled to mean 1 so that the learning rate means
    the same with and without them (integer weights then train as repeated rows would, in
    one batch). With ``warm_start``, a fit of a fitted classifier continues its training
    (same network, optimizer state and History) on labels of the same classes; otherwise
    each fit starts again. ``partial_fit(X, y, classes=...)`` trains one epoch on the data
    given, continuing from the previous call (``classes``, every label there will be, on the first).

    ``module`` replaces the MLP (``hidden_layers``, ``units``, ``activation``, ``init``,
    ``dropout`` and ``batch_norm`` are then unused): an ``nn.Module``, deep-copied at each
    fit, or a factory (a class or function) called at each fit, after seeding, with no
    arguments or with ``(n_features, n_classes)``, ``n_features`` being the values per
    sample (for images, ``height * width``). Its outputs are logits (PyTorch's convention;
    ``predict_proba`` applies the softmax) or, when it ends in a softmax, probabilities.
    ``spec_`` is then the module's spec when trainwell built it, else None.
    """

    def __init__(self, hidden_layers: int = 2, units: int | Sequence[int] = 100, *, activation: str = "relu",
                 init: str = "he_normal", lr: float = 0.01, optimizer: str = "sgd", dropout: float = 0.0,
                 batch_norm: bool = False, epochs: int = 10, batch_size: int = 32,
                 random_state: int | np.random.RandomState | None = 42, warm_start: bool = False,
                 device: str = "cpu", verbose: bool = False,
                 module: Union[nn.Module, Callable[..., nn.Module], None] = None, seed: Any = _DEPRECATED):
        self.module = module
        self.hidden_layers = hidden_layers
        self.units = units
        self.activation = activation
        self.init = init
        self.lr = lr
        self.optimizer = optimizer
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.seed = seed

    def _widths(self) -> list[int]:
        if is_integer(self.units, numpy=True):
            check_integer(self.hidden_layers, "hidden_layers: must be an integer >= 0", minimum=0, numpy=True)
            return [int(self.units)] * int(self.hidden_layers)
        if isinstance(self.units, (list, tuple)) and all(isinstance(u, (int, np.integer)) for u in self.units):
            return [int(u) for u in self.units]
        raise ConfigError(f"units: must be an integer or a list of integers (one per hidden layer), got {self.units!r}")

    def build_spec(self, input_shape: Sequence[int], num_classes: int) -> ModelSpec:
        """The network these settings describe, for inputs of ``input_shape`` and ``num_classes`` classes."""
        layers: list[Any] = [Flatten()] if len(input_shape) > 1 else []
        for width in self._widths():
            if self.dropout:
                layers.append(Dropout(self.dropout))
            layers.append(Dense(width, activation=self.activation, init=self.init))
            if self.batch_norm:
                layers.append(BatchNormalization())
        if self.dropout:
            layers.append(Dropout(self.dropout))
        layers.append(Dense(num_classes, activation="softmax"))
        return ModelSpec(input_shape=tuple(input_shape), layers=tuple(layers))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "TrainwellClassifier":
        """Train on ``(X, y)``: a fresh network, or with ``warm_start`` the fitted one further; labels may be
        any values scikit-learn accepts; ``sample_weight``: one number >= 0 per sample."""
        warm = self.warm_start and hasattr(self, "_trainer")
        X, y = validate_data(self, X, y, allow_nd=True, dtype=_FLOATS, reset=not warm)
        check_classification_targets(y)
        classes = np.unique(y)
        if warm and not np.array_equal(classes, self.classes_):
            raise ArrayError(f"y: warm_start continues a fit on the same classes, {self.classes_.tolist()}; y has "
                             f"{classes.tolist()} (fit with warm_start=False to start again)")
        return self._train(X, y, classes, sample_weight, epochs=self.epochs, fresh=not warm)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> "TrainwellClassifier":
        """One epoch on ``(X, y)``, continuing from the previous call; ``classes`` (every label the data
        will have) is needed on the first call only."""
        first = not hasattr(self, "_trainer")
        X, y = validate_data(self, X, y, allow_nd=True, dtype=_FLOATS, reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ArrayError("classes: the first partial_fit needs classes=, every label the data will have")
            classes = np.unique(np.asarray(classes))
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ArrayError(f"classes: {np.unique(np.asarray(classes)).tolist()}, but the first partial_fit had "
                             f"{self.classes_.tolist()}")
        return self._train(X, y, classes if first else self.classes_, sample_weight, epochs=1, fresh=first)

    def _train(self, X: np.ndarray, y: np.ndarray, classes: np.ndarray, sample_weight: Any, *, epochs: int,
               fresh: bool) -> "TrainwellClassifier":
        """``epochs`` epochs on ``(X, y)``, from a new network and Trainer when ``fresh``, inside forked RNGs."""
        codes = np.searchsorted(classes, y)
        unknown = (codes >= len(classes)) | (classes[np.minimum(codes, len(classes) - 1)] != y)
        if unknown.any():
            raise ArrayError(f"y: label {y[unknown][:1].tolist()[0]!r} is not one of the classes {classes.tolist()}")
        if fresh and len(classes) < 2:
            raise ConfigError(f"y: a classifier needs at least 2 classes, got 1 class ({classes[0]!r})")
        weights = _scaled_sample_weight(sample_weight, len(X))
        seed = self._seed()
        with torch.random.fork_rng(devices=_cuda_devices(self.device)):  # the caller's generators stay as they are
            torch.manual_seed(seed)  # the initial weights depend on the seed alone
            if fresh:
                self.classes_ = classes
                self._trainer = self._new_trainer(X.shape[1:], len(classes), X.dtype, seed)
            self._trainer.seed = seed
            self.history_ = self._trainer.fit(X, codes.astype(np.int64), epochs=epochs, batch_size=self.batch_size,
                                              sample_weight=weights, verbose=self.verbose)
        self.model_.eval()
        return self

    def _new_trainer(self, input_shape: tuple[int, ...], n_classes: int, dtype: np.dtype, seed: int) -> Trainer:
        """The Trainer of a new network; the MLP in the inputs' precision, as scikit-learn's MLPClassifier."""
        if self.module is None:
            self.spec_ = self.build_spec(input_shape, n_classes)
            self.model_ = build_model(self.spec_).to(torch.float64 if dtype == np.float64 else torch.float32)
        else:
            self.model_ = self._user_module(math.prod(input_shape), n_classes)
            self.spec_ = getattr(self.model_, "spec", None)
        return Trainer(self.model_, optimizer={"name": self.optimizer, "lr": self.lr}, device=self.device, seed=seed)

    def _seed(self) -> int:
        """The torch seed of this fit: ``random_state`` itself when an int, else one drawn from it (NumPy's
        global generator for None), as scikit-learn's estimators draw theirs."""
        random_state = self.random_state
        if self.seed != _DEPRECATED:
            if not (is_integer(random_state, numpy=True) and random_state == 42):  # random_state was set too
                raise ConfigError("seed: is the old name of random_state; give random_state only")
            warnings.warn("TrainwellClassifier(seed=...) is now random_state=...; seed will be removed",
                          FutureWarning, stacklevel=4)
            random_state = self.seed
        if is_integer(random_state, numpy=True):
            return check_seed(int(random_state), what="random_state")
        if random_state is not None and not isinstance(random_state, np.random.RandomState):
            raise ConfigError(f"random_state: must be an integer from 0 to 2**63 - 1, None or a "
                              f"numpy.random.RandomState, got {type(random_state).__name__}")
        return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))

    def _user_module(self, n_features: int, n_classes: int) -> nn.Module:
        """A fresh copy of ``module``, or what its factory makes for these sizes."""
        if isinstance(self.module, nn.Module):
            return copy.deepcopy(self.module)
        if not callable(self.module):
            raise ConfigError(f"module: must be an nn.Module or a factory that returns one (a class or function "
                              f"taking no arguments or (n_features, n_classes)), got {type(self.module).__name__}")
        try:
            signature = inspect.signature(self.module)
        except (TypeError, ValueError):  # a builtin without a signature: called as (n_features, n_classes)
            signature = None
        takes_sizes = signature is None or _binds(signature, 2)
        if not takes_sizes and not _binds(signature, 0):
            raise ConfigError(f"module: a factory is called with no arguments or with (n_features, n_classes); "
                              f"{getattr(self.module, '__name__', self.module)!r} takes {signature}")
        made = self.module(n_features, n_classes) if takes_sizes else self.module()
        if not isinstance(made, nn.Module):
            raise ConfigError(f"module: the factory returned {type(made).__name__}, not an nn.Module")
        return made

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_``."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=_FLOATS)
        device = next(self.model_.parameters()).device
        inputs = model_inputs(X, dtype=model_dtype(self.model_), what="X")
        with torch.no_grad():  # the model ends in its softmax: its outputs are the probabilities
            parts = [self.model_(inputs[i:i + 4096].to(device)).cpu() for i in range(0, len(X), 4096)]
        outputs = torch.cat(parts)
        if final_activation(self.model_) != "softmax":  # a user's module giving logits
            outputs = torch.softmax(outputs, dim=-1)
        return outputs.numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each input (values from ``classes_``)."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def _scaled_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    """``sample_weight`` checked (one finite number >= 0 per sample, not all zero) and scaled to mean 1."""
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArrayError(f"sample_weight: expected one number >= 0 per sample, got {type(sample_weight).__name__}") \
            from None
    if weights.shape != (n,):
        raise ArrayError(f"sample_weight: shape {weights.shape}, but there are {n} samples: give one weight per "
                         "sample, shape (n,)")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ArrayError("sample_weight: weights must be finite numbers >= 0")
    if not weights.any():
        raise ArrayError("sample_weight: every weight is zero; at least one sample must weigh more than zero")
    return weights * (n / weights.sum())


def _cuda_devices(device: str) -> list[int]:
    """The CUDA devices whose generators a fit on ``device`` may reseed (``torch.manual_seed`` seeds them all)."""
    if resolve_device(device).type == "cuda" or (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return list(range(torch.cuda.device_count()))
    return []
