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

from trainwell.data.splits import Standardizer, scale_unit
from trainwell.errors import ModelFileError

SCALINGS = ("unit", "standardize", "none")


@dataclass(frozen=True)
class Preprocessing:
    scaling: str
    pixel_max: float = 255.0
    standardizer: Standardizer | None = None

    @classmethod
    def fit(cls, scaling: str, x_train: np.ndarray, *, pixel_max: float) -> "Preprocessing":
        """Fit on the training images only (the validation and test sets must not leak in)."""
        if scaling != "standardize":
            return cls(scaling, float(pixel_max))
        return cls(scaling, float(pixel_max), Standardizer.fit(scale_unit(x_train, pixel_max)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.scaling == "none":
            return np.asarray(x, dtype=np.float32)
        x = scale_unit(x, self.pixel_max)
        return self.standardizer.transform(x) if self.standardizer is not None else x

    def to_info(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON metadata and tensors for a model file."""
        tensors = {}
        if self.standardizer is not None:
            tensors = {"preprocessing.mean": torch.from_numpy(self.standardizer.mean),
                       "preprocessing.std": torch.from_numpy(self.standardizer.std)}
        return {"scaling": self.scaling, "pixel_max": self.pixel_max}, tensors

    @classmethod
    def from_info(cls, info: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> "Preprocessing":
        scaling = info.get("scaling", "none")
        if scaling not in SCALINGS:
            raise ModelFileError(f"unknown preprocessing {scaling!r} in the model file; allowed: {', '.join(SCALINGS)}")
        pixel_max = float(info.get("pixel_max", 255.0))
        if scaling != "standardize":
            return cls(scaling, pixel_max)
        try:
            standardizer = Standardizer(tensors["preprocessing.mean"].numpy(), tensors["preprocessing.std"].numpy())
        except KeyError:
            raise ModelFileError("the model file says its inputs are standardized but holds no mean/std") from None
        return cls(scaling, pixel_max, standardizer)
