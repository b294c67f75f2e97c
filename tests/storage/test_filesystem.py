"""The filesystem blob store, with a real thread pool and the real reactor."""

from __future__ import annotations

import errno
import hashlib
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txoci.registry.digest import Digest
from txoci.registry.errors import BlobUnknown, BlobUploadUnknown, DigestInvalid
from txoci.storage import filesystem
from txoci.storage.filesystem import HIGH_WATER, LOW_WATER, FilesystemBlobStore
from txoci.storage.interfaces import IBlobReader, IBlobStore, IUploadWriter, TransferStopped


@implementer(IPushProducer)
class FakeProducer:
    """Records what a consumer asks of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


@implementer(IConsumer)
class CollectingConsumer:
    """Keeps what it is written; can pause its producer after each write."""

    def __init__(self, pause_on_write: bool = False) -> None:
        self.chunks: list[bytes] = []
        self.producer: IPushProducer | None = None
        self.streaming: bool | None = None
        self.unregistered = False
        self.pause_on_write = pause_on_write
        self.first_write: Deferred[None] = Deferred()
        self._waiting: list[Deferred[None]] = []

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        self.unregistered = True
        self.producer = None

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        if self.pause_on_write and self.producer is not None:
            self.producer.pauseProducing()
        if not self.first_write.called:
            self.first_write.callback(None)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)

    def next_write(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        return waiter


def settle(seconds: float = 0.1) -> Deferred[None]:
    """Give the pool threads time to do anything they would do."""
    return deferLater(reactor, seconds, lambda: None)


class FilesystemTestCase(TestCase):
    def setUp(self) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=4, name="test-blobs")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.root = os.path.abspath(self.mktemp())
        self.store = FilesystemBlobStore(self.root, reactor, self.pool)

    def upload_file(self, upload_id: str) -> str:
        return os.path.join(self.root, "uploads", upload_id)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    async def open_writer(
        self, upload_id: str = "u1", offset: int = 0, algorithm: str = "sha256"
    ) -> IUploadWriter:
        if offset == 0 and not os.path.exists(self.upload_file(upload_id)):
            await self.store.create_upload(upload_id)
        writer = await self.store.open_upload(upload_id, offset, algorithm)
        self.addCleanup(writer.close)
        return writer

    async def commit_blob(self, data: bytes, upload_id: str = "blob") -> Digest:
        writer = await self.open_writer(upload_id)
        writer.write(data)
        digest = Digest.of(data)
        self.assertEqual(await writer.commit(digest), len(data))
        await writer.finish()
        return digest


class UploadTests(FilesystemTestCase):
    def test_provides_interfaces(self) -> None:
        verifyObject(IBlobStore, self.store)

    async def test_create_upload_makes_an_empty_file(self) -> None:
        await self.store.create_upload("u1")
        self.assertEqual(self.read(self.upload_file("u1")), b"")
        self.assertEqual(await self.store.upload_ids(), ["u1"])
        await self.assertFailure(self.store.create_upload("u1"), FileExistsError)

    async def test_malformed_upload_ids(self) -> None:
        for upload_id in ["../x", "", "a/b", ".", "x" * 129]:
            await self.assertFailure(self.store.create_upload(upload_id), BlobUploadUnknown)
            await self.assertFailure(self.store.open_upload(upload_id, 0, "sha256"), BlobUploadUnknown)

    async def test_open_missing_upload(self) -> None:
        await self.assertFailure(self.store.open_upload("missing", 0, "sha256"), BlobUploadUnknown)

    async def test_write_flush_commit(self) -> None:
        writer = await self.open_writer()
        verifyObject(IUploadWriter, writer)
        self.assertEqual(writer.offset, 0)
        self.assertEqual(writer.algorithm, "sha256")
        chunks = [b"hello ", b"", b"world", b"!" * 1000]
        for chunk in chunks:
            writer.write(chunk)
        data = b"".join(chunks)
        # offset counts accepted bytes at once, before they are on disk.
        self.assertEqual(writer.offset, len(data))
        self.assertEqual(await writer.flush(), len(data))
        self.assertEqual(self.read(self.upload_file("u1")), data)

        digest = Digest.of(data)
        self.assertEqual(await writer.commit(digest), len(data))
        path = os.path.join(self.root, "blobs", "sha256", digest.encoded[:2], digest.encoded)
        self.assertEqual(self.store.blob_path(digest), path)
        self.assertEqual(self.read(path), data)
        # No request can open the upload any more, but its file keeps a name
        # of its own until the metadata records the blob.
        self.assertFalse(os.path.exists(self.upload_file("u1")))
        self.assertEqual(self.read(self.upload_file("u1") + ".committing"), data)
        await writer.finish()
        self.assertFalse(os.path.exists(self.upload_file("u1") + ".committing"))
        self.assertEqual(await self.store.upload_ids(), [])
        self.assertEqual(await self.store.stat(digest), len(data))

    async def test_empty_blob(self) -> None:
        writer = await self.open_writer()
        self.assertEqual(await writer.flush(), 0)
        digest = Digest.of(b"")
        self.assertEqual(await writer.commit(digest), 0)
        self.assertEqual(await self.store.stat(digest), 0)

    async def test_wrong_digest_leaves_upload_intact(self) -> None:
        writer = await self.open_writer()
        writer.write(b"first part")
        error = await self.assertFailure(writer.commit(Digest.of(b"something else")), DigestInvalid)
        self.assertEqual(error.code, "DIGEST_INVALID")
        self.assertEqual(self.read(self.upload_file("u1")), b"first part")
        self.assertEqual(await self.store.stat(Digest.of(b"something else")), None)
        self.assertEqual(await self.store.stat(Digest.of(b"first part")), None)
        # The running hash is untouched: more bytes and a right digest still commit.
        writer.write(b", second part")
        data = b"first part, second part"
        self.assertEqual(await writer.commit(Digest.of(data)), len(data))
        self.assertEqual(self.read(self.store.blob_path(Digest.of(data))), data)

    async def test_commit_right_digest_after_wrong_one(self) -> None:
        writer = await self.open_writer()
        writer.write(b"payload")
        await self.assertFailure(writer.commit(Digest.of(b"other", "sha512")), DigestInvalid)
        self.assertEqual(await writer.commit(Digest.of(b"payload")), 7)

    async def test_commit_with_other_algorithm_rehashes(self) -> None:
        writer = await self.open_writer()
        data = os.urandom(3000)
        writer.write(data[:1000])
        writer.write(data[1000:])
        await self.assertFailure(writer.commit(Digest.of(b"nope", "sha512")), DigestInvalid)
        digest = Digest.of(data, "sha512")
        self.assertEqual(await writer.commit(digest), len(data))
        path = self.store.blob_path(digest)
        self.assertEqual(path, os.path.join(self.root, "blobs", "sha512", digest.encoded[:2], digest.encoded))
        self.assertEqual(self.read(path), data)
        self.assertEqual(hashlib.sha512(self.read(path)).hexdigest(), digest.encoded)

    async def test_sha512_writer(self) -> None:
        writer = await self.open_writer(algorithm="sha512")
        self.assertEqual(writer.algorithm, "sha512")
        writer.write(b"abc")
        self.assertEqual(await writer.commit(Digest.of(b"abc", "sha512")), 3)

    async def test_reopen_at_offset_truncates_and_restores_hash(self) -> None:
        writer = await self.open_writer()
        writer.write(b"hello world")
        self.assertEqual(await writer.flush(), 11)
        await writer.close()

        reopened = await self.open_writer("u1", 5)
        self.assertEqual(reopened.offset, 5)
        self.assertEqual(self.read(self.upload_file("u1")), b"hello")
        reopened.write(b" there")
        await self.assertFailure(reopened.commit(Digest.of(b"hello world there")), DigestInvalid)
        self.assertEqual(await reopened.commit(Digest.of(b"hello there")), 11)
        self.assertEqual(self.read(self.store.blob_path(Digest.of(b"hello there"))), b"hello there")

    async def test_reopen_at_full_length_keeps_everything(self) -> None:
        writer = await self.open_writer()
        writer.write(b"abc")
        await writer.flush()
        await writer.close()
        reopened = await self.open_writer("u1", 3)
        reopened.write(b"def")
        self.assertEqual(await reopened.commit(Digest.of(b"abcdef")), 6)

    async def test_reopen_beyond_end_fails(self) -> None:
        writer = await self.open_writer()
        writer.write(b"abc")
        await writer.flush()
        await writer.close()
        error = await self.assertFailure(self.store.open_upload("u1", 10, "sha256"), OSError)
        self.assertEqual(error.errno, errno.EIO)

    async def test_closed_writer_refuses_flush(self) -> None:
        writer = await self.open_writer()
        await writer.close()
        await self.assertFailure(writer.flush(), BlobUploadUnknown)
        await self.assertFailure(writer.commit(Digest.of(b"")), BlobUploadUnknown)
        # Closing twice is harmless.
        await writer.close()

    async def test_committing_existing_content_keeps_the_blob(self) -> None:
        digest = await self.commit_blob(b"same", "first")
        second = await self.commit_blob(b"same", "second")
        self.assertEqual(digest, second)
        self.assertEqual(self.read(self.store.blob_path(digest)), b"same")
        self.assertEqual(await self.store.upload_ids(), [])

    async def test_delete_upload(self) -> None:
        await self.store.create_upload("gone")
        await self.store.delete_upload("gone")
        await self.store.delete_upload("gone")
        self.assertEqual(await self.store.upload_ids(), [])

    async def test_writer_pauses_producer_above_high_water(self) -> None:
        writer = await self.open_writer()
        producer = FakeProducer()
        writer.registerProducer(producer, True)
        writer.write(b"a" * HIGH_WATER)
        self.assertEqual(producer.calls, [])
        writer.write(b"b")
        self.assertEqual(producer.calls, ["pause"])
        writer.write(b"c")
        self.assertEqual(producer.calls, ["pause"])
        self.assertEqual(await writer.flush(), HIGH_WATER + 2)
        # Drained below LOW_WATER: resumed exactly once.
        self.assertEqual(producer.calls, ["pause", "resume"])
        writer.unregisterProducer()
        data = b"a" * HIGH_WATER + b"bc"
        self.assertEqual(await writer.commit(Digest.of(data)), len(data))

    async def test_writer_resumes_only_below_low_water(self) -> None:
        self.patch(filesystem, "HIGH_WATER", 10)
        self.patch(filesystem, "LOW_WATER", 4)
        writer = await self.open_writer()
        producer = FakeProducer()
        writer.registerProducer(producer, True)
        writer.write(b"x" * 8)  # queued 8, written by the pool
        writer.write(b"y" * 8)  # queued 16: pause
        self.assertEqual(producer.calls, ["pause"])
        await writer.flush()
        self.assertEqual(producer.calls, ["pause", "resume"])
        self.assertLess(LOW_WATER, HIGH_WATER)

    async def test_register_producer_while_over_high_water_pauses_at_once(self) -> None:
        self.patch(filesystem, "HIGH_WATER", 10)
        self.patch(filesystem, "LOW_WATER", 4)
        writer = await self.open_writer()
        writer.write(b"x" * 20)
        writer.write(b"y" * 20)
        producer = FakeProducer()
        writer.registerProducer(producer, True)
        self.assertEqual(producer.calls, ["pause"])
        await writer.flush()
        self.assertEqual(producer.calls, ["pause", "resume"])


class ReaderTests(FilesystemTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.patch(filesystem, "READ_SIZE", 1000)
        self.data = bytes(range(256)) * 40  # 10240 bytes: eleven reads

    async def test_open_unknown(self) -> None:
        await self.assertFailure(self.store.open(Digest.of(b"absent")), BlobUnknown)
        self.assertIsNone(await self.store.stat(Digest.of(b"absent")))

    async def test_produce_whole_blob(self) -> None:
        digest = await self.commit_blob(self.data)
        reader = await self.store.open(digest)
        verifyObject(IBlobReader, reader)
        self.assertEqual(reader.size, len(self.data))
        consumer = CollectingConsumer()
        await reader.produce(consumer, 0, len(self.data))
        self.assertEqual(consumer.data, self.data)
        self.assertTrue(consumer.streaming)
        self.assertTrue(consumer.unregistered)
        self.assertTrue(all(len(chunk) <= 1000 for chunk in consumer.chunks))

    async def test_produce_exact_range(self) -> None:
        digest = await self.commit_blob(self.data)
        for start, length in [(0, 1), (5, 10), (999, 2), (1000, 1000), (123, 4567), (len(self.data) - 1, 1)]:
            reader = await self.store.open(digest)
            consumer = CollectingConsumer()
            await reader.produce(consumer, start, length)
            self.assertEqual(consumer.data, self.data[start : start + length], (start, length))

    async def test_produce_nothing(self) -> None:
        digest = await self.commit_blob(b"")
        reader = await self.store.open(digest)
        self.assertEqual(reader.size, 0)
        consumer = CollectingConsumer()
        done = reader.produce(consumer, 0, 0)
        self.assertIsInstance(done, Deferred)
        await done
        self.assertEqual(consumer.chunks, [])
        self.assertTrue(consumer.unregistered)

    async def test_produce_honours_pause_and_resume(self) -> None:
        digest = await self.commit_blob(self.data)
        reader = await self.store.open(digest)
        consumer = CollectingConsumer(pause_on_write=True)
        done = reader.produce(consumer, 0, len(self.data))
        await consumer.first_write
        await settle()
        self.assertEqual(len(consumer.chunks), 1)
        self.assertFalse(done.called)
        for expected in range(2, 4):
            written = consumer.next_write()
            reader.resumeProducing()
            await written
            # Paused again by the write: nothing more arrives.
            await settle()
            self.assertEqual(len(consumer.chunks), expected)
        consumer.pause_on_write = False
        reader.resumeProducing()
        await done
        self.assertEqual(consumer.data, self.data)

    async def test_stop_producing_mid_way(self) -> None:
        digest = await self.commit_blob(self.data)
        reader = await self.store.open(digest)
        fd = reader._fd  # type: ignore[attr-defined]
        consumer = CollectingConsumer(pause_on_write=True)
        done = reader.produce(consumer, 0, len(self.data))
        await consumer.first_write
        reader.stopProducing()
        await self.assertFailure(done, TransferStopped)
        self.assertTrue(consumer.unregistered)
        error = self.assertRaises(OSError, os.fstat, fd)
        self.assertEqual(error.errno, errno.EBADF)
        # Nothing more arrives, even when asked.
        reader.resumeProducing()
        await settle()
        self.assertEqual(len(consumer.chunks), 1)
        reader.close()

    async def test_stop_producing_with_a_read_in_flight(self) -> None:
        digest = await self.commit_blob(self.data)
        reader = await self.store.open(digest)
        consumer = CollectingConsumer()
        done = reader.produce(consumer, 0, len(self.data))
        reader.stopProducing()
        await self.assertFailure(done, TransferStopped)
        await settle()
        self.assertEqual(consumer.chunks, [])

    async def test_close_without_producing(self) -> None:
        digest = await self.commit_blob(self.data)
        reader = await self.store.open(digest)
        fd = reader._fd  # type: ignore[attr-defined]
        reader.close()
        reader.close()
        self.assertRaises(OSError, os.fstat, fd)

    async def test_delete_blob(self) -> None:
        digest = await self.commit_blob(self.data)
        await self.store.delete(digest)
        self.assertIsNone(await self.store.stat(digest))
        await self.store.delete(digest)
        await self.assertFailure(self.store.open(digest), BlobUnknown)


class VerifiedFingerprintTests(FilesystemTestCase):
    """Downloads are re-hashed only when the file is not the one last verified."""

    def setUp(self) -> None:
        super().setUp()
        self.hashed: list[bool] = []
        real_read_chunk = filesystem._read_chunk

        def spy(fd: int, amount: int, position: int, hasher: object, end: int) -> object:
            self.hashed.append(hasher is not None)
            return real_read_chunk(fd, amount, position, hasher, end)  # type: ignore[arg-type]

        self.patch(filesystem, "_read_chunk", spy)

    async def download(self, digest: Digest, store: FilesystemBlobStore | None = None) -> bytes:
        reader = await (store or self.store).open(digest)
        consumer = CollectingConsumer()
        await reader.produce(consumer, 0, reader.size)
        return consumer.data

    async def test_a_committed_blob_is_served_without_rehashing(self) -> None:
        digest = await self.commit_blob(b"fresh bytes")
        self.assertEqual(await self.download(digest), b"fresh bytes")
        self.assertEqual(self.hashed, [False])

    async def test_an_unknown_file_is_hashed_once_then_remembered(self) -> None:
        digest = await self.commit_blob(b"from before a restart")
        restarted = FilesystemBlobStore(self.root, reactor, self.pool)
        for _ in range(2):
            self.assertEqual(await self.download(digest, restarted), b"from before a restart")
        self.assertEqual(self.hashed, [True, False])

    async def test_a_touched_file_is_hashed_again(self) -> None:
        digest = await self.commit_blob(b"touched later")
        path = self.store.blob_path(digest)
        status = os.stat(path)
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1))
        self.assertEqual(await self.download(digest), b"touched later")
        self.assertEqual(self.hashed, [True])

    async def test_a_range_is_never_hashed(self) -> None:
        digest = await self.commit_blob(b"ranged bytes")
        restarted = FilesystemBlobStore(self.root, reactor, self.pool)
        reader = await restarted.open(digest)
        consumer = CollectingConsumer()
        await reader.produce(consumer, 1, 4)
        self.assertEqual((consumer.data, self.hashed), (b"anged"[:4], [False]))
