"""Hostile run stores end in one line naming the store, and the damaged file is left as it was."""

from __future__ import annotations

import pytest

import cases_store
from outcomes import GOOD, run_cli

SAMPLE = cases_store.cases(full=False)


@pytest.mark.parametrize("case", SAMPLE, ids=str)
def test_a_hostile_store_is_refused_clearly_or_used_correctly(case, tmp_path):
    assert case.run(tmp_path) in GOOD


@pytest.mark.parametrize("command", ["reproduce", "report"])
def test_the_message_says_what_is_wrong_and_what_to_do_and_the_store_is_kept(command, tmp_path):
    out = tmp_path / "out"
    path = out / "runs.sqlite"
    cases_store.build_store(path)
    cases_store.truncate(lambda n: n // 2 // cases_store.PAGE * cases_store.PAGE)(path)
    damaged = path.read_bytes()
    argv = ["reproduce", "selu_constants", "--budget", "smoke", "--out", out, "--jobs", "1"] \
        if command == "reproduce" else ["report", out]
    result = run_cli(argv)
    assert result.rc == 2 and result.escaped is None
    line = result.stderr.strip()
    assert line.startswith(f"error: {path}: the run store is damaged") and "\n" not in line
    assert "cannot be rebuilt from the runs' folders" in line and f"mv {path} {path}.damaged" in line
    assert path.read_bytes() == damaged  # nothing written into it


def test_a_json_column_that_does_not_decode_is_named(tmp_path):
    from trainwell.errors import StoreError
    from trainwell.store import RunStore

    path = tmp_path / "runs.sqlite"
    cases_store.build_store(path)
    cases_store.sql("UPDATE epochs SET metrics = '{\"loss\": }' WHERE epoch = 7")(path)
    with RunStore(path) as store:
        with pytest.raises(StoreError, match=r"runs.sqlite: the run store is damaged \(the metrics of epoch 7 "
                                             r"\(train\) of run 1 is not valid JSON"):
            store.epochs(1)


def test_another_programs_database_is_not_touched(tmp_path):
    from trainwell.errors import StoreError
    from trainwell.store import RunStore

    path = tmp_path / "runs.sqlite"
    path.touch()
    cases_store.foreign_database(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a trainwell run store .*studies"):
        RunStore(path)
    assert path.read_bytes() == before


def test_a_second_reproduce_in_a_held_folder_names_the_holder_and_a_dead_holders_lock_is_taken(tmp_path):
    import os

    from trainwell.catalog.folder_lock import LOCK_NAME, folder_lock

    out = tmp_path / "out"
    out.mkdir()
    argv = ["reproduce", "selu_constants", "--budget", "smoke", "--out", out, "--jobs", "1"]
    with folder_lock(out):  # as another reproduce would hold it
        result = run_cli(argv)
    assert result.rc == 2 and not (out / "runs.sqlite").exists()
    assert result.stderr.strip() == (f"error: {out} is in use by another trainwell reproduce (process {os.getpid()}, "
                                     f"which holds {out / LOCK_NAME}); wait for it to end, or use another --out")
    (out / LOCK_NAME).write_text("999999999\n")  # left by a killed reproduce: the OS lock went with it
    assert run_cli(argv).rc == 0
    assert (out / LOCK_NAME).read_text() == ""


def test_scattered_bit_flips_in_a_store_never_give_a_traceback(tmp_path):
    """Flips anywhere in the file (text values included: their bytes come back as they are, not UTF-8).
    SQLite keeps no checksum of its values, so a flipped figure can go unnoticed and a report may be
    written (exit 0); every other outcome must be one clear line."""
    import random

    from outcomes import cli_outcome

    pristine = tmp_path / "pristine.sqlite"
    cases_store.build_store(pristine)
    data = pristine.read_bytes()
    outcomes = []
    for seed in range(12):
        rng = random.Random(seed)
        damaged = bytearray(data)
        for _ in range(200):
            damaged[rng.randrange(100, len(damaged))] ^= 0xFF
        out = tmp_path / f"out{seed}"
        out.mkdir()
        (out / "runs.sqlite").write_bytes(bytes(damaged))
        result = run_cli(["report", out])
        outcomes.append(cli_outcome(result, correct=lambda: True))  # exit 0 accepted: see the docstring
    assert all(outcome in GOOD for outcome in outcomes), outcomes
