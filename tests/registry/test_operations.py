"""Registry operations on the real stores, for rules HTTP cannot easily reach."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from txoci import Settings, open_registry
from txoci.registry import mediatypes as mt
from txoci.registry.digest import Digest
from txoci.registry.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    NameInvalid,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RegistryError,
)
from txoci.registry.names import Reference
from txoci.registry.operations import MAX_MANIFEST_SIZE, MAX_TAGS_PER_PUSH, RegistryConfig
from txoci.storage.interfaces import IUploadWriter

REPO = "test/repo"


class BytesSource:
    """A whole body available at once."""

    def __init__(self, data: bytes, declared: bool = True) -> None:
        self.data = data
        self.length = len(data) if declared else None

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        consumer.write(self.data)
        return succeed(len(self.data))


class HeldSource:
    """Writes its bytes, then keeps the body open until ``release`` fires."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = None
        self.started: Deferred[IUploadWriter] = Deferred()
        self.release: Deferred[None] = Deferred()

    def deliver(self, consumer: Any) -> Deferred[int]:
        consumer.write(self.data)
        self.started.callback(consumer)
        return self.release.addCallback(lambda _: len(self.data))


@implementer(IConsumer)
class Collector:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


def image_manifest(config: dict[str, Any], layers: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config, "layers": layers}
    ).encode()


EMPTY_CONFIG = {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2}


class OperationsTestCase(TestCase):
    def setUp(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._open())

    async def _open(self) -> None:
        self.data_dir = os.path.abspath(self.mktemp())
        self.opened = await open_registry(Settings(data_dir=self.data_dir), reactor)
        self.addCleanup(lambda: Deferred.fromCoroutine(self.opened.close()))
        self.registry = self.opened.registry

    async def push(self, repository: str, data: bytes) -> Digest:
        digest = Digest.of(data)
        info = await self.registry.monolithic_upload(repository, digest, BytesSource(data))
        self.assertEqual((info.digest, info.size), (digest, len(data)))
        return digest

    def stat(self, repository: str, digest: Digest) -> Deferred[Any]:
        return Deferred.fromCoroutine(self.registry.stat_blob(repository, digest))

    async def pull(self, repository: str, digest: Digest) -> bytes:
        info, reader = await self.registry.open_blob(repository, digest)
        collector = Collector()
        await reader.produce(collector, 0, info.size)
        return b"".join(collector.chunks)


