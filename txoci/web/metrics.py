"""``/metrics``: the registry's Prometheus metrics, as a thin resource."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txoci.service.metrics import CONTENT_TYPE, RegistryMetrics
from txoci.web.accesslog import annotate

log = Logger()


class MetricsResource(Resource):
    """``GET /metrics``: the Prometheus text exposition format."""

    isLeaf = True

    def __init__(self, metrics: RegistryMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render(self, request: IRequest) -> Any:
        annotate(request).route = "/metrics"
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")
            request.setHeader(b"Content-Length", b"0")
            return b""

        def answer(body: bytes) -> None:
            if getattr(request, "_disconnected", False):
                return
            request.setHeader(b"Content-Type", CONTENT_TYPE.encode("ascii"))
            request.setHeader(b"Cache-Control", b"no-store")
            request.setHeader(b"Content-Length", b"%d" % len(body))
            if request.method != b"HEAD":
                request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            log.failure("rendering metrics failed", failure)
            if not getattr(request, "_disconnected", False):
                request.setResponseCode(500)
                request.setHeader(b"Content-Length", b"0")
                request.finish()

        rendered: Deferred[bytes] = Deferred.fromCoroutine(self._metrics.exposition())
        rendered.addCallbacks(answer, failed)
        return NOT_DONE_YET
