"""
``/v2/<name>/blobs/uploads/``: every way of pushing a blob.

POST starts a session (or mounts, or takes a whole blob with ``?digest=``);
PATCH streams a chunk; PUT ``?digest=`` finishes, optionally with a last
chunk; GET reports progress; DELETE cancels.
"""

from __future__ import annotations

from twisted.web.iweb import IRequest

from txoci.auth.policy import Action
from txoci.registry.digest import Digest
from txoci.registry.errors import BlobUploadInvalid
from txoci.registry.operations import BlobInfo, Registry, UploadStatus, upload_range
from txoci.web.body import body_source, has_body
from txoci.web.guard import access_of
from txoci.web.headers import parse_upload_range
from txoci.web.responses import blob_location, empty, header, query_value, upload_location


def _status_headers(status: UploadStatus) -> dict[str, str]:
    return {
        "Location": upload_location(status.repository, status.upload_id),
        "Docker-Upload-UUID": status.upload_id,
        "Range": upload_range(status.offset),
    }


def _created(request: IRequest, name: str, info: BlobInfo) -> bytes:
    return empty(
        request,
        201,
        {"Location": blob_location(name, info.digest), "Docker-Content-Digest": str(info.digest)},
    )


def _content_range(request: IRequest) -> tuple[int, int] | None:
    value = header(request, "content-range")
    return None if value is None else parse_upload_range(value)


async def start_upload(registry: Registry, request: IRequest, name: str) -> bytes:
    mount = query_value(request, "mount")
    digest_text = query_value(request, "digest")
    if mount is not None:
        source = query_value(request, "from")
        access = access_of(request)
        # A mount needs read on its source; without it, quietly a normal upload.
        if source is None or access.may(source, Action.READ):
            readable = access.readable_by_identity if access.restricted and source is None else None
            info = await registry.mount_blob(name, Digest.parse(mount), source, readable)
            if info is not None:
                return _created(request, name, info)
    elif digest_text is not None:
        info = await registry.monolithic_upload(name, Digest.parse(digest_text), body_source(request))
        return _created(request, name, info)
    status = await registry.start_upload(name, query_value(request, "digest-algorithm"))
    headers = _status_headers(status)
    headers["OCI-Chunk-Min-Length"] = str(registry.config.chunk_min_length)
    return empty(request, 202, headers)


async def upload_progress(registry: Registry, request: IRequest, name: str, upload_id: str) -> bytes:
    status = await registry.upload_status(name, upload_id)
    return empty(request, 204, _status_headers(status))


async def append_chunk(registry: Registry, request: IRequest, name: str, upload_id: str) -> bytes:
    status = await registry.append_upload(
        name, upload_id, body_source(request), _content_range(request)
    )
    return empty(request, 202, _status_headers(status))


async def finish_upload(registry: Registry, request: IRequest, name: str, upload_id: str) -> bytes:
    digest_text = query_value(request, "digest")
    if digest_text is None:
        raise BlobUploadInvalid("PUT on an upload needs ?digest=")
    digest = Digest.parse(digest_text)
    body = body_source(request) if has_body(request) else None
    info = await registry.finish_upload(name, upload_id, digest, body, _content_range(request))
    return _created(request, name, info)


async def cancel_upload(registry: Registry, request: IRequest, name: str, upload_id: str) -> bytes:
    await registry.cancel_upload(name, upload_id)
    return empty(request, 204)
