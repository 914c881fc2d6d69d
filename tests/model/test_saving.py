import json
import struct

import pytest
import torch
from helpers import small_model
from torch import nn

from trainwell.errors import ConfigError, ModelFileError
from trainwell.model.layers import BatchNormalization, Dense, Flatten, build_model
from trainwell.model.saving import load_model, load_model_file, load_weights, save_model, save_weights


def model():
    m = small_model(Flatten(), BatchNormalization(), Dense(5, activation={"name": "leaky_relu", "alpha": 0.2}),
                    input_shape=(2, 2), seed=None)  # not reseeded: from the test's seeded stream
    m.train()(torch.randn(8, 2, 2))  # move the BN statistics away from their initial values
    return m.eval()


def test_round_trip_restores_spec_weights_statistics_and_extras(tmp_path):
    original = model()
    path = save_model(original, tmp_path / "m.safetensors", info={"loss": "x"}, extra={"mean": torch.arange(3.0)})
    loaded = load_model_file(path)
    assert loaded.model.spec == original.spec
    for key, value in original.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    x = torch.randn(4, 2, 2)
    assert torch.equal(loaded.model.eval()(x), original(x))
    assert loaded.info == {"loss": "x"} and torch.equal(loaded.extra["mean"], torch.arange(3.0))
    assert not list(tmp_path.glob(".*tmp"))


def test_the_file_holds_no_pickle(tmp_path):
    path = save_model(model(), tmp_path / "m.safetensors")
    raw = path.read_bytes()
    header_size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_size])
    assert header["__metadata__"]["format"] == "trainwell-model"
    assert b"\x80\x04" not in raw[:2]  # not a pickle stream


def test_corruption_is_detected(tmp_path):
    path = save_model(model(), tmp_path / "m.safetensors")
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # flip bits in the last weight
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="corrupted"):
        load_model(path)
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        load_model(path)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.safetensors")


def test_a_pickle_file_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.safetensors"
    torch.save({"x": Boom()}, path)
    with pytest.raises(ModelFileError):
        load_model(path)


def test_shape_mismatch_names_the_layer(tmp_path):
    path = save_weights(build_model([Dense(4), Dense(2)], input_shape=(3,)), tmp_path / "w.safetensors")
    other = build_model([Dense(5), Dense(2)], input_shape=(3,))
    with pytest.raises(ModelFileError, match=r"layer 'dense_1': dense_1.weight has shape \(4, 3\) in the file but the model expects \(5, 3\)"):
        load_weights(other, path)
    with pytest.raises(ModelFileError, match="missing in the file"):
        load_weights(build_model([Dense(4), Dense(2), Dense(1)], input_shape=(3,)), path)


def test_weights_of_plain_modules_and_spec_requirement(tmp_path):
    plain = nn.Sequential(nn.Linear(3, 2))
    path = save_weights(plain, tmp_path / "plain.safetensors")
    fresh = nn.Sequential(nn.Linear(3, 2))
    load_weights(fresh, path)
    assert torch.equal(fresh[0].weight, plain[0].weight)
    with pytest.raises(ConfigError, match="save_weights"):
        save_model(plain, tmp_path / "x.safetensors")
    with pytest.raises(ModelFileError, match="not a trainwell model file"):
        load_model(path)


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_model(model(), tmp_path / "m.safetensors")
    before = path.read_bytes()
    import trainwell.tensorfile as tensorfile

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorfile, "save_file", broken)
    with pytest.raises(OSError):
        save_model(model(), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))


