"""Resuming what the user meant (see cases_resume.py): harmless changes resume to the uninterrupted result,
a changed fit is refused in one line naming what differs, --restart starts over."""

import contextlib

import pytest

from cases_resume import CONFIG, cases, interrupted_after_first_save
from outcomes import GOOD, run_cli


@pytest.mark.parametrize("case", cases(full=False), ids=str)
def test_resume_case(case, tmp_path):
    assert case.run(tmp_path) in GOOD


def test_a_refusal_names_every_difference_old_and_new_and_keeps_the_state(tmp_path):
    config, out = tmp_path / "run.toml", tmp_path / "out"
    config.write_text(CONFIG)
    with interrupted_after_first_save():
        assert run_cli(["train", config, "-o", out, "-q"]).rc == 130
    states = sorted(p.name for p in (out / "resume").rglob("state-*"))
    with contextlib.chdir(tmp_path):  # the folder spelled another way is the same fit: not a difference
        result = run_cli(["train", "run.toml", "-o", "out", "--set", "optimizer.lr=0.002", "--seed", "4",
                          "--set", "model.layers[1].units=8"])
    assert result.rc == 2 and result.stderr.count("\n") == 1
    for said in ("holds an interrupted run of a different fit (1 epoch(s) done", "optimizer.lr 0.01 -> 0.002",
                 "seed 3 -> 4", "model.layers[1].units 16 -> 8", "--restart", "train.restart = true"):
        assert said in result.stderr, said
    assert "output_dir \"" not in result.stderr  # not listed as a difference
    assert sorted(p.name for p in (out / "resume").rglob("state-*")) == states
