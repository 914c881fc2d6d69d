"""Checkpoint: model files written while a fit runs (periodic, best, final), so a long run can be rolled back."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from trainwell.callbacks.base import Callback, Monitor, monitored
from trainwell.checks import check_bool, check_integer

if TYPE_CHECKING:  # pragma: no cover
    from trainwell.train.trainer import Trainer


def checkpoint_name(epoch: int) -> str:
    """``checkpoint-epoch007.safetensors``: names that sort in epoch order."""
    return f"checkpoint-epoch{epoch:03d}.safetensors"


class Checkpoint(Callback):
    """Save the model while it trains, so a long run can be resumed or rolled back.

    * every ``every`` epochs, ``checkpoint-epoch{N:03d}.safetensors``, keeping the last
      ``keep`` of them (all when None); ``every=0`` turns these off;
    * with ``save_best``, ``best.safetensors`` whenever ``monitor`` improves
      (``every=0, save_best=True`` is Keras' ``save_best_only``);
    * with ``save_final``, ``final.safetensors`` when fit ends.

    Files are trainwell model files (``save_model``; ``save_weights`` for a module not
    built from specs), written atomically, with ``info`` and ``extra`` (the data
    preparation) and the epoch, so ``trainwell evaluate`` reads them. Weights that are
    not finite are never written, so ``last_saved`` is always a good state.

    Under torchrun rank 0 alone runs it (``rank_zero_only``): it only writes, and the weights
    it saves are every rank's (data-parallel ranks hold the same weights). Going back to the
    best weights at the fit's end is EarlyStopping's ``restore_best_weights``, which runs on every rank.
    """

    rank_zero_only = True  # it writes files

    def __init__(self, directory: str | os.PathLike, *, every: int = 1, keep: int | None = None,
                 save_best: bool = False, monitor: str = "val_loss", mode: str = "min", min_delta: float = 0.0,
                 save_final: bool = True, info: dict[str, Any] | None = None,
                 extra: dict[str, torch.Tensor] | None = None):
        from pathlib import Path

        self.directory = Path(directory)
        self.every = check_integer(every, "checkpoint.every: must be an integer >= 0", minimum=0)
        self.keep = None if keep is None else check_integer(keep, "checkpoint.keep: must be an integer >= 1", minimum=1)
        for key, value in (("save_best", save_best), ("save_final", save_final)):
            check_bool(value, f"checkpoint.{key}: must be true or false")
        self.save_best, self.save_final = save_best, save_final
        self.watch = Monitor(monitor, mode=mode, min_delta=min_delta)
        self.info, self.extra = dict(info or {}), dict(extra or {})
        self._reset()

    def on_fit_begin(self, trainer: "Trainer") -> None:
        self._reset()

    def _reset(self) -> None:
        self.watch.reset()
        self.written: list = []  # this fit's periodic files, oldest first (only these are ever deleted)
        self.last_saved = None
        self.best_path = None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.watch.best, "written": [str(p) for p in self.written],
                "last_saved": None if self.last_saved is None else str(self.last_saved),
                "best_path": None if self.best_path is None else str(self.best_path)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from pathlib import Path

        self.watch.best = state["best"]
        self.written = [Path(p) for p in state["written"]]
        self.last_saved = None if state["last_saved"] is None else Path(state["last_saved"])
        self.best_path = None if state["best_path"] is None else Path(state["best_path"])

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self.save_best and self.watch.update(monitored(self.watch, logs, "checkpoint")):
            self.best_path = self._save(trainer, "best.safetensors", epoch) or self.best_path
        if self.every and epoch % self.every == 0:
            path = self._save(trainer, checkpoint_name(epoch), epoch)
            if path is not None:
                if path in self.written:
                    self.written.remove(path)
                self.written.append(path)
                while self.keep is not None and len(self.written) > self.keep:
                    self.written.pop(0).unlink(missing_ok=True)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.save_final:
            self._save(trainer, "final.safetensors", trainer.epoch)

    def _save(self, trainer: "Trainer", name: str, epoch: int):
        from trainwell.model.layers import ModelSpec
        from trainwell.model.saving import save_model, save_weights

        model = trainer.model
        state = [t for t in model.state_dict().values() if t.is_floating_point()]
        if state and not bool(torch.stack([torch.isfinite(t).all() for t in state]).all()):
            return None
        path = self.directory / name
        if isinstance(getattr(model, "spec", None), ModelSpec):
            save_model(model, path, info={**self.info, "epoch": epoch}, extra=self.extra)
        else:
            save_weights(model, path)
        self.last_saved = path
        return path
