"""Plain helpers the tests of several packages share (fixtures are in conftest.py).

The root conftest puts this folder on ``sys.path``, so a test imports them as ``from helpers import ...``.
"""

import torch

from trainwell.callbacks import Callback


def strict_json(text):
    """json.loads that refuses NaN, Infinity and -Infinity, as every other JSON reader does."""
    import json

    def refuse(constant):
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def small_model(*hidden, input_shape=(4,), classes=3, seed=0):
    """A small classifier for the tests' toy problems (the ``blobs`` fixture has 4 features, 3 classes).

    ``hidden`` are the layers before the softmax head of ``classes`` units; an int n stands for
    ``Dense(n, activation="relu")``; none given means ``Dense(16, relu), Dropout(0.1)``. ``seed`` calls
    ``torch.manual_seed(seed)`` first, so the weights and the random draws after them (dropout masks,
    shuffles) are fixed; ``seed=None`` draws from the global stream as it stands (the autouse
    ``fixed_seeds`` fixture seeded it when the test began), so a test's second model differs from its first.
    """
    import torch

    from trainwell.model.layers import Dense, Dropout, build_model

    layers = [Dense(layer, activation="relu") if isinstance(layer, int) else layer
              for layer in hidden or (16, Dropout(0.1))]
    if seed is not None:
        torch.manual_seed(seed)
    return build_model([*layers, Dense(classes, activation="softmax")], input_shape=input_shape)


def tiny_digits(*, epochs=3, units=32, activation="relu", init="he_normal", validation_size=200, data="",
                train="", extra=""):
    """A tiny config on scikit-learn's bundled digits (always there, no download), as TOML text.

    The defaults are the command line tests' config; ``data`` and ``train`` are lines added to those
    sections (``'scaling = "unit"'``), ``extra`` is sections added at the end; ``init=None`` leaves the
    hidden layer's init out.
    """
    init = f', init = "{init}"' if init else ""
    return "".join([
        '\nname = "tiny"\nseed = 3\n[data]\nname = "digits"\n',
        f"validation_size = {validation_size}\n", f"{data}\n" if data else "",
        '[model]\nlayers = [{type = "flatten"}, ',
        f'{{type = "dense", units = {units}, activation = "{activation}"{init}}},\n',
        '          {type = "dense", units = 10, activation = "softmax"}]\n',
        '[optimizer]\nname = "adam"\nlr = 0.01\n',
        f"[train]\nepochs = {epochs}\n", f"{train}\n" if train else "", f"{extra}\n" if extra else "",
    ])


# The smallest config (every section at its default but [model]), and one trained in two phases.
MINIMAL = {"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]}}


def with_(**sections):
    data = {"model": MINIMAL["model"]}
    for key, value in sections.items():
        data[key] = value
    return data


PHASED = {"model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 30}, {"type": "dense", "units": 10}]},
          "phases": [{"epochs": 2, "freeze": [0]}, {"epochs": 3}]}

# ------------------------------------------------ the callbacks' tests: a model, a scripted figure

def dense_bn_dropout_model():
    """Dense, BatchNormalization, Dropout, softmax on 4 features: weights and statistics for a callback to save."""
    from trainwell.model.layers import BatchNormalization, Dropout

    return small_model(16, BatchNormalization(), Dropout(0.1))


class Script(Callback):
    """Replaces the monitored figure by a scripted series and snapshots the weights of every epoch.

    It must come first in the callback list, so the callbacks after it see the scripted value.
    """

    def __init__(self, values, key="val_loss"):
        self.values, self.key, self.weights = values, key, {}

    def on_epoch_end(self, trainer, epoch, logs):
        logs[self.key] = self.values[epoch - 1]
        self.weights[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def train_and_record(layers, *, features=20, optimizer=None, steps=40, every=4, standardized=True):
    """A small model fitted on 640 random points, with the doctor's Diagnostics recording it: (model, recording)."""
    import torch

    import trainwell as tw
    from trainwell.doctor.record import Diagnostics

    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, features, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    if not standardized:
        x = x.abs() * 0.3 + 0.3
    tw.seed_everything(0)
    model = tw.build_model(layers, input_shape=(features,))
    recorder = Diagnostics(every)
    trainer = tw.Trainer(model, optimizer=optimizer or {"name": "sgd", "lr": 0.01}, callbacks=[recorder], seed=0)
    trainer.fit(x, y, epochs=max(1, steps * 16 // len(x)), batch_size=16, verbose=False)
    return model, recorder.recording


def selu_stack(*extra, init="lecun_normal", **dense):
    """The spec of a SELU stack that self-normalizes, with ``extra`` layers after its first hidden layer."""
    import trainwell as tw
    from trainwell.model.layers import ModelSpec

    hidden = [tw.Dense(16, activation="selu", init=init, **dense) for _ in range(3)]
    return ModelSpec((8,), (tw.Flatten(), hidden[0], *extra, *hidden[1:], tw.Dense(3, activation="softmax")))


def digits_config(**data):
    """A small run on the bundled digits: one softmax layer, 2 epochs of Adam; ``data`` sets [data] keys."""
    from trainwell.config import validate_config

    return validate_config({
        "name": "digits", "seed": 0,
        "data": {"name": "digits", "validation_size": 300, **data},
        "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2},
    })


# ------------------------------------------------ convolutional nets on small images

def digit_images(n=400):
    """scikit-learn's bundled 8x8 digits as (n, 8, 8) float32 images in [0, 1] and int64 labels (no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (torch.tensor(digits.images[:n] / 16, dtype=torch.float32), torch.tensor(digits.target[:n]))


def small_cnn(*extra, classes=10, seed=0):
    """conv-BN-relu, conv-relu, max pool, ``extra`` layers, flatten, softmax, on (8, 8) one-channel images."""
    from trainwell.model.conv_specs import Conv2D, MaxPool2D
    from trainwell.model.layers import Activation, BatchNormalization, Dense, Flatten, build_model

    layers = [Conv2D(8, 3, padding="same", use_bias=False), BatchNormalization(), Activation("relu"),
              Conv2D(8, 3, padding="same", activation="relu"), MaxPool2D(), *extra, Flatten(),
              Dense(classes, activation="softmax")]
    return build_model(layers, input_shape=(8, 8), seed=seed)


# A small CNN on the bundled digits, as a config: (conv-BN-relu) x 2, pool, spatial dropout, softmax.
DIGITS_CNN = """
name = "cnn"
seed = 0
[data]
name = "digits"
validation_size = 300
scaling = "unit"
[model]
layers = [{type = "conv2d", filters = 8, kernel_size = 3, padding = "same", use_bias = false},
          {type = "batch_normalization"}, {type = "activation", activation = "relu"},
          {type = "conv2d", filters = 8, kernel_size = 3, padding = "same", use_bias = false},
          {type = "batch_normalization"}, {type = "activation", activation = "relu"},
          {type = "max_pool2d"}, {type = "spatial_dropout2d", rate = 0.2}, {type = "flatten"},
          {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 2
"""


class Interrupt(Exception):
    """What a test's kill raises: the fit stops there, as a killed process would."""


class KillAt(Callback):
    """Raises Interrupt at a given global step, as a kill would stop the process there."""

    def __init__(self, step):
        self.at = step

    def on_batch_end(self, trainer, step):
        if step == self.at:
            raise Interrupt


class KillAtEpoch(Callback):
    """Raises Interrupt as epoch ``epoch`` begins (after the previous epoch's state was saved)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            raise Interrupt
