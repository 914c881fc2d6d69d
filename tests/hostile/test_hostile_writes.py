"""Full disks and kills at the writes of a run (cases_writes.py), and what the messages say."""

import errno

import pytest

import cases_writes
from outcomes import GOOD

SAMPLE = cases_writes.cases(full=False)


@pytest.mark.parametrize("case", SAMPLE, ids=str)
def test_write_failures_are_one_line_and_keep_the_earlier_run(case, tmp_path):
    assert case.run(tmp_path) in GOOD


def test_a_safetensors_disk_error_is_an_os_error_naming_the_target(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from trainwell import tensorfile
    from trainwell.model import saving
    from trainwell.fileio import atomic_write_text

    target = tmp_path / "model.safetensors"
    atomic_write_text(target, "previous")

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(tensorfile, "save_file", full)
    with pytest.raises(OSError) as error:
        saving.save_weights(__import__("torch").nn.Linear(2, 2), target)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(target)
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_full_disk_during_the_outputs_names_the_file_and_says_nothing_changed(tmp_path, monkeypatch, capsys):
    from trainwell import fileio
    from trainwell.cli import main

    config, out, old = cases_writes._setup(tmp_path)
    real, calls = fileio.os.fsync, [0]

    def fsync(fd):
        calls[0] += 1
        if calls[0] == 11:  # metrics.json, after the new model was written (and the progress files of 2 epochs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    assert main([str(a) for a in cases_writes._argv(config, out)]) == 1
    monkeypatch.undo()
    message = capsys.readouterr().err.strip()
    assert message == f"error: {out / 'metrics.json'}: No space left on device; nothing in {out} was changed"
    assert cases_writes._set_of(out) == old and not cases_writes._strays(out)


def test_an_earlier_runs_diagnostics_do_not_stay_beside_a_run_without_them(tmp_path):
    from outcomes import run_cli

    config, out, _ = cases_writes._setup(tmp_path, cases_writes.DIAGNOSTICS)
    assert (out / "diagnostics.json").is_file()
    config.write_text(cases_writes.CONFIG)
    assert run_cli(cases_writes._argv(config, out)).rc == 0
    assert not (out / "diagnostics.json").exists() and (out / "model.safetensors").is_file()
