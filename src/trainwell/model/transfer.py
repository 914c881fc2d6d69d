"""Transfer learning: reuse the lower layers of a model, freeze and unfreeze layers.

The chapter's warning applies: in Keras, a new model built from another model's
layers *shares* them, so training the new model silently changes the old one.
:func:`reuse_layers` copies the weights by default; sharing is an explicit option.

Layers are selected the same way everywhere (freeze, unfreeze, config files): by
index (``2``, ``-1``), by name (``"dense_1"``, or a wildcard such as ``"dense_*"``),
or by a slice (``slice(0, 3)``, written ``"0:3"`` in config files).
"""

from __future__ import annotations

import copy
import fnmatch
import os
from collections import OrderedDict
from typing import Iterable, Sequence, Union

import torch
from torch import nn

from trainwell.checks import check_number, is_integer
from trainwell.errors import ConfigError
from trainwell.model.layers import LayerSpec, Model, ModelSpec, build_model, layer_from_dict, layer_places

Selector = Union[int, str, slice]


def _children(model: nn.Module) -> list[tuple[str, nn.Module]]:
    children = layer_places(model)  # indices as model[i] counts them, a module used twice at both places
    if not children:
        raise ConfigError("layer selection needs a model made of layers (an nn.Sequential)")
    return children


def parse_selector(text: Selector) -> Selector:
    """Read a selector from a config value: ``3``, ``"-1"``, ``"dense_*"`` or ``"0:3"``."""
    if isinstance(text, (int, slice)) and not isinstance(text, bool):
        return text
    if not isinstance(text, str) or not text:
        raise ConfigError(f"layer selector {text!r}: use an index (2), a name ('dense_1', 'dense_*') or a slice ('0:3')")
    if ":" in text:
        parts = text.split(":")
        try:
            bounds = [int(p) if p.strip() else None for p in parts]
        except ValueError:
            raise ConfigError(f"layer selector {text!r}: a slice is written start:stop, e.g. '0:3'") from None
        if len(bounds) > 3:
            raise ConfigError(f"layer selector {text!r}: a slice is written start:stop, e.g. '0:3'")
        return slice(*bounds)
    try:
        return int(text)
    except ValueError:
        return text


def select_layers(model: nn.Module, selectors: Selector | Iterable[Selector]) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs picked by one or several selectors, in model order.

    >>> from trainwell.model.layers import Dense
    >>> m = build_model([Dense(4), Dense(4), Dense(2)], input_shape=(3,))
    >>> [name for name, _ in select_layers(m, "0:2")], [name for name, _ in select_layers(m, ["dense_3"])]
    (['dense_1', 'dense_2'], ['dense_3'])
    """
    if isinstance(selectors, (int, str, slice)):
        selectors = [selectors]
    children = _children(model)
    names = [name for name, _ in children]
    picked: set[int] = set()
    for raw in selectors:
        selector = parse_selector(raw)
        if isinstance(selector, int):
            if not -len(children) <= selector < len(children):
                raise ConfigError(f"layer index {selector} is out of range: the model has {len(children)} layers "
                                  f"({', '.join(names)})")
            picked.add(selector % len(children))
        elif isinstance(selector, slice):
            chosen = range(*selector.indices(len(children)))
            if not chosen:
                raise ConfigError(f"layers {raw!r} select no layer: the model has {len(children)} layers "
                                  f"({', '.join(names)}); a slice start:stop picks start..stop-1, e.g. '0:-1'")
            picked.update(chosen)
        else:
            matches = [i for i, name in enumerate(names) if fnmatch.fnmatchcase(name, selector)]
            if not matches:
                raise ConfigError(f"no layer named {selector!r}; the model's layers are: {', '.join(names)}")
            picked.update(matches)
    return [children[i] for i in sorted(picked)]


def _frozen_modes(module: nn.Module) -> None:
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            # A frozen BN layer normalizes with its moving statistics and stops updating
            # them, as Keras' frozen BatchNormalization does (it runs in inference mode).
            sub.eval()


def freeze(model: nn.Module, layers: Selector | Iterable[Selector]) -> list[str]:
    """Stop training the selected layers; return their names.

    Their parameters stop receiving gradients, and their BatchNormalization layers
    stop updating their moving statistics (see :func:`apply_frozen_modes`).
    """
    names = []
    for name, module in select_layers(model, layers):
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        module.trainwell_frozen = True
        _frozen_modes(module)
        names.append(name)
    return names


def unfreeze(model: nn.Module, layers: Selector | Iterable[Selector], *,
             optimizer: torch.optim.Optimizer | None = None, lr_scale: float | None = None) -> list[str]:
    """Train the selected layers again; return their names.

    With ``optimizer`` and ``lr_scale``, their parameters move into a new parameter
    group whose learning rate is ``lr_scale`` times the first group's, the usual
    gentler start for layers that were frozen (their optimizer state moves with them).
    """
    if lr_scale is not None:
        check_number(lr_scale, "lr_scale: must be a positive number", above=0)
    names, parameters = [], []
    for name, module in select_layers(model, layers):
        for parameter in module.parameters():
            parameter.requires_grad_(True)
            parameters.append(parameter)
        module.trainwell_frozen = False
        module.train(model.training)
        names.append(name)
    if optimizer is not None:
        _ensure_in_optimizer(optimizer, parameters, lr_scale)
    return names


def _ensure_in_optimizer(optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter],
                         lr_scale: float | None) -> None:
    ids = {id(p) for p in parameters}
    if lr_scale is None:
        known = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [p for p in parameters if id(p) not in known]
        if missing:
            base = optimizer.param_groups[0]
            optimizer.add_param_group({"params": missing, "base_lr": base.get("base_lr", base["lr"])})
        return
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) not in ids]
    base = optimizer.param_groups[0]
    optimizer.add_param_group({"params": parameters, "lr": base["lr"] * lr_scale, "lr_scale": lr_scale,
                               "base_lr": base.get("base_lr", base["lr"]) * lr_scale})
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]


def apply_frozen_modes(model: nn.Module) -> None:
    """Put frozen layers' BatchNormalization back in evaluation mode after ``model.train()``.

    The trainer calls this at the start of every epoch; call it yourself after
    ``model.train()`` in a hand-written loop.
    """
    for layer in _frozen_batch_norms(model):
        layer.eval()


def training_batch_norms(model: nn.Module) -> list[str]:
    """The names of the batch normalizations a fit trains (normalizing by each batch): all but frozen layers'."""
    frozen = set(map(id, _frozen_batch_norms(model)))
    return [name or "the model" for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and id(module) not in frozen]


