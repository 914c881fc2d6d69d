"""Plain helpers of the fused-step tests (tests/train/test_fused*.py, test_step.py): a seeded fit, the comparison
of two runs, and the models and optimizers they train."""

import pytest
import torch
from torch import nn

import trainwell as tw
from trainwell.model.regularization import max_norm


def fit(images, layers, optimizer, *, fused, epochs=3, **kwargs):
    x, y, x_val, y_val = images
    tw.seed_everything(0)
    model = tw.build_model(layers, input_shape=(8, 8))
    trainer = tw.Trainer(model, optimizer=optimizer, seed=0, fused=fused, **kwargs)
    history = trainer.fit(x, y, epochs=epochs, batch_size=32, validation_data=(x_val, y_val), verbose=False)
    return history, model, trainer


def seeded_stack(*modules, std=0.3):
    """A plain ``nn.Sequential`` of ``modules`` whose parameters are drawn from one seeded normal, and a tiny
    classification problem for it (64 rows, 3 classes; the first module's input width)."""
    model = nn.Sequential(*modules)
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.normal_(p, std=std)
    width = next(m for m in modules if isinstance(m, nn.Linear)).in_features
    return model, torch.rand(64, width, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 3


def assert_same_run(a, b):
    (history_a, model_a, _), (history_b, model_b, _) = a, b
    assert history_a.keys() == history_b.keys()
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert history_a[key] == pytest.approx(history_b[key], rel=1e-5, abs=1e-6), key
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:  # weights, biases, BN's running statistics and batch counts
        torch.testing.assert_close(state_a[name], state_b[name], rtol=1e-4, atol=1e-5, msg=name)


CASES = {
    "leaky_relu, SGD": ([tw.Flatten(), tw.Dense(64, activation="leaky_relu", init="he_normal"),
                         tw.Dense(32, activation="leaky_relu", init="he_normal"), tw.Dense(4, activation="softmax")],
                        {"name": "sgd", "lr": 0.05}),
    "bn_after, SGD with momentum": ([tw.Flatten(), tw.BatchNormalization(),
                                     tw.Dense(64, activation="elu", init="he_normal"), tw.BatchNormalization(),
                                     tw.Dense(32, activation="elu", init="he_normal"), tw.BatchNormalization(),
                                     tw.Dense(4, activation="softmax")],
                                    {"name": "sgd", "lr": 0.02, "momentum": 0.9}),
    "selu, Nadam": ([tw.Flatten(), tw.Dense(64, activation="selu", init="lecun_normal"),
                     tw.Dense(32, activation="selu", init="lecun_normal"), tw.Dense(4, activation="softmax")],
                    {"name": "nadam", "lr": 1e-3}),
    "elu, Adam, max-norm": ([tw.Flatten(), tw.Dense(64, activation="elu", init="he_normal", kernel_constraint=max_norm(1.0)),
                             tw.Dense(4, activation="softmax")], {"name": "adam", "lr": 1e-3}),
    "dropout, elu": ([tw.Flatten(), tw.Dropout(0.2), tw.Dense(64, activation="elu", init="he_normal"), tw.Dropout(0.2),
                      tw.Dense(32, activation="elu", init="he_normal"), tw.Dropout(0.2), tw.Dense(4, activation="softmax")],
                     {"name": "nadam", "lr": 1e-3}),
    "alpha dropout, selu": ([tw.Flatten(), tw.AlphaDropout(0.2), tw.Dense(64, activation="selu", init="lecun_normal"),
                             tw.AlphaDropout(0.2), tw.Dense(4, activation="softmax")], {"name": "sgd", "lr": 0.05}),
    "standalone activations after dropout": (
        [tw.Flatten(), tw.Dense(32), tw.Activation("tanh"), tw.Dropout(0.0), tw.Activation("relu"),
         tw.Dense(4, activation="softmax")], {"name": "sgd", "lr": 0.05}),
    "every activation, Nesterov": ([tw.Flatten(), tw.Dense(32, activation="tanh"), tw.Dense(32, activation="sigmoid"),
                                    tw.Dense(32, activation="relu"), tw.Dense(32, activation="selu", init="lecun_normal"),
                                    tw.Dense(32, activation="elu"), tw.Dense(32, use_bias=False), tw.Dense(4)],
                                   {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}),
}
