"""Run names that are paths, output paths with any characters, odd resume folders (cases_paths.py)."""

import pytest

import cases_paths
from outcomes import GOOD

SAMPLE = cases_paths.cases(full=False)


@pytest.mark.parametrize("case", SAMPLE, ids=str)
def test_paths_are_where_the_user_says(case, tmp_path):
    assert case.run(tmp_path) in GOOD


@pytest.mark.parametrize("name", ["../../escape", "/abs/dir", ".", ".hidden", "a/b"])
def test_a_name_that_is_a_path_is_refused_saying_what_a_name_is(name):
    from trainwell.config import validate_config
    from trainwell.errors import ConfigError

    with pytest.raises(ConfigError, match=r"name: .* must be one folder name: no / or \\"):
        validate_config({"name": name, "data": {"name": "digits"}, "model": {"layers": [{"type": "flatten"}]}})

