"""``trainwell``'s top level exports what users reach for, every name in ``__all__`` resolves, and nothing internal."""

import types

import trainwell as tw


def test_every_exported_name_resolves_to_a_trainwell_object():
    for name in tw.__all__:
        value = getattr(tw, name)
        where = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", "")
        assert where.startswith("trainwell."), f"{name} comes from {where!r}, not from trainwell"
        assert not name.startswith("_"), name


def test_what_the_readme_reaches_for_is_at_the_top_level():
    for name in ("Trainer", "build_model", "Dense", "train_config", "load_config", "freeze", "unfreeze",
                 "reuse_layers", "TrainwellClassifier", "mc_predict", "find_lr", "run_doctor", "why_not_fused"):
        assert name in tw.__all__, name
    assert tw.TrainwellClassifier.__module__ == "trainwell.estimator"


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Trainerr'"):
        tw.Trainerr  # noqa: B018
