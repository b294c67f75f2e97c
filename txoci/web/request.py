"""
Streaming request bodies for twisted.web.

Twisted's stock :class:`~twisted.web.server.Request` collects the whole body
(in memory or a temporary file) and only then dispatches the request.  For a
registry that means a 1 GiB layer is spooled once and copied again.

:class:`StreamingRequest` instead dispatches a request that carries a body as
soon as its headers are complete.  The body then arrives through
:class:`StreamingBody`, a push producer: the handler hands it a consumer (the
upload writer), every chunk is passed straight through, and when the
consumer is behind, reading from the socket pauses.  Until a handler asks
for the body, chunks are held up to a small limit, then reading pauses too.

A request whose handler answered before reading its whole body (an error,
say) closes its connection afterwards, because the rest of the body would
otherwise be read as the next request.

Handlers do not need to know which request class they got: the helpers in
:mod:`txoci.web.body` work with both, so txoci still works, unstreamed,
inside an application's plain :class:`~twisted.web.server.Site`.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol, parse_qs
from twisted.web.server import Request, Site
from zope.interface import implementer

#: Body bytes held for a handler that has not asked for the body yet.
PENDING_LIMIT = 1024 * 1024

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


@implementer(IPushProducer)
class StreamingBody:
    """The body of a :class:`StreamingRequest`, as it arrives."""

    def __init__(self, request: StreamingRequest, length: int | None) -> None:
        self._request = request
        self.length = length
        self.received = 0
        self.complete = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._consumer: IConsumer | None = None
        self._done: Deferred[int] | None = None
        self._failure: Failure | None = None
        self._paused_by_us = False
        self._consumer_paused = False
        self._stopped = False

    # Fed by the request.

    def _data(self, data: bytes) -> None:
        if self._stopped:
            return
        self.received += len(data)
        if self._consumer is not None:
            self._consumer.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > PENDING_LIMIT:
            self._pause_transport()

    def _end(self) -> None:
        self.complete = True
        self._resume_transport()
        if self._consumer is not None:
            self._finish()

    def _lost(self, reason: Failure) -> None:
        self._failure = reason
        if self._consumer is not None and not self.complete:
            self._finish()

    # Flow control of the socket.

    def _pause_transport(self) -> None:
        if not self._paused_by_us and not self.complete:
            producer = self._request.network_producer()
            if producer is not None:
                self._paused_by_us = True
                producer.pauseProducing()

    def _resume_transport(self) -> None:
        if self._paused_by_us:
            self._paused_by_us = False
            producer = self._request.network_producer()
            if producer is not None:
                producer.resumeProducing()

    # IPushProducer, for the consumer.

    def pauseProducing(self) -> None:
        self._consumer_paused = True
        self._pause_transport()

    def resumeProducing(self) -> None:
        self._consumer_paused = False
        self._resume_transport()

    def stopProducing(self) -> None:
        """The consumer gave up: drop the rest and close the connection after the response."""
        self._stopped = True
        self._pending, self._pending_size = [], 0
        self._request.body_abandoned()
        self._resume_transport()
        self._finish()

    # The handler's side.

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """Write the whole body to ``consumer``; fire with its length at the end."""
        if self._consumer is not None:
            raise RuntimeError("a request body can only be delivered once")
        self._consumer = consumer
        self._done = Deferred()
        done = self._done
        consumer.registerProducer(self, True)
        pending, self._pending, self._pending_size = self._pending, [], 0
        for chunk in pending:
            consumer.write(chunk)
        if not self._consumer_paused:
            self._resume_transport()
        if self.complete or self._failure is not None:
            self._finish()
        return done

    def _finish(self) -> None:
        consumer = self._consumer
        done, self._done = self._done, None
        if consumer is not None:
            consumer.unregisterProducer()
        if done is None:
            return
        if self._failure is not None and not self.complete:
            done.errback(self._failure)
        else:
            done.callback(self.received)


class StreamingRequest(Request):
    """A :class:`Request` that dispatches before its body has arrived."""

    body: StreamingBody | None = None

    def gotLength(self, length: int | None) -> None:
        channel: Any = self.channel
        command: bytes | None = getattr(channel, "_command", None)
        path: bytes | None = getattr(channel, "_path", None)
        version: bytes | None = getattr(channel, "_version", None)
        if (
            command not in _BODY_METHODS
            or length == 0
            or path is None
            or not path.startswith(b"/v2/")
        ):
            super().gotLength(length)
            return
        self.content = io.BytesIO()
        self.body = StreamingBody(self, length)
        self.method, self.uri, self.clientproto = command, path, version or b"HTTP/1.1"
        self.path, _, query = path.partition(b"?")
        self.args = parse_qs(query, 1) if query else {}
        # Dispatch on the next turn of the reactor: the rest of the data
        # already read from the socket is then fed to the body first.
        from twisted.internet import reactor

        reactor.callLater(0, self._dispatch)  # type: ignore[attr-defined]

    def _dispatch(self) -> None:
        if not self._disconnected:
            self.process()

    def handleContentChunk(self, data: bytes) -> None:
        if self.body is None:
            super().handleContentChunk(data)
        elif not self.finished:
            self.body._data(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.body is None:
            super().requestReceived(command, path, version)
            return
        # Ending the body may let the handler answer right away; only an
        # answer that went out before the body had all arrived closes.
        answered_early = self.finished
        self.body._end()
        if answered_early:
            self._close_after_response()

    def connectionLost(self, reason: Failure) -> None:
        if self.body is not None:
            self.body._lost(reason)
        super().connectionLost(reason)

    def network_producer(self) -> IPushProducer | None:
        """The producer that reads this request's connection."""
        channel: Any = getattr(self, "channel", None)
        if channel is None:
            return None
        return getattr(channel, "_networkProducer", None) or IPushProducer(channel.transport, None)

    def body_abandoned(self) -> None:
        """Nobody will read the rest of the body: close once answered."""
        self._mark_not_persistent()

    def _mark_not_persistent(self) -> None:
        channel: Any = self.channel
        if channel is not None:
            channel.persistent = False
        if not self.startedWriting:
            self.responseHeaders.setRawHeaders(b"Connection", [b"close"])

    def _close_after_response(self) -> None:
        # twisted.web deletes ``channel`` once a finished request is cleaned up.
        channel: Any = getattr(self, "channel", None)
        transport = channel.transport if channel is not None else self.transport
        if transport is not None:
            transport.loseConnection()

    def finish(self) -> None:
        if self.body is not None and not self.body.complete:
            # The channel would parse the unread body as the next request.
            self._mark_not_persistent()
        super().finish()


