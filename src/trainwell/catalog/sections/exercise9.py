"""Exercise 9: transfer learning from exercise 8's model to digits 5-9, 100 images per digit."""

from __future__ import annotations

import time

from trainwell.catalog.sections.common import softmax
from trainwell.catalog.sections.exercise8 import DIGITS_0_4
from trainwell.catalog.vocabulary import Claim, Entry, Target
from trainwell.catalog.context import Context, budget_config

ENTRIES: list[Entry] = []
CLAIMS: list[Claim] = []

SECTION = "Exercise 9"
DIGITS_5_9 = {**DIGITS_0_4, "classes": [5, 6, 7, 8, 9], "per_class": 100}
NOTE = "Reuses the ex8_2 model of the same seed and budget (in the quick budget, trained for 3 epochs)."


def _setup(context: Context):
    from trainwell.config import validate_config
    from trainwell.recipes.build import prepare_data
    from trainwell.model.saving import load_model

    data_config = budget_config({"model": {"layers": [{"type": "flatten"}]}, "data": DIGITS_5_9}, context)
    data_config["data"].pop("train_size", None)  # 100 per digit in every budget
    data = prepare_data(validate_config(data_config))
    source = load_model(context.state_of("ex8_2") / "model.safetensors")
    return data, source


def _reuse(source, n_dense: int):
    """flatten + the lowest ``n_dense`` hidden layers, frozen, + a new 5-way softmax."""
    from trainwell.model.transfer import reuse_layers

    return reuse_layers(source, 1 + n_dense, head=[softmax(5)], freeze_reused=True)


def _epochs(context: Context) -> int:
    return context.budget.size(100, 20, 2)


def _train(context: Context, model, data, *, phase: str, cache: bool = True, lr: float = 1e-3, epochs: int | None = None,
           early_stopping: bool = True, timed: bool = False, recorded: bool = True):
    from trainwell.callbacks import EarlyStopping
    from trainwell.train.trainer import Trainer

    callbacks = [context.recorder(phase)] if recorded else []
    if early_stopping:
        callbacks.append(EarlyStopping("val_loss", patience=20, restore_best_weights=True))
    trainer = Trainer(model, optimizer={"name": "adam", "lr": lr}, seed=context.seed, callbacks=callbacks)
    began = time.perf_counter()
    validation = (data.x_val, data.y_val) if early_stopping else None  # timings: the training steps alone
    options = dict(epochs=epochs or _epochs(context), validation_data=validation, verbose=False, cache_frozen=cache)
    if timed:  # seconds long; a resumed fit would time only its second part
        trainer.fit(data.x_train, data.y_train, **options)
    else:
        context.fit(trainer, data.x_train, data.y_train, phase=phase, **options)
    took = time.perf_counter() - began
    return trainer, took


def _scores(trainer, data) -> dict[str, float]:
    return {"val_accuracy": trainer.evaluate(data.x_val, data.y_val)["accuracy"],
            "test_accuracy": trainer.evaluate(data.x_test, data.y_test)["accuracy"]}


def ex9_1(context: Context) -> None:
    from trainwell.model.summary import summary

    _, source = _setup(context)
    counts = summary(_reuse(source, 5))
    context.series("summary", str(counts))
    context.result(trainable=counts.trainable, non_trainable=counts.non_trainable)


def ex9_2(context: Context) -> None:
    data, source = _setup(context)
    trainer, took = _train(context, _reuse(source, 5), data, phase="frozen", cache=False, timed=True)
    context.result(**_scores(trainer, data), train_time_s=took, epochs_run=len(trainer.history),
                   train_images=len(data.x_train))


#: How many times ex9_3 times each way, taking turns; the speed-up is min over min.
TIMINGS = 3


