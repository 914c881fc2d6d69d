"""CSV and Parquet tables: features as float32, the target as written, and one clear error per bad file."""

import sys
import warnings

import numpy as np
import pytest

from trainwell.data.tables import read_csv, read_parquet, table_arrays, table_columns
from trainwell.errors import DataError


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_features_default_to_every_column_but_the_target_in_the_files_order(tmp_path):
    table = read_csv(write(tmp_path, "a,label,b\n1,x,2\n3,y,4.5\n"))
    x, y, features = table_arrays(table, target="label", features=None)
    assert features == ["a", "b"] and x.dtype == np.float32 and x.tolist() == [[1, 2], [3, 4.5]]
    assert y.tolist() == ["x", "y"]
    x, _, features = table_arrays(table, target="label", features=["b"])
    assert features == ["b"] and x.tolist() == [[2], [4.5]]
    assert table_columns(tmp_path / "t.csv", "csv") == ["a", "label", "b"]


def test_new_rows_without_the_target_column_are_read_when_the_target_is_not_needed(tmp_path):
    table = read_csv(write(tmp_path, "a,b\n1,2\n"))
    x, y, _ = table_arrays(table, target="label", features=["a", "b"], target_needed=False)
    assert y is None and x.shape == (1, 2)


@pytest.mark.parametrize("text, target, features, message", [
    ("", "y", None, "t.csv: the file is empty"),
    ("a,y\n", "y", None, "has a header (2 columns) but no rows"),
    ("a,y\n1,x\n2\n", "y", None, "row 2 (line 3) has 1 fields, but the header has 2 columns"),
    ("a,y\n1,x\n", "label", None, "has no column 'label' (data.target); its columns: a, y"),
    ("a,y\n1,x\n", "y", ["a", "c"], "has no column 'c' (in data.features)"),
    ("a,y\n1,x\n\n2,x\nhigh,z\n", "y", None, "column 'a', row 3 (line 5): 'high' is not a number"),
    ("a,y\n1,x\n,x\n", "y", None, "column 'a', row 2 (line 3): an empty value is not a number"),
    ("a,y\n1,x\n2,\n", "y", None, "column 'y' (the target), row 2 (line 3): the value is empty"),
    ("a,a\n1,2\n", "y", None, "names column 'a' more than once"),
    ("a,y\n1,x\n", "y", ["a", "y"], "data.features lists the target column 'y'"),
])
def test_a_bad_table_is_one_error_naming_the_file_and_where(tmp_path, text, target, features, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as error:
        table_arrays(read_csv(path), target=target, features=features)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        read_csv(tmp_path / "nope.csv")


def test_parquet_reads_the_same_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 3.0], "label": ["x", "y"], "b": [2, 4]}), tmp_path / "t.parquet")
    x, y, features = table_arrays(read_parquet(tmp_path / "t.parquet"), target="label", features=None)
    assert features == ["a", "b"] and x.tolist() == [[1, 2], [3, 4]] and y.tolist() == ["x", "y"]
    assert table_columns(tmp_path / "t.parquet", "parquet") == ["a", "label", "b"]


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match="needs pyarrow: pip install pyarrow"):
        read_parquet(tmp_path / "t.parquet")


def test_a_value_beyond_float32_is_named_with_its_column_and_row(tmp_path):
    """1e300 is a float64 but the model's float32 would make it inf: say so where it is, with no warning."""
    (tmp_path / "huge.csv").write_text("a,b,label\n1,2,x\n3,1e300,y\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning on the way
        with pytest.raises(DataError, match=r"huge.csv: column 'b', row 2 \(line 3\): '1e300' is beyond float32's range"):
            table_arrays(read_csv(tmp_path / "huge.csv"), target="label", features=None)


def test_a_semicolon_separated_file_gets_a_hint(tmp_path):
    (tmp_path / "semi.csv").write_text("a;b;label\n1;2;x\n")
    with pytest.raises(DataError, match=r"its columns: a;b;label; the header looks ';'-separated, and trainwell "
                                        "reads comma-separated CSV"):
        table_arrays(read_csv(tmp_path / "semi.csv"), target="label", features=None)

