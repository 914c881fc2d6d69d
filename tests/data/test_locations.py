"""Where datasets are looked for: the order, the accepted layouts, the not-found message."""

import os

from pathlib import Path

import numpy as np
import platformdirs
import pytest
from data_helpers import FILENAMES, spec_for, synthetic_arrays, write_set

from trainwell.data import dataset_names, get_spec, load, locate, locations
from trainwell.errors import DataError


def _four_places(tmp_path, monkeypatch):
    """A different synthetic MNIST in each of: path argument, TRAINWELL_DATA, cache, system dir.

    Each copy has a different number of training images, so a load tells which one was read.
    """
    places = {
        "path argument": tmp_path / "explicit",
        "TRAINWELL_DATA": tmp_path / "env",
        "cache": tmp_path / "cache" / "datasets",
        "system": tmp_path / "system",
    }
    for n_train, folder in enumerate(places.values(), start=11):
        write_set(folder / "mnist", synthetic_arrays(n_train=n_train))
    monkeypatch.setenv("TRAINWELL_DATA", str(places["TRAINWELL_DATA"]))
    monkeypatch.setattr(locations, "SYSTEM_DIRS", (str(places["system"]),))
    return places


def test_lookup_order(tmp_path, monkeypatch):
    places = _four_places(tmp_path, monkeypatch)
    explicit = places["path argument"]

    where = locate("mnist", path=explicit, offline=True)
    assert (where.origin, where.directory) == ("path argument", explicit / "mnist")
    assert load("mnist", path=explicit, offline=True, verify=False).x_train.shape[0] == 11

    where = locate("mnist", offline=True)
    assert (where.origin, where.directory) == ("TRAINWELL_DATA", places["TRAINWELL_DATA"] / "mnist")
    assert load("mnist", offline=True, verify=False).x_train.shape[0] == 12

    monkeypatch.delenv("TRAINWELL_DATA")
    where = locate("mnist", offline=True)
    assert (where.origin, where.directory) == ("cache", places["cache"] / "mnist")
    data = load("mnist", offline=True, verify=False)
    assert data.x_train.shape[0] == 13
    assert data.source == f"{places['cache'] / 'mnist'} (cache)"

    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path / "empty-cache"))
    where = locate("mnist", offline=True)
    assert (where.origin, where.directory) == ("system", places["system"] / "mnist")
    assert load("mnist", offline=True, verify=False).x_train.shape[0] == 14


