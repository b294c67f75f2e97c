"""
The registry's :class:`~twisted.web.server.Site`: access records and draining.

:class:`RegistrySite` replaces twisted.web's combined-format access log with
one :class:`~txoci.web.accesslog.RequestRecord` per request, handed to its
observers (the structured access log, the metrics).  It also knows which
requests are in flight and which handlers still run, so that
:meth:`RegistrySite.drain` can let them finish before the registry closes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from txoci.web.accesslog import RequestRecord, annotate, request_record

log = Logger()

Observer = Callable[[RequestRecord], None]

#: Seconds handlers get to record their progress once their connections
#: were cut off at the end of a drain.
HANDLER_GRACE = 10.0


class RegistrySite(Site):
    """A :class:`Site` that records every request and can drain before stopping."""

    def __init__(
        self,
        resource: Any,
        *,
        observers: Iterable[Observer] = (),
        clock: IReactorTime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource, **kwargs)
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.clock = clock
        self.observers: list[Observer] = list(observers)
        self._make_request = self.requestFactory
        self.requestFactory = self._new_request  # type: ignore[assignment]
        self._protocols: weakref.WeakSet[Any] = weakref.WeakSet()
        #: Requests not yet answered, and handlers still running.
        self._requests: set[Any] = set()
        self._work: set[Deferred[Any]] = set()
        self._idle_waiters: list[Deferred[None]] = []
        self.draining = False

    # Requests and their records

    def _new_request(self, channel: Any, queued: bool = False) -> Any:
        request = self._make_request(channel, queued)
        annotate(request).started = self.clock.seconds()
        self._requests.add(request)
        request.notifyFinish().addBoth(self._request_ended, request)
        return request

    def _request_ended(self, result: object, request: Any) -> None:
        self._requests.discard(request)
        if isinstance(result, Failure) and getattr(request, "_txoci_dispatched", False):
            # The connection went away before the answer: log() never ran.
            self._emit(request_record(request, self.clock.seconds(), aborted=True))
        if self.draining:
            # twisted.web has detached the channel by now; the transport stays.
            transport = getattr(request, "transport", None)
            if transport is not None:
                transport.loseConnection()
        self._check_idle()

    def getResourceFor(self, request: IRequest) -> Any:
        request._txoci_dispatched = True  # type: ignore[attr-defined]
        return super().getResourceFor(request)

    def log(self, request: Any) -> None:
        """Called by twisted.web as each request finishes: record it (no combined log)."""
        self._emit(request_record(request, self.clock.seconds()))

    def _emit(self, record: RequestRecord) -> None:
        for observer in self.observers:
            try:
                observer(record)
            except Exception:
                log.failure("request observer {observer!r} failed", observer=observer)

    # Connections

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            self._protocols.add(protocol)
        return protocol

    # In-flight work

    def track(self, work: Deferred[Any]) -> None:
        """Count ``work`` (a handler still running) as in flight until it fires."""
        if work.called:
            return
        self._work.add(work)

        def ended(result: object) -> object:
            self._work.discard(work)
            self._check_idle()
            return result

        work.addBoth(ended)

    @property
    def in_flight(self) -> int:
        """Requests not yet answered plus handlers still running."""
        return len(self._requests) + len(self._work)

    def _check_idle(self) -> None:
        if self.in_flight == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(None)

    async def _idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if ``timeout`` ran out first."""
        if self.in_flight == 0:
            return True
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)

        def expire() -> None:
            if not waiter.called:
                waiter.callback(None)

        timer = self.clock.callLater(timeout, expire)
        await waiter
        if timer.active():
            timer.cancel()
        return self.in_flight == 0

    def _transports(self) -> list[Any]:
        transports = []
        for protocol in list(self._protocols):
            # The HTTP/1.1 or HTTP/2 channel behind twisted.web's protocol switcher.
            channel = getattr(protocol, "_channel", protocol)
            transport = getattr(channel, "transport", None)
            if transport is not None and getattr(transport, "connected", True):
                transports.append(transport)
        return transports

    async def drain(self, timeout: float) -> bool:
        """
        Let the requests in flight finish, for up to ``timeout`` seconds.

        Call it once the ports stopped listening.  Idle keep-alive
        connections close at once, and every other one right after its
        answer.  When ``timeout`` runs out the remaining connections are cut
        off, and their handlers get :data:`HANDLER_GRACE` seconds to record
        how far their uploads got.  True when everything finished in time.
        """
        self.draining = True
        for protocol in list(self._protocols):
            channel = getattr(protocol, "_channel", protocol)
            transport = getattr(channel, "transport", None)
            if not getattr(channel, "requests", None) and transport is not None:
                transport.loseConnection()
        if await self._idle(timeout):
            return True
        log.warn(
            "shutdown timeout ({timeout}s) reached with {count} requests in flight; closing them",
            timeout=timeout, count=len(self._requests),
        )
        for transport in self._transports():
            transport.abortConnection()
        if not await self._idle(HANDLER_GRACE):
            log.warn("{count} handlers still running after the shutdown grace period",
                     count=len(self._work))
        return False


def track_handler(request: IRequest, work: Deferred[Any]) -> None:
    """Count a handler's ``work`` as in flight on the request's site, if it drains."""
    site: Any = getattr(request, "site", None)
    if isinstance(site, RegistrySite):
        site.track(work)
