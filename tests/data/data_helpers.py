"""Helpers for the trainwell.data tests: synthetic IDX datasets and a scripted HTTP server.

(A uniquely named module rather than conftest.py, so that tests can import it.)
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from trainwell.data import registry
from trainwell.data.idx import write_idx

FILENAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def synthetic_arrays(n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Small MNIST-like arrays: 4x4 uint8 images, labels 0..9 (all ten classes when n_train >= 10)."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, size=(n_train, 4, 4), dtype=np.uint8),
        "train_labels": ((np.arange(n_train) + seed) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 4, 4), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def idx_bytes(array: np.ndarray) -> bytes:
    """The raw (decompressed) IDX bytes of a uint8 ``array``, built by hand."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(s.to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def write_set(folder: Path, arrays: dict[str, np.ndarray], *, compressed: bool = True) -> Path:
    """Write the four files of ``arrays`` into ``folder`` (created), as .gz or raw."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, array in arrays.items():
        name = FILENAMES[role] if compressed else FILENAMES[role][: -len(".gz")]
        write_idx(folder / name, array)
    return folder


def spec_for(name: str, arrays: dict[str, np.ndarray], mirrors: tuple[str, ...] = ()) -> registry.DatasetSpec:
    """The registered spec ``name`` with the checksums (and mirrors) of the synthetic ``arrays``."""
    files = tuple(
        registry.FileSpec(role, FILENAMES[role], hashlib.sha256(idx_bytes(arrays[role])).hexdigest())
        for role in registry.IDX_ROLES
    )
    return dataclasses.replace(registry.DATASETS[name], files=files, mirrors=mirrors)


class FileServer:
    """A local HTTP server with scripted answers per path.

    ``serve(path, *answers)``: each answer is ``(status, body)`` or
    ``(status, body, claimed_length)``; each request takes the next answer and
    the last one repeats. A claimed length larger than the body imitates a
    connection that drops half way. Unknown paths get 404. ``requests`` lists
    the paths asked for, in order.
    """

    def __init__(self):
        self.routes: dict[str, list[tuple]] = {}
        self.requests: list[str] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with server._lock:
                    server.requests.append(self.path)
                    answers = server.routes.get(self.path)
                    if not answers:
                        answer = (404, b"not found")
                    elif len(answers) > 1:
                        answer = answers.pop(0)
                    else:
                        answer = answers[0]
                if server.delay_s:
                    time.sleep(server.delay_s)
                status, body, *claimed = answer
                self.send_response(status)
                self.send_header("Content-Length", str(claimed[0] if claimed else len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda *args: None  # clients that hang up early are expected
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, path: str, *answers: tuple) -> str:
        """Script the answers for ``path``; returns its full URL."""
        self.routes[path] = list(answers)
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
