"""
``/livez`` and ``/readyz``: the health endpoints, beside ``/v2`` at the site root.

Both are thin: ``/livez`` answers as long as the reactor serves requests, and
``/readyz`` renders what :class:`~txoci.service.health.HealthChecker` found.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txoci.service.health import HealthChecker, Readiness
from txoci.web.accesslog import annotate

log = Logger()


def _answer(request: IRequest, status: int, document: Any) -> bytes:
    body = json.dumps(document, separators=(",", ":")).encode("utf-8") + b"\n"
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return b"" if request.method == b"HEAD" else body


def _only_get(request: IRequest) -> bytes | None:
    if request.method in (b"GET", b"HEAD"):
        return None
    request.setHeader(b"Allow", b"GET, HEAD")
    return _answer(request, 405, {"status": "method not allowed"})


class LivezResource(Resource):
    """``/livez``: 200 while the process serves requests."""

    isLeaf = True

    def render(self, request: IRequest) -> bytes:
        annotate(request).route = "/livez"
        return _only_get(request) or _answer(request, 200, {"status": "alive"})


class ReadyzResource(Resource):
    """``/readyz``: 200 when the stores can be read and written, else 503 with the reasons."""

    isLeaf = True

    def __init__(self, checker: HealthChecker) -> None:
        super().__init__()
        self._checker = checker

    def render(self, request: IRequest) -> Any:
        annotate(request).route = "/readyz"
        refused = _only_get(request)
        if refused is not None:
            return refused

        def answer(readiness: Readiness) -> None:
            if not readiness.ready:
                log.warn("txoci is not ready: {failures}", failures=readiness.failures)
            body = _answer(request, 200 if readiness.ready else 503, readiness.as_json())
            if not _gone(request):
                request.write(body)
                request.finish()

        def failed(failure: Failure) -> None:
            log.failure("readiness probe failed", failure)
            if not _gone(request):
                request.write(_answer(request, 503, {"status": "not ready", "error": "probe failed"}))
                request.finish()

        checked: Deferred[Readiness] = Deferred.fromCoroutine(self._checker.readiness())
        checked.addCallbacks(answer, failed)
        return NOT_DONE_YET


def _gone(request: IRequest) -> bool:
    return bool(getattr(request, "_disconnected", False))
