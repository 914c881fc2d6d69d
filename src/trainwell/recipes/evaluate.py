"""Evaluating, predicting with and inspecting saved models (``trainwell evaluate``, ``predict``, ``summary``)."""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell import data as datasets
from trainwell.config import CONFIG_SUFFIXES, load_config
from trainwell.errors import ConfigError, DataError, ModelFileError, shown
from trainwell.data.files import input_shape_of
from trainwell.recipes.build import build_from_config, select_split
from trainwell.recipes.file_data import FileInputs, inputs_from_files
from trainwell.fileio import atomic_write_text, finish_pending_sets
from trainwell.model.layers import Model
from trainwell.metrics import check_metrics
from trainwell.model.losses import LOSSES, get_loss
from trainwell.data.preprocessing import Preprocessing
from trainwell.uncertainty import DROPOUT_TYPES, MAX_MC_SAMPLES, MCPrediction, entropy, mc_predict
from trainwell.model.saving import ModelFile, load_model_file
from trainwell.checks import check_seed, is_integer
from trainwell.train.trainer import Trainer
from trainwell.figures import check_figure_path
from trainwell.uncertainty import calibration_report, reliability_diagram

SPLITS = ("test", "validation", "train")


def evaluate_model_file(path: str | os.PathLike, *, data: str | None = None, split: str = "test",
                        data_path: str | None = None, device: str | None = None,
                        input: str | os.PathLike | None = None) -> dict[str, Any]:
    """Loss and accuracy of a saved model on a split, prepared as at training time; with ``input``, on those
    files instead (a CSV with the target column, an .npz with ``y``, an image folder of class folders)."""
    if input is not None:
        loaded, inputs = _model_and_inputs(path, input, data=data, split=split)
        if inputs.y is None:
            raise DataError(f"{input}: holds no targets to evaluate against (a target column, y in an .npz, class "
                            "folders); trainwell predict --input writes its predictions")
        trainer = Trainer(loaded.model, loss=recorded_loss(path, loaded), metrics=recorded_metrics(path, loaded),
                          optimizer="sgd", device=device)
        return {"samples": float(len(inputs.y)), **trainer.evaluate(inputs.x, inputs.y)}
    loaded, x, y = _model_and_split(path, data=data, split=split, data_path=data_path)
    trainer = Trainer(loaded.model, loss=recorded_loss(path, loaded), metrics=recorded_metrics(path, loaded),
                      optimizer="sgd", device=device)
    return {"samples": float(len(y)), **trainer.evaluate(x, y)}


def _model_and_inputs(path: str | os.PathLike, input: str | os.PathLike, *, data: str | None,
                      split: str) -> tuple[ModelFile, FileInputs]:
    """A saved model and the files at ``input``, prepared as its training data were."""
    if data is not None or split != "test":
        raise ConfigError(f"--input: reads the files {str(input)!r}; leave out --data and --split, which choose a "
                          "split of a registered dataset")
    finish_pending_sets(Path(path).parent)
    loaded = load_model_file(path)
    data_info = recorded_data(path, loaded)
    prep = Preprocessing.from_info(data_info, loaded.extra, where=str(path), input_shape=loaded.model.spec.input_shape)
    registered = None
    if data_info.get("format") is None:  # trained on a registered dataset: its images, by its class names
        if data_info.get("dataset") is None:
            raise ModelFileError(f"{path}: the model file records neither its dataset nor its files' format")
        registered = datasets.get_spec(data_info["dataset"]).class_names
    inputs = inputs_from_files(path, data_info, input, input_shape=loaded.model.spec.input_shape, prep=prep,
                               registered_names=registered)
    return loaded, inputs


