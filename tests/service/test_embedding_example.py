"""
The embedding documentation's example app (docs/examples/embed_app.py) and
:class:`txoci.RegistryService`, each serving on a real loopback port.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

import txoci
from txoci.web.request import StreamingRequest

EXAMPLE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "docs", "examples", "embed_app.py"
)


def load_example() -> ModuleType:
    """Import docs/examples/embed_app.py, which is not inside a package."""
    spec = importlib.util.spec_from_file_location("txoci_docs_embed_app", os.path.normpath(EXAMPLE))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def port_number(port: IListeningPort) -> int:
    address: Any = port.getHost()
    return int(address.port)


async def fetch(method: str, url: str, **kwargs: Any) -> tuple[Any, bytes]:
    """One request on its own connection; the response and its whole body."""
    kwargs.setdefault("persistent", False)
    response = await treq.request(method, url, **kwargs)
    return response, await treq.content(response)


class EmbeddedAppTests(TestCase):
    """The example host app, with the streaming site it uses by default."""

    streaming = True

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        example = load_example()
        self.data_dir = os.path.abspath(self.mktemp())
        self.app = await example.main(reactor, self.data_dir, 0, streaming=self.streaming)
        self.addCleanup(lambda: ensureDeferred(self.app.stop()))
        self.assertNotEqual(port_number(self.app.port), 0)
        self.base = self.app.url

    def test_site_request_class(self) -> None:
        factory: Any = self.app.port.factory  # type: ignore[attr-defined]
        self.assertEqual(factory.requestFactory is StreamingRequest, self.streaming)

    async def test_host_page_and_registry_side_by_side(self) -> None:
        response, body = await fetch("GET", self.base + "/hello")
        self.assertEqual(response.code, 200)
        self.assertIn(b"Hello from the host application", body)

        response, body = await fetch("GET", self.base + "/v2/")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"{}")
        self.assertEqual(response.headers.getRawHeaders("Docker-Distribution-API-Version"), ["registry/2.0"])

    async def test_chunked_push_then_pull(self) -> None:
        first, second = b"first chunk of the layer, " * 1000, b"and the second chunk." * 500
        data = first + second
        digest = sha256(data)

        response, body = await fetch("POST", self.base + "/v2/embedded/app/blobs/uploads/")
        self.assertEqual(response.code, 202, body)
        location = response.headers.getRawHeaders("Location")[0]
        self.assertTrue(location.startswith("/v2/embedded/app/blobs/uploads/"), location)

        response, body = await fetch(
            "PATCH",
            self.base + location,
            data=first,
            headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(first) - 1}"},
        )
        self.assertEqual(response.code, 202, body)
        self.assertEqual(response.headers.getRawHeaders("Range"), [f"0-{len(first) - 1}"])
        location = response.headers.getRawHeaders("Location")[0]

        response, body = await fetch(
            "PATCH",
            self.base + location,
            data=second,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(response.code, 202, body)
        self.assertEqual(response.headers.getRawHeaders("Range"), [f"0-{len(data) - 1}"])
        location = response.headers.getRawHeaders("Location")[0]

        response, body = await fetch("PUT", f"{self.base}{location}?digest={digest}")
        self.assertEqual(response.code, 201, body)
        self.assertEqual(response.headers.getRawHeaders("Docker-Content-Digest"), [digest])
        self.assertEqual(response.headers.getRawHeaders("Location"), [f"/v2/embedded/app/blobs/{digest}"])

        response, body = await fetch("GET", f"{self.base}/v2/embedded/app/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, data)

        response, body = await fetch(
            "GET", f"{self.base}/v2/embedded/app/blobs/{digest}", headers={"Range": "bytes=10-19"}
        )
        self.assertEqual(response.code, 206)
        self.assertEqual(body, data[10:20])

    async def test_monolithic_push_survives_a_restart(self) -> None:
        data = b"a whole blob in one POST"
        digest = sha256(data)
        response, body = await fetch(
            "POST",
            f"{self.base}/v2/embedded/app/blobs/uploads/?digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(response.code, 201, body)

        await self.app.stop()
        example = load_example()
        self.app = await example.main(reactor, self.data_dir, 0, streaming=self.streaming)
        response, body = await fetch("GET", f"{self.app.url}/v2/embedded/app/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, data)


class PlainSiteEmbeddedAppTests(EmbeddedAppTests):
    """The same app under a plain twisted.web Site, which buffers bodies first."""

    streaming = False


class RegistryServiceTests(TestCase):
    """:class:`txoci.RegistryService` listens on endpoint strings."""

    async def _wait_listening(self, service: txoci.RegistryService, count: int) -> None:
        for _ in range(200):
            if len(service.ports) == count:
                return
            await deferLater(reactor, 0.025, lambda: None)
        self.fail("RegistryService did not start listening")

    async def test_serves_v2_on_every_endpoint(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        service = txoci.RegistryService(
            txoci.Settings(data_dir=data_dir),
            ["tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"],
            reactor,
        )
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        await self._wait_listening(service, 2)

        numbers = [port_number(port) for port in service.ports]
        self.assertEqual(len(set(numbers)), 2)
        for number in numbers:
            response, body = await fetch("GET", f"http://127.0.0.1:{number}/v2/")
            self.assertEqual(response.code, 200)
            self.assertEqual(body, b"{}")

        data = b"through RegistryService"
        digest = sha256(data)
        base = f"http://127.0.0.1:{numbers[0]}/v2/service/test"
        response, body = await fetch("POST", f"{base}/blobs/uploads/?digest={digest}", data=data)
        self.assertEqual(response.code, 201, body)
        response, body = await fetch("GET", f"{base}/blobs/{digest}")
        self.assertEqual(body, data)

        await service.stopService()
        self.assertEqual(service.ports, [])
        self.assertIsNone(service.opened)
        self.assertTrue(os.path.exists(os.path.join(data_dir, "metadata.sqlite3")))