def test_explicit_path_without_the_files_falls_through(tmp_path, monkeypatch):
    _four_places(tmp_path, monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = locate("mnist", path=empty, offline=True)
    assert where.origin == "TRAINWELL_DATA"
    assert any(str(empty) in note for note in where.searched)


def test_trainwell_data_holds_several_directories(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    write_set(second / "mnist", synthetic_arrays())
    monkeypatch.setenv("TRAINWELL_DATA", os.pathsep.join([str(tmp_path / "missing"), str(first), "", str(second)]))
    where = locate("mnist", offline=True)
    assert where.directory == second / "mnist"
    assert len(where.searched) == 2  # the missing and the empty directory


@pytest.mark.parametrize("folder", ["fashion-mnist", "fashion_mnist"])
def test_dashed_or_underscored_sub_folder(tmp_path, folder):
    write_set(tmp_path / folder, synthetic_arrays())
    assert locate("fashion_mnist", path=tmp_path).directory == tmp_path / folder


def test_decompressed_files_are_accepted(tmp_path):
    arrays = synthetic_arrays()
    write_set(tmp_path / "mnist", arrays, compressed=False)
    where = locate("mnist", path=tmp_path)
    assert where.files["train_images"].name == "train-images-idx3-ubyte"
    np.testing.assert_array_equal(load("mnist", path=tmp_path, verify=False).x_train, arrays["train_images"])


def test_files_directly_in_the_directory(tmp_path, use_spec):
    arrays = synthetic_arrays()
    use_spec(spec_for("mnist", arrays))
    write_set(tmp_path, arrays)
    assert locate("mnist", path=tmp_path).directory == tmp_path


def test_loose_files_of_another_dataset_are_skipped(tmp_path, use_spec):
    """MNIST and Fashion-MNIST share file names: loose files are told apart by their labels."""
    use_spec(spec_for("fashion_mnist", synthetic_arrays(seed=1)))
    write_set(tmp_path, synthetic_arrays(seed=2))
    where = locate("fashion_mnist", path=tmp_path, offline=True)
    assert not where.found
    assert any("another dataset" in note and str(tmp_path) in note for note in where.searched)


def test_partial_set_is_reported(tmp_path):
    folder = write_set(tmp_path / "mnist", synthetic_arrays())
    (folder / FILENAMES["test_labels"]).unlink()
    with pytest.raises(DataError) as info:
        load("mnist", path=tmp_path, offline=True)
    assert "has 3 of 4 files, missing t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_not_found_lists_every_place_and_the_fixes(tmp_path, monkeypatch):
    explicit, env1, env2, system = (tmp_path / name for name in ("explicit", "env1", "env2", "system"))
    explicit.mkdir()
    env1.mkdir()
    monkeypatch.setenv("TRAINWELL_DATA", os.pathsep.join([str(env1), str(env2)]))
    monkeypatch.setattr(locations, "SYSTEM_DIRS", (str(system),))
    with pytest.raises(DataError) as info:
        load("fashion_mnist", path=explicit, offline=True)
    message = str(info.value)
    for place, origin in [
        (explicit, "path argument"),
        (env1, "TRAINWELL_DATA"),
        (env2, "TRAINWELL_DATA"),
        (tmp_path / "cache" / "datasets", "cache"),
        (system, "system"),
    ]:
        assert f"{place} ({origin})" in message
    assert "offline" in message
    assert "set TRAINWELL_DATA" in message
    assert "apt install dataset-fashion-mnist" in message
    assert "allow downloading" in message and "fashion-mnist.s3" in message


def test_offline_env_var_and_argument(tmp_path, monkeypatch, server, use_spec):
    arrays = synthetic_arrays()
    use_spec(spec_for("mnist", arrays, mirrors=(server.base + "/m/",)))
    monkeypatch.setenv("TRAINWELL_OFFLINE", "1")
    assert locate("mnist").origin == "missing"
    with pytest.raises(DataError, match="offline"):
        load("mnist")
    monkeypatch.setenv("TRAINWELL_OFFLINE", "0")
    with pytest.raises(DataError, match="offline"):
        load("mnist", offline=True)
    assert locate("mnist").origin == "download"
    assert server.requests == []  # nothing was even tried


def test_bad_offline_value(monkeypatch):
    monkeypatch.setenv("TRAINWELL_OFFLINE", "maybe")
    with pytest.raises(DataError, match="TRAINWELL_OFFLINE='maybe'.*1/true/yes/on"):
        locate("mnist")


def test_explicit_path_must_be_a_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        locate("mnist", path=tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        locate("mnist", path=tmp_path / "file")


def test_names():
    assert dataset_names() == ["digits", "fashion_mnist", "mnist"]
    assert get_spec("Fashion-MNIST").name == "fashion_mnist"
    with pytest.raises(DataError, match="Unknown dataset 'cifar10'; allowed: digits, fashion_mnist, mnist"):
        load("cifar10")


def test_cache_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path / "c"))
    assert locations.cache_dir() == tmp_path / "c" / "datasets"
    monkeypatch.delenv("TRAINWELL_CACHE")
    assert locations.cache_dir() == Path(platformdirs.user_cache_dir("trainwell")) / "datasets"


def test_bundled_dataset_has_no_files():
    where = locate("digits", offline=True)
    assert where.found and where.origin == "bundled" and not where.files
