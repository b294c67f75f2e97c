"""
Blobs stream: a real ``twistd oci`` keeps flat memory and writes each byte once.

The server runs in its own process so its peak RSS (``VmHWM``) and disk
writes (``write_bytes`` in ``/proc/PID/io``) can be read.
"""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterator

from twisted.trial.unittest import SkipTest, TestCase

from tests.support import TwistdServer

BLOB_SIZE = 256 * 1024 * 1024
PIECE = 1024 * 1024
#: Far below the blob size: memory must not grow with it.
RSS_LIMIT = 100 * 1024 * 1024


def _pieces(seed: bytes) -> Iterator[bytes]:
    """BLOB_SIZE pseudo-random bytes, generated piece by piece."""
    block = hashlib.shake_256(seed).digest(PIECE)
    for index in range(BLOB_SIZE // PIECE):
        yield block[index:] + block[:index]


def _digest(seed: bytes) -> str:
    hasher = hashlib.sha256()
    for piece in _pieces(seed):
        hasher.update(piece)
    return "sha256:" + hasher.hexdigest()


def _proc_value(pid: int, name: str, key: str) -> int:
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(key + ":"):
                value = line.split(":", 1)[1].split()
                return int(value[0]) * (1024 if len(value) > 1 and value[1] == "kB" else 1)
    raise KeyError(key)


class StreamingResourceTests(TestCase):
    def setUp(self) -> None:
        if not os.path.exists("/proc/self/io"):
            raise SkipTest("needs Linux /proc/PID/io")
        self.server = TwistdServer(os.path.abspath(self.mktemp()))
        self.addCleanup(self.server.stop)
        self.pid = self.server.process.pid

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)

    def test_chunked_push_and_pull_keep_memory_flat_and_write_once(self) -> None:
        seed = b"flat memory"
        digest = _digest(seed)
        written_before = _proc_value(self.pid, "io", "write_bytes")

        conn = self.connection()
        conn.request("POST", "/v2/memory/blobs/uploads/")
        response = conn.getresponse()
        response.read()
        self.assertEqual(response.status, 202)
        location = response.getheader("Location")
        conn.request("PATCH", location, body=_pieces(seed), encode_chunked=True,
                     headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        response.read()
        self.assertEqual(response.status, 202)
        self.assertEqual(response.getheader("Range"), f"0-{BLOB_SIZE - 1}")
        conn.request("PUT", f"{location}?digest={digest}", body=b"")
        response = conn.getresponse()
        response.read()
        self.assertEqual(response.status, 201)

        written = _proc_value(self.pid, "io", "write_bytes") - written_before
        self.assertLessEqual(written, BLOB_SIZE * 1.1, "the upload was written more than once")

        conn.request("GET", f"/v2/memory/blobs/{digest}")
        response = conn.getresponse()
        hasher = hashlib.sha256()
        received = 0
        while chunk := response.read(PIECE):
            hasher.update(chunk)
            received += len(chunk)
        conn.close()
        self.assertEqual(received, BLOB_SIZE)
        self.assertEqual("sha256:" + hasher.hexdigest(), digest)

        peak = _proc_value(self.pid, "status", "VmHWM")
        self.assertLess(peak, RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB")
