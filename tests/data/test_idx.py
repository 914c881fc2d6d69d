"""The IDX reader: round trips, and a clear DataError for every kind of damage."""

import gzip

import numpy as np
import pytest
from data_helpers import gz, idx_bytes

from trainwell.data.idx import read_content, read_idx, write_idx
from trainwell.errors import DataError, TrainwellError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_reads_the_published_layout(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + labels.tobytes())
    np.testing.assert_array_equal(read_idx(path), labels)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    raw = tmp_path / "named.gz"
    raw.write_bytes(idx_bytes(array))  # not compressed, despite its name
    np.testing.assert_array_equal(read_idx(raw), array)
    assert read_content(raw) == idx_bytes(array)


def test_write_gz_is_deterministic(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert write_idx(tmp_path / "a.gz", array).read_bytes() == write_idx(tmp_path / "b.gz", array).read_bytes()


def _error(path) -> str:
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert isinstance(info.value, TrainwellError)
    message = str(info.value)
    assert str(path) in message
    return message


def test_truncated_payload(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((10, 4, 4), np.uint8))[:-7])
    message = _error(path)
    assert "truncated" in message and "160 bytes" in message and "153" in message


def test_extra_bytes(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((10, 4, 4), np.uint8)) + b"\x00\x01")
    message = _error(path)
    assert "extra bytes" in message and "160" in message and "162" in message


def test_header_declares_more_images_than_present(tmp_path):
    data = bytearray(idx_bytes(np.zeros((10, 4, 4), np.uint8)))
    data[4:8] = (11).to_bytes(4, "big")  # says 11 images, holds 10
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gz(bytes(data)))
    message = _error(path)
    assert "(11, 4, 4)" in message and "176" in message


def test_truncated_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big"))
    assert "header" in _error(path)


def test_bad_magic(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"hello world, this is text")
    message = _error(path)
    assert "not an IDX file" in message and "00 00" in message


def test_unknown_type_byte(tmp_path):
    path = tmp_path / "weird"
    path.write_bytes(b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"\x00")
    message = _error(path)
    assert "0x07" in message and "0x08" in message


def test_zero_dimensions(tmp_path):
    path = tmp_path / "nodims"
    path.write_bytes(b"\x00\x00\x08\x00")
    assert "0 dimensions" in _error(path)


def test_tiny_file(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00")
    assert "too short" in _error(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gz(idx_bytes(np.arange(400, dtype=np.int64).astype(np.uint8).reshape(25, 4, 4)))[:-20])
    assert "truncated gzip" in _error(path)


def test_bad_gzip_crc(tmp_path):
    data = bytearray(gzip.compress(idx_bytes(np.zeros((3, 4, 4), np.uint8)), mtime=0))
    data[-8] ^= 0xFF  # the CRC-32 of the trailer
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(bytes(data))
    assert "damaged gzip" in _error(path)


def test_garbage_after_gzip_magic(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b" + b"\xff" * 30)
    assert "gzip" in _error(path)


def test_missing_file_and_directory(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope.gz")
    assert "is a directory" in _error(tmp_path)


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="complex128.*allowed: uint8"):
        write_idx(tmp_path / "c.idx", np.zeros(3, dtype=np.complex128))
    with pytest.raises(DataError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "s.idx", np.uint8(3))
