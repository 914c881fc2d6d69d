import errno

import pytest
from helpers import strict_json

from trainwell.cli import main
from trainwell.fileio import atomic_path, atomic_write_text


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_disk_errors_name_the_target_file(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    atomic_write_text(target, "previous")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(target), "write_bytes", full)
    with pytest.raises(OSError) as error:
        atomic_write_text(target, "new")
    assert error.value.filename == str(target) and error.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_text() == "previous"


def test_cli_reports_a_read_only_output_folder_in_one_line(tmp_path, monkeypatch, capsys):
    config = tmp_path / "run.toml"
    config.write_text('[data]\nname = "digits"\nvalidation_size = 100\n[model]\n'
                      'layers = [{type = "flatten"}, {type = "dense", units = 10, activation = "softmax"}]\n'
                      '[train]\nepochs = 1\nresumable = false\n')
    out = tmp_path / "out"
    assert main(["train", str(config), "-o", str(out), "-q"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from trainwell import fileio

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio, "temp_file_beside", read_only)
    assert main(["train", str(config), "-o", str(out), "-q", "--overwrite"]) == 1
    message = capsys.readouterr().err
    assert message.startswith("error: ") and "Permission denied" in message and str(out) in message
    assert "Traceback" not in message
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_json_text_writes_non_finite_floats_as_null(tmp_path):
    import math

    import numpy as np

    from trainwell.fileio import json_text, write_json

    value = {"loss": math.nan, "up": math.inf, "down": -math.inf, "ok": 0.5, "np": np.float32("nan"),
             "array": np.array([1.0, np.nan]), "nested": [{"x": (math.nan, 1)}], "path": tmp_path}
    parsed = strict_json(json_text(value))
    assert parsed == {"loss": None, "up": None, "down": None, "ok": 0.5, "np": None, "array": [1.0, None],
                      "nested": [{"x": [None, 1]}], "path": str(tmp_path)}
    write_json(tmp_path / "m.json", value)
    assert strict_json((tmp_path / "m.json").read_text()) == parsed


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_get_the_mode_the_umask_gives(tmp_path, umask):
    """0644 under umask 022, 0600 under 077: what any other tool writes, not always 0600."""
    import os
    import stat

    from trainwell.fileio import write_json

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_json(tmp_path / "b.json", {"x": 1})
        atomic_write_text(tmp_path / "a.txt", "replaced")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