#: Socket reads and the send buffer of a connection.  Twisted's default of
#: 64 KiB means 16,000 reads per GiB pushed, each a trip through the
#: reactor; 1 MiB lets one read take whatever the kernel has queued.
TRANSPORT_BUFFER = 1024 * 1024


class _PlainHTTPChannel(HTTPChannel):
    """
    An :class:`HTTPChannel` that refuses a TLS handshake at once, and reads
    and writes in large pieces.

    Clients told a registry is insecure (skopeo, containerd) try HTTPS first
    and fall back to HTTP when that fails.  A ClientHello has no CRLF, so the
    stock channel waits for a request line until the client's TLS handshake
    times out (10 seconds in Go); answering 400 makes the fallback immediate,
    as Go's own HTTP server does.
    """

    _seen_data = False

    def connectionMade(self) -> None:
        super().connectionMade()
        transport: Any = self.transport
        if transport is not None and hasattr(transport, "bufferSize"):
            transport.bufferSize = TRANSPORT_BUFFER

    def dataReceived(self, data: bytes) -> None:
        if not self._seen_data and data:
            self._seen_data = True
            if data[:1] == b"\x16":  # A TLS handshake record, never an HTTP method.
                self._respondToBadRequestAndDisconnect()
                return
        super().dataReceived(data)


def _channel() -> _GenericHTTPChannelProtocol:
    return _GenericHTTPChannelProtocol(_PlainHTTPChannel())


def streaming_site(resource: Any, *, site_class: type[Site] = Site, **kwargs: Any) -> Site:
    """A :class:`Site` (or ``site_class``) whose requests stream their bodies."""
    site = site_class(resource, requestFactory=StreamingRequest, **kwargs)
    site.protocol = _channel  # type: ignore[assignment]
    return site
