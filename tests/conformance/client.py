"""
A blocking HTTP/1.1 client that sends what the suite's Go ``net/http`` sends.

The suite builds its requests on ``http.DefaultClient`` (``api.go``,
``api.Do``), and a few of Go's habits change what reaches the registry:

* a body set without a length goes out with ``Transfer-Encoding: chunked``
  (manifest ``PUT`` and the streamed blob ``PATCH``);
* ``POST``, ``PUT`` and ``PATCH`` without a body carry ``Content-Length: 0``;
* ``Accept-Encoding: gzip`` is added unless the request is ``HEAD`` or has a
  ``Range``, and a gzipped answer is inflated (losing its ``Content-Length``);
* a header added twice (``Accept``) is sent as two header lines;
* an answer that arrives before the whole body was written is still read.
"""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import attrs

#: How long one request may take, generous for multi-megabyte bodies.
TIMEOUT = 60.0
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CHUNK = 64 * 1024
#: What Go's ``net/http`` calls itself; the suite sets no User-Agent of its own.
USER_AGENT = "Go-http-client/1.1"


@attrs.frozen
class Response:
    """A whole HTTP response."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def values(self, name: str) -> list[str]:
        """Every value of header ``name`` (Go's ``Header.Values``)."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name: str) -> str:
        """The first value of header ``name``, or "" (Go's ``Header.Get``)."""
        values = self.values(name)
        return values[0] if values else ""

    def describe(self) -> str:
        head = "\n".join(f"  {k}: {v}" for k, v in self.headers)
        return f"status {self.status}\n{head}\n  body: {self.body[:300]!r}"


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query, re-encoded sorted (Go's ``Values.Encode``)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(sorted(query.items()))))


def resolve(base: str, location: str) -> str:
    """A ``Location`` header resolved against the URL it answered (Go's ``URL.Parse``)."""
    return urljoin(base, location)


def request(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    content_length: int | None = None,
) -> Response:
    """
    Send one request on a fresh connection and read the whole answer.

    ``body`` without ``content_length`` is sent chunked, as Go sends a body
    whose length it was not told; with it, ``Content-Length`` is set.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.putrequest(method, target, skip_accept_encoding=True)
        sent = [("User-Agent", USER_AGENT), *headers]
        for name, value in sent:
            connection.putheader(name, value)
        names = {name.lower() for name, _ in sent}
        asked_gzip = method != "HEAD" and "range" not in names and "accept-encoding" not in names
        if asked_gzip:
            connection.putheader("Accept-Encoding", "gzip")
        chunked = body is not None and content_length is None and len(body) > 0
        if content_length is not None:
            connection.putheader("Content-Length", str(content_length))
        elif chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        elif method in _BODY_METHODS:
            connection.putheader("Content-Length", "0")
        connection.endheaders()
        try:
            if body and chunked:
                for start in range(0, len(body), _CHUNK):
                    piece = body[start:start + _CHUNK]
                    connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                connection.send(b"0\r\n\r\n")
            elif body:
                connection.send(body)
        except (BrokenPipeError, ConnectionResetError):
            # The registry answered early and closed; Go still reads that answer.
            pass
        answer = connection.getresponse()
        content = answer.read()
        received = tuple(answer.getheaders())
        if asked_gzip and answer.getheader("Content-Encoding", "").lower() == "gzip":
            content = gzip.decompress(content)
            received = tuple(
                (k, v) for k, v in received if k.lower() not in ("content-encoding", "content-length")
            )
        return Response(answer.status, received, content)
    finally:
        connection.close()
