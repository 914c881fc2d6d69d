"""Labels as files hold them: sorted names encoded 0..K-1, numbers sorted as numbers, unseen ones named."""

import numpy as np
import pytest

from trainwell.data.labels import apply_labels, encode_labels, numeric_targets
from trainwell.errors import DataError


def test_numeric_labels_sort_as_numbers_and_print_without_a_decimal_point():
    codes, names = encode_labels(np.array([10.0, 2.0, 1.0, 2.0]))
    assert names == ("1", "2", "10") and codes.tolist() == [2, 1, 0, 1]
    assert apply_labels(np.array(["10", "1"], dtype=object), names, where="f").tolist() == [2, 0]


def test_a_label_not_seen_in_training_is_one_error_naming_it():
    with pytest.raises(DataError, match="val.csv: label 'dog' \\(row 2\\) was not seen in training; the training "
                                        "labels: bird, cat"):
        apply_labels(np.array(["cat", "dog"], dtype=object), ("bird", "cat"), where="val.csv")


def test_regression_targets_are_float32_columns_and_a_word_is_named():
    assert numeric_targets(np.array(["1.5", "2"], dtype=object), where="f").tolist() == [[1.5], [2.0]]
    assert numeric_targets(np.ones((3, 2)), where="f").shape == (3, 2)
    with pytest.raises(DataError, match="f: target 'big' \\(row 2\\) is not a number"):
        numeric_targets(np.array(["1", "big"], dtype=object), where="f")


def test_a_number_names_one_class_however_the_file_writes_it():
    _, names = encode_labels(np.array(["1", "2"], dtype=object))
    assert apply_labels(np.array([1.0, "2.0", 2], dtype=object), names, where="f").tolist() == [0, 1, 1]
