"""The compiled step: the fused pass run through ``torch.compile`` (inductor), opt-in.

Why it exists: on a deep narrow stack (100 SELU layers, batch 32) the fused pass still pays
one kernel launch and one dispatch per elementwise op; inductor fuses the elementwise ops
between the matrix products into a few generated kernels. Compiling costs seconds to
minutes, so it is opt-in (``Trainer(compile=True)``, ``[train] compile = true``,
``trainwell train --compile``) and pays only on runs long enough to repay it.

What is compiled, and what is not:

* only the fused pass (:class:`~trainwell.train.fused.FusedPass`, whatever its stages do),
  as one graph (``fullgraph``) for one batch shape (``dynamic=False``). The first step runs
  eagerly (it creates the pass's lazy buffers and the optimizer's state), the compiled pass
  runs from the second step on; a batch of another shape (the epoch's short last batch)
  runs eagerly, so no second graph is compiled for one step per epoch;
* the learning rate goes in as a 0-dim tensor, filled each step: a schedule changes it
  without a recompile;
* random masks (Dropout, AlphaDropout) are drawn by PyTorch's own kernels
  (inductor's ``fallback_random``), so a seed gives the masks of the eager pass;
* the checks that keep a step off the fused pass (hooks: ``FusedPass.obstacle``, callbacks
  that ask for autograd) run outside the compiled region, as before each step;
* a Trainer keeps its compiled pass from one fit to the next (``fit`` called again, or phases
  with the same optimizer), so a second fit compiles nothing;
* where the fused step does not apply, nothing is compiled: one warning says so, and the
  autograd step trains as without ``compile``.

Compiled code sits in inductor's on-disk cache (its FX graph cache: ``TORCHINDUCTOR_CACHE_DIR``,
by default ``/tmp/torchinductor_<user>``), so a second process training the same model
skips the C++ compilation and pays only the tracing. If compiling fails (no C++ compiler,
an inductor error, a pass that recompiles on every step), one warning says why and the
fit goes on with the eager pass. The results equal the eager pass's within float32
rounding (the fused rate enters as a tensor: ``W - (g.T @ x) * lr``, not ``addmm``'s alpha).
"""

from __future__ import annotations

import types
import warnings
from typing import Any

import torch

from trainwell.errors import ConfigError
from trainwell.train.fused import FusedPass

__all__ = ["CompiledPass", "check_compile", "compiled_pass", "warn_not_compiled"]

#: Graphs a compiled pass may build before it is given up as recompiling on every step.
MAX_GRAPHS = 2


def _pass_with_rate(fused: FusedPass, x: torch.Tensor, y: torch.Tensor, rate: torch.Tensor):
    return fused(x, y, rate)


class CompiledPass:
    """A :class:`FusedPass` whose calls run compiled; everything else is the pass's own (``obstacle``...)."""

    def __init__(self, fused: FusedPass):
        self.fused = fused
        for stage in fused.stages:  # kernels dynamo can trace (trainwell.train.fused_stages.direct_kernel)
            if hasattr(stage, "traceable"):
                stage.traceable()
        self.reason: str | None = None  # why it runs eagerly, once it does
        self._shape: tuple | None = None  # the batch shape it is compiled for
        self._compiled: Any = None
        self._graphs = 0
        self._rate = torch.zeros((), dtype=torch.float32, device=fused.params[0].device)

    @property
    def applies_update(self) -> bool:
        return self.fused.applies_update

    def obstacle(self) -> str | None:
        return self.fused.obstacle()

    def __getattr__(self, name: str) -> Any:  # the pass's stages, params, optimizer...
        if "fused" not in self.__dict__:  # a copy being made: no attribute yet
            raise AttributeError(name)
        return getattr(self.__dict__["fused"], name)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (x.shape, x.dtype, y.shape, y.dtype, x.device)
        if self.reason is not None or shape != self._shape:
            if self._shape is None and self.reason is None:  # the first step, eagerly: then compile for its shape
                self._shape, self._compiled = shape, _compile(_pass_with_rate)
            return self.fused(x, y)
        self._rate.fill_(self.fused.optimizer.param_groups[0]["lr"])
        graphs = _graph_count()
        try:
            result = self._compiled(self.fused, x, y, self._rate)
        except Exception as error:  # noqa: BLE001 - any compiler failure: say it once, train eagerly
            self._give_up(f"{type(error).__name__}: {_first_line(error)}")
            return self.fused(x, y)
        self._graphs += _graph_count() - graphs
        if self._graphs > MAX_GRAPHS:
            self._give_up(f"it recompiled {self._graphs} times (a value the pass reads as a Python number "
                          "changes from step to step)")
        return result

    def _give_up(self, reason: str) -> None:
        self.reason, self._compiled = reason, None
        warnings.warn(f"trainwell: compiling the fused step failed ({reason}); training with the eager fused step",
                      RuntimeWarning, stacklevel=2)


def compiled_pass(fused: FusedPass, kept: dict[str, Any]) -> CompiledPass:
    """``fused`` compiled; ``kept`` holds a Trainer's compiled pass across its fits, used again (not compiled
    again) where the next fit's pass is the same: the same modules, parameters, optimizer and stage settings.
    One that failed to compile stays eager (no second attempt, no second warning)."""
    signature = _signature(fused)
    if kept.get("signature") != signature:
        kept.update(signature=signature, **{"pass": CompiledPass(fused)})
    return kept["pass"]


def _signature(fused: FusedPass) -> tuple:
    """What a compiled pass depends on: the objects it reads and the plain settings of its stages."""
    settings = tuple((type(stage).__name__, tuple(sorted((key, value) for key, value in vars(stage).items()
                                                         if isinstance(value, (bool, int, float, str, type(None))))))
                     for stage in fused.stages)
    return (id(fused.optimizer), fused.applies_update, fused.params[0].device, tuple(map(id, fused.modules)),
            tuple(map(id, fused.params)), settings)


def _compile(function: Any) -> Any:
    """``function`` compiled with a code object of its own: dynamo's cache and recompile limit are per code
    object, so each fit's pass starts afresh instead of adding to (and, after a few fits, exceeding) one limit."""
    fresh = types.FunctionType(function.__code__.replace(), function.__globals__, function.__name__)
    return torch.compile(fresh, backend="inductor", dynamic=False, fullgraph=True, options={"fallback_random": True})


def _graph_count() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n", 1)[0].split())
    return text if len(text) <= 200 else text[:197] + "..."


def warn_not_compiled(reason: str, *, eager: str = "") -> None:
    """Say once that ``compile`` does nothing for this fit: it compiles the fused step, which does not apply
    (or, with ``eager`` naming what runs instead, which it does not cover: the Adam family's folded update,
    whose scalars would be a new graph each step)."""
    if eager:
        message = f"trainwell: compile does not cover this fit's fused step ({reason}); training with {eager}"
    else:
        message = (f"trainwell: compile applies to the fused step only, which this fit cannot take ({reason}); "
                   "training with the autograd step, not compiled")
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def check_compile(value: Any) -> bool:
    """The ``compile`` setting, refused unless it is True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"compile: expected true or false, got {value!r}")
    return value
