"""
Clients told a registry is insecure try HTTPS first (skopeo, containerd,
podman); on a plain-HTTP port that handshake must fail at once, not time out.
"""

from __future__ import annotations

import socket
import ssl
import time

from tests.clients.base import ServerTestCase


class HTTPSProbeTests(ServerTestCase):
    def test_tls_handshake_is_refused_at_once(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as raw:
            with self.assertRaises(ssl.SSLError):
                context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.assertLess(time.monotonic() - started, 3)

    def test_plain_http_still_served_after_refusal(self) -> None:
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05hello")
            answer = raw.recv(1024)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as raw:
            raw.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := raw.recv(4096):
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
