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


# ------------------------------------------------ the callbacks' tests: a model, a scripted figure

def dense_bn_dropout_model():
    """Dense, BatchNormalization, Dropout, softmax on 4 features: weights and statistics for a callback to save."""
    from trainwell.model.layers import BatchNormalization, Dense, Dropout, build_model

    torch.manual_seed(0)
    return build_model([Dense(16, activation="relu"), BatchNormalization(), Dropout(0.1),
                        Dense(3, activation="softmax")], input_shape=(4,))


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