def _model_and_split(path: str | os.PathLike, *, data: str | None, split: str,
                     data_path: str | None) -> tuple[ModelFile, np.ndarray, np.ndarray]:
    """A saved model and one split of its dataset, preprocessed as at training time."""
    if split not in SPLITS:
        raise ConfigError(f"--split: {split!r} is not a split; allowed: {', '.join(SPLITS)}")
    finish_pending_sets(Path(path).parent)  # a run killed while moving its files in: read the complete new set
    loaded = load_model_file(path)
    data_info = recorded_data(path, loaded)
    if data is None and data_info.get("format") is not None:
        raise ConfigError(f"{path}: the model was trained on files ({data_info['format']}); pass --input FILE "
                          "(or FOLDER) to evaluate or predict on files like them")
    name = data or data_info.get("dataset")
    if name is None:
        raise ConfigError(f"{path}: the model file does not say which dataset it was trained on; pass --data NAME")
    prep = Preprocessing.from_info(data_info, loaded.extra, where=str(path), input_shape=loaded.model.spec.input_shape)
    trained_on = data_info.get("dataset")
    if trained_on is not None:
        try:
            datasets.get_spec(trained_on)
        except DataError as error:
            raise ModelFileError(f"{path}: the model file's dataset: {error}") from None
    dataset = datasets.load(name, path=data_path)
    if trained_on is not None and datasets.get_spec(trained_on).name != dataset.name:
        trained = datasets.get_spec(trained_on)
        warnings.warn(f"the model was trained on {trained.title} ({trained.name!r}) and is evaluated on "
                      f"{datasets.get_spec(dataset.name).title} ({dataset.name!r}), data it was not trained on",
                      UserWarning, stacklevel=3)
    if data_info["validation_size"] >= len(dataset.x_train):
        raise ModelFileError(f"{path}: the model file's validation_size {data_info['validation_size']} leaves no "
                             f"training images ({dataset.name} has {len(dataset.x_train)})")
    classes = data_info["classes"]
    if classes is not None and not set(classes) <= set(np.unique(dataset.y_train).tolist()):
        raise ModelFileError(f"{path}: the model file's classes {shown(classes)} are not all classes of "
                             f"{dataset.name} (allowed: {sorted(np.unique(dataset.y_train).tolist())})")
    x, y = select_split(dataset, validation_size=data_info["validation_size"], classes=classes, split=split)
    expected = loaded.model.spec.input_shape
    if tuple(x.shape[1:]) != tuple(expected):
        raise ConfigError(f"--data {name}: images of shape {tuple(x.shape[1:])} do not fit the model, "
                          f"which expects {tuple(expected)}")
    return loaded, prep(x), np.asarray(y, dtype=np.int64)


def recorded_loss(path: str | os.PathLike, loaded: ModelFile) -> str:
    """The loss a model file says it was trained with (``info["loss"]``): required, no default."""
    if "loss" not in loaded.info:
        raise ModelFileError(f"{path}: the model file does not record its loss ('loss' in its info); "
                             "files written by trainwell train and its checkpoints do")
    loss = loaded.info["loss"]
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ModelFileError(f"{path}: the model file's loss {shown(loss)} is not a known loss; "
                             f"allowed: {', '.join(LOSSES)}")
    return loss


def recorded_metrics(path: str | os.PathLike, loaded: ModelFile) -> list[str] | None:
    """The metrics a model file says its run reported (``info["metrics"]``), so that ``evaluate`` reports
    them too; None (the loss's defaults) for a file written before models recorded them."""
    if "metrics" not in loaded.info:
        return None
    metrics = loaded.info["metrics"]
    try:
        return list(check_metrics(metrics, get_loss(recorded_loss(path, loaded))))
    except ConfigError as error:
        raise ModelFileError(f"{path}: the model file's {error}") from None


def recorded_data(path: str | os.PathLike, loaded: ModelFile) -> dict[str, Any]:
    """The data entry of a model file's info (dataset, validation split, classes, preparation), checked.

    Every key that changes which images are scored or how they are prepared is required
    and has no default: a guess would give wrong numbers with exit 0.
    """
    data = loaded.info.get("data")
    if data is None:
        raise ModelFileError(f"{path}: the model file does not record how its data was prepared ('data' in its "
                             "info); files written by trainwell train and its checkpoints do")
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: the model file's 'data' must be a JSON object, got {shown(data)}")
    for key in ("validation_size", "classes"):
        if key not in data:
            raise ModelFileError(f"{path}: the model file's data preparation has no {key!r}")
    dataset, size, classes = data.get("dataset"), data["validation_size"], data["classes"]
    if dataset is not None and not isinstance(dataset, str):
        raise ModelFileError(f"{path}: the model file's dataset must be a name, got {shown(dataset)}")
    if not is_integer(size) or size < 0:
        raise ModelFileError(f"{path}: the model file's validation_size must be an integer >= 0, got {shown(size)}")
    if classes is not None and (not isinstance(classes, list) or not classes or any(
            not is_integer(c) for c in classes) or len(set(classes)) != len(classes)):
        raise ModelFileError(f"{path}: the model file's classes must be null or a list of distinct class labels, "
                             f"got {shown(classes)}")
    return data


