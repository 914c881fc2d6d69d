"""Exercise 10: a two-tower network that tells whether two MNIST images show the same digit, then its
tower reused (frozen) for a 10-way classifier trained on 500 images per digit."""

from __future__ import annotations

from trainwell.catalog.vocabulary import Claim, Entry, Target
from trainwell.catalog.context import Context

ENTRIES: list[Entry] = []
CLAIMS: list[Claim] = []

SECTION = "Exercise 10"
SPLIT_1 = 55_000  # the first 55,000 MNIST training images; split 2 is the last 5,000


def _splits(context: Context):
    from trainwell.data import load
    from trainwell.data.splits import scale_unit

    mnist = load("mnist")
    x = scale_unit(mnist.x_train, 255).astype("float32")
    y = mnist.y_train.astype("int64")
    return (x[:SPLIT_1], y[:SPLIT_1]), (x[SPLIT_1:], y[SPLIT_1:]), (scale_unit(mnist.x_test, 255).astype("float32"),
                                                                      mnist.y_test.astype("int64"))


def tower():
    from trainwell.model.layers import Dense, Flatten, build_model

    return build_model([Flatten(), *[Dense(100, activation="elu", init="he_normal") for _ in range(5)]],
                       input_shape=(28, 28))


def two_tower():
    from trainwell.model.layers import Dense, build_model
    from trainwell.model.modules import TwoTower

    head = build_model([Dense(10, activation="elu", init="he_normal"), Dense(1, activation="sigmoid")],
                       input_shape=(200,))
    return TwoTower(tower(), tower(), head)


def ex10_1(context: Context) -> None:
    from trainwell.model.summary import summary
    from trainwell.train.trainer import seed_everything

    (x1, _), (x2, _), _ = _splits(context)
    seed_everything(context.seed)
    model = two_tower()
    parameters = sum(p.numel() for p in model.parameters())
    context.series("summary", "tower A:\n" + str(summary(model.tower_a)) + "\nhead:\n" + str(summary(model.head)))
    context.result(split_1=len(x1), split_2=len(x2), parameters=parameters)


def ex10_2(context: Context) -> None:
    from trainwell.data.pairs import make_pairs

    (x1, y1), _, _ = _splits(context)
    n = context.budget.size(110_000, 10_000, 512)
    pairs, same = make_pairs(x1, y1, n, seed=context.seed)
    context.result(pairs=len(pairs), same_fraction=float(same.mean()))


def ex10_3(context: Context) -> None:
    """Two towers trained on pairs from split 1 (half same digit); validated on pairs from split 2."""
    from trainwell.data.pairs import make_pairs
    from trainwell.model.saving import save_model
    from trainwell.train.trainer import Trainer, seed_everything

    (x1, y1), (x2, y2), _ = _splits(context)
    n = context.budget.size(110_000, 10_000, 512)
    pairs, same = make_pairs(x1, y1, n, seed=context.seed)
    val_pairs, val_same = make_pairs(x2, y2, context.budget.size(5_000, 2_000, 256), seed=context.seed + 1)
    seed_everything(context.seed)
    model = two_tower()
    trainer = Trainer(model, loss="binary_crossentropy", optimizer={"name": "adam", "lr": 1e-3}, seed=context.seed,
                      callbacks=[context.recorder("pairs")])
    history = context.fit(trainer, pairs, same, phase="pairs", epochs=context.epochs,
                          validation_data=(val_pairs, val_same), verbose=False)
    save_model(model.tower_a, context.state_dir / "tower_a.safetensors")
    context.result(val_accuracy=history.last["val_accuracy"], accuracy=history.last["accuracy"], pairs=n)


def ex10_4(context: Context) -> None:
    """Tower A, frozen, + a 10-way softmax trained on split 2 (~500 per digit), beside the same net from scratch."""
    from trainwell.model.layers import Dense
    from trainwell.model.saving import load_model
    from trainwell.train.trainer import Trainer, seed_everything
    from trainwell.model.transfer import reuse_layers

    _, (x2, y2), (x_test, y_test) = _splits(context)
    n = context.budget.size(len(x2), len(x2), 500)
    x2, y2 = x2[:n], y2[:n]
    source = load_model(context.state_of("ex10_3") / "tower_a.safetensors")
    scores = {}
    for phase in ("reused", "scratch"):
        seed_everything(context.seed)
        if phase == "reused":
            model = reuse_layers(source, 6, head=[Dense(10, activation="softmax")], freeze_reused=True)
        else:
            model = reuse_layers(tower(), 6, head=[Dense(10, activation="softmax")])
        trainer = Trainer(model, optimizer={"name": "adam", "lr": 1e-3}, seed=context.seed,
                          callbacks=[context.recorder(phase)])
        context.fit(trainer, x2, y2, phase=phase, epochs=context.epochs,
                    validation_data=(x_test[:2000], y_test[:2000]), verbose=False)
        scores[phase] = trainer.evaluate(x_test, y_test)["accuracy"]
    context.result(test_accuracy=scores["reused"], scratch_test_accuracy=scores["scratch"],
                   gain=scores["reused"] - scores["scratch"])


RESULT = "(exercise, no number)"
ENTRIES.append(Entry("ex10_1", SECTION, "exercise", "MNIST's training set split into 55,000 and 5,000 images; two towers "
               "of 5 x 100 ELU units, concatenated, a 10-unit layer and one logistic output.", ex10_1, book=RESULT,
               datasets=("mnist",),
               targets=(Target("split_1", 55_000, tolerance=0, budget_free=True),
                        Target("split_2", 5_000, tolerance=0, budget_free=True)), cost=1))
ENTRIES.append(Entry("ex10_2", SECTION, "exercise", "Pairs drawn from split 1: half show the same digit, half different "
               "ones.", ex10_2, book=RESULT, datasets=("mnist",),
               targets=(Target("same_fraction", 0.5, tolerance=0.01, budget_free=True),), cost=1))
ENTRIES.append(Entry("ex10_3", SECTION, "exercise", "The two-tower network learns whether two images show the same "
               "digit.", ex10_3, epochs=10, quick_epochs=2, book=RESULT, datasets=("mnist",),
               targets=(Target("val_accuracy", low=0.9, text="(exercise) well above chance (0.5)"),), cost=12))
ENTRIES.append(Entry("ex10_4", SECTION, "exercise", "Tower A, frozen, under a 10-way softmax trained on split 2 "
               "(about 500 images per digit), beside the same network trained from scratch.", ex10_4, epochs=20,
               datasets=("mnist",),
               quick_epochs=5, needs=("ex10_3",), book=RESULT,
               targets=(Target("test_accuracy", low=0.9, text="(exercise) high despite 500 images per digit"),),
               cost=8))
