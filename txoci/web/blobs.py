"""``/v2/<name>/blobs/<digest>``: pull (GET, HEAD with ranges) and delete."""

from __future__ import annotations

from twisted.internet.interfaces import IConsumer
from twisted.web.iweb import IRequest

from txoci.registry.digest import Digest
from txoci.registry.operations import Registry
from txoci.storage.interfaces import TransferStopped
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
        await reader.produce(IConsumer(request), start, length)
    except TransferStopped:
        # The client went away mid-download; there is nobody to answer.
        pass
    return None


async def delete_blob(registry: Registry, request: IRequest, name: str, digest_text: str) -> bytes:
    await registry.delete_blob(name, Digest.parse(digest_text))
    return empty(request, 202)
