"""Downloads, tested for real against a local HTTP server on 127.0.0.1."""

import hashlib
import socket

import numpy as np
import pytest
from data_helpers import FILENAMES, gz, idx_bytes, spec_for, synthetic_arrays

from trainwell.data import download_file, load, locate
from trainwell.errors import DataError

CONTENT = idx_bytes(np.arange(200, dtype=np.int64).astype(np.uint8).reshape(2, 10, 10))
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_success_saves_the_checked_file(tmp_path, server):
    url = server.serve("/a/file.gz", (200, gz(CONTENT)))
    dest = tmp_path / "out" / "file.gz"
    assert download_file([url], dest, sha256=DIGEST) == dest
    assert dest.read_bytes() == gz(CONTENT)
    assert _leftovers(dest.parent) == ["file.gz"]  # no temporary file left behind


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    changed = bytearray(CONTENT)
    changed[-1] ^= 0xFF
    bad_digest = hashlib.sha256(changed).hexdigest()
    url = server.serve("/a/file.gz", (200, gz(bytes(changed))))
    dest = tmp_path / "file.gz"
    with pytest.raises(DataError) as info:
        download_file([url], dest, sha256=DIGEST)
    message = str(info.value)
    assert "file.gz" in message and DIGEST in message and bad_digest in message
    assert "nothing was saved" in message
    assert _leftovers(tmp_path) == []
    assert server.requests == ["/a/file.gz"]  # bad content is not retried from the same mirror


def test_truncated_file_leaves_nothing(tmp_path, server):
    url = server.serve("/a/file.gz", (200, gz(CONTENT)[:-15]))
    dest = tmp_path / "file.gz"
    with pytest.raises(DataError, match="file.gz.*\n.*not a valid gzip stream"):
        download_file([url], dest, sha256=DIGEST)
    assert _leftovers(tmp_path) == []


def test_dropped_connection_is_retried_then_reported(tmp_path, server):
    body = gz(CONTENT)
    url = server.serve("/a/file.gz", (200, body[:30], len(body)))
    dest = tmp_path / "file.gz"
    with pytest.raises(DataError, match="tried 3 times"):
        download_file([url], dest, sha256=DIGEST, attempts=3)
    assert len(server.requests) == 3
    assert _leftovers(tmp_path) == []


def test_retry_after_a_server_error(tmp_path, server):
    url = server.serve("/a/file.gz", (500, b"oops"), (200, gz(CONTENT)))
    dest = tmp_path / "file.gz"
    download_file([url], dest, sha256=DIGEST, attempts=2)
    assert server.requests == ["/a/file.gz", "/a/file.gz"]
    assert hashlib.sha256(gz(CONTENT)).digest() == hashlib.sha256(dest.read_bytes()).digest()


def test_retries_pause_with_backoff(tmp_path, server, monkeypatch):
    pauses = []
    monkeypatch.setattr("trainwell.data.download.time.sleep", pauses.append)
    url = server.serve("/a/file.gz", (503, b""), (503, b""), (200, gz(CONTENT)))
    download_file([url], tmp_path / "file.gz", sha256=DIGEST, attempts=3, backoff_s=0.5)
    assert pauses == [0.5, 1.0]


@pytest.mark.parametrize("first_status", [404, 500])
def test_falls_back_to_the_next_mirror(tmp_path, server, first_status):
    first = server.serve("/one/file.gz", (first_status, b""))
    second = server.serve("/two/file.gz", (200, gz(CONTENT)))
    dest = tmp_path / "file.gz"
    download_file([first, second], dest, sha256=DIGEST, attempts=2)
    tries_of_first = 1 if first_status == 404 else 2  # "not found" is not retried
    assert server.requests == ["/one/file.gz"] * tries_of_first + ["/two/file.gz"]
    assert dest.exists()


def test_unreachable_mirror_falls_back(tmp_path, server):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/file.gz"
    good = server.serve("/file.gz", (200, gz(CONTENT)))
    download_file([dead, good], tmp_path / "file.gz", sha256=DIGEST, attempts=1)
    assert (tmp_path / "file.gz").exists()


