"""The registry: every experiment of the book, demonstration and exercise by id; every book experiment
that is a config reads it from its example file (package data, ``examples/`` in a clone)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from trainwell import catalog as experiments
from trainwell.catalog.sections.common import example
from trainwell.config import load_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_the_catalog_covers_the_book_the_demonstrations_and_the_exercises():
    ids = experiments.ids()
    book = ["leaky_relu", "prelu", "selu_100", "relu_100", "bn_after", "bn_before", "transfer_model_a",
            "transfer_model_b", "transfer_b_on_a", "power_schedule", "exponential_epoch", "exponential_step",
            "piecewise", "plateau", "exponential_decay", "lr_finder", "one_cycle", "l2", "l2_partial", "dropout",
            "alpha_dropout", "mc_dropout", "max_norm"]
    demos = ["activation_curves", "selu_self_normalization", "selu_constants", "bn_after_params"]
    exercises = [f"ex8_{i}" for i in range(1, 6)] + [f"ex9_{i}" for i in range(1, 6)] + [f"ex10_{i}" for i in range(1, 5)]
    assert sorted(ids) == sorted(book + demos + exercises)
    for entry in experiments.entries():
        assert entry.shows.endswith(".") and entry.book, entry.id
        assert all(need in ids for need in entry.needs)
        if entry.kind == "book":
            assert entry.targets, entry.id
        if entry.config is not None:
            validate_config(entry.config, source=entry.id)


def test_every_book_experiment_that_is_a_config_is_an_example_file():
    files_ = {path.stem for path in EXAMPLES.iterdir() if path.suffix in (".toml", ".yaml")}
    configs = [entry.id for entry in experiments.entries() if entry.kind == "book" and entry.config is not None]
    assert configs and not [name for name in configs if name not in files_]


@pytest.mark.parametrize("entry", [e for e in experiments.entries() if e.kind == "book" and e.config is not None],
                         ids=lambda e: e.id)
def test_a_config_entry_runs_its_example_file(entry):
    """The entry's config is the file's, as ``trainwell train examples/<id>.toml`` reads it."""
    assert entry.config == example(entry.id)
    path = next(EXAMPLES / f"{entry.id}{suffix}" for suffix in (".toml", ".yaml")
                if (EXAMPLES / f"{entry.id}{suffix}").exists())
    assert validate_config(entry.config).to_dict() == load_config(path).to_dict()


def test_the_examples_are_package_data_and_the_clones_examples_folder_is_them():
    packaged = files("trainwell").joinpath("examples")
    names = sorted(p.name for p in EXAMPLES.iterdir())
    assert names and sorted(p.name for p in packaged.iterdir() if p.name.endswith((".toml", ".yaml"))) == names
    assert EXAMPLES.is_symlink() and EXAMPLES.resolve() == (ROOT / "src" / "trainwell" / "examples").resolve()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'trainwell = ["examples/*.toml", "examples/*.yaml"]' in pyproject