class ConcurrentUploadTests(OperationsTestCase):
    async def test_concurrent_append_is_range_not_satisfiable(self) -> None:
        status = await self.registry.start_upload(REPO)
        held = HeldSource(b"a" * 100)
        first = Deferred.fromCoroutine(self.registry.append_upload(REPO, status.upload_id, held, None))
        await held.started

        second = self.registry.append_upload(REPO, status.upload_id, BytesSource(b"b"), None)
        error = await self.assertFailure(Deferred.fromCoroutine(second), RangeNotSatisfiable)
        self.assertEqual(error.http_status, 416)
        self.assertEqual(error.headers, {"Range": "0-99"})
        # Finishing while a chunk is still arriving is refused the same way.
        finish = self.registry.finish_upload(REPO, status.upload_id, Digest.of(b"a" * 100), None, None)
        await self.assertFailure(Deferred.fromCoroutine(finish), RangeNotSatisfiable)

        held.release.callback(None)
        self.assertEqual((await first).offset, 100)
        # The upload is free again once the first request is done.
        status = await self.registry.append_upload(REPO, status.upload_id, BytesSource(b"b"), (100, 100))
        self.assertEqual(status.offset, 101)
        data = b"a" * 100 + b"b"
        await self.registry.finish_upload(REPO, status.upload_id, Digest.of(data), None, None)
        self.assertEqual(await self.pull(REPO, Digest.of(data)), data)

    async def test_racing_first_appends_do_not_truncate_each_other(self) -> None:
        """
        Two requests reach an upload that has no open writer at the same
        moment: the loser must not reopen (and so truncate) the file the
        winner is already writing.
        """
        status = await self.registry.start_upload(REPO)
        real_open = self.registry.blobs.open_upload
        gate: Deferred[None] = Deferred()
        first_opening: Deferred[None] = Deferred()
        calls: list[int] = []

        def open_upload(upload_id: str, offset: int, algorithm: str) -> Deferred[IUploadWriter]:
            calls.append(offset)
            if len(calls) == 1:
                first_opening.callback(None)
                return real_open(upload_id, offset, algorithm)

            async def later() -> IUploadWriter:
                await gate
                return await real_open(upload_id, offset, algorithm)

            return Deferred.fromCoroutine(later())

        self.patch(self.registry.blobs, "open_upload", open_upload)
        data = os.urandom(1000)
        held = HeldSource(data)
        first = Deferred.fromCoroutine(self.registry.append_upload(REPO, status.upload_id, held, None))
        # The second request arrives while the first is opening the writer.
        await first_opening
        second = Deferred.fromCoroutine(
            self.registry.append_upload(REPO, status.upload_id, BytesSource(b"y"), None)
        )
        writer = await held.started
        await writer.flush()
        gate.callback(None)
        await self.assertFailure(second, RangeNotSatisfiable)
        held.release.callback(None)
        self.assertEqual((await first).offset, len(data))
        await self.registry.finish_upload(REPO, status.upload_id, Digest.of(data), None, None)
        self.assertEqual(await self.pull(REPO, Digest.of(data)), data)

    async def test_chunk_must_continue_the_upload(self) -> None:
        status = await self.registry.start_upload(REPO)
        await self.registry.append_upload(REPO, status.upload_id, BytesSource(b"0123456789"), (0, 9))
        for content_range in [(0, 9), (11, 20), (5, 14)]:
            append = self.registry.append_upload(
                REPO, status.upload_id, BytesSource(b"x" * 10), content_range
            )
            error = await self.assertFailure(Deferred.fromCoroutine(append), RangeNotSatisfiable)
            self.assertEqual(error.headers, {"Range": "0-9"})
        # Content-Range and Content-Length disagree.
        append = self.registry.append_upload(REPO, status.upload_id, BytesSource(b"x" * 3), (10, 19))
        await self.assertFailure(Deferred.fromCoroutine(append), RangeNotSatisfiable)
        self.assertEqual((await self.registry.upload_status(REPO, status.upload_id)).offset, 10)

    async def test_wrong_digest_leaves_upload_resumable(self) -> None:
        status = await self.registry.start_upload(REPO)
        finish = self.registry.finish_upload(
            REPO, status.upload_id, Digest.of(b"other"), BytesSource(b"part one"), None
        )
        await self.assertFailure(Deferred.fromCoroutine(finish), DigestInvalid)
        self.assertEqual((await self.registry.upload_status(REPO, status.upload_id)).offset, 8)
        data = b"part one, part two"
        info = await self.registry.finish_upload(
            REPO, status.upload_id, Digest.of(data), BytesSource(b", part two"), (8, 17)
        )
        self.assertEqual(info.size, len(data))
        self.assertEqual(await self.pull(REPO, Digest.of(data)), data)

    async def test_upload_belongs_to_its_repository(self) -> None:
        status = await self.registry.start_upload(REPO)
        for call in [
            self.registry.upload_status("other/repo", status.upload_id),
            self.registry.append_upload("other/repo", status.upload_id, BytesSource(b"x"), None),
            self.registry.cancel_upload("other/repo", status.upload_id),
            self.registry.upload_status(REPO, "no-such-upload"),
        ]:
            await self.assertFailure(Deferred.fromCoroutine(call), BlobUploadUnknown)
        self.assertEqual((await self.registry.upload_status(REPO, status.upload_id)).offset, 0)


