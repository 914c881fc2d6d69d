"""How raw pixels become model inputs, kept with the model so evaluation matches training.

``unit`` divides by the dataset's largest pixel value (255 for Fashion-MNIST, as the
chapter does); ``standardize`` subtracts the per-pixel mean and divides by the
per-pixel std of the *training* images (the chapter's "scaled" inputs); ``none``
passes values through as float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from trainwell.checks import check_number
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
    def from_info(cls, info: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *,
                  where: str = "the model file", input_shape: tuple[int, ...] | None = None) -> "Preprocessing":
        """The preparation a model file records (``info`` is its ``data`` entry), checked: no key has a
        default, since a guessed preparation gives wrong numbers without an error. ``where`` names the file."""
        if not isinstance(info, Mapping):
            raise ModelFileError(f"{where}: the data preparation must be a JSON object, got {type(info).__name__}")
        for key in ("scaling", "pixel_max"):
            if key not in info:
                raise ModelFileError(f"{where}: the model file does not record its data preparation's {key!r}")
        scaling, pixel_max = info["scaling"], info["pixel_max"]
        if not isinstance(scaling, str) or scaling not in SCALINGS:
            raise ModelFileError(f"{where}: unknown preprocessing {scaling!r} in the model file; "
                                 f"allowed: {', '.join(SCALINGS)}")
        check_number(pixel_max, f"{where}: the model file's pixel_max must be a positive finite number", above=0,
                     below=math.inf, error=ModelFileError)
        if scaling != "standardize":
            return cls(scaling, float(pixel_max))
        stats = {}
        for key in ("preprocessing.mean", "preprocessing.std"):
            tensor = tensors.get(key)
            if tensor is None:
                raise ModelFileError(f"{where}: the model file says its inputs are standardized but holds no "
                                     f"{key.split('.')[1]} tensor ({key!r})")
            if tensor.dtype != torch.float32 or (input_shape is not None and tuple(tensor.shape) != tuple(input_shape)):
                raise ModelFileError(f"{where}: the model file's {key!r} is {str(tensor.dtype).removeprefix('torch.')} "
                                     f"of shape {tuple(tensor.shape)}; the model needs float32 of shape "
                                     f"{tuple(input_shape) if input_shape is not None else 'its input shape'}")
            if not bool(torch.isfinite(tensor).all()) or (key.endswith("std") and not bool((tensor > 0).all())):
                raise ModelFileError(f"{where}: the model file's {key!r} holds values that are not finite"
                                     + (" or not positive" if key.endswith("std") else ""))
            stats[key] = tensor.numpy()
        return cls(scaling, float(pixel_max), Standardizer(stats["preprocessing.mean"], stats["preprocessing.std"]))
