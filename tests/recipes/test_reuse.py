"""Prepared data kept between the runs of one process: handed out again only for the same data, unchanged."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import digits_config
from trainwell.catalog.one_run import run_one
from trainwell.recipes import build, reuse
from trainwell.recipes.build import build_from_config, prepare_data
from trainwell.recipes.fingerprint import fit_fingerprint

DATA = os.environ.get("TRAINWELL_DATA")


@pytest.fixture(autouse=True)
def nothing_kept(monkeypatch):
    """Each test starts with no kept data and leaves none behind."""
    monkeypatch.setattr(reuse, "_kept", type(reuse._kept)())
    yield


@pytest.fixture
def preparations(monkeypatch) -> list:
    """The configs that were prepared afresh (not handed out again)."""
    made = []
    original = build._prepare_data

    def counting(config):
        made.append(config)
        return original(config)

    monkeypatch.setattr(build, "_prepare_data", counting)
    return made


def test_outside_the_block_every_run_prepares_its_data(preparations):
    first, second = prepare_data(digits_config()), prepare_data(digits_config())
    assert first is not second and len(preparations) == 2 and not reuse._kept


def test_the_same_data_settings_get_the_same_arrays_and_other_settings_their_own(preparations):
    with reuse.reusing_prepared_data():
        first = prepare_data(digits_config())
        other_seed = prepare_data(digits_config().model_copy(update={"seed": 5}))  # no per_class: no draw
        assert other_seed is first and len(preparations) == 1
        assert prepare_data(digits_config(scaling="standardize")) is not first
        drawn = prepare_data(digits_config(per_class=20))
        assert prepare_data(digits_config(per_class=20)) is drawn
        assert prepare_data(digits_config(per_class=20).model_copy(update={"seed": 5})) is not drawn  # another draw
    assert len(preparations) == 4
    fresh = prepare_data(digits_config())
    assert fresh is not first and np.array_equal(fresh.x_train, first.x_train)


def test_arrays_a_run_wrote_into_are_prepared_again(preparations):
    with reuse.reusing_prepared_data():
        first = prepare_data(digits_config())
        first.x_train.flat[0] += 1.0  # as a run that scaled its inputs in place would
        again = prepare_data(digits_config())
    assert again is not first and len(preparations) == 2
    assert again.x_train.flat[0] == first.x_train.flat[0] - 1.0


def test_a_process_keeps_the_latest_few(preparations):
    with reuse.reusing_prepared_data():
        settings = [{}, {"scaling": "standardize"}, {"scaling": "none"}]
        for data in settings:
            prepare_data(digits_config(**data))
        assert len(reuse._kept) == reuse.MOST_KEPT == 2
        prepare_data(digits_config(scaling="none"))  # the latest: kept
        prepare_data(digits_config())  # the oldest: gone, prepared again
    assert len(preparations) == 4


def test_the_fingerprint_of_kept_data_is_the_same_digest_computed_once(monkeypatch):
    config = digits_config()
    model = build_from_config(config, (8, 8))
    expected = fit_fingerprint(config, prepare_data(config), model)
    with reuse.reusing_prepared_data():
        data = prepare_data(config)
        assert fit_fingerprint(config, data, model) == expected
        monkeypatch.setattr("trainwell.recipes.fingerprint._data_digest", lambda prepared: pytest.fail("again"))
        assert fit_fingerprint(config, prepare_data(config), model) == expected


@pytest.mark.skipif(not DATA, reason="needs TRAINWELL_DATA (the MNIST files)")
def test_replaced_dataset_files_are_read_and_prepared_again(tmp_path: Path, preparations):
    copy = tmp_path / "mnist"
    shutil.copytree(Path(DATA) / "mnist", copy)
    config = digits_config().model_copy(update={"data": digits_config().data.model_copy(update={
        "name": "mnist", "path": str(tmp_path), "validation_size": 5000})})
    with reuse.reusing_prepared_data():
        first = prepare_data(config)
        assert prepare_data(config) is first
        labels = copy / "t10k-labels-idx1-ubyte.gz"
        os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
        assert prepare_data(config) is not first
    assert len(preparations) == 2


def test_the_catalogs_runs_in_one_process_prepare_their_data_once(tmp_path: Path, preparations):
    for seed in (42, 43):
        assert run_one(tmp_path / "out", "leaky_relu", seed, "smoke") == "finished"
    assert len(preparations) == 1


def test_an_outermost_block_that_forgets_leaves_nothing_kept(preparations):
    with reuse.reusing_prepared_data(forget_after=True):
        with reuse.reusing_prepared_data():
            first = prepare_data(digits_config())
        assert prepare_data(digits_config()) is first and reuse._kept  # kept until the outermost block ends
    assert not reuse._kept
    with reuse.reusing_prepared_data():  # a worker's run: kept for its next run
        prepare_data(digits_config())
    assert reuse._kept

