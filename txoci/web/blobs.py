"""``/v2/<name>/blobs/<digest>``: pull (GET, HEAD with ranges) and delete."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IConsumer
from twisted.web.iweb import IRequest

from txoci.registry.digest import Digest
from txoci.registry.operations import Registry
from txoci.storage.interfaces import CorruptBlob, TransferStopped
from txoci.web.errors import API_VERSION_HEADER
from txoci.web.headers import Unsatisfiable, parse_byte_range
from txoci.web.responses import empty, header, set_headers


def _blob_headers(digest: Digest) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        # Content addressed, so it never changes.
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(registry: Registry, request: IRequest, name: str, digest_text: str) -> bytes | None:
    digest = Digest.parse(digest_text)
    if request.method == b"HEAD":
        info = await registry.stat_blob(name, digest)
        request.setHeader(*API_VERSION_HEADER)
        set_headers(request, _blob_headers(digest))
        request.setHeader(b"Content-Length", b"%d" % info.size)
        return b""
    info, reader = await registry.open_blob(name, digest)
    try:
        wanted = parse_byte_range(header(request, "range"), info.size)
    except Unsatisfiable:
        reader.close()
        return empty(
            request, 416, {"Content-Range": f"bytes */{info.size}", "Docker-Content-Digest": str(digest)}
        )
    request.setHeader(*API_VERSION_HEADER)
    set_headers(request, _blob_headers(digest))
    if wanted is None:
        start, length = 0, info.size
    else:
        start, length = wanted.start, wanted.length
        request.setResponseCode(206)
        request.setHeader(b"Content-Range", wanted.content_range(info.size).encode("ascii"))
    request.setHeader(b"Content-Length", b"%d" % length)
    try:
        await registry.send_blob(reader, IConsumer(request), start, length)
    except TransferStopped:
        # The client went away mid-download; there is nobody to answer.
        pass
    except CorruptBlob:
        # The headers promised the whole blob and its last chunk was withheld:
        # abort (no clean end) so no client can take what it got as complete.
        await _abort(request)
    return None


async def _abort(request: IRequest) -> None:
    """Abort the request's connection and wait until it is gone."""
    if getattr(request, "_disconnected", False):
        return
    # Klein must not finish() the request in between: wait for the loss.
    lost = request.notifyFinish()  # type: ignore[attr-defined]
    transport: Any = getattr(request, "transport", None)
    if transport is None or not hasattr(transport, "abortConnection"):
        transport = getattr(request, "channel", None)
    transport.abortConnection()
    try:
        await lost
    except Exception:
        pass


async def delete_blob(registry: Registry, request: IRequest, name: str, digest_text: str) -> bytes:
    await registry.delete_blob(name, Digest.parse(digest_text))
    return empty(request, 202)
