"""A plain dense stack as *stages*, each one or two ops forward and the ``aten`` kernel autograd calls backward.

The fused pass (:mod:`trainwell.train.fused`) runs a model as a list of these: a Dense
layer (:class:`LinearStage`), an elementwise activation applied in place
(:class:`ActivationStage`), batch normalization with Keras' or PyTorch's moving statistics
(:class:`BatchNormStage`), Dropout or AlphaDropout drawing PyTorch's masks
(:class:`DropoutStage`) and Flatten (:class:`FlattenStage`). Each stage's ``forward`` returns
its output and what its ``backward`` needs; ``backward`` hands its parameters' gradients to
:class:`Gradients`, which folds the update into the product (plain SGD), hands each to the
Adam family's folded update, or stores them in ``.grad``. :func:`model_stages` turns a model
into stages, or says why it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from trainwell.model.activations import activation_name
from trainwell.model.modules import ActivatedLinear, BatchNorm

aten = torch.ops.aten

# Keras' / PyTorch's SELU constants (nn.SELU uses these).
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


# ----------------------------------------------------------------- stages: one op or two each way


class LinearStage:
    def __init__(self, module: nn.Linear):
        self.weight, self.bias = module.weight, module.bias

    def params(self) -> list[torch.Tensor]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if self.bias is None:
            return x.mm(self.weight.t()), x
        return torch.addmm(self.bias, x, self.weight.t()), x

    def backward(self, g: torch.Tensor, x: torch.Tensor, update: "Gradients", need_input: bool) -> torch.Tensor | None:
        gx = g.mm(self.weight) if need_input else None  # before the weight changes
        update.matmul(self.weight, g.t(), x)
        if self.bias is not None:
            update.column_sum(self.bias, g)
        return gx


#: Each covered activation module: (its name, forward in place, backward from the output);
#: the output is all these backward kernels need.
_ACTIVATIONS: dict[type, tuple[str, Any, Any]] = {
    nn.ReLU: ("relu", torch.relu_, lambda g, y, _: aten.threshold_backward(g, y, 0)),
    nn.LeakyReLU: ("leaky_relu", lambda z, slope: F.leaky_relu_(z, slope),  # a positive slope keeps z's sign
                   lambda g, y, slope: aten.leaky_relu_backward(g, y, slope, True)),
    nn.ELU: ("elu", lambda z, alpha: F.elu_(z, alpha), lambda g, y, alpha: aten.elu_backward(g, alpha, 1.0, 1.0, True, y)),
    nn.SELU: ("selu", torch.selu_, lambda g, y, _: aten.elu_backward(g, _SELU_ALPHA, _SELU_SCALE, 1.0, True, y)),
    nn.Sigmoid: ("sigmoid", torch.sigmoid_, lambda g, y, _: aten.sigmoid_backward(g, y)),
    nn.Tanh: ("tanh", torch.tanh_, lambda g, y, _: aten.tanh_backward(g, y)),
}


class ActivationStage:
    """An elementwise activation, applied in place on the layer's output; ``backward`` is
    the kernel autograd uses for it, computed from the output.

    ``in_place`` is set only where the input is a fresh tensor no other stage keeps (the
    output of a Dense or BatchNormalization layer); elsewhere the input is copied first.
    """

    def __init__(self, module: nn.Module):
        self.in_place = False
        self.name, forward, self._backward = _ACTIVATIONS[type(module)]
        self.argument = float(module.negative_slope) if self.name == "leaky_relu" else (
            float(module.alpha) if self.name == "elu" else None)
        self._forward = forward if self.argument is None else (lambda z: forward(z, self.argument))

    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, Any]:
        y = self._forward(z if self.in_place else z.clone())
        return y, y

    def backward(self, g: torch.Tensor, y: torch.Tensor, update: "Gradients", need_input: bool) -> torch.Tensor:
        return self._backward(g, y, self.argument)


class BatchNormStage:
    """BatchNorm1d, and trainwell's BatchNorm with Keras' moving variance (see :class:`BatchNorm`)."""

    def __init__(self, module: nn.BatchNorm1d):
        self.module = module

    def params(self) -> list[torch.Tensor]:
        return [p for p in (self.module.weight, self.module.bias) if p is not None]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        shape = x.shape
        if x.dim() > 2 and isinstance(self.module, BatchNorm):  # trainwell's: per feature of the last axis
            y, saved = self._forward(x.reshape(-1, shape[-1]))
            return y.reshape(shape), (saved, shape)
        y, saved = self._forward(x)
        return y, (saved, None)

    def backward(self, g: torch.Tensor, saved: Any, update: "Gradients", need_input: bool) -> torch.Tensor | None:
        saved, shape = saved
        if shape is None:
            return self._backward(g, saved, update, need_input)
        gx = self._backward(g.reshape(-1, shape[-1]), saved, update, need_input)
        return None if gx is None else gx.reshape(shape)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        m = self.module
        if isinstance(m, BatchNorm) and m.training and m.running_mean is not None:
            # trainwell's layer: batch statistics without PyTorch's running update, then Keras' update
            factor = m.count_batch()
            y, mean, invstd = aten.native_batch_norm(x, m.weight, m.bias, None, None, True, 0.0, m.eps)
            m.update_moving_statistics(mean, invstd, factor)
            return y, (x, mean, invstd, True)
        training = m.training or m.running_mean is None
        if m.training and m.num_batches_tracked is not None:
            m.num_batches_tracked.add_(1)  # as nn.BatchNorm1d does
        momentum = 0.0 if m.momentum is None else m.momentum  # None (cumulative averages) is ruled out upstream
        y, mean, invstd = aten.native_batch_norm(x, m.weight, m.bias, m.running_mean, m.running_var, training,
                                                 momentum, m.eps)
        return y, (x, mean, invstd, training)

    def _backward(self, g: torch.Tensor, saved: Any, update: "Gradients", need_input: bool) -> torch.Tensor | None:
        m = self.module
        x, mean, invstd, training = saved
        affine = m.weight is not None
        gx, gw, gb = aten.native_batch_norm_backward(g, x, m.weight, m.running_mean, m.running_var, mean, invstd,
                                                     training, m.eps, [need_input, affine, affine])
        if affine:
            update.add(m.weight, gw)
            update.add(m.bias, gb)
        return gx


class DropoutStage:
    """Dropout and AlphaDropout, drawing their mask exactly as ``F.dropout`` and
    ``F.alpha_dropout`` do on a CPU (one ``bernoulli_`` of the same shape), so a seed gives
    the same masks on either path; the backward multiplies by the same mask."""

    _ALPHA = 1.7580993408473766  # SELU's negative saturation value, -scale * alpha

    def __init__(self, module: nn.Module):
        self.module, self.p, self.alpha = module, float(module.p), isinstance(module, nn.AlphaDropout)

    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if not self.module.training or self.p == 0.0:
            return x, None
        keep = 1.0 - self.p
        noise = torch.empty_like(x).bernoulli_(keep)
        if not self.alpha:
            noise.div_(keep)
            return x * noise, noise
        a = 1.0 / ((self._ALPHA ** 2 * self.p + 1) * keep) ** 0.5
        shift = noise.add(-1).mul_(self._ALPHA * a).add_(self._ALPHA * a * self.p)
        noise.mul_(a)
        return (x * noise).add_(shift), noise

    def backward(self, g: torch.Tensor, noise: Any, update: "Gradients", need_input: bool) -> torch.Tensor:
        return g if noise is None else g * noise


class FlattenStage:
    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, g: torch.Tensor, shape: Any, update: "Gradients", need_input: bool) -> torch.Tensor:
        return g.reshape(shape)


# ----------------------------------------------------------------- where the gradients go


@dataclass
class Gradients:
    """Where a stage's gradients go.

    ``folded`` (plain SGD: no momentum, no weight decay, one parameter group): the update
    ``param -= lr * grad`` is applied at once, inside the product that computes the
    gradient. With ``update`` (the Adam family's folded update, set for the steps it folds:
    :class:`trainwell.train.fused_adam.FoldedAdam`), each gradient goes to a scratch tensor
    and the parameter is updated from it at once. Otherwise each gradient is stored in
    ``param.grad`` and the optimizer's own ``step()`` runs afterwards (SGD with momentum,
    RMSprop... exactly as they are).
    """

    folded: bool
    lr: float = 0.0
    ones: torch.Tensor | None = None
    update: Any = None

    def matmul(self, param: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        """A gradient ``a @ b`` (a weight's)."""
        if self.folded:
            param.addmm_(a, b, alpha=-self.lr)
        elif self.update is not None:
            self.update.apply(param, torch.mm(a, b, out=self.update.buffer(param)))
        elif param.grad is None:
            param.grad = a.mm(b)
        else:  # into the last step's buffer: a fresh megabyte per step costs more than the product
            torch.mm(a, b, out=param.grad)

    def column_sum(self, param: torch.Tensor, g: torch.Tensor) -> None:
        """A gradient ``g.sum(0)`` (a bias's); folded, one ``addmv_`` with a vector of ones."""
        if self.update is not None:
            self.update.apply(param, torch.sum(g, 0, out=self.update.buffer(param)))
            return
        if not self.folded:
            if param.grad is None:
                param.grad = g.sum(0)
            else:
                torch.sum(g, 0, out=param.grad)
            return
        if self.ones is None or len(self.ones) < len(g) or self.ones.dtype != g.dtype or self.ones.device != g.device:
            self.ones = torch.ones(len(g), dtype=g.dtype, device=g.device)
        param.addmv_(g.t(), self.ones[:len(g)], alpha=-self.lr)

    def add(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        """A gradient computed whole (batch normalization's scale and shift)."""
        if self.folded:
            param.add_(grad, alpha=-self.lr)
        elif self.update is not None:
            self.update.apply(param, grad)
        else:
            param.grad = grad


def foldable(optimizer: torch.optim.Optimizer) -> bool:
    """Plain SGD, whose update can go inside the gradient's own product (the Adam family's
    folded update is :func:`trainwell.train.fused_adam.folded_adam`'s)."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return not (group["momentum"] or group["weight_decay"] or group.get("maximize") or group.get("differentiable"))



def model_stages(model: nn.Module) -> tuple[list[Any], list[nn.Module]] | str:
    """The model as a list of stages, or why it cannot be one."""
    if not isinstance(model, nn.Sequential):
        return "the model is not an nn.Sequential"
    children = list(model.children())
    stages: list[Any] = []
    modules: list[nn.Module] = [model]
    for index, child in enumerate(children):
        last = index == len(children) - 1
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
