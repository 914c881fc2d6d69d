"""The fingerprint of a fit: what changes the result is in it, how the run is shown and where it goes are not."""

import torch

from helpers import digits_config
from trainwell.config import validate_config
from trainwell.recipes.build import build_from_config, prepare_data
from trainwell.recipes.fingerprint import fit_fingerprint


def _fingerprint_of(config):
    prepared = prepare_data(config)
    return fit_fingerprint(config, prepared, build_from_config(config, prepared.input_shape))


def test_the_fingerprint_holds_what_changes_the_result_and_not_how_it_is_shown(tmp_path):
    """Where the files go, the name, how often the state is saved, and the data's path are not the fit; the
    settings, the data's contents, the device and thread count in use and the code's version are."""
    import json

    import trainwell

    config = digits_config().to_dict()
    base = _fingerprint_of(validate_config(config))
    same = [{"output_dir": str(tmp_path / "a")}, {"output_dir": "a"}, {"name": "other"},
            {"train": {**config["train"], "save_every_steps": 7, "overwrite": True, "restart": True}},
            {"train": {**config["train"], "threads": torch.get_num_threads()}}]
    for change in same:
        assert _fingerprint_of(validate_config({**config, **change})) == base, change
    other = [{"seed": 4}, {"optimizer": {"name": "adam", "lr": 0.002}},
             {"data": {**config["data"], "validation_size": 100}},
             {"train": {**config["train"], "threads": torch.get_num_threads() + 1}}]
    for change in other:
        assert _fingerprint_of(validate_config({**config, **change})) != base, change
    fingerprint = json.loads(base)
    assert fingerprint["code"] == {"trainwell": trainwell.__version__, "torch": torch.__version__}
    assert len(fingerprint["data"]["sha256"]) == 64


def test_the_data_digest_is_the_sha256_of_each_arrays_type_shape_and_bytes():
    """Pinned, so that a run killed under an earlier trainwell of the same version string resumes: the digest is
    read from the arrays' memory, not from a copy of their bytes, and must stay the same number."""
    import hashlib
    import json

    import numpy as np

    config = validate_config(digits_config().to_dict())
    prepared = prepare_data(config)
    expected = hashlib.sha256()
    for array in (prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val):
        if array is not None:
            expected.update(f"{array.dtype.str}{array.shape}".encode())
            expected.update(np.ascontiguousarray(array).tobytes())
    fingerprint = json.loads(fit_fingerprint(config, prepared, build_from_config(config, prepared.input_shape)))
    assert fingerprint["data"]["sha256"] == expected.hexdigest()
