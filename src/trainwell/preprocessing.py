"""How raw pixels become model inputs, kept with the model so evaluation matches training.

``unit`` divides by the dataset's largest pixel value (255 for Fashion-MNIST, as the
chapter does); ``standardize`` subtracts the per-pixel mean and divides by the
per-pixel std of the *training* images (the chapter's "scaled" inputs); ``none``
passes values through as float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from trainwell.errors import ModelFileError

SCALINGS = ("unit", "standardize", "none")


@dataclass(frozen=True)
class Preprocessing:
    scaling: str
    pixel_max: float = 255.0
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, scaling: str, x_train: np.ndarray, *, pixel_max: float) -> "Preprocessing":
        """Fit on the training images only (the validation and test sets must not leak in)."""
        if scaling != "standardize":
            return cls(scaling, float(pixel_max))
        x = np.asarray(x_train, dtype=np.float64) / pixel_max
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        # Pixels that never change (std 0, e.g. image borders) are centred but not scaled,
        # so they stay 0 instead of becoming nan.
        std = np.where(std > 0, std, 1.0)
        return cls(scaling, float(pixel_max), mean.astype(np.float32), std.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.scaling == "none":
            return x
        x = x / np.float32(self.pixel_max)
        if self.scaling == "standardize":
            x = (x - self.mean) / self.std
        return x.astype(np.float32, copy=False)

    def to_info(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON metadata and tensors for a model file."""
        tensors = {}
        if self.mean is not None and self.std is not None:
            tensors = {"preprocessing.mean": torch.from_numpy(self.mean), "preprocessing.std": torch.from_numpy(self.std)}
        return {"scaling": self.scaling, "pixel_max": self.pixel_max}, tensors

    @classmethod
    def from_info(cls, info: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> "Preprocessing":
        scaling = info.get("scaling", "none")
        if scaling not in SCALINGS:
            raise ModelFileError(f"unknown preprocessing {scaling!r} in the model file; allowed: {', '.join(SCALINGS)}")
        if scaling != "standardize":
            return cls(scaling, float(info.get("pixel_max", 255.0)))
        try:
            mean = tensors["preprocessing.mean"].numpy()
            std = tensors["preprocessing.std"].numpy()
        except KeyError:
            raise ModelFileError("the model file says its inputs are standardized but holds no mean/std") from None
        return cls(scaling, float(info.get("pixel_max", 255.0)), mean, std)
