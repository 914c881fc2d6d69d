"""Which models the fused pass covers: a model as the list of its stages, or why it cannot be one.

The fused pass (:mod:`trainwell.train.fused`) runs a plain stack: an ``nn.Sequential`` of
Flatten, Dense (with its activation), BatchNormalization, Dropout or AlphaDropout and the
elementwise activations of :mod:`trainwell.train.fused_stages`. :func:`model_stages` walks the
model's children once and either returns their stages or names the first child that keeps
the model off the fused step (a convolution, a parametrized or custom layer, an activation
the pass has no kernel for...), which ``why_not_fused`` then reports.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from trainwell.model.activations import activation_name
from trainwell.model.modules import ActivatedLinear, BatchNorm
from trainwell.train.fused_stages import (_ACTIVATIONS, ActivationStage, BatchNormStage, DropoutStage, FlattenStage,
                                          LinearStage)

__all__ = ["model_stages"]


def model_stages(model: nn.Module) -> tuple[list[Any], list[nn.Module]] | str:
    """The model as a list of stages, or why it cannot be one."""
    if not isinstance(model, nn.Sequential):
        return "the model is not an nn.Sequential"
    children = list(model)  # in order, a module used twice included twice (model.children() yields it once)
    stages: list[Any] = []
    modules: list[nn.Module] = [model]
    for index, child in enumerate(children):
        last = index == len(children) - 1
        if child in modules and any(True for _ in child.parameters()):
            return (f"a layer used twice ({type(child).__name__} at position {children.index(child)} and {index}): "
                    "its two uses' gradients add up before the update, which the fused step's per-layer update "
                    "does not do")
        modules.append(child)
        if parametrize.is_parametrized(child):
            return f"a parametrized layer ({type(child).__name__}, e.g. weight_norm): its weights are computed"
        if isinstance(child, nn.modules.conv._ConvNd):
            return (f"a convolution ({type(child).__name__}): the fused step covers dense stacks (Dense, "
                    "BatchNormalization, dropout, activations)")
        if isinstance(child, nn.Flatten):
            if child.start_dim != 1 or child.end_dim != -1:
                return "a Flatten other than Flatten(1, -1)"
            stages.append(FlattenStage())
        elif isinstance(child, nn.Linear):
            stages.append(LinearStage(child))
            if isinstance(child, ActivatedLinear):
                modules.append(child.activation)
                activation = _activation_stage(child.activation, last)
                if isinstance(activation, str):
                    return activation
                if activation is not None:
                    activation.in_place = True  # on the Dense layer's own output
                    stages.append(activation)
        elif type(child) in (nn.Dropout, nn.AlphaDropout):
            if not 0.0 <= child.p < 1.0:
                return f"dropout with rate {child.p}"
            stages.append(DropoutStage(child))
        elif isinstance(child, nn.BatchNorm1d):
            if type(child) not in (nn.BatchNorm1d, BatchNorm):
                return f"a custom batch normalization ({type(child).__name__})"
            if child.momentum is None or (child.weight is None) != (child.bias is None):
                return "batch normalization with cumulative averages or only one of scale/center"
            stages.append(BatchNormStage(child))
        else:
            activation = _activation_stage(child, last)
            if isinstance(activation, str):
                return activation
            if activation is not None:
                activation.in_place = bool(stages) and isinstance(stages[-1], (LinearStage, BatchNormStage))
                stages.append(activation)
    if not any(stage.params() for stage in stages):
        return "the model has no Dense or BatchNormalization layer"
    return stages, modules


def _activation_stage(module: nn.Module, last: bool) -> ActivationStage | None | str:
    if isinstance(module, nn.Identity) or (last and activation_name(module) == "softmax"):
        return None  # nothing to do; a final softmax: the loss takes the logits
    if type(module) not in _ACTIVATIONS:
        return f"a layer the fused step does not cover ({type(module).__name__})"
    if (isinstance(module, nn.LeakyReLU) and module.negative_slope <= 0) or (isinstance(module, nn.ELU)
                                                                           and module.alpha < 0):
        return f"{type(module).__name__} with a slope or alpha below zero (the backward reads the output's sign)"
    return ActivationStage(module)
