"""The catalogue of datasets trainwell knows by name.

Each entry says which files make up the dataset, where to download them and
how to check them. Keeping this as plain data (no code) makes adding a dataset
a matter of filling in one :class:`DatasetSpec`.

Checksums are SHA-256 digests of the *decompressed* file content: the same data
is served gzip-compressed with different settings by different mirrors and
Linux packages, so the ``.gz`` bytes differ between equally good copies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainwell.errors import DataError

__all__ = ["FileSpec", "DatasetSpec", "DATASETS", "IDX_ROLES", "dataset_names", "get_spec"]

#: The four files of an MNIST-style dataset, by role, in the order they are listed.
IDX_ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its role, its name on the servers, its checksum."""

    role: str
    filename: str
    sha256: str | None  # of the decompressed content; None: not checked

    @property
    def alternative_names(self) -> tuple[str, ...]:
        """File names accepted on disk: as served, and already decompressed."""
        if self.filename.endswith(".gz"):
            return (self.filename, self.filename[: -len(".gz")])
        return (self.filename,)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything trainwell needs to find, fetch, check and label a dataset.

    A dataset either consists of ``files`` (looked for on disk, else downloaded
    from ``mirrors``, tried in order) or comes with a library, in which case
    ``bundled`` returns ``(x_train, y_train, x_test, y_test)`` directly.

    The shape of one image and the sizes of the parts are known here, without the
    files, so a model can be built (``trainwell summary``) or a schedule's steps counted
    on a machine that has not got the data. ``default_validation_size`` is how many of
    the first training images ``data.validation_size`` takes when a config leaves it out.
    """

    name: str
    title: str
    class_names: tuple[str, ...]
    pixel_max: int
    image_shape: tuple[int, ...]
    train_size: int
    test_size: int
    default_validation_size: int
    files: tuple[FileSpec, ...] = ()
    mirrors: tuple[str, ...] = ()
    debian_package: str | None = None
    bundled: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def folder_names(self) -> tuple[str, ...]:
        """Sub-folder names the files may sit in: ``fashion-mnist`` and ``fashion_mnist``."""
        dashed = self.name.replace("_", "-")
        return (dashed,) if dashed == self.name else (dashed, self.name)

    def file(self, role: str) -> FileSpec:
        """The file playing ``role`` (e.g. ``"train_labels"``)."""
        for spec in self.files:
            if spec.role == role:
                return spec
        raise KeyError(role)

    def urls(self, file: FileSpec) -> tuple[str, ...]:
        """Download URLs for ``file``, one per mirror, in the order to try them."""
        return tuple(mirror.rstrip("/") + "/" + file.filename for mirror in self.mirrors)


def _idx_files(sha256: dict[str, str]) -> tuple[FileSpec, ...]:
    """The four MNIST-style files, with the names every mirror uses."""
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    return tuple(FileSpec(role, names[role], sha256[role]) for role in IDX_ROLES)


#: How many of scikit-learn's 1,797 digits images form the training set; the
#: remaining 297 are the test set. A fixed cut (no shuffling) so that every run
#: and every machine sees the same split; the images are not sorted by class,
#: so both parts hold all ten digits.
DIGITS_TRAIN_SIZE = 1500
DIGITS_SIZE = 1797


def _load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as uint8 images (values 0..16)."""
    from sklearn.datasets import load_digits  # imported late: sklearn is slow to import

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    n = DIGITS_TRAIN_SIZE
    return images[:n], labels[:n], images[n:], labels[n:]


#: Registered datasets by name. Tests replace entries (e.g. to point the
#: mirrors at a local server); user code should go through :func:`get_spec`.
DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST",
        description="Zalando's 28x28 grayscale clothing images: 60,000 train, 10,000 test, 10 classes.",
        class_names=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        pixel_max=255,
        image_shape=(28, 28), train_size=60_000, test_size=10_000,
        default_validation_size=5000,  # the book's: the first 5,000 training images
        files=_idx_files({
            "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        }),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        debian_package="dataset-fashion-mnist",
    ),
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        description="Handwritten digits, 28x28 grayscale: 60,000 train, 10,000 test, 10 classes.",
        class_names=tuple(str(digit) for digit in range(10)),
        pixel_max=255,
        image_shape=(28, 28), train_size=60_000, test_size=10_000,
        default_validation_size=5000,
        files=_idx_files({
            "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        }),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "digits": DatasetSpec(
        name="digits",
        title="scikit-learn digits",
        description=(
            "scikit-learn's bundled 8x8 handwritten digits (values 0..16), available offline: "
            f"the first {DIGITS_TRAIN_SIZE} of {DIGITS_SIZE:,} images are the training set, the rest the test set."
        ),
        class_names=tuple(str(digit) for digit in range(10)),
        pixel_max=16,
        image_shape=(8, 8), train_size=DIGITS_TRAIN_SIZE, test_size=DIGITS_SIZE - DIGITS_TRAIN_SIZE,
        default_validation_size=300,  # a fifth of the 1,500 training images, as examples/digits_quick.toml
        bundled=_load_digits,
    ),
}


def dataset_names() -> list[str]:
    """Names accepted by :func:`trainwell.data.load`, sorted."""
    return sorted(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset called ``name`` (``-`` and ``_`` are interchangeable)."""
    if not isinstance(name, str):
        raise DataError(f"A dataset name must be a string, got {name!r}; allowed: {', '.join(dataset_names())}.")
    key = name.strip().lower().replace("-", "_")
    try:
        return DATASETS[key]
    except KeyError:
        raise DataError(
            f"Unknown dataset {name!r}; allowed: {', '.join(dataset_names())}."
        ) from None
