"""
Shared test fixtures: a registry on a real loopback port, and a real
``twistd oci`` process for the client tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from txoci import OpenRegistry, Settings, open_registry


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    """The body of an OCI image manifest of ``config`` and ``layers`` (with ``extra`` fields)."""
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": len(layer)} for layer in layers],
        **extra,
    }).encode()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


class RegistryTestCase(TestCase):
    """A registry served on 127.0.0.1 for each test, reached with treq."""

    deletes_enabled = True
    #: Build a plain twisted.web Site instead of the streaming one.
    plain_site = False

    def setUp(self) -> Deferred[None]:
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        self.data_dir = os.path.abspath(self.mktemp())
        await self.open_server()

    def auth_settings(self) -> Any:
        """The ``[auth]`` settings to serve with (an open registry by default)."""
        return None

    def registry_settings(self) -> Settings:
        """The settings each test's registry is opened with (no periodic GC)."""
        return Settings(data_dir=self.data_dir, deletes_enabled=self.deletes_enabled,
                        auth=self.auth_settings(), gc_interval=None)

    async def open_server(self) -> None:
        """Open the registry on ``self.data_dir`` and listen on a fresh port."""
        self.opened: OpenRegistry = await open_registry(self.registry_settings(), reactor)
        site = Site(self.opened.resource()) if self.plain_site else self.opened.site()
        self.port: IListeningPort = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        self._closed = False
        self.addCleanup(self.close_server)

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.port.stopListening()
        await self.opened.close()

    def close_server(self) -> Deferred[None]:
        return ensureDeferred(self._close())

    async def restart_server(self) -> None:
        """Stop and reopen the registry on the same data dir (a new port)."""
        await self._close()
        await self.open_server()

    def url(self, path: str) -> str:
        return self.base + path

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[Any, bytes]:
        """Send a request; return the response and its whole body."""
        kwargs.setdefault("persistent", False)
        response = await treq.request(method, self.url(path), **kwargs)
        body = await treq.content(response)
        return response, body

    async def push_blob(self, repository: str, data: bytes) -> str:
        """Push ``data`` monolithically; return its digest."""
        digest = sha256(data)
        response, body = await self.request(
            "POST", f"/v2/{repository}/blobs/uploads/?digest={digest}", data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(response.code, 201, body)
        return digest

    async def push_image(
        self, repository: str, tag: str | None, layers: list[bytes], **extra: Any
    ) -> tuple[str, bytes]:
        """Push a config, ``layers`` and an OCI manifest; return (digest, manifest bytes)."""
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        for blob in [config, *layers]:
            await self.push_blob(repository, blob)
        body = image_manifest(config, layers, **extra)
        digest = sha256(body)
        response, answer = await self.request(
            "PUT", f"/v2/{repository}/manifests/{tag or digest}", data=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        self.assertEqual(response.code, 201, answer)
        return digest, body

    def assertError(self, response: Any, body: bytes, status: int, code: str) -> None:
        """The response is the spec's error envelope with ``code`` and ``status``."""
        self.assertEqual(response.code, status, body)
        document = json.loads(body)
        self.assertIn(code, [e["code"] for e in document["errors"]], body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _endpoint_quote(value: str) -> str:
    """Escape ``value`` for a Twisted endpoint description."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


#: ``twistd`` itself (``python -m twisted`` is the other runner, ``twist``).
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


class TwistdServer:
    """A real ``twistd -n oci`` process on a free loopback port."""

    def __init__(self, data_dir: str, *extra_args: str, tls: tuple[str, str] | None = None) -> None:
        """``tls=(key file, certificate file)`` serves HTTPS (an ``ssl:`` endpoint) instead."""
        self.data_dir = data_dir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.scheme = "https" if tls else "http"
        listen = f"tcp:{self.port}:interface=127.0.0.1"
        if tls:
            key, cert = (_endpoint_quote(os.path.abspath(path)) for path in tls)
            listen = f"ssl:{self.port}:privateKey={key}:certKey={cert}:interface=127.0.0.1"
        self.log_path = os.path.join(os.path.dirname(os.path.abspath(data_dir)), f"twistd-{self.port}.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            # The command users run, ``twistd -n oci``, with this interpreter.
            [sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile=", "oci",
             "--data-dir", data_dir, "--listen", listen, *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twistd exited early; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"twistd did not start listening; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: a crash, for restart tests."""
        self.process.kill()
        self.process.wait()
        self._log.close()