class ManifestSizeTests(OperationsTestCase):
    async def test_default_limit_is_4_mib(self) -> None:
        body = b" " * (MAX_MANIFEST_SIZE + 1)
        put = self.registry.put_manifest(REPO, Reference(tag="big"), mt.OCI_MANIFEST, body)
        error = await self.assertFailure(Deferred.fromCoroutine(put), PayloadTooLarge)
        self.assertEqual(error.http_status, 413)
        self.assertEqual(error.code, "SIZE_INVALID")

    async def test_limit_is_inclusive(self) -> None:
        manifest = image_manifest(EMPTY_CONFIG, [])
        limit = len(manifest) + 10
        self.registry.config = RegistryConfig(max_manifest_size=limit)
        at_limit = manifest + b" " * 10
        result = await self.registry.put_manifest(REPO, Reference(tag="fits"), mt.OCI_MANIFEST, at_limit)
        self.assertEqual(result.digest, Digest.of(at_limit))
        put = self.registry.put_manifest(REPO, Reference(tag="over"), mt.OCI_MANIFEST, at_limit + b" ")
        await self.assertFailure(Deferred.fromCoroutine(put), PayloadTooLarge)
        # Nothing was stored for the refused push.
        page = await self.registry.list_tags(REPO, 10, None)
        self.assertEqual(page.items, ["fits"])

    async def test_too_many_tags(self) -> None:
        tags = [f"t{i}" for i in range(MAX_TAGS_PER_PUSH + 1)]
        put = self.registry.put_manifest(
            REPO, Reference(tag="main"), mt.OCI_MANIFEST, image_manifest(EMPTY_CONFIG, []), tags
        )
        error = await self.assertFailure(Deferred.fromCoroutine(put), RegistryError)
        self.assertEqual(error.http_status, 414)

    async def test_missing_blobs_listed(self) -> None:
        config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(Digest.of(b"c"))}
        body = image_manifest({**config, "size": 1}, [])
        put = self.registry.put_manifest(REPO, Reference(tag="t"), mt.OCI_MANIFEST, body)
        error = await self.assertFailure(Deferred.fromCoroutine(put), ManifestBlobUnknown)
        self.assertEqual(error.detail, {"missing": [str(Digest.of(b"c"))]})

    async def test_digest_reference_must_match(self) -> None:
        body = image_manifest(EMPTY_CONFIG, [])
        put = self.registry.put_manifest(REPO, Reference(digest=Digest.of(b"x")), mt.OCI_MANIFEST, body)
        await self.assertFailure(Deferred.fromCoroutine(put), DigestInvalid)
        sha512 = Digest.of(body, "sha512")
        result = await self.registry.put_manifest(REPO, Reference(digest=sha512), mt.OCI_MANIFEST, body)
        self.assertEqual(result.digest, sha512)
        record = await self.registry.get_manifest(REPO, Reference(digest=sha512))
        self.assertEqual(record.content, body)


class MountTests(OperationsTestCase):
    async def test_mount_without_source_needs_the_blob_somewhere(self) -> None:
        digest = Digest.of(b"layer")
        self.assertIsNone(await self.registry.mount_blob("b/repo", digest, None))
        await self.assertFailure(self.stat("b/repo", digest), BlobUnknown)
        # A failed mount does not make the repository appear.
        self.assertEqual((await self.registry.catalog(10, None)).items, [])

        await self.push("a/repo", b"layer")
        info = await self.registry.mount_blob("b/repo", digest, None)
        assert info is not None
        self.assertEqual((info.digest, info.size), (digest, 5))
        self.assertEqual((await self.registry.stat_blob("b/repo", digest)).size, 5)
        self.assertEqual(await self.pull("b/repo", digest), b"layer")
        self.assertEqual((await self.registry.catalog(10, None)).items, ["a/repo", "b/repo"])

    async def test_mount_from_source_needs_the_blob_there(self) -> None:
        digest = await self.push("a/repo", b"layer")
        self.assertIsNone(await self.registry.mount_blob("c/repo", digest, "b/repo"))
        await self.assertFailure(self.stat("c/repo", digest), BlobUnknown)
        info = await self.registry.mount_blob("c/repo", digest, "a/repo")
        assert info is not None
        self.assertEqual(info.size, 5)
        self.assertEqual(await self.pull("c/repo", digest), b"layer")

    async def test_mount_validates_names(self) -> None:
        digest = await self.push("a/repo", b"layer")
        for target, source in [("Bad", None), ("ok", "../a"), ("a//b", "a/repo")]:
            mount = self.registry.mount_blob(target, digest, source)
            await self.assertFailure(Deferred.fromCoroutine(mount), NameInvalid)
