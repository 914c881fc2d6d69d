"""``summary(model)``: each layer's output shape and parameter count, Keras-style.

Totals split into trainable and non-trainable parameters. Like Keras, the moving
mean and variance of a BatchNormalization layer count as non-trainable parameters
(PyTorch keeps them as buffers), and so does any frozen parameter; integer
bookkeeping buffers such as ``num_batches_tracked`` do not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from trainwell.errors import ConfigError
from trainwell.model.layers import Model, layer_places


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    trainable: int
    non_trainable: int

    @property
    def params(self) -> int:
        return self.trainable + self.non_trainable


@dataclass(frozen=True)
class Summary:
    rows: tuple[LayerRow, ...]

    @property
    def trainable(self) -> int:
        return sum(row.trainable for row in self.rows)

    @property
    def non_trainable(self) -> int:
        return sum(row.non_trainable for row in self.rows)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        header = ("Layer (type)", "Output shape", "Param #")
        lines = [(f"{r.name} ({r.kind})", str((None, *r.output_shape)), f"{r.params:,}") for r in self.rows]
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(3)]
        rule = "-" * (sum(widths) + 6)

        def fmt(cells: Sequence[str]) -> str:
            return f"{cells[0]:<{widths[0]}}   {cells[1]:<{widths[1]}}   {cells[2]:>{widths[2]}}"

        body = [fmt(header), rule, *(fmt(cells) for cells in lines), rule,
                f"Total params: {self.total:,}",
                f"Trainable params: {self.trainable:,}",
                f"Non-trainable params: {self.non_trainable:,}"]
        return "\n".join(body)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, non_trainable) parameter counts of a module, counted as Keras does."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    statistics = sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return trainable, frozen + statistics


def summary(model: nn.Module, input_shape: Sequence[int] | None = None) -> Summary:
    """Summarize a model layer by layer.

    Models built by trainwell know their shapes; for any other module give
    ``input_shape`` (without the batch axis) and one forward pass on zeros finds them.

    >>> from trainwell.model.layers import build_model, Flatten, Dense
    >>> s = summary(build_model([Flatten(), Dense(10)], input_shape=(2, 3)))
    >>> (s.total, s.trainable, s.non_trainable)
    (70, 70, 0)
    """
    children = layer_places(model) or [("model", model)]
    if isinstance(model, Model) and model.output_shapes:
        shapes = dict(model.output_shapes)
    else:
        shapes = _traced_shapes(model, children, input_shape)
    kinds = {name: type(layer).__name__ for name, layer in getattr(model, "layer_specs", {}).items()}
    rows, first_place = [], {}
    for name, child in children:
        kind = kinds.get(name, type(child).__name__)
        if id(child) in first_place:  # a module used again: its parameters are counted at its first place
            rows.append(LayerRow(name, f"{kind}, again: {first_place[id(child)]}", shapes.get(name, ()), 0, 0))
            continue
        first_place[id(child)] = name
        trainable, frozen = count_parameters(child)
        rows.append(LayerRow(name, kind, shapes.get(name, ()), trainable, frozen))
    return Summary(tuple(rows))


def _traced_shapes(model: nn.Module, children, input_shape) -> dict[str, tuple[int, ...]]:
    if input_shape is None:
        raise ConfigError("summary of a model not built by trainwell needs input_shape, e.g. (28, 28)")
    outputs: dict[int, list[tuple[int, ...]]] = {}  # per module, the shape of each of its calls in turn
    handles = []
    for child in {id(child): child for _, child in children}.values():
        def record(module, _inputs, output):
            if isinstance(output, torch.Tensor):
                outputs.setdefault(id(module), []).append(tuple(output.shape[1:]))
        handles.append(child.register_forward_hook(record))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else "cpu"
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    shapes, seen = {}, {}
    for name, child in children:  # a module's k-th call is its k-th place (where the calls match its places)
        calls, k = outputs.get(id(child), []), seen.get(id(child), 0)
        seen[id(child)] = k + 1
        if calls:
            shapes[name] = calls[k] if k < len(calls) else calls[-1]
    return shapes
