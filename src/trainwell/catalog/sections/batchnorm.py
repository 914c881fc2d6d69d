"""The chapter's "Batch Normalization" section."""

from __future__ import annotations

from trainwell.catalog.sections.activations import RANDOM_STREAM
from trainwell.catalog.sections.common import example
from trainwell.catalog.vocabulary import Claim, Entry, Target
from trainwell.catalog.context import Context, run_config

ENTRIES: list[Entry] = []
CLAIMS: list[Claim] = []

SECTION = "Batch normalization"
BN_AFTER = example("bn_after")
BN_BEFORE = example("bn_before")

ENTRIES.append(Entry(
    "bn_after", SECTION, "book", "Batch normalization after each hidden layer lets plain SGD at 1e-3 train much "
    "faster than without it.", run_config, epochs=10, quick_epochs=3, config=BN_AFTER,
    targets=(Target("val_accuracy", 0.8766),), book="val 0.8766", cost=12, notes=(RANDOM_STREAM,)))
ENTRIES.append(Entry(
    "bn_before", SECTION, "book", "Batch normalization before the activation (dense layers without bias) "
    "trains about as well as after it.", run_config, epochs=10, quick_epochs=3, config=BN_BEFORE,
    targets=(Target("val_accuracy", 0.8734),), book="val 0.8734", cost=12,
    notes=(RANDOM_STREAM + " As in the chapter's code, the second BN comes after its activation and these "
           "dense layers keep Keras' default glorot_uniform init.",)))
CLAIMS.append(Claim("bn_after reaches a higher validation accuracy than leaky_relu (book: 0.8766 vs 0.8430)",
            ("bn_after", "val_accuracy"), ("leaky_relu", "val_accuracy")))


def bn_after_params(context: Context) -> None:
    from trainwell.config import validate_config
    from trainwell.recipes.build import build_from_config
    from trainwell.model.summary import summary

    model = build_from_config(validate_config(BN_AFTER), (28, 28))
    counts = summary(model)
    context.series("summary", str(counts))
    context.result(total=counts.total, trainable=counts.trainable, non_trainable=counts.non_trainable)


ENTRIES.append(Entry(
    "bn_after_params", SECTION, "demo", "Each BN layer has 4 parameters per input: gamma and beta are trained, the "
    "moving mean and variance are not.", bn_after_params, config=BN_AFTER,
    targets=(Target("total", 271346, tolerance=0, budget_free=True),
             Target("trainable", 268978, tolerance=0, budget_free=True),
             Target("non_trainable", 2368, tolerance=0, budget_free=True)),
    book="total 271,346; trainable 268,978; non-trainable 2,368", cost=0.3))
