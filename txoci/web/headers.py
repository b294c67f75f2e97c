"""
Parsers and builders for the HTTP headers the registry speaks.

Each parser takes untrusted text and either returns a value or raises a
:class:`~txoci.registry.errors.RegistryError`; none of them can raise
anything else, which the property tests check.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import attrs

from txoci.registry.errors import BlobUploadInvalid, RangeNotSatisfiable, RequestInvalid

_UPLOAD_RANGE = re.compile(r"^(?:bytes[= ])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?$")
_BYTE_RANGE = re.compile(r"^bytes=([0-9]{0,19})-([0-9]{0,19})$")
#: Largest page a listing returns, whatever ``n`` asks for (a ``Link`` follows).
MAX_PAGE = 10000


def parse_upload_range(value: str) -> tuple[int, int]:
    """
    A chunk's ``Content-Range`` on PATCH/PUT: ``start-end``, inclusive.

    The spec's form is ``^[0-9]+-[0-9]+$``; clients also send ``bytes=a-b``
    and the RFC 9110 form ``bytes a-b/total``, so those are accepted too.
    """
    match = _UPLOAD_RANGE.match(value.strip())
    if match is None:
        raise BlobUploadInvalid(f"malformed Content-Range {value[:100]!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeNotSatisfiable(f"Content-Range {value[:100]!r} ends before it starts")
    return start, end


@attrs.frozen
class ByteRange:
    """A satisfiable single range of a representation."""

    start: int
    length: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.start + self.length - 1}/{size}"


class Unsatisfiable(Exception):
    """The ``Range`` cannot be satisfied: answer 416 with ``bytes */size``."""


def parse_byte_range(value: str | None, size: int) -> ByteRange | None:
    """
    A ``Range`` request header (RFC 9110 14.2) for a body of ``size`` bytes.

    None means "send everything": no header, a unit other than bytes, several
    ranges or a malformed value (all of which a server may ignore).  Raises
    :class:`Unsatisfiable` when the single range lies outside the body or
    ends before it starts.
    """
    if value is None:
        return None
    match = _BYTE_RANGE.match(value.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        suffix = min(suffix, size)
        return ByteRange(size - suffix, suffix)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        # RFC 9110 lets a server ignore an invalid range; the OCI conformance
        # suite expects 416, as Distribution answers.
        raise Unsatisfiable()
    if start >= size:
        raise Unsatisfiable()
    end = min(end, size - 1)
    return ByteRange(start, end - start + 1)


def parse_page_size(value: str | None) -> int | None:
    """The ``n`` of a listing: a non-negative integer, capped at :data:`MAX_PAGE`."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise RequestInvalid(f"n must be a non-negative integer, not {value[:40]!r}")
    return min(int(value), MAX_PAGE)


def next_link(path: str, n: int, last: str, extra: dict[str, str] | None = None) -> str:
    """An RFC 5988 ``Link`` to the next page."""
    query = {"n": str(n), "last": last}
    if extra:
        query.update(extra)
    return f'<{path}?{urlencode(query)}>; rel="next"'


def accepted_types(values: list[str]) -> list[str]:
    """
    Media types from every ``Accept`` line, in order, without parameters.

    Clients send repeated lines as well as comma-joined lists; both count.
    """
    types: list[str] = []
    for value in values:
        for part in value.split(","):
            media_type = part.split(";", 1)[0].strip().lower()
            if media_type:
                types.append(media_type)
    return types
