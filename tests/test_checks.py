"""The argument checks: bools are not integers, nan meets no bound, the message quotes the value."""

import math
import re

import numpy as np
import pytest

from trainwell.checks import check_bool, check_choice, check_integer, check_number, check_seed
from trainwell.errors import ConfigError, DataError


def test_an_integer_in_a_range():
    assert check_integer(3, "n: must be from 1 to 3", minimum=1, maximum=3) == 3
    for bad in (True, 0, 4, 2.0, "2", np.int64(2)):
        with pytest.raises(ConfigError, match=f"^n: must be from 1 to 3, got {re.escape(repr(bad))}$"):
            check_integer(bad, "n: must be from 1 to 3", minimum=1, maximum=3)
    assert check_integer(np.int64(2), "n", numpy=True) == 2
    with pytest.raises(DataError, match=r"^n, got -1\.$"):
        check_integer(-1, "n", minimum=0, error=DataError, end=".")


def test_a_number_in_a_range_refuses_nan_and_bools():
    assert check_number(0.5, "f", above=0, below=1) == 0.5
    for bad in (math.nan, 0, 1, False, "0.5"):
        with pytest.raises(ConfigError, match="^f, got "):
            check_number(bad, "f", above=0, below=1)
    with pytest.raises(ConfigError, match="^f, got inf$"):
        check_number(math.inf, "f", finite=True)
    assert check_number(0, "f", minimum=0, maximum=0) == 0


def test_a_boolean_a_choice_and_a_seed():
    assert check_bool(False, "b") is False
    with pytest.raises(ConfigError, match="^b: must be true or false, got 1$"):
        check_bool(1, "b: must be true or false")
    assert check_choice("min", ("min", "max"), "mode") == "min"
    with pytest.raises(ConfigError, match="^mode: must be 'min' or 'max', got 'avg'$"):
        check_choice("avg", ("min", "max"), "mode: must be 'min' or 'max'")
    assert check_seed(2**63 - 1) == 2**63 - 1
    with pytest.raises(ConfigError, match="^--seed: must be an integer from 0 to 2\\*\\*63 - 1, got 'a 41-digit integer'$"):
        check_seed(10**40, what="--seed")
