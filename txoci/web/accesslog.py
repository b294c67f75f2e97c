"""
Structured access logs: one ``twisted.logger`` event per request.

Handlers (and the Klein route table) note what they know about a request
with :func:`annotate`: the route template, repository, reference and upload
ID.  When the request ends, :func:`request_record` gathers those notes and
what twisted.web knows (method, status, bytes, duration, client address)
into a :class:`RequestRecord`, and :class:`AccessLog` emits it as one event
in the ``txoci.access`` namespace.  Every field is a key of the event, so the
JSON observer (``twistd oci --log-format json``) writes them as JSON fields.

Of the headers only ``User-Agent`` is logged, so credentials (``Authorization``,
cookies) never appear.  The query string is kept (``?mount=&from=``, ``?n=&last=``
tell an operator what a client did), but the values of parameters that can
carry a secret (see :data:`SECRET_PARAMETERS`) are replaced by ``***``.
"""

from __future__ import annotations

import json
from typing import IO, Any
from urllib.parse import unquote

import attrs
from twisted.logger import FileLogObserver, ILogObserver, LogEvent, Logger, formatEvent
from twisted.web.iweb import IRequest

#: The route of a request that matched none of the registry's routes.
UNMATCHED = "(unmatched)"

log = Logger(namespace="txoci.access")

ACCESS_FORMAT = (
    '{client} "{method} {path}" {status} route={route} repository={repository} '
    "reference={reference} upload={upload_id} user={user} in={bytes_in} out={bytes_out} "
    '{duration:.3f}s agent="{user_agent}"'
)


@attrs.define
class RequestInfo:
    """What the handlers learnt about a request, for its log event and metrics."""

    #: The route template, such as ``/v2/{name}/blobs/{digest}``: never a raw name.
    route: str | None = None
    repository: str | None = None
    #: A tag or digest (manifests), or a digest (blobs, referrers).
    reference: str | None = None
    upload_id: str | None = None
    #: The authenticated user; always None until authentication exists.
    user: str | None = None
    #: When the request's first line arrived (reactor time), if known.
    started: float | None = None


_INFO = "_txoci_info"

#: Query parameters whose values are never logged (OAuth2 and token-style names).
SECRET_PARAMETERS = frozenset(
    {"password", "token", "access_token", "refresh_token", "client_secret", "code", "secret"}
)


def _redact_parameter(parameter: str) -> str:
    name, equals, _value = parameter.partition("=")
    if equals and unquote(name).lower() in SECRET_PARAMETERS:
        return f"{name}=***"
    return parameter


def logged_path(uri: str) -> str:
    """The request target as logged: the path, and the query with secrets redacted."""
    path, question, query = uri.partition("?")
    if not question:
        return path
    return path + "?" + "&".join(_redact_parameter(part) for part in query.split("&"))


def annotate(request: IRequest) -> RequestInfo:
    """The notes kept on ``request`` (created empty on first use)."""
    info: RequestInfo | None = getattr(request, _INFO, None)
    if info is None:
        info = RequestInfo()
        setattr(request, _INFO, info)
    return info


@attrs.frozen
class RequestRecord:
    """Everything logged (and counted) about one request that ended."""

    method: str
    route: str | None
    path: str
    repository: str | None
    reference: str | None
    upload_id: str | None
    #: The response status; None when the client went away before the answer.
    status: int | None
    bytes_in: int
    bytes_out: int
    duration: float
    user: str | None
    client: str
    #: The ``User-Agent`` header (not a credential), cut to 200 characters.
    user_agent: str

    def fields(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


def _bytes_in(request: Any) -> int:
    body = getattr(request, "body", None)
    received = getattr(body, "received", None)
    if isinstance(received, int):
        return received
    content = getattr(request, "content", None)
    if content is None:
        return 0
    try:
        position = content.tell()
        content.seek(0, 2)
        size = int(content.tell())
        content.seek(position)
    except (OSError, ValueError, AttributeError):
        return 0
    return size


def _client(request: IRequest) -> str:
    address: Any = request.getClientAddress()
    host = getattr(address, "host", None)
    if host is not None:
        return str(host)
    # A UNIX socket peer has a path (usually empty) instead of a host.
    return _text(getattr(address, "name", None)) or "-"


def request_record(request: IRequest, now: float, *, aborted: bool = False) -> RequestRecord:
    """The record of ``request``, which finished (or was cut off) at ``now``."""
    info = annotate(request)
    upload_id = info.upload_id
    if upload_id is None:
        # POST answers with the new session's ID (and a 202) in this header.
        values = request.responseHeaders.getRawHeaders(b"docker-upload-uuid")
        if values:
            upload_id = _text(values[0])
    started = info.started if info.started is not None else now
    raw: Any = request
    return RequestRecord(
        method=_text(request.method),
        route=info.route,
        path=logged_path(_text(getattr(request, "uri", b""))),
        repository=info.repository,
        reference=info.reference,
        upload_id=upload_id,
        status=None if aborted else int(raw.code),
        bytes_in=_bytes_in(request),
        bytes_out=int(getattr(raw, "sentLength", 0) or 0),
        duration=max(0.0, now - started),
        user=info.user,
        client=_client(request),
        user_agent=_text(request.getHeader(b"user-agent"))[:200].replace('"', "'"),
    )


class AccessLog:
    """Emits each :class:`RequestRecord` as a ``txoci.access`` log event."""

    def __init__(self, logger: Logger | None = None) -> None:
        self._log = logger or log

    def __call__(self, record: RequestRecord) -> None:
        self._log.info(ACCESS_FORMAT, **record.fields())


#: Keys of legacy (``twisted.python.log``) events that the flat form replaces.
_LEGACY_KEYS = frozenset({"message", "time", "system", "isError", "format", "why", "failure", "printed"})


def _plain(value: Any) -> Any:
    """``value`` if JSON can hold it as it is, else its ``str``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(
        item is None or isinstance(item, (str, int, float, bool)) for item in value
    ):
        return list(value)
    return str(value)


def event_as_json_line(event: LogEvent) -> str:
    """
    ``event`` as one flat JSON object and a newline: ``time`` (epoch
    seconds), ``level``, ``namespace``, ``message`` (the text form), then the
    event's own fields (an access event's ``method``, ``status`` and so on),
    and ``traceback`` when it carries a failure.
    """
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": event.get("log_time"),
        "level": getattr(level, "name", None),
        "namespace": event.get("log_namespace"),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY_KEYS or key in record:
            continue
        record[key] = _plain(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, separators=(",", ":")) + "\n"


def json_lines_observer(out: IO[Any]) -> ILogObserver:
    """An observer writing every log event to ``out`` as one JSON object a line."""
    return FileLogObserver(out, event_as_json_line)
