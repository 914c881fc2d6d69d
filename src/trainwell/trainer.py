"""The one training loop: ``Trainer(model, ...).fit(x, y, epochs=...)`` returns a History.

Arrays held in memory are moved to the device once and batched by index slicing, so
a step costs what the model costs and no more: no per-sample Dataset calls, no host
sync per step (loss and accuracy accumulate on the device and are read once per
epoch, or when a progress display asks).

One step: forward, loss, backward, clip, optimizer step, batch-end callbacks.
One epoch: the steps, then validation, then the record into History, then the
epoch-end callbacks, which may set ``stop_training``.
"""

from __future__ import annotations

import random
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from trainwell.callbacks import Callback, ProgressDisplay, overrides
from trainwell.errors import ConfigError
from trainwell.history import History
from trainwell.losses import Loss, get_loss, logits_model
from trainwell.optim import OptimizerFactory, clip_gradients, make_optimizer

ArrayLike = Any  # numpy array or torch tensor


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return default_device()
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device: {device!r} is not a device; allowed: auto, cpu, cuda, cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available; use 'auto' or 'cpu'")
    return resolved


METRICS = ("accuracy",)


class Trainer:
    """Fits any ``nn.Module`` on in-memory arrays.

    >>> from trainwell.layers import build_model, Dense
    >>> model = build_model([Dense(3, activation="softmax")], input_shape=(4,))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> history = Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0).fit(x, y, epochs=2, verbose=False)
    >>> len(history), sorted(history.last)
    (2, ['accuracy', 'epoch', 'loss', 'lr', 'time'])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss: str | Loss = "sparse_categorical_crossentropy",
        optimizer: str | Mapping[str, Any] | OptimizerFactory | torch.optim.Optimizer = "sgd",
        metrics: Sequence[str] = ("accuracy",),
        clipvalue: float | None = None,
        clipnorm: float | None = None,
        global_clipnorm: float | None = None,
        callbacks: Iterable[Callback] = (),
        device: str | torch.device | None = None,
        seed: int | None = None,
    ):
        for metric in metrics:
            if metric not in METRICS:
                raise ConfigError(f"metrics: unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        for key, value in (("clipvalue", clipvalue), ("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ConfigError(f"{key}: must be a positive number, got {value!r}")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.loss = get_loss(loss)
        self.metrics = tuple(metrics)
        self.clipping = {"clipvalue": clipvalue, "clipnorm": clipnorm, "global_clipnorm": global_clipnorm}
        self.clip = any(v is not None for v in self.clipping.values())
        self.callbacks = list(callbacks)
        self.seed = seed
        self.optimizer = make_optimizer(optimizer, self.model.parameters())
        self.forward_logits = logits_model(self.model, self.loss)
        self.history = History()
        # State that callbacks read during fit.
        self.epoch = 0
        self.epochs = 0
        self.step = 0
        self.step_in_epoch = 0
        self.steps_per_epoch = 0
        self.stop_training = False
        self._loss_sum: torch.Tensor | None = None
        self._samples = 0

    # ----------------------------------------------------------------- data
    def _inputs(self, x: ArrayLike) -> torch.Tensor:
        tensor = torch.as_tensor(x)
        if not tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        return tensor.to(self.device)

    def _targets(self, y: ArrayLike) -> torch.Tensor:
        return self.loss.prepare_targets(torch.as_tensor(y)).to(self.device)

    def _check_pair(self, x: torch.Tensor, y: torch.Tensor, what: str) -> None:
        if len(x) != len(y):
            raise ConfigError(f"{what}: {len(x)} inputs but {len(y)} targets")
        if len(x) == 0:
            raise ConfigError(f"{what}: no samples")

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        shuffle: bool = True,
        verbose: bool = True,
        eval_batch_size: int = 1024,
    ) -> History:
        """Train for ``epochs`` epochs and return the History (also ``self.history``)."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs: must be a positive integer, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: must be a positive integer, got {batch_size!r}")
        x_train, y_train = self._inputs(x), self._targets(y)
        self._check_pair(x_train, y_train, "training data")
        validation = None
        if validation_data is not None:
            validation = (self._inputs(validation_data[0]), self._targets(validation_data[1]))
            self._check_pair(*validation, "validation data")
        if self.seed is not None:
            torch.manual_seed(self.seed)
        order = torch.Generator().manual_seed(self.seed if self.seed is not None else int(torch.seed() % 2**63))

        callbacks = list(self.callbacks)
        if verbose and not any(isinstance(c, ProgressDisplay) for c in callbacks):
            callbacks.append(ProgressDisplay())
        batch_begin = [c for c in callbacks if overrides(c, "on_batch_begin")]
        batch_end = [c for c in callbacks if overrides(c, "on_batch_end")]

        n = len(x_train)
        self.epochs = len(self.history) + epochs
        self.steps_per_epoch = (n + batch_size - 1) // batch_size
        self.stop_training = False
        params = [p for p in self.model.parameters() if p.requires_grad]
        for callback in callbacks:
            callback.on_fit_begin(self)
        for _ in range(epochs):
            self.epoch = len(self.history) + 1
            for callback in callbacks:
                callback.on_epoch_begin(self, self.epoch)
            started = time.perf_counter()
            indices = torch.randperm(n, generator=order) if shuffle else torch.arange(n)
            indices = indices.to(self.device)
            self.model.train()
            self._loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device, dtype=torch.long)
            self._samples = 0
            for start in range(0, n, batch_size):
                self.step_in_epoch = start // batch_size
                for callback in batch_begin:
                    callback.on_batch_begin(self, self.step)
                batch = indices[start:start + batch_size]
                xb, yb = x_train.index_select(0, batch), y_train.index_select(0, batch)
                logits = self.forward_logits(xb)
                loss = self.loss(logits, yb)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.clip:
                    clip_gradients(params, **self.clipping)
                self.optimizer.step()
                with torch.no_grad():
                    self._loss_sum += loss.detach() * len(batch)
                    correct += self.loss.correct(logits, yb)
                self._samples += len(batch)
                self.step += 1
                self.step_in_epoch += 1
                for callback in batch_end:
                    callback.on_batch_end(self, self.step)
                if self.stop_training:
                    break
            logs: dict[str, Any] = {"epoch": self.epoch, "loss": self.running_loss()}
            if "accuracy" in self.metrics:
                logs["accuracy"] = correct.item() / max(self._samples, 1)
            if validation is not None:
                results = self._evaluate_tensors(*validation, batch_size=eval_batch_size)
                logs.update({f"val_{key}": value for key, value in results.items()})
            logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
            logs["time"] = time.perf_counter() - started
            self.history.append(logs)
            for callback in callbacks:
                callback.on_epoch_end(self, self.epoch, logs)
            if self.stop_training:
                break
        for callback in callbacks:
            callback.on_fit_end(self)
        return self.history

    def running_loss(self) -> float:
        """Mean training loss of the current epoch so far (reads the device once)."""
        if self._loss_sum is None or self._samples == 0:
            return float("nan")
        return self._loss_sum.item() / self._samples

    # ------------------------------------------------------------ evaluate
    @torch.no_grad()
    def _logits(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            return torch.cat([self.forward_logits(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        finally:
            self.model.train(was_training)

    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> dict[str, float]:
        logits = self._logits(x, batch_size)
        results = {"loss": float(self.loss(logits, y))}
        if "accuracy" in self.metrics:
            results["accuracy"] = self.loss.correct(logits, y).item() / len(y)
        return results

    def evaluate(self, x: ArrayLike, y: ArrayLike, *, batch_size: int = 1024) -> dict[str, float]:
        """Loss and metrics on ``(x, y)`` with the model in evaluation mode."""
        x, y = self._inputs(x), self._targets(y)
        self._check_pair(x, y, "evaluation data")
        return self._evaluate_tensors(x, y, batch_size=batch_size)

    def predict(self, x: ArrayLike, *, batch_size: int = 1024) -> torch.Tensor:
        """Class probabilities (softmax, or sigmoid for a binary loss), on the CPU."""
        return self.loss.probabilities(self._logits(self._inputs(x), batch_size)).cpu()

    def predict_classes(self, x: ArrayLike, *, batch_size: int = 1024) -> torch.Tensor:
        """The predicted class of each input, on the CPU."""
        return self.loss.predicted_classes(self._logits(self._inputs(x), batch_size)).cpu()
