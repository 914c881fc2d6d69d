"""The output folder of a run: its saved state is kept for the same fit, whatever happens after training."""

from helpers import digits_config
from trainwell.config import validate_config
from trainwell.recipes.build import build_from_config, prepare_data
from trainwell.recipes.fingerprint import fit_fingerprint
from trainwell.recipes.run_folder import resume_folder


def fingerprint_of(config):
    prepared = prepare_data(config)
    return fit_fingerprint(config, prepared, build_from_config(config, prepared.input_shape))


def test_a_killed_run_resumes_with_overwrite_set(tmp_path):
    """train.overwrite and train.allow_nonfinite_loss decide what happens after training: not part of the fit."""
    out = tmp_path / "run"
    config = digits_config().model_copy(update={"output_dir": str(out)})
    (out / "resume").mkdir(parents=True)
    resume_folder(config, out, fingerprint_of(config))
    again = validate_config({**config.to_dict(), "train": {**config.to_dict()["train"], "overwrite": True,
                                                           "allow_nonfinite_loss": True}})
    assert resume_folder(again, out, fingerprint_of(again)) == out / "resume"
