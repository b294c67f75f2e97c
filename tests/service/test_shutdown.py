"""
Graceful shutdown of a real ``twistd oci``: on SIGTERM it stops accepting
connections, lets requests in flight finish up to ``--shutdown-timeout``,
and an upload cut off by that timeout resumes after the next start.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import socket
import time

from twisted.trial.unittest import TestCase

from tests.support import TwistdServer

HALF = 256 * 1024
DATA = hashlib.shake_256(b"shutdown").digest(2 * HALF)


def _start_upload(server: TwistdServer, repository: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", f"/v2/{repository}/blobs/uploads/")
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 202, response.status
    return str(response.getheader("Location"))


def _upload_range(server: TwistdServer, location: str) -> str | None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", location)
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 204, response.status
    return response.getheader("Range")


def _open_patch(server: TwistdServer, location: str, length: int) -> socket.socket:
    """A PATCH whose headers promise ``length`` bytes; its body is sent by the caller."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(
        f"PATCH {location} HTTP/1.1\r\nHost: {server.address}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    return sock


def _read_status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1]) if data else 0
    return status, data


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


class GracefulShutdownTests(TestCase):
    def setUp(self) -> None:
        self.data_dir = os.path.abspath(self.mktemp())

    def server(self, *args: str) -> TwistdServer:
        server = TwistdServer(self.data_dir, *args)
        self.addCleanup(server.stop)
        return server

    def test_a_streaming_patch_in_flight_at_sigterm_completes(self) -> None:
        server = self.server("--shutdown-timeout", "30")
        location = _start_upload(server, "shutdown/slow")
        sock = _open_patch(server, location, len(DATA))
        self.addCleanup(sock.close)
        sock.sendall(DATA[:HALF])
        time.sleep(0.5)
        server.process.terminate()
        # No new connections while the PATCH drains ...
        deadline = time.monotonic() + 5
        while not _refused(server.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(_refused(server.port))
        self.assertIsNone(server.process.poll())
        # ... and the rest of the body still arrives and is answered.
        sock.sendall(DATA[HALF:])
        status, head = _read_status(sock)
        self.assertEqual(status, 202, head)
        self.assertIn(f"Range: 0-{len(DATA) - 1}".encode(), head)
        self.assertIn(server.process.wait(15), (0, -signal.SIGTERM))
        server.stop()

        again = self.server()
        self.assertEqual(_upload_range(again, location), f"0-{len(DATA) - 1}")

    def test_an_upload_cut_off_by_the_timeout_resumes_after_restart(self) -> None:
        server = self.server("--shutdown-timeout", "1")
        location = _start_upload(server, "shutdown/cut")
        sock = _open_patch(server, location, len(DATA))
        self.addCleanup(sock.close)
        sock.sendall(DATA[:HALF])
        time.sleep(0.5)
        started = time.monotonic()
        server.process.terminate()
        # The client never sends the rest: the timeout cuts the connection.
        try:
            status, _ = _read_status(sock)
        except ConnectionResetError:
            status = 0
        self.assertEqual(status, 0)
        self.assertIn(server.process.wait(15), (0, -signal.SIGTERM))
        self.assertLess(time.monotonic() - started, 12)
        server.stop()

        again = self.server()
        self.assertEqual(_upload_range(again, location), f"0-{HALF - 1}")
        connection = http.client.HTTPConnection("127.0.0.1", again.port, timeout=10)
        connection.request("PATCH", location, body=DATA[HALF:], headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{HALF}-{len(DATA) - 1}",
        })
        response = connection.getresponse()
        response.read()
        self.assertEqual(response.status, 202)
        digest = "sha256:" + hashlib.sha256(DATA).hexdigest()
        next_location = response.getheader("Location")
        separator = "&" if "?" in str(next_location) else "?"
        connection.request("PUT", f"{next_location}{separator}digest={digest}")
        response = connection.getresponse()
        response.read()
        self.assertEqual(response.status, 201)
        connection.request("GET", f"/v2/shutdown/cut/blobs/{digest}")
        response = connection.getresponse()
        self.assertEqual(response.read(), DATA)
        connection.close()
