"""The chapter's "Vanishing/Exploding Gradients" section: nonsaturating activations and SELU."""

from __future__ import annotations

import math

from trainwell.catalog.sections.common import example
from trainwell.catalog.vocabulary import Claim, Entry, Target
from trainwell.catalog.context import Context, run_config

ENTRIES: list[Entry] = []
CLAIMS: list[Claim] = []

SECTION = "Nonsaturating activation functions"
RANDOM_STREAM = ("PyTorch's random stream differs from TensorFlow's, so the initial weights and the batch order "
                 "differ from the book's; the spread over seeds shows how much that alone moves the figure.")



ENTRIES.append(Entry(
    "leaky_relu", SECTION, "book", "Leaky ReLU (slope 0.3) with He initialization trains a 300-100 network with "
    "plain SGD without dying units.", run_config, epochs=10, quick_epochs=3, config=example("leaky_relu"),
    targets=(Target("val_accuracy", 0.8430),), book="val 0.8430", cost=8, notes=(RANDOM_STREAM,)))
ENTRIES.append(Entry(
    "prelu", SECTION, "book", "PReLU learns the leak's slope (one per unit) and trains about as well as leaky ReLU.",
    run_config, epochs=10, quick_epochs=3, config=example("prelu"), targets=(Target("val_accuracy", 0.8372),),
    book="val 0.8372", cost=9, notes=(RANDOM_STREAM,)))
ENTRIES.append(Entry(
    "selu_100", "SELU", "book", "A 100-layer SELU network with LeCun initialization on standardized inputs "
    "self-normalizes and trains with plain SGD.", run_config, epochs=5, quick_epochs=2,
    config=example("selu_100"), targets=(Target("val_accuracy", 0.8358),), book="val 0.8358",
    cost=30, notes=(RANDOM_STREAM,)))
ENTRIES.append(Entry(
    "relu_100", "SELU", "book", "The same 100 layers with ReLU and He initialization train far worse: the signal "
    "fades with depth.", run_config, epochs=5, quick_epochs=2, config=example("relu_100"),
    targets=(Target("val_accuracy", 0.7032, spread_seeds=10),), book="val 0.7032", cost=25,
    notes=(RANDOM_STREAM + " A 100-layer ReLU net after 5 epochs of SGD is chaotic: a 1e-6 change of the "
           "learning rate moves its final accuracy by 0.09 on average, more than a change of seed, and even for "
           "a fixed seed the float32 rounding of trainwell's fused step against the autograd step (the same "
           "updates, pinned by tests) moves it as much (`--set train.fused=false` gives the other trajectory). "
           "Over 19 seeds and three step paths its final validation accuracy has mean 0.66 (sd 0.03-0.09); the "
           "book's 0.7032 lies at about the 68th percentile of those 73 runs. So the book's figure is judged "
           "against the spread of trainwell's seeds (the full budget runs 10), not against a mean; the best "
           "epoch's accuracy is shown beside the last one's, which a loss spike near the end can pull down.",)))
CLAIMS.append(Claim("selu_100 reaches a far higher validation accuracy than relu_100 (book: 0.8358 vs 0.7032)",
            ("selu_100", "val_accuracy"), ("relu_100", "val_accuracy"), threshold=0.05))


# ------------------------------------------------------------ demonstrations (no training)
def activation_curves(context: Context) -> None:
    import torch

    from trainwell.model.activations import get_activation

    z = torch.linspace(-5, 5, 201)
    curves = {"z": z.tolist()}
    for name, spec in (("sigmoid", "sigmoid"), ("leaky_relu (alpha 0.2)", {"name": "leaky_relu", "alpha": 0.2}),
                       ("elu", "elu"), ("selu", "selu")):
        curves[name] = get_activation(spec)(z).tolist()
    context.series("activation_curves", curves)
    far = torch.tensor([-30.0, 30.0])
    sigmoid = get_activation("sigmoid")(far)
    context.result(sigmoid_gradient_at_5=float(torch.sigmoid(torch.tensor(5.0)) * (1 - torch.sigmoid(torch.tensor(5.0)))),
                   sigmoid_at_30=float(sigmoid[1]), elu_floor=float(get_activation("elu")(far)[0]),
                   selu_floor=float(get_activation("selu")(far)[0]),
                   leaky_relu_slope=float(get_activation({"name": "leaky_relu", "alpha": 0.2})(torch.tensor(-1.0)) / -1))


ENTRIES.append(Entry(
    "activation_curves", "Nonsaturating activation functions", "demo",
    "Sigmoid saturates at both ends; leaky ReLU keeps a small slope for z < 0; ELU tends to -1 and SELU to "
    "about -1.758 for very negative z.", activation_curves,
    targets=(Target("elu_floor", -1.0, tolerance=1e-4, budget_free=True, text="-1 (ELU's plateau)"),
             Target("selu_floor", -1.7581, tolerance=1e-3, budget_free=True, text="about -1.758 (SELU's plateau)"),
             Target("sigmoid_gradient_at_5", high=0.01, budget_free=True, text="near 0 (saturation)")),
    book="figures 11-1 to 11-4", cost=0.5))


def selu_self_normalization(context: Context) -> None:
    import torch

    generator = torch.Generator().manual_seed(context.seed)
    z = torch.randn(500, 100, generator=generator)
    z = (z - z.mean(0)) / z.std(0)                  # standardized inputs, as the book's
    selu = torch.nn.SELU()
    means, stds = [], []
    for _ in range(1000):
        weights = torch.randn(100, 100, generator=generator) * math.sqrt(1 / 100)  # LeCun normal
        z = selu(z @ weights)
        means.append(float(z.mean()))
        stds.append(float(z.std()))
    context.series("selu_depth", {"layer": list(range(1000)), "mean": means, "std": stds})
    picked = range(0, 1000, 100)
    context.result(max_abs_mean=max(abs(means[i]) for i in picked), min_std=min(stds[i] for i in picked),
                   max_std=max(stds[i] for i in picked))


ENTRIES.append(Entry(
    "selu_self_normalization", "SELU", "demo",
    "Through 1,000 SELU layers with LeCun normal weights, each layer's outputs keep mean near 0 and std near 1.",
    selu_self_normalization,
    targets=(Target("max_abs_mean", high=0.1, budget_free=True,
                    text="mean between -0.02 and 0.05 at layers 0, 100, ..., 900"),
             Target("min_std", low=0.75, budget_free=True, text="std between 0.83 and 1.00"),
             Target("max_std", high=1.1, budget_free=True, text="std between 0.83 and 1.00")),
    book="mean in [-0.02, 0.05], std in [0.83, 1.00] at layers 0, 100, ..., 900", cost=1,
    notes=("Another random stream draws other weights, so the exact per-layer numbers differ from the book's; "
           "the check allows |mean| <= 0.1 and std in [0.75, 1.1] at layers 0, 100, ..., 900.",)))


def selu_constants(context: Context) -> None:
    from trainwell.model.activations import selu_constants as closed_form

    alpha, scale = closed_form()
    context.result(alpha=alpha, scale=scale)


ENTRIES.append(Entry(
    "selu_constants", "SELU", "demo",
    "SELU's alpha and scale follow from the paper's equation 14 (the fixed point mean 0, variance 1).",
    selu_constants,
    targets=(Target("alpha", 1.6733, tolerance=5e-5, budget_free=True),
             Target("scale", 1.0507, tolerance=5e-5, budget_free=True)),
    book="alpha ~ 1.6733, scale ~ 1.0507", cost=0.2))
