"""Plain helpers the tests of several packages share (fixtures are in conftest.py).

The root conftest puts this folder on ``sys.path``, so a test imports them as ``from helpers import ...``.
"""


def strict_json(text):
    """json.loads that refuses NaN, Infinity and -Infinity, as every other JSON reader does."""
    import json

    def refuse(constant):
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


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
