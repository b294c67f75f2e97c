"""``/v2/<name>/manifests/<reference>``: pull, push and delete manifests."""

from __future__ import annotations

import json

from twisted.web.iweb import IRequest

from txoci.auth.policy import Action
from txoci.registry import mediatypes as mt
from txoci.registry.digest import Digest
from txoci.registry.errors import ManifestUnknown
from txoci.registry.names import Reference
from txoci.registry.operations import Registry
from txoci.storage.interfaces import ManifestRecord
from txoci.web.body import read_body
from txoci.web.guard import access_of
from txoci.web.headers import accepted_types
from txoci.web.responses import empty, header, manifest_location, query_values, raw_body

_WILDCARDS = frozenset({"*/*", "application/*"})


def _acceptable(media_type: str, accepted: list[str]) -> bool:
    """
    Content negotiation (content-negotiation.md).  A client that sends no
    ``Accept`` gets what was pushed.  A client that lists types and neither
    the stored one nor a wildcard cannot read an OCI manifest: as in
    Distribution, it gets 404 rather than a type it did not ask for.
    """
    if not accepted or media_type not in mt.OCI_TYPES:
        return True
    return media_type in accepted or any(t in _WILDCARDS for t in accepted)


def _platform_child(record: ManifestRecord) -> str | None:
    """The linux/amd64 entry of a Docker manifest list (content-negotiation.md)."""
    try:
        document = json.loads(record.content)
        for entry in document.get("manifests", []):
            platform = entry.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                return str(Digest.parse(entry["digest"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    except Exception:
        return None
    return None


async def get_manifest(registry: Registry, request: IRequest, name: str, reference_text: str) -> bytes:
    reference = Reference.parse(reference_text)
    record = await registry.get_manifest(name, reference)
    accepted = accepted_types(
        [v.decode("latin-1") for v in request.requestHeaders.getRawHeaders(b"accept", [])]
    )
    if (
        record.media_type == mt.DOCKER_MANIFEST_LIST
        and accepted
        and mt.DOCKER_MANIFEST_LIST not in accepted
        and mt.DOCKER_MANIFEST in accepted
    ):
        # An old client that knows single schema 2 manifests only.
        child = _platform_child(record)
        if child is not None:
            record = await registry.get_manifest(name, Reference(digest=Digest.parse(child)))
    if not _acceptable(record.media_type, accepted):
        raise ManifestUnknown(
            f"manifest {reference} is {record.media_type}, which the Accept header does not allow"
        )
    return raw_body(
        request,
        record.content,
        content_type=record.media_type,
        headers={"Docker-Content-Digest": record.digest, "ETag": f'"{record.digest}"'},
    )


async def put_manifest(registry: Registry, request: IRequest, name: str, reference_text: str) -> bytes:
    reference = Reference.parse(reference_text)
    body = await read_body(request, registry.config.max_manifest_size)
    extra_tags = query_values(request, "tag")
    result = await registry.put_manifest(
        name, reference, header(request, "content-type"), body, extra_tags,
        allow_tag_move=access_of(request).may(name, Action.UPDATE),
    )
    headers = {
        "Location": manifest_location(name, result.digest),
        "Docker-Content-Digest": str(result.digest),
    }
    if result.subject is not None:
        headers["OCI-Subject"] = str(result.subject)
    if extra_tags:
        headers["OCI-Tag"] = ", ".join(result.tags)
    return empty(request, 201, headers)


async def delete_manifest(registry: Registry, request: IRequest, name: str, reference_text: str) -> bytes:
    await registry.delete_manifest(name, Reference.parse(reference_text))
    return empty(request, 202)
