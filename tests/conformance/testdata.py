"""
Test data as the suite generates it (``testdata.go``).

A :class:`TestData` holds blobs, manifests (in push order), tags and the
referrers each subject should list.  The generators make the same shapes
as the suite: gzipped (or plain) tar layers of one small file, image configs
with ``rootfs.diff_ids``, image manifests, indexes of them, artifacts with an
``artifactType`` and empty-JSON config, subjects, ``data`` fields and unknown
extra fields, with sha256 or sha512 digests.  Documents are compact JSON with
the field order of the image-spec Go types, maps sorted by key.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import tarfile
from typing import Any

MT_EXAMPLE_CONF1 = "application/vnd.example.oci.conformance.v1"
MT_EXAMPLE_CONF2 = "application/vnd.example.oci.conformance.v2"
MT_OCTET_STREAM = "application/octet-stream"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_IMAGE = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_PREFIX = "application/vnd.oci.image.layer.v1."
MT_OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MT_OCI_LAYER_ND_GZ = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MT_OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json"

Platform = dict[str, str]
AMD64: Platform = {"architecture": "amd64", "os": "linux"}
ARM64: Platform = {"architecture": "arm64", "os": "linux"}


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


#: ``digest.Canonical.FromBytes([]byte{})``: the suite's "empty blob" check keys on it.
EMPTY_DIGEST = digest_of(b"")


def random_text() -> str:
    """Go's ``crypto/rand.Text()``: 26 base32 characters."""
    return base64.b32encode(os.urandom(20)).decode("ascii")[:26]


def random_bytes(size: int) -> bytes:
    return secrets.token_bytes(size)


def encode(document: Any) -> bytes:
    """Compact JSON, as Go's ``json.Marshal``."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def descriptor(
    media_type: str,
    digest: str,
    size: int,
    *,
    urls: list[str] | None = None,
    data: bytes | None = None,
    platform: Platform | None = None,
    artifact_type: str = "",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An image-spec descriptor with Go's field order and ``omitempty`` rules."""
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if urls:
        d["urls"] = urls
    if annotations:
        d["annotations"] = dict(sorted(annotations.items()))
    if data:
        d["data"] = base64.b64encode(data).decode("ascii")
    if platform:
        d["platform"] = platform
    if artifact_type:
        d["artifactType"] = artifact_type
    return d


def _with_extra_field(document: dict[str, Any]) -> dict[str, Any]:
    """``genAddJSONFields``: one more field, unknown to the spec, after the others."""
    return {**document, f"org.{random_text()}": random_text()}


