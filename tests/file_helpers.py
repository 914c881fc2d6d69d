"""Writers of the user's own data files for the tests: tables from scikit-learn's bundled datasets, image
folders of PNGs, npz/npy archives. Tests import them as ``from file_helpers import ...``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sklearn_table(name: str = "wine", *, seed: int = 0):
    """``(features, x, names)`` of a bundled dataset in a shuffled order, its labels as names ("class_0"...)."""
    from sklearn import datasets

    bunch = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[name]()
    order = np.random.default_rng(seed).permutation(len(bunch.target))
    features = [f.replace("/", "_").replace(" ", "_") for f in bunch.feature_names]
    labels = np.array([f"class_{k}" for k in bunch.target])
    return features, bunch.data[order], labels[order]


def table_files(folder: Path, name: str = "wine", *, held_out: int = 40) -> dict[str, Path]:
    """``train.csv`` (with a ``label`` column), ``test.csv`` (the held-out rows, labelled) and ``new.csv``
    (the same rows without labels) of a bundled dataset; returns their paths and ``labels`` of the new rows."""
    features, x, labels = sklearn_table(name)
    header = [*features, "label"]
    rows = [[*map(float, row), label] for row, label in zip(x, labels)]
    folder.mkdir(parents=True, exist_ok=True)
    return {"train": write_csv(folder / "train.csv", header, rows[:-held_out]),
            "test": write_csv(folder / "test.csv", header, rows[-held_out:]),
            "new": write_csv(folder / "new.csv", features, [row[:-1] for row in rows[-held_out:]]),
            "labels": list(labels[-held_out:])}


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def image_folder(folder: Path, x: np.ndarray, y: np.ndarray, names: list[str]) -> Path:
    """``folder/<class name>/<i>.png`` for each image."""
    for i, (image, label) in enumerate(zip(x, y)):
        write_png(folder / names[int(label)] / f"{i:04d}.png", image)
    return folder


def mnist_parts(train: int = 600, held_out: int = 100):
    """The first ``train`` MNIST training images and ``held_out`` of its test images (needs TRAINWELL_DATA)."""
    from trainwell.data import load

    mnist = load("mnist")
    return (mnist.x_train[:train], mnist.y_train[:train]), (mnist.x_test[:held_out], mnist.y_test[:held_out])


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
