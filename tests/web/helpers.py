"""
Helpers for the HTTP API tests: manifest builders, a body of unknown length
(sent with chunked transfer encoding) and a raw HTTP client for requests no
well-behaved client library would send.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol
from twisted.internet.task import cooperate
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from tests.support import sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: The OCI empty descriptor (image-spec manifest.md, "Guidance for an Empty Descriptor").
EMPTY_DESCRIPTOR = {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2}


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def oci_manifest(config: dict[str, Any], layers: list[dict[str, Any]], **extra: Any) -> bytes:
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    return encode({**document, **extra})


def oci_index(children: list[dict[str, Any]], **extra: Any) -> bytes:
    return encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children, **extra})


def header_values(response: Any, name: str) -> list[str]:
    """Every comma-separated value of a response header, over all its lines."""
    values: list[str] = []
    for line in response.headers.getRawHeaders(name, []):
        values.extend(part.strip() for part in line.split(",") if part.strip())
    return values


def one_header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return None if values is None else values[0]


@implementer(IBodyProducer)
class UnknownLengthBody:
    """
    A request body whose length is not declared: the client sends it with
    ``Transfer-Encoding: chunked``, one part per turn of the reactor.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, parts: Iterable[bytes]) -> None:
        self._parts = list(parts)
        self._task: Any = None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        def produce() -> Any:
            for part in self._parts:
                consumer.write(part)
                yield None

        self._task = cooperate(produce())
        done: Deferred[None] = self._task.whenDone()
        done.addCallback(lambda _: None)
        return done

    def pauseProducing(self) -> None:
        self._task.pause()

    def resumeProducing(self) -> None:
        self._task.resume()

    def stopProducing(self) -> None:
        self._task.stop()


@attrs.frozen
class RawResponse:
    """A response read off the wire: status, lowercased headers, body."""

    code: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2:]
    return b"".join(out)


def parse_response(raw: bytes) -> RawResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split(" ", 2)[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
        body = _dechunk(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"][0])]
    return RawResponse(code, headers, body)


class _Exchange(Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(b"".join(self.received))


async def raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` as is; return every byte the server sent until it closed."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    protocol = _Exchange(request)
    await connectProtocol(endpoint, protocol)
    # A server that never closes the connection ends the exchange after ``timeout``.
    watchdog = reactor.callLater(timeout, protocol.transport.abortConnection)  # type: ignore[attr-defined]
    try:
        return await protocol.done
    finally:
        if watchdog.active():
            watchdog.cancel()


def build_request(
    method: str, path: bytes | str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """The bytes of one request with exactly this path and these headers."""
    if isinstance(path, str):
        path = path.encode("latin-1")
    lines = [method.encode("ascii") + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    headers = dict(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers["Content-Length"] = str(len(body))
    for name, value in headers.items():
        lines.append(f"{name}: {value}".encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def raw_request(
    port: int,
    method: str,
    path: bytes | str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> RawResponse:
    """One request with exactly this path and these headers, on its own connection."""
    return parse_response(await raw_exchange(port, build_request(method, path, headers, body)))


def content_length(response: Any) -> int | None:
    """
    The response's ``Content-Length``: the client keeps it as ``length`` (and
    only in the headers for HEAD and bodiless statuses).
    """
    value = one_header(response, "Content-Length")
    if value is not None:
        return int(value)
    return None if response.length is UNKNOWN_LENGTH else int(response.length)
