"""Rendering registry failures as the spec's JSON error envelope."""

from __future__ import annotations

import json

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from txoci.registry.errors import RegistryError
from txoci.web.accesslog import logged_path

log = Logger()

API_VERSION_HEADER = (b"Docker-Distribution-API-Version", b"registry/2.0")


def render_error(request: IRequest, error: RegistryError) -> bytes:
    """Set the status and headers of ``error`` on ``request``; return the body."""
    body = json.dumps({"errors": [error.as_json()]}).encode("utf-8")
    request.setResponseCode(error.http_status)
    request.setHeader(*API_VERSION_HEADER)
    for name, value in error.headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    if request.method == b"HEAD":
        return b""
    return body


def render_unexpected(request: IRequest, failure: Failure) -> bytes:
    """A bug: log it with its traceback (and the path, secrets redacted), answer 500 without one."""
    uri = request.uri.decode("utf-8", "replace") if isinstance(request.uri, bytes) else str(request.uri)
    log.failure("unexpected error handling {method} {uri}", failure,
                method=request.method, uri=logged_path(uri))
    error = RegistryError("internal error", status=500)
    error.code = "UNKNOWN"  # type: ignore[misc]
    return render_error(request, error)
