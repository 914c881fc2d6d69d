"""``trainwell lr-find``: sweep the learning rate on the model and data a config describes.

The model (its seeded initial weights, restored after the sweep) and the data are the
config's (:mod:`trainwell.recipes.build`), as ``trainwell train`` would fit them. The sweep's
Trainer is made by :func:`trainwell.lr_finder.find_lr` with the sweep as its schedule; of the
config's Trainer options it takes the loss, the optimizer, the clipping, the device and the seed.
"""

from __future__ import annotations

from trainwell.config import LRFindConfig, RunConfig
from trainwell.lr_finder import LRFinderResult, find_lr
from trainwell.recipes.build import data_and_model, trainer_options

CLIPPING = ("clipvalue", "clipnorm", "global_clipnorm")


def find_lr_for_config(config: RunConfig) -> LRFinderResult:
    """``trainwell lr-find``: the config's data, model (its seeded initial weights), loss, optimizer
    and clipping, swept as its ``[lr_find]`` table says."""
    prepared, model = data_and_model(config)
    options, sweep = trainer_options(config), config.lr_find or LRFindConfig()
    return find_lr(model, prepared.x_train, prepared.y_train, loss=options["loss"], optimizer=options["optimizer"],
                   min_lr=sweep.min_lr, max_lr=sweep.max_lr, steps=sweep.steps, batch_size=sweep.batch_size,
                   stop_factor=sweep.stop_factor, smoothing=sweep.smoothing,
                   clipping={key: options[key] for key in CLIPPING}, device=options["device"], seed=options["seed"])