def _frozen_batch_norms(model: nn.Module) -> list[nn.Module]:
    """The batch normalizations inside frozen layers, which stay in inference mode while the rest trains."""
    return [sub for module in model.modules() if getattr(module, "trainwell_frozen", False)
            for sub in module.modules() if isinstance(sub, nn.modules.batchnorm._BatchNorm)]


def is_frozen(module: nn.Module) -> bool:
    """Whether a module has parameters and none of them is trained."""
    parameters = list(module.parameters())
    return bool(parameters) and not any(p.requires_grad for p in parameters)


def reuse_layers(source: Model | str | os.PathLike, n_layers: int, *,
                 head: Sequence[LayerSpec | dict] = (), share: bool = False, freeze_reused: bool = False) -> Model:
    """A new model made of the lowest ``n_layers`` of ``source`` plus new ``head`` layers.

    ``source`` is a trainwell model or a model file. The reused layers keep their
    names and trained weights; by default they are *copies*, so training the new model
    never changes ``source`` (``share=True`` shares the modules instead, as Keras does).
    """
    if not isinstance(source, nn.Module):
        from trainwell.model.saving import load_model

        source = load_model(source)
    spec = getattr(source, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise ConfigError("reuse_layers needs a model built by trainwell (it reads the model's layer specs)")
    if not is_integer(n_layers) or not 1 <= n_layers <= len(spec.layers):
        raise ConfigError(f"reuse: cannot reuse {n_layers!r} layers; the model has {len(spec.layers)} "
                          f"({', '.join(name for name, _ in source.named_children())})")
    head_specs = [layer_from_dict(layer, where=f"head[{i}]") for i, layer in enumerate(head)]
    reused_names = [name for name, _ in source.named_children()][:n_layers]
    taken = set(reused_names)
    renamed_head = []
    for layer in head_specs:
        if layer.name is None:
            layer = _with_fresh_name(layer, taken)
        taken.add(layer.name)
        renamed_head.append(layer)
    new_spec = ModelSpec(spec.input_shape, tuple(spec.layers[:n_layers]) + tuple(renamed_head))
    model = build_model(new_spec)
    reused = OrderedDict((name, getattr(source, name)) for name in reused_names)
    for name, module in reused.items():
        setattr(model, name, module if share else copy.deepcopy(module))
    if freeze_reused:
        freeze(model, slice(0, n_layers))
    return model


def _with_fresh_name(layer: LayerSpec, taken: set[str]) -> LayerSpec:
    import dataclasses

    index = 1
    while f"{layer.type}_{index}" in taken:
        index += 1
    return dataclasses.replace(layer, name=f"{layer.type}_{index}")


def _deterministic_when_frozen(module: nn.Module) -> bool:
    """True when the module computes the same output for the same input while training."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.dropout._DropoutNd) and sub.p > 0:
            return False
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and not getattr(module, "trainwell_frozen", False):
            return False
        if isinstance(sub, nn.RReLU):
            return False
    return not any(p.requires_grad for p in module.parameters())


def frozen_prefix_length(model: nn.Module) -> int:
    """How many of the model's lowest layers are frozen and deterministic while training.

    Counts only up to the last such layer that has parameters: caching the output of
    parameter-free layers alone (Flatten) would gain nothing.
    """
    if not isinstance(model, nn.Sequential):
        return 0
    length = 0
    for index, module in enumerate(model):  # every use, in order (model.children() yields a module once)
        if not _deterministic_when_frozen(module):
            break
        if any(True for _ in module.parameters()):
            length = index + 1
    return length


def split_frozen_prefix(model: nn.Module) -> tuple[nn.Sequential, nn.Sequential] | None:
    """(frozen prefix, trainable rest) sharing the model's modules, or None if nothing is worth caching."""
    length = frozen_prefix_length(model)
    children = list(model) if isinstance(model, nn.Sequential) else []
    if length == 0 or length == len(children):
        return None
    return nn.Sequential(*children[:length]), nn.Sequential(*children[length:])