def ex9_3(context: Context) -> None:
    """The same training (fixed epochs, no early stopping) without and with cached frozen features.

    Each way trains once into the store (its curves and scores), then is timed ``TIMINGS`` times
    more, the two ways taking turns, and the speed-up is the fastest uncached fit over the fastest
    cached one. A single timing of each, a second or two, could be turned over by a passing load
    on the machine (the cached fit slowed by another process, say), and the judged figure with it;
    a load that lasts slows both ways alike, and the minimum is the fit with the least of it. The
    timed fits write nothing to the store, whose writes are no part of what the cache saves.
    """
    data, source = _setup(context)
    epochs = context.budget.size(50, 20, 2)
    timings, scores = {False: [], True: []}, {}
    for attempt in range(1 + TIMINGS):
        for cache in (False, True):
            trainer, took = _train(context, _reuse(source, 5), data, phase="cached" if cache else "uncached",
                                   cache=cache, epochs=epochs, early_stopping=False, timed=True,
                                   recorded=attempt == 0)
            if attempt == 0:
                scores[cache] = _scores(trainer, data)
            else:
                timings[cache].append(took)
    uncached, cached = min(timings[False]), min(timings[True])
    context.result(**scores[True], uncached_test_accuracy=scores[False]["test_accuracy"],
                   cache_accuracy_difference=scores[True]["test_accuracy"] - scores[False]["test_accuracy"],
                   time_uncached_s=uncached, time_cached_s=cached, speedup=uncached / cached)


def ex9_4(context: Context) -> None:
    data, source = _setup(context)
    trainer, took = _train(context, _reuse(source, 4), data, phase="frozen")
    context.result(**_scores(trainer, data), train_time_s=took)


def ex9_5(context: Context) -> None:
    """Frozen first, then the top two hidden layers unfrozen and trained on at a lower rate."""
    from trainwell.model.transfer import unfreeze

    data, source = _setup(context)
    model = _reuse(source, 5)
    trainer, _ = _train(context, model, data, phase="frozen")
    before = _scores(trainer, data)
    unfreeze(model, ["dense_4", "dense_5"])
    trainer, _ = _train(context, model, data, phase="top two unfrozen", lr=1e-4)
    after = _scores(trainer, data)
    context.result(**after, frozen_val_accuracy=before["val_accuracy"], frozen_test_accuracy=before["test_accuracy"],
                   gain=after["test_accuracy"] - before["test_accuracy"])


RESULT = "(exercise, no number)"
ENTRIES.append(Entry("ex9_1", SECTION, "exercise", "All five pretrained hidden layers reused and frozen under a new 5-way "
               "softmax: only the new layer's 505 parameters train.", ex9_1, needs=("ex8_2",),
               targets=(Target("trainable", 505, tolerance=0, budget_free=True),), book=RESULT, cost=0.5))
ENTRIES.append(Entry("ex9_2", SECTION, "exercise", "Trained on digits 5-9 with only 100 images per digit (Adam, early "
               "stopping), timed.", ex9_2, epochs=100, quick_epochs=20, needs=("ex8_2",), book=RESULT, cost=4,
               targets=(Target("test_accuracy", low=0.7, text="(exercise) well above chance (0.2)"),), notes=(NOTE,)))
ENTRIES.append(Entry("ex9_3", SECTION, "exercise", "Caching the frozen layers' outputs gives the same training, faster.",
               ex9_3, epochs=50, quick_epochs=20, needs=("ex8_2",), book=RESULT, cost=4,
               targets=(Target("speedup", low=1.0, budget_free=True, text="(exercise) faster with the cache"),),
               notes=(NOTE, "The speed-up is measured in one process on the same 500 images: each way is timed three "
                      "times, the two taking turns, and the fastest of each are compared."))
               )
ENTRIES.append(Entry("ex9_4", SECTION, "exercise", "Reusing four hidden layers instead of five (the fifth replaced by "
               "the new output layer).", ex9_4, epochs=100, quick_epochs=20, needs=("ex8_2",), book=RESULT, cost=4,
               compare_curves=("ex9_2",), targets=(Target("test_accuracy", low=0.7, text="(exercise) well above chance"),),
               notes=(NOTE,)))
ENTRIES.append(Entry("ex9_5", SECTION, "exercise", "Unfreezing the top two hidden layers and training on at 1e-4 fine-tunes "
               "the reused features.", ex9_5, epochs=200, quick_epochs=40, needs=("ex8_2",), book=RESULT, cost=6,
               targets=(Target("test_accuracy", low=0.7, text="(exercise) well above chance"),), notes=(NOTE,)))
