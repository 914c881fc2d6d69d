"""The figure helpers: no module switches matplotlib's backend (a notebook user's choice), and a
figure's path is checked before the work that draws it."""

import re
from pathlib import Path

import pytest

from trainwell.figures import check_figure_path


def test_no_module_switches_matplotlibs_backend():
    source = Path(__file__).resolve().parents[1] / "src" / "trainwell"
    offenders = [str(path.relative_to(source)) for path in source.rglob("*.py")
                 if re.search(r"matplotlib\.use\(|import pyplot|matplotlib\.pyplot", path.read_text())]
    assert offenders == []


def test_a_figure_path_that_cannot_be_written_is_refused_before_the_work(tmp_path):
    """lr-find and plot-schedule check their target first: a sweep is not run only to fail at the end."""
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OSError, match="afile"):
        check_figure_path(blocker / "sub" / "lr_find.png")
    fresh = tmp_path / "new" / "deeper"
    assert check_figure_path(fresh / "x.png") == fresh / "x.png"
    assert not (tmp_path / "new").exists()  # the check leaves nothing behind