class TestData:
    """One data set of the suite (``testData``)."""

    __test__ = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.tags: dict[str, str] = {}
        self.tag_pushed: set[str] = set()
        self.desc: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        #: Push order of the manifests; children before the index holding them.
        self.man_order: list[str] = []
        #: Subject digest to the descriptors its referrers list must hold.
        self.referrers: dict[str, list[dict[str, Any]]] = {}
        #: Manifests the suite does not pull (``SkipPullTest``).
        self.skip_pull: set[str] = set()
        #: Manifests whose push must fail with 400 (``ExpectBadDigest``).
        self.expect_bad_digest: set[str] = set()

    # Generators; keyword options mirror ``genWith...``.

    def add_blob(
        self, content: bytes, *, algo: str = "sha256", descriptor_media_type: str = MT_OCTET_STREAM,
        set_data: bool = False, **_: Any,
    ) -> str:
        dig = digest_of(content, algo)
        self.blobs[dig] = content
        self.desc[dig] = descriptor(
            descriptor_media_type, dig, len(content), data=content if set_data else None
        )
        return dig

    def gen_blob(self, *, blob_size: int = 2048, **opts: Any) -> tuple[str, bytes]:
        content = random_bytes(blob_size)
        return self.add_blob(content, **opts), content

    def gen_layer(
        self, file_num: int, *, compress: bool = True, algo: str = "sha256", set_data: bool = False,
        **_: Any,
    ) -> tuple[str, str]:
        """A tar of one file; returns (compressed digest, "uncompressed" digest)."""
        lucky = secrets.randbelow(2**63 - 1)
        text = (
            f"Conformance test file contents for file number {file_num}.\n"
            f"Todays lucky number is {lucky}\n"
        ).encode()
        tar_buffer = io.BytesIO()
        with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            info = tarfile.TarInfo(f"./conformance-{file_num}.txt")
            info.size = len(text)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(text))
        body = tar_buffer.getvalue()
        media_type = MT_OCI_LAYER
        if compress:
            body = gzip.compress(body, mtime=0)
            media_type = MT_OCI_LAYER_GZ
        dig = digest_of(body, algo)
        self.blobs[dig] = body
        self.desc[dig] = descriptor(media_type, dig, len(body), data=body if set_data else None)
        # testdata.go hashes an uncompressed buffer it never writes to, so every
        # diff_id is the digest of zero bytes; the data shape is kept as is.
        uncompressed = digest_of(b"", algo)
        self.desc.setdefault(uncompressed, descriptor(MT_OCI_LAYER, uncompressed, 0))
        return dig, uncompressed

    def gen_config(
        self, platform: Platform, diff_ids: list[str], *, algo: str = "sha256",
        config_media_type: str = "", extra_field: bool = False, set_data: bool = False, **_: Any,
    ) -> str:
        config: dict[str, Any] = {
            "author": "OCI Conformance Test",
            **platform,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        body = encode(_with_extra_field(config) if extra_field else config)
        dig = digest_of(body, algo)
        self.blobs[dig] = body
        self.desc[dig] = descriptor(
            config_media_type or MT_OCI_CONFIG, dig, len(body), data=body if set_data else None
        )
        return dig

    def _record_manifest(
        self, document: dict[str, Any], *, algo: str, extra_field: bool, set_data: bool,
        subject: dict[str, Any] | None, tag: str, referrer_type: str,
    ) -> str:
        body = encode(_with_extra_field(document) if extra_field else document)
        dig = digest_of(body, algo)
        media_type = document["mediaType"]
        self.manifests[dig] = body
        self.man_order.append(dig)
        self.desc[dig] = descriptor(media_type, dig, len(body), data=body if set_data else None)
        if subject is not None:
            self.referrers.setdefault(subject["digest"], []).append(
                descriptor(media_type, dig, len(body), artifact_type=referrer_type,
                           annotations=document.get("annotations"))
            )
        if tag:
            self.tags[tag] = dig
        return dig

    @staticmethod
    def _annotations(annotations: dict[str, str] | None, uniq: bool) -> dict[str, str] | None:
        if uniq:
            annotations = {**(annotations or {}), f"org.example.{random_text()}": random_text()}
        return dict(sorted(annotations.items())) if annotations else None

    def gen_manifest(
        self, config: dict[str, Any], layers: list[dict[str, Any]], *, algo: str = "sha256",
        artifact_type: str = "", subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None, annotation_uniq: bool = False,
        extra_field: bool = False, set_data: bool = False, tag: str = "", **_: Any,
    ) -> str:
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_IMAGE}
        if artifact_type:
            document["artifactType"] = artifact_type
        document["config"] = config
        document["layers"] = layers
        if subject is not None:
            document["subject"] = subject
        merged = self._annotations(annotations, annotation_uniq)
        if merged:
            document["annotations"] = merged
        return self._record_manifest(
            document, algo=algo, extra_field=extra_field, set_data=set_data, subject=subject,
            tag=tag, referrer_type=artifact_type or config["mediaType"],
        )

    def gen_manifest_full(
        self, *, layer_count: int = 2, platform: Platform = AMD64, layer_media_type: str = "",
        layer_bytes: bytes | None = None, config_media_type: str = "", config_bytes: bytes = b"",
        **opts: Any,
    ) -> str:
        """An image (or artifact) with its layers and config."""
        compressed: list[str] = []
        uncompressed: list[str] = []
        for n in range(layer_count):
            if not layer_media_type or layer_media_type.startswith(MT_OCI_LAYER_PREFIX):
                c, u = self.gen_layer(n, **opts)
                compressed.append(c)
                uncompressed.append(u)
            else:
                layer_opts = {**opts, "descriptor_media_type": layer_media_type}
                if layer_bytes is not None:
                    dig = self.add_blob(layer_bytes, **layer_opts)
                else:
                    dig, _ = self.gen_blob(**layer_opts)
                compressed.append(dig)
                uncompressed.append(dig)
        if not config_media_type or config_media_type == MT_OCI_CONFIG:
            config = self.gen_config(platform, uncompressed, config_media_type=config_media_type, **opts)
        else:
            config = self.add_blob(config_bytes, **{**opts, "descriptor_media_type": config_media_type})
        return self.gen_manifest(self.desc[config], [self.desc[d] for d in compressed], **opts)

    def gen_index(
        self, platforms: list[Platform | None], manifests: list[str], *, algo: str = "sha256",
        artifact_type: str = "", subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None, annotation_uniq: bool = False,
        extra_field: bool = False, set_data: bool = False, tag: str = "", **_: Any,
    ) -> str:
        entries = []
        for platform, dig in zip(platforms, manifests, strict=True):
            entry = dict(self.desc[dig])
            entry.pop("platform", None)
            if platform:
                # platform sits before artifactType in a descriptor
                at = entry.pop("artifactType", None)
                entry["platform"] = platform
                if at:
                    entry["artifactType"] = at
            entries.append(entry)
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX}
        if artifact_type:
            document["artifactType"] = artifact_type
        document["manifests"] = entries
        if subject is not None:
            document["subject"] = subject
        merged = self._annotations(annotations, annotation_uniq)
        if merged:
            document["annotations"] = merged
        return self._record_manifest(
            document, algo=algo, extra_field=extra_field, set_data=set_data, subject=subject,
            tag=tag, referrer_type=artifact_type,
        )

    def gen_index_full(self, *, platforms: list[Platform] | None = None, **opts: Any) -> str:
        """An index of one image per platform (linux/amd64 and linux/arm64 by default)."""
        if platforms is None:
            platforms = [AMD64, ARM64]
        children = [self.gen_manifest_full(**{**opts, "platform": p}) for p in platforms]
        return self.gen_index(list(platforms), children, **opts)
