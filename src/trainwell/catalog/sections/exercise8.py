"""Exercise 8: a 5 x 100 ELU network on MNIST digits 0-4 with Adam and early stopping; a search with
cross-validation; then batch normalization and dropout compared by their learning curves."""

from __future__ import annotations

from trainwell.catalog.sections.common import FLATTEN, config, dense, softmax
from trainwell.catalog.vocabulary import Claim, Entry, Target
from trainwell.catalog.context import Context, budget_config, run_config

ENTRIES: list[Entry] = []
CLAIMS: list[Claim] = []

SECTION = "Exercise 8"
DIGITS_0_4 = {"name": "mnist", "validation_size": 5000, "scaling": "unit", "classes": [0, 1, 2, 3, 4]}
NO_BOOK = "no book figure (an exercise); a working setup exceeds 0.97 on the validation digits 0-4"
CALLBACKS = {"early_stopping": {"monitor": "val_loss", "patience": 10, "restore_best_weights": True},
             "checkpoint": {"every": 1, "keep": 2, "save_best": True}}


def hidden(*, batch_norm: bool = False, dropout: float = 0.0) -> list[dict]:
    layers: list[dict] = [FLATTEN]
    for _ in range(5):
        if dropout:
            layers.append({"type": "dropout", "rate": dropout})
        layers.append(dense(100, "elu", "he_normal"))
        if batch_norm:
            layers.append({"type": "batch_normalization"})
    if dropout:
        layers.append({"type": "dropout", "rate": dropout})
    return layers


def _config(name: str, **kw) -> dict:
    return config(name, [*hidden(**kw), softmax(5)], data=DIGITS_0_4, optimizer={"name": "adam", "lr": 1e-3},
                  epochs=100, callbacks=CALLBACKS)


EX8_2 = _config("ex8_2")
EX8_4 = _config("ex8_4", batch_norm=True)
EX8_5 = _config("ex8_5", dropout=0.2)


def ex8_1(context: Context) -> None:
    from trainwell.config import validate_config
    from trainwell.recipes.build import build_from_config
    from trainwell.model.summary import summary

    model = build_from_config(validate_config(EX8_2), (28, 28))
    counts = summary(model)
    context.series("summary", str(counts))
    context.result(total=counts.total, hidden_layers=sum(1 for n, _ in model.named_children() if n.startswith("dense")) - 1)


ENTRIES.append(Entry("ex8_1", SECTION, "exercise", "Five hidden layers of 100 ELU units with He initialization and a "
               "5-way softmax: 119,405 parameters.", ex8_1, config=EX8_2,
               targets=(Target("hidden_layers", 5, tolerance=0, budget_free=True),
                        Target("total", 119_405, tolerance=0, budget_free=True, text="784x100 + 4x(100x100) + 100x5 "
                               "weights and their biases = 119,405")),
               book="(exercise) 5 x 100, He, ELU", cost=0.3))

ENTRIES.append(Entry("ex8_2", SECTION, "exercise", "Adam with early stopping (patience 10, best weights restored) learns "
               "digits 0-4; checkpoints are kept while it trains and the final model is saved.", run_config,
               epochs=100, quick_epochs=3, config=EX8_2, targets=(Target("val_accuracy", low=0.97, text=NO_BOOK),),
               book="(exercise, no number)", cost=10,
               notes=("Up to 100 epochs in the full budget; early stopping decides how many run.",)))


SPACE_8_3 = {"hidden_layers": [2, 3, 4, 5], "units": [50, 100, 200], "batch_size": [32, 64, 128]}


def ex8_3(context: Context) -> None:
    """RandomizedSearchCV over trainwell's scikit-learn classifier (learning rate, width, batch size)."""
    import numpy as np
    from scipy.stats import loguniform
    from sklearn.model_selection import RandomizedSearchCV

    from trainwell.config import validate_config
    from trainwell.estimator import TrainwellClassifier
    from trainwell.recipes.build import prepare_data

    budget = context.budget.name
    n_train = context.budget.size(10_000, 3_000, 300)
    n_iter, folds, epochs = {"full": (10, 3, 5), "quick": (4, 2, 1)}.get(budget, (2, 2, 1))
    data = prepare_data(validate_config(budget_config({**EX8_2, "callbacks": None}, context)))
    x, y = data.x_train[:n_train], data.y_train[:n_train]
    search = RandomizedSearchCV(
        TrainwellClassifier(hidden_layers=5, units=100, activation="elu", init="he_normal", optimizer="adam",
                            epochs=epochs, random_state=context.seed),
        SPACE_8_3 | {"lr": loguniform(1e-4, 1e-2)},
        n_iter=n_iter, cv=folds, random_state=context.seed, refit=True)
    with context.training():
        search.fit(x, y)
    context.note_config({"search": "RandomizedSearchCV", "n_iter": n_iter, "cv": folds, "epochs": epochs,
                         "train_images": int(len(x)), "space": {"lr": "loguniform(1e-4, 1e-2)", **SPACE_8_3}})
    candidates = [{"params": {k: (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in p.items()},
                   "score": float(s)} for p, s in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]
    context.series("search", {"candidates": candidates, "best": candidates[int(search.best_index_)]})
    context.result(best_cv_accuracy=search.best_score_, best_lr=search.best_params_["lr"],
                   best_hidden_layers=search.best_params_["hidden_layers"],
                   best_units=search.best_params_["units"], best_batch_size=search.best_params_["batch_size"],
                   val_accuracy=search.score(data.x_val, data.y_val), candidates=len(candidates))


ENTRIES.append(Entry("ex8_3", SECTION, "exercise", "A randomized search with cross-validation over the number of "
               "layers, the learning rate, the width and the batch size, refitted on the best setting.", ex8_3, epochs=5, quick_epochs=1,
               datasets=("mnist",),
               targets=(Target("best_cv_accuracy", low=0.9, text="(exercise) a good setting scores above 0.9"),),
               book="(exercise, no number)", cost=20,
               notes=("A modest budget: 10 candidates x 3 folds x 5 epochs on 10,000 images (full), "
                      "4 x 2 x 1 epoch on 3,000 (quick).",)))

ENTRIES.append(Entry("ex8_4", SECTION, "exercise", "The same network with batch normalization after each hidden layer: "
               "its learning curves beside ex8_2's.", run_config, epochs=100, quick_epochs=3, config=EX8_4,
               compare_curves=("ex8_2",), targets=(Target("val_accuracy", low=0.97, text=NO_BOOK),),
               book="(exercise, no number)", cost=14))
ENTRIES.append(Entry("ex8_5", SECTION, "exercise", "The same network with dropout 0.2 before each dense layer: its "
               "learning curves beside ex8_2's.", run_config, epochs=100, quick_epochs=3, config=EX8_5,
               compare_curves=("ex8_2",), targets=(Target("val_accuracy", low=0.97, text=NO_BOOK),),
               book="(exercise, no number)", cost=11))