@dataclass
class Predictions:
    """Per-instance predictions of a saved model on a split: deterministic, and MC dropout if asked."""

    labels: np.ndarray | None                        # None: new data without targets
    probabilities: torch.Tensor                      # deterministic (every layer in evaluation mode)
    mc: MCPrediction | None = None                   # mean, std and entropy over the MC samples
    samples: int = 0
    class_names: tuple[str, ...] | None = None       # files (--input): the columns are named by class
    ids: list[str] | None = None                     # files (--input): each example's file name (None: its index)
    regression: bool = False                         # files (--input): values, not class probabilities

    def reports(self) -> dict[str, dict[str, float]]:
        """Accuracy, NLL, Brier score and ECE, deterministic and (if sampled) MC, side by side."""
        reports = {"deterministic": calibration_report(self.probabilities, self.labels)}
        if self.mc is not None:
            reports[f"mc_dropout({self.samples})"] = calibration_report(self.mc.mean, self.labels)
        return reports

    def to_csv(self, path: str | os.PathLike) -> Path:
        """One row per instance: label, prediction, probabilities (and their MC std), entropy. Atomic."""
        if self.class_names is not None or self.regression:
            return self._files_csv(path)
        probabilities = self.mc.mean if self.mc is not None else self.probabilities
        classes = probabilities.shape[1]
        header = ["index", "label", "predicted", *(f"p{k}" for k in range(classes))]
        columns = [np.arange(len(self.labels)), self.labels, probabilities.argmax(dim=1).numpy()]
        columns += [probabilities[:, k].numpy() for k in range(classes)]
        if self.mc is not None:
            header += [f"std{k}" for k in range(classes)]
            columns += [self.mc.std[:, k].numpy() for k in range(classes)]
        header.append("entropy")
        columns.append((self.mc.entropy if self.mc is not None else entropy(self.probabilities)).numpy())
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for row in zip(*columns):
            writer.writerow([int(v) if i < 3 else f"{float(v):.6g}" for i, v in enumerate(row)])
        atomic_write_text(path, buffer.getvalue())
        return Path(path)

    def predicted_names(self) -> list[str]:
        """Each instance's predicted class name (files with class names)."""
        probabilities = self.mc.mean if self.mc is not None else self.probabilities
        return [self.class_names[k] for k in probabilities.argmax(dim=1).tolist()]

    def _files_csv(self, path: str | os.PathLike) -> Path:
        """Predictions on files: ``file`` (or ``index``), ``label`` where known, then the predicted class name
        and a ``p_<class>`` probability per class; for regression, the ``prediction`` (one column per output)."""
        values = self.mc.mean if self.mc is not None else self.probabilities
        ids = self.ids if self.ids is not None else [str(i) for i in range(len(values))]
        header = ["file" if self.ids is not None else "index"]
        columns: list[list[str]] = [list(ids)]
        if self.regression:
            width = values.shape[1]
            if self.labels is not None:
                header += ["target"] if width == 1 else [f"target_{k}" for k in range(width)]
                columns += [[f"{float(v):.6g}" for v in self.labels[:, k]] for k in range(width)]
            header += ["prediction"] if width == 1 else [f"prediction_{k}" for k in range(width)]
            columns += [[f"{float(v):.6g}" for v in values[:, k].tolist()] for k in range(width)]
        else:
            if self.labels is not None:
                header.append("label")
                columns.append([self.class_names[k] for k in self.labels.tolist()])
            header.append("predicted")
            columns.append(self.predicted_names())
            header += [f"p_{name}" for name in self.class_names]
            columns += [[f"{float(v):.6g}" for v in values[:, k].tolist()] for k in range(len(self.class_names))]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(zip(*columns))
        atomic_write_text(path, buffer.getvalue())
        return Path(path)

    def reliability_diagram(self, path: str | os.PathLike) -> Path:
        """The deterministic and MC reliability diagrams side by side (PNG, JPEG, PDF, SVG or EPS, by suffix)."""
        panels = {"deterministic": self.probabilities}
        if self.mc is not None:
            panels[f"MC dropout ({self.samples} samples)"] = self.mc.mean
        return reliability_diagram(panels, self.labels, path)


