"""The chapter's "Avoiding Overfitting Through Regularization" section."""

from __future__ import annotations

from trainwell.catalog.sections.activations import RANDOM_STREAM
from trainwell.catalog.sections.common import example
from trainwell.catalog.vocabulary import Claim, Entry, Target
from trainwell.catalog.context import Context, budget_config, run_config

ENTRIES: list[Entry] = []
CLAIMS: list[Claim] = []

SHORT = ("A 2-epoch run: the tolerance is 0.025, and the quick budget runs the book's 2 epochs on 10,000 of the "
         "55,000 training images.")

L2_CONFIG = example("l2")
L2_PARTIAL = example("l2_partial")
DROPOUT = example("dropout")
ALPHA_DROPOUT = example("alpha_dropout")
MAX_NORM = example("max_norm")

for _id, _config, _book, _shows in (
        ("l2", L2_CONFIG, 0.8304, "An l2(0.01) penalty on every kernel regularizes an ELU 300-100 network."),
        ("l2_partial", L2_PARTIAL, 0.8360, "The same model built with a layer factory (a preset), so the "
                                           "regularizer is written once."),
        ("dropout", DROPOUT, 0.8728, "Dropout(0.2) before each dense layer, active only while training."),
        ("max_norm", MAX_NORM, 0.8726, "Max-norm(1.0) rescales each unit's incoming weights after every step.")):
    ENTRIES.append(Entry(_id, "Regularization", "book", _shows, run_config, epochs=2, quick_epochs=2, config=_config,
                   targets=(Target("val_accuracy", _book),), book=f"val {_book}", cost=6, notes=(RANDOM_STREAM, SHORT)))


def alpha_dropout(context: Context) -> None:
    """The config run, plus the training set evaluated without dropout (the book's 0.8887)."""
    from trainwell.config import validate_config
    from trainwell.recipes.build import prepare_data
    from trainwell.train.trainer import Trainer

    run = run_config(context)
    data = prepare_data(validate_config(budget_config(ALPHA_DROPOUT, context)))
    context.result(train_accuracy=Trainer(run.model).evaluate(data.x_train, data.y_train)["accuracy"])


ENTRIES.append(Entry(
    "alpha_dropout", "Regularization", "book", "AlphaDropout keeps a SELU network self-normalizing while it "
    "regularizes; evaluated without dropout, training accuracy is close to validation accuracy.", alpha_dropout,
    epochs=20, quick_epochs=2, config=ALPHA_DROPOUT,
    targets=(Target("val_accuracy", 0.8790), Target("test_accuracy", 0.868), Target("train_accuracy", 0.8887)),
    book="val 0.8790; test 0.868; train 0.8887 (evaluated without dropout)", cost=8, notes=(RANDOM_STREAM,)))


def mc_dropout(context: Context) -> None:
    """100 stochastic passes of the alpha_dropout model over the test set (2,000 images in the quick budget)."""
    import torch

    from trainwell.config import validate_config
    from trainwell.recipes.build import prepare_data
    from trainwell.uncertainty import mc_predict
    from trainwell.model.saving import load_model

    model = load_model(context.state_of("alpha_dropout") / "model.safetensors")
    data = prepare_data(validate_config(budget_config(ALPHA_DROPOUT, context)))
    n = context.budget.size(len(data.x_test), 2000, 200)
    x, y = torch.as_tensor(data.x_test[:n]), torch.as_tensor(data.y_test[:n])
    model.eval()
    with torch.no_grad():
        plain = model(x)
    mc = mc_predict(model, x, samples=100, seed=context.seed)
    spread = mc.std.max(dim=1).values  # each image's largest per-class std over the 100 passes
    confident = plain.max(dim=1).values >= 0.99
    # the book's example: an image the plain model is sure of, while the samples disagree
    candidates = torch.nonzero(confident).ravel()
    pick = int(candidates[spread[candidates].argmax()]) if len(candidates) else int(spread.argmax())
    context.series("mc_dropout", {
        "spread": spread.tolist(), "image": pick, "label": int(y[pick]),
        "plain": plain[pick].tolist(), "mc_mean": mc.mean[pick].tolist(), "mc_std": mc.std[pick].tolist()})
    uncertain = spread.topk(min(100, n)).values
    context.result(test_accuracy=float((mc.mean.argmax(1) == y).float().mean()),
                   plain_test_accuracy=float((plain.argmax(1) == y).float().mean()),
                   mean_spread=float(spread.mean()), uncertain_spread=float(uncertain.mean()),
                   picked_plain_confidence=float(plain[pick].max()), images=n)


ENTRIES.append(Entry(
    "mc_dropout", "Regularization", "book", "MC dropout averages 100 stochastic passes: a slightly better accuracy, "
    "and a spread that shows which images the model is unsure of.", mc_dropout, epochs=20, quick_epochs=2,
    needs=("alpha_dropout",),
    targets=(Target("test_accuracy", 0.868),
             Target("uncertain_spread", low=1e-3, budget_free=True, text="non-zero spread on uncertain images")),
    book="accuracy of the mean prediction 0.868; per-sample std shows uncertainty", cost=6,
    notes=("Judged on the alpha_dropout model of the same seed and budget; its tolerance is that of a "
           "20-epoch run.",)))
