"""Small helpers shared by the handlers to shape successful responses."""

from __future__ import annotations

import json
from typing import Any

from twisted.web.iweb import IRequest

from txoci.web.errors import API_VERSION_HEADER

#: Where the API is served; the spec fixes it at ``/v2``.
API_ROOT = "/v2"


def set_headers(request: IRequest, headers: dict[str, str]) -> None:
    for name, value in headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))


def empty(request: IRequest, status: int, headers: dict[str, str] | None = None) -> bytes:
    """A response with no body."""
    request.setResponseCode(status)
    request.setHeader(*API_VERSION_HEADER)
    set_headers(request, headers or {})
    request.setHeader(b"Content-Length", b"0")
    return b""


def json_body(
    request: IRequest,
    document: Any,
    *,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> bytes:
    """A JSON response (its body omitted for HEAD, its length kept)."""
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return raw_body(request, body, status=status, content_type=content_type, headers=headers)


def raw_body(
    request: IRequest,
    body: bytes,
    *,
    status: int = 200,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> bytes:
    request.setResponseCode(status)
    request.setHeader(*API_VERSION_HEADER)
    request.setHeader(b"Content-Type", content_type.encode("latin-1"))
    request.setHeader(b"Content-Length", b"%d" % len(body))
    set_headers(request, headers or {})
    return b"" if request.method == b"HEAD" else body


def query_values(request: IRequest, name: str) -> list[str]:
    """Every value of query parameter ``name``, decoded."""
    args = getattr(request, "args", None) or {}
    return [v.decode("utf-8", "replace") for v in args.get(name.encode("ascii"), [])]


def query_value(request: IRequest, name: str) -> str | None:
    """The first value of query parameter ``name``."""
    values = query_values(request, name)
    return values[0] if values else None


def header(request: IRequest, name: str) -> str | None:
    """A request header's first value, decoded."""
    # Ask with bytes: given a str name, twisted decodes the value as UTF-8,
    # which raises on the arbitrary octets a client may send.
    value = request.getHeader(name.encode("ascii"))
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def blob_location(name: str, digest: object) -> str:
    return f"{API_ROOT}/{name}/blobs/{digest}"


def manifest_location(name: str, reference: object) -> str:
    return f"{API_ROOT}/{name}/manifests/{reference}"


def upload_location(name: str, upload_id: str) -> str:
    return f"{API_ROOT}/{name}/blobs/uploads/{upload_id}"