def test_metadata_with_non_finite_values_is_valid_json(tmp_path):
    import math

    from safetensors import safe_open

    from helpers import strict_json

    save_model(model(), tmp_path / "m.safetensors", info={"val_loss": math.nan})
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as handle:
        assert strict_json(handle.metadata()["info"]) == {"val_loss": None}
    assert load_model_file(tmp_path / "m.safetensors").info == {"val_loss": None}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_model_files_get_the_mode_the_umask_gives(tmp_path, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        save_model(model(), tmp_path / "m.safetensors")
        save_weights(model(), tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    for name in ("m.safetensors", "w.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def _crafted(path, tensors, **metadata):
    """A safetensors file with this metadata, signed the way save_model signs (a checksum is no signature)."""
    from safetensors.torch import save_file

    from trainwell.model.saving import model_file_digest

    metadata = {"format": "trainwell-model", "format_version": "2", **metadata}
    save_file(tensors, str(path), metadata={**metadata, "sha256": model_file_digest(tensors, metadata)})
    return path


@pytest.mark.parametrize("old, new", [(b'\\"unit\\"', b'\\"unip\\"'), (b'\\": 255', b'\\": 355')])
def test_the_checksum_covers_the_metadata(tmp_path, old, new):
    path = save_model(model(), tmp_path / "m.safetensors", info={"data": {"scaling": "unit", "pixel_max": 255}})
    raw = path.read_bytes()
    end = 8 + struct.unpack("<Q", raw[:8])[0]
    header = raw[:end]
    assert header.count(old) == 1 and sum(bin(a ^ b).count("1") for a, b in zip(old, new)) == 1
    path.write_bytes(header.replace(old, new) + raw[end:])  # one bit of the data preparation flipped
    with pytest.raises(ModelFileError, match="does not match its checksum; it is corrupted"):
        load_model_file(path)


def test_a_version_1_file_loads_with_a_warning_and_resaves_as_version_2(tmp_path):
    from safetensors.torch import save_file

    from trainwell.model.saving import resave_model_file, weights_digest

    original = model()
    tensors = {k: v.contiguous() for k, v in original.state_dict().items()}
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={"format": "trainwell-model", "format_version": "1",
                                            "spec": json.dumps(original.spec.to_dict()), "info": '{"loss": "x"}',
                                            "sha256": weights_digest(tensors)})
    with pytest.warns(UserWarning, match="version-1 model file.*unverified.*resave_model_file"):
        loaded = load_model_file(path)
    assert loaded.info == {"loss": "x"} and loaded.model.spec == original.spec
    resave_model_file(path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_model_file(path)
    assert again.info == {"loss": "x"} and all(torch.equal(v, tensors[k]) for k, v in again.model.state_dict().items())
    raw = path.read_bytes()
    assert json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]["format_version"] == "2"


def test_the_spec_is_checked_against_the_tensors_before_the_model_is_built(tmp_path, monkeypatch):
    import trainwell.model.saving as saving

    real = saving.build_model
    built = []

    def watched(spec, *args, **kwargs):
        built.append(torch.empty(0).device.type)  # the device a model would be built on now
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(saving, "build_model", watched)
    small = build_model([Dense(4)], input_shape=(3,))
    tensors = {k: v.contiguous() for k, v in small.state_dict().items()}
    huge = {"input_shape": [3], "layers": [{"type": "dense", "units": 200_000_000}]}  # 2.4 GB of weights
    path = _crafted(tmp_path / "huge.safetensors", tensors, spec=json.dumps(huge), info="{}")
    with pytest.raises(ModelFileError, match=r"dense_1.weight has shape \(4, 3\) in the file but the spec makes "
                                             r"\(200000000, 3\)"):
        load_model(path)
    assert built == ["meta"]  # only the dry run that allocates nothing


@pytest.mark.parametrize("spec, info, message", [
    ("[1, 2]", "{}", "'spec' must be a JSON object, got list"),
    ("null", "{}", "'spec' must be a JSON object"),
    ("{", "{}", "'spec' is not readable JSON"),
    ("[" * 5000 + "]" * 5000, "{}", "'spec' is not readable JSON \\(nested too deeply\\)"),
    ('{"layers": [{"type": "dense", "units": 4}]}', "{}", "spec in the file has no 'input_shape'"),
    ('{"input_shape": [3]}', "{}", "spec in the file has no 'layers'"),
    ('{"input_shape": 3, "layers": [{"type": "dense", "units": 4}]}', "{}", "input_shape: must be a list"),
    ('{"input_shape": [3], "layers": [{"type": "dense"}]}', "{}", "a dense layer needs 'units'"),
    (None, "[]", "'info' must be a JSON object, got list"),
    (None, None, "has no 'info' entry"),
])
def test_spec_and_info_must_be_json_objects_with_their_keys(tmp_path, spec, info, message):
    small = build_model([Dense(4)], input_shape=(3,))
    tensors = {k: v.contiguous() for k, v in small.state_dict().items()}
    fields = {"spec": spec if spec is not None else json.dumps(small.spec.to_dict())}
    if info is not None:
        fields["info"] = info
    with pytest.raises(ModelFileError, match=message):
        load_model(_crafted(tmp_path / "m.safetensors", tensors, **fields))


def test_tensors_of_another_dtype_are_refused_not_cast(tmp_path):
    small = build_model([Dense(4)], input_shape=(3,))
    tensors = {k: v.double().contiguous() for k, v in small.state_dict().items()}
    path = _crafted(tmp_path / "m.safetensors", tensors, spec=json.dumps(small.spec.to_dict()), info="{}")
    with pytest.raises(ModelFileError, match="dense_1.weight is float64 in the file but the model holds float32"):
        load_model(path)


def test_a_folder_given_for_a_model_file_is_named_as_a_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ModelFileError, match="is a folder, not a model file$"):
        load_model(run)
    (run / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"is a folder, not a model file \(a run's model is"):
        load_model(run)
