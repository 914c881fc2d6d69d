"""The chapter's "Learning Rate Scheduling" section, and the LR finder of 1cycle."""

from __future__ import annotations

import math

from trainwell.catalog.sections.activations import RANDOM_STREAM
from trainwell.catalog.sections.common import example
from trainwell.catalog.vocabulary import Claim, Entry, Target
from trainwell.catalog.context import Context, budget_config, run_config

ENTRIES: list[Entry] = []
CLAIMS: list[Claim] = []

SECTION = "Learning rate scheduling"
QUICK = ("In the quick budget the schedule keeps the book's constants (s in steps or epochs), so over a few "
         "epochs the rate barely moves; the plot shows the rate actually used.")

CONFIGS = {
    "power_schedule": (example("power_schedule"),
                       0.8922, "SGD at 0.01 with Keras' decay=1e-4: lr = 0.01 / (1 + step / 10,000)."),
    "exponential_epoch": (example("exponential_epoch"),
                          0.8894, "Nadam with lr = 0.01 * 0.1 ** (epoch / 20), set at each epoch."),
    "exponential_step": (example("exponential_step"),
                         0.8904, "Nadam with the same exponential decay applied at every step."),
    "piecewise": (example("piecewise"),
                  0.8886, "Nadam at 0.01, 0.005 from epoch 5, 0.001 from epoch 15."),
    "plateau": (example("plateau"),
                0.8920, "SGD with momentum, the rate halved after 5 epochs without a better validation loss."),
    "exponential_decay": (example("exponential_decay"),
                          0.8898, "SGD with Keras' ExponentialDecay(0.01, s, 0.1), per step."),
    "one_cycle": (example("one_cycle"),
                  0.8942, "1cycle: the rate climbs from 0.005 to 0.05, comes back, then falls to 5e-6 over "
                          "the last 10% of steps."),
}

UNSTABLE = {"piecewise": "Nadam holds 0.01 for the first five epochs here, the edge of stability for this SELU "
                         "network: a seed that loses its footing then (its validation accuracy falls during epochs "
                         "1-5) stays far below the others whatever the later rates, so the mean over seeds can miss "
                         "the book while the other seeds match it; the per-seed figures and learning curves show it."}

for _id, (_config, _book, _shows) in CONFIGS.items():
    ENTRIES.append(Entry(_id, "1cycle scheduling" if _id == "one_cycle" else SECTION, "book", _shows, run_config,
                   epochs=25, quick_epochs=3, config=_config, targets=(Target("val_accuracy", _book),),
                   book=f"val {_book}", cost=4 if _id == "one_cycle" else 8,
                   notes=(RANDOM_STREAM, *([UNSTABLE[_id]] if _id in UNSTABLE else []), QUICK)))


LR_FINDER = example("lr_finder")


def lr_finder(context: Context) -> None:
    """The sweep over one epoch (of the budget's training set) at batch 128, weights restored afterwards."""
    import torch

    from trainwell.config import validate_config
    from trainwell.recipes.build import build_from_config, prepare_data
    from trainwell.lr_finder import find_lr
    from trainwell.train.trainer import seed_everything

    config = validate_config(budget_config(LR_FINDER, context))
    context.note_config(config.to_dict())
    data = prepare_data(config)
    seed_everything(context.seed)
    model = build_from_config(config, data.input_shape)
    before = [p.detach().clone() for p in model.parameters()]
    steps = None if context.budget.name != "smoke" else 20
    with context.training():
        result = find_lr(model, data.x_train, data.y_train, optimizer={"name": "sgd", "lr": 1e-3}, min_lr=1e-5,
                         max_lr=10.0, batch_size=128, steps=steps, seed=context.seed)
    restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    context.series("lr_find", {"lrs": result.lrs, "losses": result.losses, "smoothed": result.smoothed,
                               "suggestion": result.suggestion, "min_loss_lr": result.min_loss_lr})
    finite = [v for v in result.smoothed if math.isfinite(v)]
    lowest = min(finite)
    diverged = result.stopped_early or not math.isfinite(result.losses[-1]) or result.smoothed[-1] > 2 * lowest
    context.result(loss_falls=float(lowest < result.smoothed[0] * 0.9), diverges=float(diverged),
                   weights_restored=float(restored), suggestion=result.suggestion, min_loss_lr=result.min_loss_lr)


ENTRIES.append(Entry(
    "lr_finder", "1cycle scheduling", "book", "Growing the rate exponentially over one epoch, the loss first falls, "
    "then shoots up; a good rate is about 10 times below the turning point.", lr_finder, epochs=1,
    config=LR_FINDER, book="loss falls, then diverges at high rates; plot loss vs rate (log x)",
    targets=(Target("loss_falls", low=1, budget_free=True, text="the loss falls"),
             Target("diverges", low=1, budget_free=True, text="then diverges"),
             Target("weights_restored", low=1, budget_free=True, text="weights restored afterwards")),
    cost=2))
