"""Frozen-prefix caching: a model's frozen, deterministic lowest layers run once per fit, not once per step.

When the lowest layers of a model are frozen and deterministic (see
:func:`trainwell.model.transfer.split_frozen_prefix`), their outputs for the training and
validation inputs are computed once, and each step runs only the layers above them. The
results are the same, only faster.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwell.model.losses import Loss, logits_model
from trainwell.model.transfer import split_frozen_prefix


def cache_frozen_prefix(model: nn.Module, loss: Loss, forward: nn.Module, x_train: torch.Tensor, validation: Any,
                        batch_size: int) -> tuple[torch.Tensor, Any, nn.Module]:
    """``(inputs, validation, forward)`` for a fit: the frozen prefix's outputs and the logits of the layers above
    it, or the arguments as given (``forward``: the whole model's logits) when there is no such prefix."""
    split = split_frozen_prefix(model)
    if split is None:
        return x_train, validation, forward
    prefix, rest = split
    with torch.no_grad():
        prefix.eval()
        features = lambda x: torch.cat([prefix(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])  # noqa: E731
        x_train = features(x_train)
        if validation is not None:
            validation = (features(validation[0]), validation[1])
    return x_train, validation, logits_model(rest, loss)
