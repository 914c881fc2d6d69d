"""Recording what happens inside a network while it trains, every N steps, by hooks.

The chapter's problems show up in a few numbers per layer: the mean and std of its
outputs (a signal that shrinks or grows with depth; a SELU net that stops being
self-normalizing), the fraction of dead ReLUs and of saturated sigmoid/tanh outputs,
the gradient norm of its weights and the RMS of the loss's gradient with respect to its
outputs (the backward signal: both vanish or explode with depth), and how big an update
step is next to the weights (a learning rate that is too high).

:class:`Diagnostics` is a callback that records them on one step in ``every``: it
attaches forward hooks and gradient hooks at that step's beginning and removes them at
its end, so the other steps run the model untouched and pay nothing (and, through
:meth:`~trainwell.callbacks.Callback.needs_autograd`, asks for the autograd step on the
recorded steps only: the others keep trainwell's fused step). It works on any
``nn.Module``: a *layer* is a module with a weight matrix (``nn.Linear``, trainwell's
Dense, convolutions), and its output is the first activation module that follows it in
registration order (before the next layer), or its own output when its activation is
inside it (trainwell's Dense) or when it has none.

>>> from torch import nn
>>> from trainwell.train.trainer import Trainer
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
>>> recorder = Diagnostics(every=5)
>>> _ = Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, callbacks=[recorder], seed=0).fit(
...     torch.randn(64, 4), torch.randint(0, 3, (64,)), epochs=2, batch_size=16, verbose=False)
>>> recorder.recording.steps, [layer.name for layer in recorder.recording.layers]
([0, 5], ['0', '2'])
>>> sorted(recorder.recording.samples[0].layers["0"])
['backward_rms', 'dead', 'grad_norm', 'grad_rms', 'mean', 'saturated', 'std', 'update_ratio']
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainwell.checks import is_integer
from trainwell.model.activations import RELU_FAMILY, SATURATING, activation_name
from trainwell.callbacks import Callback
from trainwell.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer

__all__ = ["LayerInfo", "Sample", "Recording", "Diagnostics", "find_layers", "SATURATION_MARGIN"]

#: An output within this fraction of the activation's range from an asymptote counts as
#: saturated: there the sigmoid's slope is under 4% of its largest, tanh's under 2%.
SATURATION_MARGIN = 0.01
_BOUNDS = {"sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0)}
STATS = ("mean", "std", "dead", "saturated", "grad_norm", "grad_rms", "backward_rms", "update_ratio")


@dataclass(frozen=True)
class LayerInfo:
    """A recorded layer: its module name, its activation's name, its weight's size."""

    name: str
    activation: str
    weights: int


@dataclass
class Sample:
    """The statistics of one recorded step; ``layers[name][stat]`` is a float or None."""

    step: int
    epoch: int
    input_mean: float | None = None
    input_std: float | None = None
    loss: float | None = None
    layers: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass
class Recording:
    """Every recorded step of a run, for the doctor's rules and for plots; JSON both ways."""

    every: int
    layers: list[LayerInfo]
    samples: list[Sample] = field(default_factory=list)

    @property
    def steps(self) -> list[int]:
        return [sample.step for sample in self.samples]

    def series(self, stat: str, layer: str) -> list[float | None]:
        """One statistic of one layer over time (one value per sample)."""
        return [sample.layers.get(layer, {}).get(stat) for sample in self.samples]

    def profile(self, stat: str, sample: int = -1) -> list[float | None]:
        """One statistic of every layer, bottom to top, at one sample (the last by default)."""
        if not self.samples:
            return [None] * len(self.layers)
        values = self.samples[sample].layers
        return [values.get(layer.name, {}).get(stat) for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        return {"every": self.every, "layers": [asdict(layer) for layer in self.layers],
                "samples": [asdict(sample) for sample in self.samples]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recording":
        return cls(every=data["every"], layers=[LayerInfo(**layer) for layer in data["layers"]],
                   samples=[Sample(**sample) for sample in data["samples"]])

    def to_json(self, path: str | os.PathLike) -> None:
        from trainwell.fileio import write_json

        write_json(path, self.to_dict())


def find_layers(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module, str]]:
    """``(name, layer, output module, activation name)`` for each layer with a weight matrix, in order.

    >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
    >>> [(name, activation) for name, _, _, activation in find_layers(model)]
    [('0', 'tanh'), ('3', 'linear')]
    """
    found: list[list[Any]] = []
    for name, module in model.named_modules():
        weight = module._parameters.get("weight")
        if weight is not None and weight.dim() >= 2:
            inner = getattr(module, "activation", None)
            own = activation_name(inner) if isinstance(inner, nn.Module) else None
            found.append([name, module, module, own or "linear", own is not None and own != "linear"])
        elif found and not found[-1][4] and not list(module.children()):
            kind = activation_name(module)
            if kind is not None and kind != "linear":  # the previous layer's activation
                found[-1][2:] = [module, kind, True]
    return [(name, layer, output, kind) for name, layer, output, kind, _ in found]


class Diagnostics(Callback):
    """Record per-layer statistics on one training step in ``every`` (step 0 included).

    ``recording`` holds the results. A recorded step keeps a copy of the weights from its
    beginning (for the update-to-weight ratio), measures the outputs on that step's batch
    and the weights' gradients before any clipping, and reads them all from the device in
    one go at its end. ``max_samples`` (optional) stops recording after that many steps.
    """

    def __init__(self, every: int = 100, *, max_samples: int | None = None):
        if not is_integer(every) or every < 1:
            raise ConfigError(f"diagnostics.every: must be an integer >= 1 (steps), got {every!r}")
        self.every = every
        self.max_samples = max_samples
        self.recording = Recording(every=every, layers=[])
        self._layers: list[tuple[str, nn.Module, nn.Module, str]] = []
        self._handles: list[Any] = []
        self._pending: dict[str, dict[str, torch.Tensor]] = {}
        self._input: torch.Tensor | None = None
        self._before: dict[str, torch.Tensor] = {}
        self._sampling, self._step = False, 0

    def on_fit_begin(self, trainer: "Trainer") -> None:
        self._layers = find_layers(trainer.model)
        if not self._layers:
            raise ConfigError("diagnostics: the model has no layer with a weight matrix to record")
        self.recording.layers = [LayerInfo(name or "model", kind, layer.weight.numel())
                                 for name, layer, _, kind in self._layers]

    def on_batch_begin(self, trainer: "Trainer", step: int) -> None:
        if step % self.every or (self.max_samples is not None and len(self.recording.samples) >= self.max_samples):
            return
        self._sampling, self._step = True, step
        self._pending = {info.name: {} for info in self.recording.layers}
        self._before = {}
        for info, (_, layer, output, kind) in zip(self.recording.layers, self._layers):
            stats = self._pending[info.name]
            self._before[info.name] = layer.weight.detach().clone()
            unit_axis = -1 if isinstance(layer, nn.Linear) else 1  # features last; channels of a convolution
            self._handles.append(output.register_forward_hook(_output_hook(stats, kind, unit_axis)))
            if layer.weight.requires_grad:
                self._handles.append(layer.weight.register_hook(_gradient_hook(stats)))
        self._handles.append(self._layers[0][1].register_forward_pre_hook(self._input_hook))

    def needs_autograd(self, trainer: "Trainer", step: int) -> bool:
        """A recorded step runs autograd's step: its hooks and gradients come from autograd."""
        return self._sampling

    def _input_hook(self, module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor) and self._input is None:
            x = args[0].detach().float()
            self._input = torch.stack([x.mean(), x.std()])

    def on_batch_end(self, trainer: "Trainer", step: int) -> None:
        if not self._sampling:
            return
        self._sampling = False
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        names, tensors = [], []
        for info, (_, layer, _, _) in zip(self.recording.layers, self._layers):
            stats = self._pending[info.name]
            before = self._before[info.name]
            stats["update_ratio"] = (layer.weight.detach() - before).norm() / before.norm().clamp_min(1e-12)
            for stat, value in stats.items():
                names.append((info.name, stat))
                tensors.append(value.float().reshape(()))
        if self._input is not None:
            names += [(None, "input_mean"), (None, "input_std")]
            tensors += [self._input[0], self._input[1]]
        loss = trainer.last_loss
        if loss is not None:
            names.append((None, "loss"))
            tensors.append(loss.float().reshape(()))
        values = torch.stack(tensors).tolist() if tensors else []  # one read from the device
        sample = Sample(step=self._step, epoch=trainer.epoch,
                        layers={info.name: dict.fromkeys(STATS) for info in self.recording.layers})
        for (layer, stat), value in zip(names, values):
            value = value if math.isfinite(value) else float("nan")
            if layer is None:
                setattr(sample, stat, value)
            else:
                sample.layers[layer][stat] = value
        self.recording.samples.append(sample)
        self._pending, self._before, self._input = {}, {}, None


def _output_hook(stats: dict[str, torch.Tensor], kind: str, unit_axis: int):
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        if "mean" in stats or not isinstance(output, torch.Tensor) or output.dim() < 2:
            return  # a module called twice in one step (shared weights) is recorded on its first call
        y = output.detach().float()
        stats["mean"], stats["std"] = y.mean(), y.std()
        units = y.movedim(unit_axis, -1).reshape(-1, y.shape[unit_axis])  # (values, units)
        if kind in RELU_FAMILY:  # a unit whose output is zero for every sample of the batch
            stats["dead"] = (units == 0).all(dim=0).float().mean()
        if kind in SATURATING:
            low, high = _BOUNDS[kind]
            margin = SATURATION_MARGIN * (high - low)
            stats["saturated"] = ((y <= low + margin) | (y >= high - margin)).float().mean()
        if output.requires_grad:  # the backward signal: what reaches this layer's outputs from the loss
            output.register_hook(_backward_hook(stats))
    return hook


def _backward_hook(stats: dict[str, torch.Tensor]):
    def hook(grad: torch.Tensor) -> None:
        stats["backward_rms"] = grad.detach().float().pow(2).mean().sqrt()
    return hook


def _gradient_hook(stats: dict[str, torch.Tensor]):
    # Called once per backward with the weight's whole gradient, before clipping and the step.
    def hook(grad: torch.Tensor) -> None:
        g = grad.detach().float()
        stats["grad_norm"] = g.norm()
        stats["grad_rms"] = stats["grad_norm"] / math.sqrt(g.numel())
    return hook
