"""A scikit-learn classifier around a trainwell network, for GridSearchCV and friends.

Exercise 8.3 tunes a network's depth, width and learning rate with cross-validation;
scikit-learn already does the searching, folding and scoring, so trainwell only has
to look like a scikit-learn estimator: every setting is a plain constructor argument
(stored untouched, so ``clone`` and ``get_params``/``set_params`` work), and everything
learned ends in ``_`` and is made by ``fit``.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
>>> clf = TrainwellClassifier(hidden_layers=1, units=8, lr=0.1, epochs=3, seed=0).fit(x, y)
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
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch import nn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from trainwell.checks import check_integer, is_integer
from trainwell.data.arrays import model_dtype, model_inputs
from trainwell.errors import ConfigError
from trainwell.model.layers import BatchNormalization, Dense, Dropout, Flatten, ModelSpec, build_model
from trainwell.model.modules import final_activation
from trainwell.train.trainer import Trainer


class TrainwellClassifier(ClassifierMixin, BaseEstimator):
    """An MLP classifier: ``hidden_layers`` Dense layers of ``units`` each, then a softmax.

    ``units`` is one width for every hidden layer or a list with one width per layer
    (its length then sets the depth). ``dropout`` > 0 puts a Dropout layer before each
    Dense layer; ``batch_norm`` puts BatchNormalization after each hidden one. Inputs
    of any shape are flattened. ``fit`` leaves ``model_`` (a plain ``nn.Module``),
    ``spec_`` (its :class:`~trainwell.model.layers.ModelSpec`), ``history_`` and ``classes_``.

    ``module`` replaces the MLP (``hidden_layers``, ``units``, ``activation``, ``init``,
    ``dropout`` and ``batch_norm`` are then unused): an ``nn.Module``, deep-copied at each
    fit, or a factory (a class or function) called at each fit, after seeding, with no
    arguments or with ``(n_features, n_classes)``, ``n_features`` being the values per
    sample (for images, ``height * width``). Its outputs are logits (PyTorch's convention;
    ``predict_proba`` applies the softmax) or, when it ends in a softmax, probabilities.
    ``spec_`` is then the module's spec when trainwell built it, else None.
    """

    def __init__(self, hidden_layers: int = 2, units: int | Sequence[int] = 100, *, activation: str = "relu",
                 init: str = "he_normal", lr: float = 1e-3, optimizer: str = "sgd", dropout: float = 0.0,
                 batch_norm: bool = False, epochs: int = 10, batch_size: int = 32, seed: int | None = 42,
                 device: str = "cpu", verbose: bool = False,
                 module: Union[nn.Module, Callable[..., nn.Module], None] = None):
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
        self.seed = seed
        self.device = device
        self.verbose = verbose

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

    def fit(self, X: Any, y: Any) -> "TrainwellClassifier":
        """Train a fresh network on ``(X, y)``; labels may be any values scikit-learn accepts."""
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ConfigError(f"y: a classifier needs at least 2 classes, got 1 class ({self.classes_[0]!r})")
        if self.seed is not None:
            torch.manual_seed(self.seed)  # the initial weights depend on the seed alone
        if self.module is None:
            self.spec_ = self.build_spec(X.shape[1:], len(self.classes_))
            self.model_ = build_model(self.spec_)
        else:
            self.model_ = self._user_module(math.prod(X.shape[1:]), len(self.classes_))
            self.spec_ = getattr(self.model_, "spec", None)
        trainer = Trainer(self.model_, optimizer={"name": self.optimizer, "lr": self.lr}, device=self.device,
                          seed=self.seed)
        self.history_ = trainer.fit(X, codes.astype(np.int64), epochs=self.epochs, batch_size=self.batch_size,
                                    verbose=self.verbose)
        self.model_.eval()
        return self

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
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=np.float32)
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