def predict_model_file(path: str | os.PathLike, *, data: str | None = None, split: str = "test",
                       mc: int = 0, seed: int | None = 0, data_path: str | None = None,
                       device: str | None = None, input: str | os.PathLike | None = None) -> Predictions:
    """A saved model's probabilities on a split; with ``mc=N``, also N MC dropout samples per instance.

    With ``input`` (a file or folder like those the model was trained on: a CSV, an .npz, an image
    folder...), its predictions for those files, prepared as at training time, named by class."""
    if not is_integer(mc) or not 0 <= mc <= MAX_MC_SAMPLES:
        shown = mc if not isinstance(mc, int) or abs(mc) < 10**30 else f"a {len(str(abs(mc)))}-digit integer"
        raise ConfigError(f"--mc: must be a number of samples from 0 to {MAX_MC_SAMPLES:,} (0: no MC dropout), "
                          f"got {shown!r}")
    if seed is not None:
        check_seed(seed, what="--seed")
    names, ids, regression = None, None, False
    if input is not None:
        loaded, inputs = _model_and_inputs(path, input, data=data, split=split)
        x, y, ids, names = inputs.x, inputs.y, inputs.ids, inputs.class_names
        regression = names is None
    else:
        loaded, x, y = _model_and_split(path, data=data, split=split, data_path=data_path)
    trainer = Trainer(loaded.model, loss=recorded_loss(path, loaded), optimizer="sgd", device=device)
    probabilities = trainer.predict(x)
    if regression:
        return Predictions(labels=y, probabilities=probabilities, ids=ids, regression=True)
    if probabilities.shape[1] == 1:  # one sigmoid unit: the two classes' probabilities
        probabilities = torch.cat([1 - probabilities, probabilities], dim=1)
    if mc and not any(isinstance(module, DROPOUT_TYPES) for module in trainer.model.modules()):
        warnings.warn(f"MC dropout ({mc} samples) needs Dropout or AlphaDropout layers, and this model has none: "
                      "its MC predictions equal the deterministic ones", UserWarning, stacklevel=2)
    sampled = mc_predict(trainer.model, x, samples=mc, seed=seed) if mc else None
    return Predictions(labels=y, probabilities=probabilities, mc=sampled, samples=mc, class_names=names, ids=ids)


def check_prediction_outputs(*, csv_path: str | os.PathLike | None = None,
                             reliability: str | os.PathLike | None = None) -> None:
    """Refuse output paths that cannot be written, before any prediction is computed."""
    if csv_path is not None:
        check_output_file(csv_path, option="--csv")
    if reliability is not None:
        check_output_file(reliability, option="--reliability")
        check_figure_path(reliability, what="--reliability")


def check_output_file(path: str | os.PathLike, *, option: str) -> None:
    """A ConfigError naming ``option`` if ``path`` cannot become a file: a folder is there, or a
    file stands where a folder on the way must be. Missing folders are fine (writes make them)."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{option}: {str(target)!r} is a folder; give a file name in it")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option}: cannot write {str(target)!r}: {str(parent)!r} is a file, not a folder")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write {str(target)!r}: no permission to write in {str(parent)!r}")


def model_for_summary(source: str | os.PathLike) -> Model:
    """The model a config file describes, or the one a model file holds.

    A config's input shape, unless it gives one, is its dataset's, which the registry
    knows without the files: a summary needs no data on the machine. A config of files
    reads the shape from them cheaply (a table's header, an array's header, the first image).
    """
    file = Path(source)
    if file.suffix.lower() in CONFIG_SUFFIXES:
        config = load_config(file)
        section = config.data
        if section.format is not None:
            shape = tuple(config.model.input_shape or ()) or input_shape_of(
                section.format, section.path, target=section.target, features=section.features,
                image_size=section.image_size, color_mode=section.color_mode)
            return build_from_config(config, shape)
        return build_from_config(config, datasets.get_spec(config.data.name).image_shape)
    return load_model_file(file).model