def test_timeout(tmp_path, server):
    server.delay_s = 1.0
    url = server.serve("/slow.gz", (200, gz(CONTENT)))
    with pytest.raises(DataError, match="slow.gz"):
        download_file([url], tmp_path / "slow.gz", sha256=DIGEST, attempts=1, timeout_s=0.2)
    assert _leftovers(tmp_path) == []


def test_every_mirror_failing_is_reported(tmp_path, server):
    first = server.serve("/one/file.gz", (404, b""))
    second = server.serve("/two/file.gz", (500, b""))
    with pytest.raises(DataError) as info:
        download_file([first, second], tmp_path / "file.gz", sha256=DIGEST, attempts=1)
    message = str(info.value)
    assert f"{first}: HTTP 404" in message and f"{second}: HTTP 500" in message


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="no URL"):
        download_file([], tmp_path / "f.gz", sha256=None)
    with pytest.raises(DataError, match="attempts must be at least 1"):
        download_file(["http://127.0.0.1/x"], tmp_path / "f.gz", sha256=None, attempts=0)


# --- through load(): the registered dataset's mirrors point at the local server ---


def _serve_dataset(server, arrays, mirror="/mnist/"):
    for role, name in FILENAMES.items():
        server.serve(mirror + name, (200, gz(idx_bytes(arrays[role]))))


def test_load_downloads_into_the_cache(tmp_path, server, use_spec):
    arrays = synthetic_arrays()
    use_spec(spec_for("mnist", arrays, mirrors=(server.base + "/missing/", server.base + "/mnist/")))
    _serve_dataset(server, arrays)
    assert locate("mnist").origin == "download"

    data = load("mnist")
    target = tmp_path / "cache" / "datasets" / "mnist"
    assert data.source == f"{target} (cache)"
    assert _leftovers(target) == sorted(FILENAMES.values())
    np.testing.assert_array_equal(data.x_train, arrays["train_images"])
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])
    assert len(server.requests) == 8  # each file: 404 from the first mirror, then the second

    load("mnist", verify=True)  # now found in the cache: no new request
    assert len(server.requests) == 8


def test_load_completes_an_interrupted_download(tmp_path, server, use_spec):
    arrays = synthetic_arrays()
    use_spec(spec_for("mnist", arrays, mirrors=(server.base + "/mnist/",)))
    _serve_dataset(server, arrays)
    target = tmp_path / "cache" / "datasets" / "mnist"
    target.mkdir(parents=True)
    (target / FILENAMES["train_images"]).write_bytes(gz(idx_bytes(arrays["train_images"])))
    load("mnist")
    assert server.requests == ["/mnist/" + FILENAMES[r] for r in ("train_labels", "test_images", "test_labels")]


def test_load_with_a_corrupt_mirror_fails_cleanly(tmp_path, server, use_spec):
    arrays = synthetic_arrays()
    use_spec(spec_for("mnist", arrays, mirrors=(server.base + "/mnist/",)))
    _serve_dataset(server, arrays)
    bad = idx_bytes(arrays["test_images"])[:-1] + b"\x00"
    if bad == idx_bytes(arrays["test_images"]):
        bad = bad[:-1] + b"\x01"
    server.serve("/mnist/" + FILENAMES["test_images"], (200, gz(bad)))
    with pytest.raises(DataError) as info:
        load("mnist")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "checksum mismatch" in message
    assert "was not found on this machine" in message
    target = tmp_path / "cache" / "datasets" / "mnist"
    assert FILENAMES["test_images"] not in _leftovers(target)
    assert not any(name.endswith(".part") for name in _leftovers(target))


def test_progress_bar_does_not_get_in_the_way(tmp_path, server, capsys):
    url = server.serve("/a/file.gz", (200, gz(CONTENT)))
    download_file([url], tmp_path / "file.gz", sha256=DIGEST, progress=True)
    assert (tmp_path / "file.gz").exists()
    assert capsys.readouterr().out == ""  # the bar goes to stderr only
