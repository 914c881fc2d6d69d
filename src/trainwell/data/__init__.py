"""Datasets for trainwell: find, download, read, check and split them.

The modules, one concept each:

* :mod:`~trainwell.data.registry` -- which datasets exist (files, checksums, mirrors, classes);
* :mod:`~trainwell.data.locations` -- where their files are looked for, in order;
* :mod:`~trainwell.data.download` -- fetching a file safely (retries, mirrors, checksum, atomic);
* :mod:`~trainwell.data.idx` -- the IDX file format of MNIST and Fashion-MNIST;
* :mod:`~trainwell.data.datasets` -- :func:`load` and :func:`verify`, tying the above together;
* :mod:`~trainwell.data.splits` -- validation split, standardization, class filters.
* :mod:`~trainwell.data.pairs` -- pairs of images, same class or not (for a siamese network);
* :mod:`~trainwell.data.preprocessing` -- the data preparation a model file stores (unit scaling, standardization);
* :mod:`~trainwell.data.arrays` -- the arrays a fit, a prediction or a sweep is given, checked and made tensors.
* :mod:`~trainwell.data.files` -- the user's own files, by format (``[data] format``), read into raw arrays;
* :mod:`~trainwell.data.tables` -- CSV and Parquet tables: feature columns and a target column;
* :mod:`~trainwell.data.numpy_files` -- ``.npz`` archives and ``.npy`` files;
* :mod:`~trainwell.data.images` -- folders of images, one subfolder per class, read with Pillow;
* :mod:`~trainwell.data.labels` -- class labels as files hold them (names) and as a model takes them (indices).
* :mod:`~trainwell.data.streams` -- a torch Dataset or DataLoader given instead of arrays: its batches, in order.

Typical use::

    from trainwell.data import load, validation_split, standardize

    data = load("fashion_mnist")
    x_train, y_train, x_valid, y_valid = validation_split(data.x_train, data.y_train, 5000)
    x_train, x_valid, x_test = standardize(x_train, x_valid, data.x_test)

Every problem a user can fix raises :class:`trainwell.errors.DataError`.

The data package may use only the foundation (``trainwell.errors``, ``trainwell.checks``,
``trainwell.fileio``): it knows nothing of models or training. Pillow (images) and pyarrow
(Parquet, optional) are imported only when such files are read.
"""

from trainwell.data.datasets import Dataset, FileCheck, files_state, load, verify
from trainwell.data.download import download_file
from trainwell.data.files import FORMATS, FileParts, Part, input_shape_of, read_inputs, read_parts
from trainwell.data.idx import read_idx, write_idx
from trainwell.data.images import read_image_folder
from trainwell.data.labels import apply_labels, encode_labels
from trainwell.data.locations import Location, cache_dir, locate
from trainwell.data.registry import DatasetSpec, FileSpec, dataset_names, get_spec
from trainwell.data.splits import (
    Split,
    Standardizer,
    filter_classes,
    scale_unit,
    standardize,
    take_first,
    take_per_class,
    validation_split,
)

__all__ = [
    "FORMATS",
    "FileParts",
    "Part",
    "apply_labels",
    "encode_labels",
    "input_shape_of",
    "read_image_folder",
    "read_inputs",
    "read_parts",
    "Dataset",
    "DatasetSpec",
    "FileCheck",
    "FileSpec",
    "Location",
    "Split",
    "Standardizer",
    "cache_dir",
    "dataset_names",
    "download_file",
    "files_state",
    "filter_classes",
    "get_spec",
    "load",
    "locate",
    "read_idx",
    "scale_unit",
    "standardize",
    "take_first",
    "take_per_class",
    "validation_split",
    "verify",
    "write_idx",
]
