"""
Clients that disconnect mid-upload or mid-download: no leaked file handles or
upload state, the upload resumes where the bytes stopped, and the next
request works.
"""

from __future__ import annotations

import hashlib
import os
import socket

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests.support import RegistryTestCase, sha256

BLOB = hashlib.shake_256(b"disconnects").digest(8 * 1024 * 1024)


def _open_fds() -> int:
    """Open blob and upload files and sockets (SQLite's connections come and go by design)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:") or "/blobs/" in target or "/uploads/" in target:
            count += 1
    return count


def _send_then_hang_up(port: int, head: bytes, body_part: bytes, read: int = 0) -> None:
    """Send a request head and part of what follows, optionally read a little, then close."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head + body_part)
        if read:
            received = 0
            while received < read:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += len(chunk)


class DisconnectTests(RegistryTestCase):
    async def settle(self) -> None:
        await deferLater(reactor, 0.3, lambda: None)

    async def test_upload_cut_off_mid_body_resumes_from_the_bytes_that_arrived(self) -> None:
        response, _ = await self.request("POST", "/v2/cut/upload/blobs/uploads/")
        location = response.headers.getRawHeaders("Location")[0]
        await self.settle()
        fds_before = _open_fds()
        head = (
            f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {len(BLOB)}\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        await deferToThread(_send_then_hang_up, self.port.getHost().port, head, BLOB[: 3 * 1024 * 1024])
        await self.settle()

        response, _ = await self.request("GET", location)
        self.assertEqual(response.code, 204)
        end = int(response.headers.getRawHeaders("Range")[0].split("-")[1])
        offset = end + 1 if end else 0
        self.assertLessEqual(offset, 3 * 1024 * 1024)

        response, body = await self.request(
            "PATCH", location, data=BLOB[offset:],
            headers={"Content-Range": f"{offset}-{len(BLOB) - 1}",
                     "Content-Type": "application/octet-stream"},
        )
        self.assertEqual(response.code, 202, body)
        response, body = await self.request("PUT", f"{location}?digest={sha256(BLOB)}")
        self.assertEqual(response.code, 201, body)
        response, body = await self.request("GET", f"/v2/cut/upload/blobs/{sha256(BLOB)}")
        self.assertEqual(body, BLOB)

        await self.settle()
        self.assertEqual(self.opened.registry._active, {}, "the finished upload still holds a writer")
        self.assertLessEqual(_open_fds(), fds_before, "file descriptors leaked")

    async def test_downloads_cut_off_leak_nothing_and_the_next_request_works(self) -> None:
        digest = await self.push_blob("cut/download", BLOB)
        await self.settle()
        fds_before = _open_fds()
        head = f"GET /v2/cut/download/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        for _ in range(10):
            await deferToThread(_send_then_hang_up, self.port.getHost().port, head, b"", 200 * 1024)
        await self.settle()
        self.assertLessEqual(_open_fds(), fds_before, "file descriptors leaked")

        response, body = await self.request("GET", f"/v2/cut/download/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, BLOB)
