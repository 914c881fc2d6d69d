"""A plain dense stack as *stages*, each one or two ops forward and the ``aten`` kernel autograd calls backward.

The fused pass (:mod:`trainwell.train.fused`) runs a model as a list of these: a Dense
layer (:class:`LinearStage`), an elementwise activation applied in place
(:class:`ActivationStage`), batch normalization with Keras' or PyTorch's moving statistics
(:class:`BatchNormStage`), Dropout or AlphaDropout drawing PyTorch's masks
(:class:`DropoutStage`) and Flatten (:class:`FlattenStage`). Each stage's ``forward`` returns
its output and what its ``backward`` needs; ``backward`` hands its parameters' gradients to
:class:`Gradients`, which folds the update into the product (plain SGD), hands each to the
Adam family's folded update, or stores them in ``.grad``. From the first Dense layer on, the stages hand each
other the activations transposed, ``(features, batch)``, where the products are fastest
(:class:`LinearStage`, :func:`set_layouts`). :mod:`trainwell.train.fused_model` turns a model
into stages, or says why it cannot.

The stages and :class:`Gradients` are one module because every stage's ``backward`` speaks to
``Gradients`` in the same few calls (``matmul``, ``row_sum``, ``add``): they change together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.model.modules import BatchNorm

aten = torch.ops.aten

# Keras' / PyTorch's SELU constants (nn.SELU uses these).
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


# ----------------------------------------------------------------- stages: one op or two each way


class LinearStage:
    """A Dense layer, computed transposed: ``h.T = W @ x.T + b``.

    At the chapter's batch of 32, MKL computes the product with the batch as the inner
    dimension of its result fastest: on one CPU thread the 784-300 layer's forward took
    94-102 us as ``W @ x.T`` against 141 us as ``x @ W.T``, a 100-100 layer's 7.5 us against
    11.2 us. So from the first Dense layer on, the pass hands each stage the *transposed*
    activations, ``(features, batch)`` contiguous (see :func:`set_layouts`): the next Dense
    layer takes them as they are, the elementwise stages do not care, and batch normalization
    reads them as one ``(1, features, batch)`` sample. The first Dense layer reads the
    row-major input through a view (``x.T``) and, where a layer below it needs one, returns
    its input's gradient row-major (``g @ W``).

    Each layer writes its output into a buffer it keeps per batch size, made once with its
    row-major view (``out.T``), which the weight gradient's product needs: a fresh output and a
    fresh view cost about a microsecond a layer and step (2-4% of selu_100's step, 100 layers).
    The next Dense layer finds that view when its input is the very buffer (the activations
    between them work in place: :attr:`below`). Nothing keeps a layer's output past its step:
    the pass copies the logits out (``FusedPass``), so the next step may write over it.
    """

    def __init__(self, module: nn.Linear):
        self.weight, self.bias = module.weight, module.bias
        self.transposed_input = False  # set by set_layouts: whether x comes as (features, batch)
        self.below: LinearStage | None = None  # set by set_layouts: the Dense layer under this one
        self.traced = False  # set by traceable: fresh tensors, which the compiler plans (no kept buffers or views)
        self.make_views()

    def traceable(self) -> None:
        """Make fresh outputs and views on every call (the compiled pass's stages; see :func:`direct_kernel`)."""
        self.traced = True

    def params(self) -> list[torch.Tensor]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def views(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``W.T`` and the bias as a column, made by :meth:`make_views`: a view costs about a microsecond a
        call, and a 100-layer stack would make two per layer and step. The pass checks once per step that
        no parameter's storage was replaced (``param.data = ...``, as ``Module.to`` does) and has them made
        again where one was (:func:`refresh_views`)."""
        if self.traced:  # the compiled pass traces the views once (and cannot compare pointers)
            return self.weight.t(), None if self.bias is None else self.bias.unsqueeze(1)
        return self._views

    def make_views(self) -> None:
        """The views of the parameters, made again (with no kept outputs) when a parameter's storage changes."""
        self._views = (self.weight.t(), None if self.bias is None else self.bias.unsqueeze(1))
        self._outputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # batch size -> (out, out.T)

    def output(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The kept ``(out_features, batch)`` output buffer for this batch size, and its row-major view."""
        kept = self._outputs.get(batch)
        if kept is None:
            if len(self._outputs) > 3:  # a few batch sizes at a time (the full batches and the short last one)
                self._outputs.clear()
            out = self.weight.new_empty((self.weight.shape[0], batch))
            kept = self._outputs[batch] = (out, out.t())
        return kept

    def rows_of(self, x_t: torch.Tensor) -> torch.Tensor:
        """``x_t.T``: the kept view when ``x_t`` is this layer's output buffer."""
        kept = self._outputs.get(x_t.shape[1])
        return kept[1] if kept is not None and kept[0] is x_t else x_t.t()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if self.traced:  # the compiled pass: fresh tensors, which its compiler plans
            x_t = x if self.transposed_input else x.t()
            bias = self.views()[1]
            return (self.weight.mm(x_t) if bias is None else torch.addmm(bias, self.weight, x_t)), x_t.t()
        if self.transposed_input:
            x_t, x_rows = x, (self.below.rows_of(x) if self.below is not None else x.t())
        else:
            x_t, x_rows = x.t(), x
        out, _ = self.output(x_t.shape[1])
        bias = self._views[1]
        if bias is None:
            return torch.mm(self.weight, x_t, out=out), x_rows
        return torch.addmm(bias, self.weight, x_t, out=out), x_rows

    def backward(self, g_t: torch.Tensor, x_rows: torch.Tensor, update: "Gradients",
                 need_input: bool) -> torch.Tensor | None:
        gx = None
        if need_input:  # before the weight changes, in the input's own layout
            gx = self.views()[0].mm(g_t) if self.transposed_input else g_t.t().mm(self.weight)
        update.matmul(self.weight, g_t, x_rows)
        if self.bias is not None:
            update.row_sum(self.bias, g_t)
        return gx


#: Where an activation's backward kernel takes the module's own number (leaky ReLU's slope, ELU's alpha).
_OWN = object()

#: Each covered activation module: its name, its in-place forward kernel, the number the forward takes
#: (``_OWN`` or none), and the name of the ``aten`` kernel autograd uses for its backward, computed from the
#: output, with that kernel's arguments before and after the output: ``backward(g, *before, y, *after)``.
#: The kernel is looked up when a stage is made (``aten.<name>.default``).
_ACTIVATIONS: dict[type, tuple[str, Any, tuple, str, tuple, tuple]] = {
    nn.ReLU: ("relu", torch.relu_, (), "threshold_backward", (), (0,)),
    nn.LeakyReLU: ("leaky_relu", F.leaky_relu_, (_OWN,),  # a positive slope keeps z's sign
                   "leaky_relu_backward", (), (_OWN, True)),
    nn.ELU: ("elu", F.elu_, (_OWN,), "elu_backward", (_OWN, 1.0, 1.0, True), ()),
    nn.SELU: ("selu", torch.selu_, (), "elu_backward", (_SELU_ALPHA, _SELU_SCALE, 1.0, True), ()),
    nn.Sigmoid: ("sigmoid", torch.sigmoid_, (), "sigmoid_backward", (), ()),
    nn.Tanh: ("tanh", torch.tanh_, (), "tanh_backward", (), ()),
}


def direct_kernel(overload: Any) -> Any:
    """The C++ function an ``aten`` overload calls, without ``OpOverload.__call__``'s Python frame.

    Why: a step's Python runs right after products that have evicted the interpreter's caches,
    where each frame costs several times what it costs in a loop of its own; on leaky_relu's
    step, calling the activations' kernels directly (no lambda, no overload frame) took 4-5 us
    off about 310. Dynamo cannot trace the bare function, so a compiled pass's stages call the
    overload itself (:meth:`ActivationStage.traceable`). Where a PyTorch release has no
    ``_op`` on its overloads, the overload is called as it is.
    """
    return getattr(overload, "_op", overload)


class ActivationStage:
    """An elementwise activation, applied in place on the layer's output; ``backward`` is
    the kernel autograd uses for it, computed from the output.

    ``in_place`` is set only where the input is a fresh tensor no other stage keeps (the
    output of a Dense or BatchNormalization layer); elsewhere the input is copied first.
    Each direction is one call of its kernel with arguments fixed here (see :func:`direct_kernel`).
    """

    def __init__(self, module: nn.Module):
        self.in_place = False
        self.name, self._forward, forward_args, backward, before, after = _ACTIVATIONS[type(module)]
        self._overload = getattr(aten, backward).default
        self.argument = float(module.negative_slope) if self.name == "leaky_relu" else (
            float(module.alpha) if self.name == "elu" else None)
        own = (lambda args: tuple(self.argument if a is _OWN else a for a in args))
        self._forward_args, self._before, self._after = own(forward_args), own(before), own(after)
        self._backward = direct_kernel(self._overload)

    def traceable(self) -> None:
        """Call the backward's ``aten`` overload, which dynamo traces (the compiled pass's stages)."""
        self._backward = self._overload

    def params(self) -> list[torch.Tensor]:
        return []

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """The activation of ``z``, in place (``forward`` makes the same call, inline)."""
        return self._forward(z, *self._forward_args)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, Any]:
        y = self._forward(z if self.in_place else z.clone(), *self._forward_args)
        return y, y

    def backward(self, g: torch.Tensor, y: torch.Tensor, update: "Gradients", need_input: bool) -> torch.Tensor:
        return self._backward(g, *self._before, y, *self._after)


#: The mark of a batch normalization's input held transposed (above a Dense layer, see LinearStage).
_TRANSPOSED = "transposed"


class BatchNormStage:
    """BatchNorm1d, and trainwell's BatchNorm with Keras' moving variance (see :class:`BatchNorm`)."""

    def __init__(self, module: nn.BatchNorm1d):
        self.module = module
        self.transposed_input = False  # set by set_layouts

    def params(self) -> list[torch.Tensor]:
        return [p for p in (self.module.weight, self.module.bias) if p is not None]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if self.transposed_input:  # (features, batch): one sample of (features, batch), the same statistics
            y, saved = self._forward(x.unsqueeze(0))
            return y[0], (saved, _TRANSPOSED)
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
        if shape is _TRANSPOSED:
            gx = self._backward(g.unsqueeze(0), saved, update, need_input)
            return None if gx is None else gx[0]
        gx = self._backward(g.reshape(-1, shape[-1]), saved, update, need_input)
        return None if gx is None else gx.reshape(shape)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        m = self.module
        if isinstance(m, BatchNorm) and m.training and m.running_mean is not None:
            # trainwell's layer: batch statistics without PyTorch's running update, then Keras' update
            factor = m.count_batch()
            y, mean, invstd = torch.native_batch_norm(x, m.weight, m.bias, None, None, True, 0.0, m.eps)
            m.update_moving_statistics(mean, invstd, factor)
            return y, (x, mean, invstd, True)
        training = m.training or m.running_mean is None
        if m.training and m.num_batches_tracked is not None:
            m.num_batches_tracked.add_(1)  # as nn.BatchNorm1d does
        momentum = 0.0 if m.momentum is None else m.momentum  # None (cumulative averages) is ruled out upstream
        y, mean, invstd = torch.native_batch_norm(x, m.weight, m.bias, m.running_mean, m.running_var, training,
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
        self.transposed_input = False  # set by set_layouts

    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if not self.module.training or self.p == 0.0:
            return x, None
        keep = 1.0 - self.p
        # drawn in the batch's (row-major) order, as F.dropout draws it on the autograd step's input
        if self.transposed_input:
            noise = torch.empty(x.shape[1], x.shape[0], dtype=x.dtype, device=x.device).bernoulli_(keep).t()
        else:
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
    def __init__(self) -> None:
        self.transposed_input = False  # set by set_layouts: above a Dense layer, already (features, batch)

    def params(self) -> list[torch.Tensor]:
        return []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if self.transposed_input:
            return x, None
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, g: torch.Tensor, shape: Any, update: "Gradients", need_input: bool) -> torch.Tensor:
        return g if shape is None else g.reshape(shape)


def set_layouts(stages: list[Any]) -> bool:
    """Tell each stage whether its input comes transposed (above the first Dense layer); whether the output does.

    The layout of each stage's input is fixed by its position (see :class:`LinearStage`), so it
    is set once, when the pass is built, and each stage reads a flag rather than strides.
    """
    transposed, below = False, None
    for stage in stages:
        if hasattr(stage, "transposed_input"):
            stage.transposed_input = transposed
        if isinstance(stage, LinearStage):
            stage.below, below, transposed = below, stage, True
    return transposed


def refresh_views(stages: list[Any], params: list[torch.Tensor], kept: list[int] | None) -> list[int]:
    """Have the Dense stages make their views again if any of the stages' ``params`` has another storage
    than in ``kept`` (their addresses when the views were made, which it returns): one pass over the
    parameters a step (11 us on selu_100's 202)."""
    storages = list(map(torch.Tensor.data_ptr, params))
    if storages != kept:
        for stage in stages:
            if isinstance(stage, LinearStage):
                stage.make_views()
    return storages


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
    lr: float | torch.Tensor = 0.0  # a 0-dim tensor in the compiled pass (trainwell.train.compiled)
    ones: torch.Tensor | None = None
    update: Any = None

    def matmul(self, param: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        """A gradient ``a @ b`` (a weight's)."""
        if self.folded:
            if isinstance(self.lr, torch.Tensor):  # the compiled pass's rate: an input of its graph
                param.sub_(a.mm(b).mul_(self.lr))
            else:
                param.addmm_(a, b, alpha=-self.lr)
        elif self.update is not None:
            self.update.apply(param, torch.mm(a, b, out=self.update.buffer(param)))
        elif param.grad is None:
            param.grad = a.mm(b)
        else:  # into the last step's buffer: a fresh megabyte per step costs more than the product
            torch.mm(a, b, out=param.grad)

    def row_sum(self, param: torch.Tensor, g_t: torch.Tensor) -> None:
        """A gradient ``g_t.sum(1)`` (a bias's, from the transposed output gradient); folded, one ``addmv_``
        with a vector of ones."""
        if self.update is not None:
            self.update.apply(param, torch.sum(g_t, 1, out=self.update.buffer(param)))
            return
        if not self.folded:
            if param.grad is None:
                param.grad = g_t.sum(1)
            else:
                torch.sum(g_t, 1, out=param.grad)
            return
        if isinstance(self.lr, torch.Tensor):  # the compiled pass's rate (its compiler fuses the sum and the update)
            param.sub_(g_t.sum(1).mul_(self.lr))
            return
        param.addmv_(g_t, self.ones, alpha=-self.lr)  # ones as long as the batch (FusedPass._batch_constants)

    def add(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        """A gradient computed whole (batch normalization's scale and shift)."""
        if self.folded and isinstance(self.lr, torch.Tensor):  # the compiled pass's rate
            param.sub_(grad * self.lr)
        elif self.folded:
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
