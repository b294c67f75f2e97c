"""
Request bodies as byte sources, whatever the request class.

With a :class:`~txoci.web.request.StreamingRequest` the body streams from the
socket; with a plain twisted.web ``Request`` it was already collected into
``request.content`` and is produced from there, still with back-pressure.
"""

from __future__ import annotations

from typing import IO, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.task import cooperate
from twisted.web.iweb import IRequest
from zope.interface import implementer

from txoci.registry.errors import PayloadTooLarge
from txoci.registry.operations import ByteSource
from txoci.web.request import StreamingRequest

_READ_SIZE = 256 * 1024


def declared_length(request: IRequest) -> int | None:
    """The request's ``Content-Length``, if it sent one."""
    values = request.requestHeaders.getRawHeaders(b"content-length")
    if not values:
        return None
    try:
        return int(values[0])
    except ValueError:
        return None


def has_body(request: IRequest) -> bool:
    """Whether the request carries a non-empty body (or a chunked one)."""
    length = declared_length(request)
    if length is not None:
        return length > 0
    encoding = request.requestHeaders.getRawHeaders(b"transfer-encoding")
    if encoding:
        return True
    content: Any = getattr(request, "content", None)
    if content is not None and not isinstance(request, StreamingRequest):
        position = content.tell()
        content.seek(0, 2)
        size = content.tell()
        content.seek(position)
        return bool(size)
    return False


@implementer(IPushProducer)
class _FileSource:
    """A body already collected in a file, produced in chunks."""

    def __init__(self, content: IO[bytes], length: int | None) -> None:
        self._content = content
        self.length = length
        self._task: Any = None

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        self._content.seek(0)
        total = 0

        def chunks() -> Any:
            nonlocal total
            while True:
                data = self._content.read(_READ_SIZE)
                if not data:
                    return
                total += len(data)
                consumer.write(data)
                yield None

        self._task = cooperate(chunks())
        consumer.registerProducer(self, True)
        d: Deferred[Any] = self._task.whenDone()

        def finished(result: object) -> Any:
            consumer.unregisterProducer()
            return result

        d.addBoth(finished)
        d.addCallback(lambda _: total)
        return d

    def pauseProducing(self) -> None:
        self._task.pause()

    def resumeProducing(self) -> None:
        self._task.resume()

    def stopProducing(self) -> None:
        self._task.stop()


def body_source(request: IRequest) -> ByteSource:
    """The request body as a :class:`~txoci.registry.operations.ByteSource`."""
    if isinstance(request, StreamingRequest) and request.body is not None:
        return request.body
    content: IO[bytes] = request.content
    return _FileSource(content, declared_length(request))


@implementer(IConsumer)
class _Collector:
    """Collects a bounded body in memory (manifests only, never blobs)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        if self.too_large:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.too_large = True
            self.parts = []
            if self.producer is not None:
                self.producer.stopProducing()
            return
        self.parts.append(data)


async def read_body(request: IRequest, limit: int) -> bytes:
    """The whole body, refused with 413 when it is larger than ``limit``."""
    length = declared_length(request)
    if length is not None and length > limit:
        if isinstance(request, StreamingRequest):
            request.body_abandoned()
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    collector = _Collector(limit)
    try:
        await body_source(request).deliver(collector)
    except Exception:
        if not collector.too_large:
            raise
    if collector.too_large:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    return b"".join(collector.parts)
