"""
Manifest parsing and validation.

One function, :func:`parse_manifest`, turns the bytes and ``Content-Type`` of a
manifest ``PUT`` into a :class:`ParsedManifest` or raises ``MANIFEST_INVALID``.
It knows the OCI image manifest and index (image-spec manifest.md,
image-index.md) and Docker schema 2 manifests and lists (manifest-v2-2.md);
schema 1 is refused.  What must exist for the push to succeed is returned as
``required_blobs`` and ``required_manifests``; the operations check them.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from txoci.registry import mediatypes as mt
from txoci.registry.digest import Digest
from txoci.registry.errors import DigestInvalid, ManifestInvalid


@attrs.frozen
class Descriptor:
    """A validated content descriptor (image-spec descriptor.md)."""

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@attrs.frozen
class ParsedManifest:
    """What the registry needs to know about a pushed manifest."""

    media_type: str
    digest: Digest
    size: int
    required_blobs: tuple[Digest, ...]
    required_manifests: tuple[Digest, ...]
    subject: Digest | None
    artifact_type: str | None
    annotations: dict[str, str] | None

    @property
    def references(self) -> tuple[Digest, ...]:
        """Every digest this manifest points at (for GC and scoping)."""
        return self.required_blobs + self.required_manifests


def _fail(message: str) -> ManifestInvalid:
    return ManifestInvalid(message)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{where} must be a string")
    return value


def _annotations(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(f"{where} must be a map of strings to strings")
    return dict(value)


def parse_descriptor(value: Any, where: str) -> Descriptor:
    """Validate one descriptor object."""
    if not isinstance(value, dict):
        raise _fail(f"{where} must be a descriptor object")
    media_type = _string(value.get("mediaType"), f"{where}.mediaType")
    try:
        digest = Digest.parse(_string(value.get("digest"), f"{where}.digest"))
    except DigestInvalid as e:
        raise _fail(f"{where}.digest: {e.message}") from None
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _fail(f"{where}.size must be a non-negative integer")
    artifact_type = value.get("artifactType")
    if artifact_type is not None:
        artifact_type = _string(artifact_type, f"{where}.artifactType")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=artifact_type,
        annotations=_annotations(value.get("annotations"), f"{where}.annotations"),
    )


def _descriptor_list(value: Any, where: str, *, required: bool) -> list[Descriptor]:
    if value is None:
        if required:
            raise _fail(f"{where} is required")
        return []
    if not isinstance(value, list):
        raise _fail(f"{where} must be an array")
    return [parse_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _is_empty_descriptor(descriptor: Descriptor) -> bool:
    return str(descriptor.digest) == mt.EMPTY_JSON_DIGEST and descriptor.size == 2


def _resolve_media_type(content_type: str | None, body: dict[str, Any]) -> str:
    """Agree the ``Content-Type`` with the body's ``mediaType`` field."""
    declared = body.get("mediaType")
    if declared is not None:
        declared = _string(declared, "mediaType")
    header = mt.base_type(content_type) if content_type else ""
    if header in mt.SCHEMA1_TYPES or declared in mt.SCHEMA1_TYPES or body.get("schemaVersion") == 1:
        raise _fail("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if header in mt.MANIFEST_TYPES:
        if declared is not None and declared != header:
            raise _fail(f"mediaType {declared!r} does not match Content-Type {header!r}")
        return header
    if declared is not None:
        if declared not in mt.MANIFEST_TYPES:
            raise _fail(f"unsupported manifest media type {declared[:200]!r}")
        if header and header not in (mt.JSON, mt.OCTET_STREAM):
            raise _fail(f"mediaType {declared!r} does not match Content-Type {header[:200]!r}")
        return declared
    if header and header not in (mt.JSON, mt.OCTET_STREAM):
        raise _fail(f"unsupported manifest media type {header[:200]!r}")
    # No declared type anywhere: OCI allows omitting mediaType, so infer it.
    return mt.OCI_INDEX if "manifests" in body else mt.OCI_MANIFEST


def parse_manifest(body: bytes, content_type: str | None, digest_algorithm: str = "sha256") -> ParsedManifest:
    """Parse and validate a manifest; raise ``MANIFEST_INVALID`` on any problem."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _fail("manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise _fail("manifest must be a JSON object")
    media_type = _resolve_media_type(content_type, document)
    schema_version = document.get("schemaVersion")
    if schema_version != 2 or isinstance(schema_version, bool):
        raise _fail("schemaVersion must be 2")

    subject: Digest | None = None
    if document.get("subject") is not None:
        subject = parse_descriptor(document["subject"], "subject").digest
    artifact_type = document.get("artifactType")
    if artifact_type is not None:
        artifact_type = _string(artifact_type, "artifactType")
    annotations = _annotations(document.get("annotations"), "annotations")

    blobs: list[Digest] = []
    children: list[Digest] = []
    if media_type in mt.IMAGE_MANIFESTS:
        config = parse_descriptor(document.get("config"), "config")
        layers = _descriptor_list(
            document.get("layers"), "layers", required=media_type == mt.DOCKER_MANIFEST
        )
        if not _is_empty_descriptor(config):
            blobs.append(config.digest)
        for layer in layers:
            if layer.media_type in mt.NON_DISTRIBUTABLE or _is_empty_descriptor(layer):
                continue
            blobs.append(layer.digest)
        if not artifact_type:
            artifact_type = config.media_type
    else:
        for child in _descriptor_list(document.get("manifests"), "manifests", required=True):
            children.append(child.digest)
    return ParsedManifest(
        media_type=media_type,
        digest=Digest.of(body, digest_algorithm),
        size=len(body),
        required_blobs=tuple(dict.fromkeys(blobs)),
        required_manifests=tuple(dict.fromkeys(children)),
        subject=subject,
        artifact_type=artifact_type or None,
        annotations=annotations,
    )
