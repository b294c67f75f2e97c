"""
The filesystem blob store.

Layout under the store's root (one filesystem, so renames are atomic)::

    blobs/<algorithm>/<first two hex digits>/<hex>   committed, immutable
    uploads/<upload id>                              uploads in progress
    quarantine/<path as above>.<nanoseconds>         corrupt or orphaned files moved aside

An upload's bytes are written once, straight into its upload file, and hashed
as they arrive (no spool, no second read).  Commit is fsync, then rename
into ``blobs/``, then fsync of the directory: a crash at any point leaves
either the upload file or the committed blob, never a partial blob.

Integrity without re-hashing every download: a blob's bytes were hashed as
they were written, so at commit the store remembers the file's *fingerprint*
(device, inode, size, mtime and ctime in nanoseconds).  Any write, truncation,
replacement or ``chmod`` of the file changes it.  A download whose open file
still has the remembered fingerprint is served straight from disk; any other
whole-blob download (after a restart, or after something touched the file) is
hashed as it streams, its last chunk withheld until the digest matched, and
is remembered once it did.  Silent media corruption that changes no metadata
is what ``txoci check`` (a full re-hash) is for.

All file work runs on a thread pool, never on the reactor thread.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer, IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from txoci.registry.digest import Digest, Hasher, new_hasher
from txoci.registry.errors import BlobUnknown, BlobUploadUnknown, DigestInvalid, StorageFull
from txoci.storage.interfaces import (
    CorruptBlob,
    IBlobReader,
    IBlobStore,
    IUploadWriter,
    TransferStopped,
    UploadInUse,
)

T = TypeVar("T")

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

#: Size of the reads when hashing or serving a file.
READ_SIZE = 1024 * 1024
#: Queued bytes above which a writer pauses its producer, and below which it resumes.
HIGH_WATER = 16 * 1024 * 1024
LOW_WATER = 4 * 1024 * 1024

log = Logger()

#: Start writing an upload's pages to disk every this many bytes, so that the
#: fsync at commit has only the tail left to wait for.
WRITEBACK_EVERY = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _find_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` through ctypes (which releases the GIL), if present."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_sync_file_range = _find_sync_file_range()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """
    Ask the kernel to start writing a range to disk, without waiting.  Only a
    hint: durability still comes from the fsync at commit.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Buffers per ``writev`` call, well under every platform's IOV_MAX.
_IOV_BATCH = 256


def _write_chunks(fd: int, chunks: list[bytes]) -> None:
    """Write ``chunks`` in order with as few system calls as possible."""
    for first in range(0, len(chunks), _IOV_BATCH):
        group = chunks[first : first + _IOV_BATCH]
        written = os.writev(fd, group)
        for chunk in group:
            # A short write: finish this group chunk by chunk.
            if written >= len(chunk):
                written -= len(chunk)
                continue
            _write_all(fd, chunk[written:])
            written = 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@attrs.frozen
class Fingerprint:
    """What identifies a file's exact state: any write, replacement or chmod changes it."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def fingerprint(status: os.stat_result) -> Fingerprint:
    return Fingerprint(
        status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns
    )


#: Verified fingerprints remembered (about 200 bytes each); others are re-hashed once.
VERIFIED_CACHE_SIZE = 100_000

#: Suffix of an upload file between its commit and the metadata recording the blob.
COMMITTING = ".committing"

#: The directory under the data dir that files are moved into instead of being deleted.
QUARANTINE = "quarantine"


def quarantine_file(root: str, path: str) -> str:
    """
    Move ``path`` (a file under ``root``) to ``root/quarantine/<same relative
    path>.<nanoseconds>``, durably; return where it went.  Never deletes.
    """
    relative = os.path.relpath(path, root)
    if relative.startswith(os.pardir):
        raise ValueError(f"{path} is not under {root}")
    target = os.path.join(root, QUARANTINE, f"{relative}.{time.time_ns()}")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(path, target)
    _fsync_directory(os.path.dirname(target))
    _fsync_directory(os.path.dirname(path))
    return target


def _lock_upload(fd: int) -> None:
    """Lock an upload file for the calling request, or raise :class:`UploadInUse`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UploadInUse("another request is writing to this upload") from None


def _resume_upload(fd: int, recorded_offset: int, written: int) -> bool:
    """Lock a suspended upload file; whether this writer may go on from ``written``."""
    _lock_upload(fd)
    if recorded_offset != written:
        return False
    if os.fstat(fd).st_size != written:
        # A writer elsewhere added bytes that it never recorded (it died, or
        # its request failed): they were never acknowledged.
        os.ftruncate(fd, written)
    return True


def _translate_os_error(error: OSError) -> Exception:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull()
    return error


def _hash_file(fd: int, hasher: Hasher, length: int) -> None:
    """Feed the first ``length`` bytes of ``fd`` to ``hasher``."""
    position = 0
    while position < length:
        chunk = os.pread(fd, min(READ_SIZE, length - position), position)
        if not chunk:
            raise OSError(errno.EIO, "upload file is shorter than its recorded offset")
        hasher.update(chunk)
        position += len(chunk)


class _Worker:
    """Runs blocking calls on the store's thread pool."""

    def __init__(self, reactor: IReactorFromThreads, pool: ThreadPool) -> None:
        self.reactor = reactor
        self.pool = pool

    def run(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self.reactor, self.pool, f, *args)


@implementer(IUploadWriter)
class FileUploadWriter:
    """
    Appends to one upload file from a thread, hashing as it goes.

    Bytes handed to :meth:`write` queue up on the reactor thread; one batch at
    a time is hashed and written by the pool, so the order is kept and at most
    one thread touches the file.  While more than ``HIGH_WATER`` bytes are
    queued the registered producer (the request body) is paused.
    """

    def __init__(
        self,
        worker: _Worker,
        store: FilesystemBlobStore,
        upload_id: str,
        fd: int,
        offset: int,
        hasher: Hasher,
        algorithm: str,
    ) -> None:
        self._worker = worker
        self._store = store
        self.upload_id = upload_id
        self._fd: int | None = fd
        self.offset = offset
        self.algorithm = algorithm
        self._written = offset
        self._writeback_from = offset
        self._hasher = hasher
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._busy = False
        self._failure: Failure | None = None
        self._idle_waiters: list[Deferred[None]] = []
        self._producer: IPushProducer | None = None
        self._paused = False
        #: Set by :meth:`commit`: the digest, and the (device, inode) of the upload file.
        self._committed: Digest | None = None
        self._identity: tuple[int, int] | None = None

    # IConsumer

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = IPushProducer(producer)
        self._paused = False
        if self._queued > HIGH_WATER:
            self._pause()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._paused = False

    def write(self, data: bytes) -> None:
        if self._failure is not None or not data:
            return
        self._queue.append(data)
        self._queued += len(data)
        self.offset += len(data)
        if self._queued > HIGH_WATER:
            self._pause()
        if not self._busy:
            self._start_batch()

    # Internals

    def _pause(self) -> None:
        if self._producer is not None and not self._paused:
            self._paused = True
            self._producer.pauseProducing()

    def _maybe_resume(self) -> None:
        if self._producer is not None and self._paused and self._queued <= LOW_WATER:
            self._paused = False
            self._producer.resumeProducing()

    def _start_batch(self) -> None:
        batch = list(self._queue)
        self._queue.clear()
        size = sum(map(len, batch))
        self._busy = True
        fd = self._fd
        hasher = self._hasher
        end = self._written + size

        def work() -> None:
            assert fd is not None
            try:
                for chunk in batch:
                    hasher.update(chunk)
                _write_chunks(fd, batch)
            except OSError as e:
                raise _translate_os_error(e) from e
            # Only this batch's thread touches the writeback mark.
            if end - self._writeback_from >= WRITEBACK_EVERY:
                _start_writeback(fd, self._writeback_from, end - self._writeback_from)
                self._writeback_from = end

        def done(result: object) -> None:
            self._busy = False
            self._queued -= size
            if isinstance(result, Failure):
                self._fail(result)
                return
            self._written += size
            if self._queue:
                self._start_batch()
            else:
                waiters, self._idle_waiters = self._idle_waiters, []
                for waiter in waiters:
                    waiter.callback(None)
            self._maybe_resume()

        self._worker.run(work).addBoth(done)

    def _fail(self, failure: Failure) -> None:
        self._failure = failure
        self._queue.clear()
        self._queued = 0
        if self._producer is not None:
            self._producer.stopProducing()
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.errback(failure)

    def _idle(self) -> Deferred[None]:
        if self._failure is not None:
            return Deferred.fromCoroutine(self._raise_failure())
        if not self._busy and not self._queue:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    async def _raise_failure(self) -> None:
        assert self._failure is not None
        self._failure.raiseException()

    def _require_fd(self) -> int:
        if self._fd is None:
            raise BlobUploadUnknown("upload writer is closed")
        return self._fd

    # IUploadWriter

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def flush(self) -> Deferred[int]:
        async def flush() -> int:
            await self._idle()
            fd = self._require_fd()
            await self._worker.run(os.fdatasync, fd)
            return self._written

        return Deferred.fromCoroutine(flush())

    def resume(self, recorded_offset: int) -> Deferred[bool]:
        async def resume() -> bool:
            await self._idle()
            fd = self._require_fd()
            return await self._worker.run(_resume_upload, fd, recorded_offset, self._written)

        return Deferred.fromCoroutine(resume())

    def suspend(self) -> None:
        if self._fd is not None:
            # Unlocking never blocks.
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def commit(self, expected: Digest) -> Deferred[int]:
        async def commit() -> int:
            await self._idle()
            fd = self._require_fd()
            size = self._written
            if expected.algorithm == self.algorithm:
                actual = self._hasher.copy().hexdigest()
            else:
                # The client chose another algorithm than the upload was
                # started with: hash the file once more with that one.
                actual = await self._worker.run(self._store._rehash, fd, expected.algorithm, size)
            if actual != expected.encoded:
                raise DigestInvalid(
                    f"upload content has digest {expected.algorithm}:{actual}, not {expected}",
                )
            self._identity = await self._worker.run(
                self._store._commit_file, self.upload_id, fd, expected
            )
            self._fd = None
            self._committed = expected
            return size

        return Deferred.fromCoroutine(commit())

    def recommit(self) -> Deferred[None]:
        if self._committed is None:
            raise RuntimeError("recommit before commit")
        return self._worker.run(self._store._relink_blob, self.upload_id, self._committed)

    def finish(self) -> Deferred[None]:
        async def finish() -> None:
            digest = self._committed
            if digest is None:
                raise RuntimeError("finish before commit")
            print_ = await self._worker.run(
                self._store._drop_upload_name, self.upload_id, digest, self._identity
            )
            if print_ is not None:
                self._store.remember_verified(digest, print_)

        return Deferred.fromCoroutine(finish())

    def close(self) -> Deferred[None]:
        async def close() -> None:
            try:
                await self._idle()
            except Exception:
                pass
            if self._fd is not None:
                fd, self._fd = self._fd, None
                await self._worker.run(os.close, fd)

        return Deferred.fromCoroutine(close())


def _read_chunk(
    fd: int, amount: int, position: int, hasher: Hasher | None, end: int
) -> tuple[bytes, str | None]:
    """
    Read a chunk; feed it to ``hasher`` if there is one, and when the chunk
    reaches ``end``, return the final digest with it.
    """
    chunk = os.pread(fd, amount, position)
    if hasher is None or not chunk:
        return chunk, None
    hasher.update(chunk)
    return chunk, hasher.hexdigest() if position + len(chunk) >= end else None


@implementer(IPushProducer, IBlobReader)
class FileBlobReader:
    """
    Produces a byte range of a blob file with back-pressure.  A whole-blob
    range is hashed as it is read, and the last chunk is only written once
    the digest matched (see :meth:`IBlobReader.produce`).
    """

    def __init__(
        self,
        worker: _Worker,
        fd: int,
        size: int,
        digest: Digest | None = None,
        store: FilesystemBlobStore | None = None,
        print_: Fingerprint | None = None,
    ) -> None:
        self._worker = worker
        self._fd: int | None = fd
        self.size = size
        self.digest = digest
        self._store = store
        #: The open file's fingerprint: whether it needs hashing, and so
        #: quarantine never moves a newer file.
        self._fingerprint = print_
        self._hasher: Hasher | None = None
        self._consumer: IConsumer | None = None
        self._position = 0
        self._end = 0
        self._paused = False
        self._reading = False
        self._close_pending = False
        self._done: Deferred[None] | None = None

    def produce(self, consumer: IConsumer, start: int, length: int) -> Deferred[None]:
        self._consumer = consumer
        self._position = start
        self._end = start + length
        # Keep our own reference: an empty range finishes (and clears
        # ``self._done``) before this method returns.
        done = self._done = Deferred()
        consumer.registerProducer(self, True)
        digest = self.digest
        if digest is not None and self._needs_verifying(start, length):
            self._hasher = new_hasher(digest.algorithm)
            if length == 0 and self._hasher.hexdigest() != digest.encoded:
                self._finish(Failure(CorruptBlob(digest, "the file is empty")))
                return done
        self._read_next()
        return done

    def _needs_verifying(self, start: int, length: int) -> bool:
        if self.digest is None or start != 0 or length != self.size:
            return False
        if self._store is None or self._fingerprint is None:
            return True
        return not self._store.is_verified(self.digest, self._fingerprint)

    def _read_next(self) -> None:
        if self._reading or self._paused or self._fd is None:
            return
        if self._position >= self._end:
            if self._hasher is not None and self._store is not None and self._fingerprint:
                # Hashed whole and matched (a mismatch never gets here).
                assert self.digest is not None
                self._store.remember_verified(self.digest, self._fingerprint)
            self._finish(None)
            return
        self._reading = True
        fd, position = self._fd, self._position
        amount = min(READ_SIZE, self._end - self._position)
        self._worker.run(_read_chunk, fd, amount, position, self._hasher, self._end).addBoth(
            self._got_chunk
        )

    def _got_chunk(self, result: tuple[bytes, str | None] | Failure) -> None:
        self._reading = False
        if self._close_pending:
            self.close()
        if self._fd is None or self._consumer is None:
            return
        if isinstance(result, Failure):
            self._finish(result)
            return
        chunk, actual = result
        if not chunk:
            if self.digest is not None:
                self._finish(Failure(CorruptBlob(self.digest, "the file is shorter than the blob")))
            else:
                self._finish(Failure(OSError(errno.EIO, "blob file is shorter than its size")))
            return
        if actual is not None and self.digest is not None and actual != self.digest.encoded:
            # Withhold the last chunk: the consumer never gets the whole of bad content.
            reason = f"its content has digest {self.digest.algorithm}:{actual}"
            self._finish(Failure(CorruptBlob(self.digest, reason)))
            return
        self._position += len(chunk)
        self._consumer.write(chunk)
        self._read_next()

    def _finish(self, result: Failure | None) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.unregisterProducer()
        self.close()
        done, self._done = self._done, None
        if done is not None:
            if result is None:
                done.callback(None)
            else:
                done.errback(result)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._read_next()

    def stopProducing(self) -> None:
        self._finish(Failure(TransferStopped("consumer stopped the blob transfer")))

    def quarantine(self) -> Deferred[str | None]:
        if self._store is None or self.digest is None:
            return succeed(None)
        return self._worker.run(self._store._quarantine_blob, self.digest, self._fingerprint)

    def close(self) -> None:
        if self._reading:
            # A pread is using the descriptor on a pool thread; closing it now
            # could hand its number to another file mid-read.
            self._close_pending = True
            self._consumer = None
            return
        self._close_pending = False
        if self._fd is not None:
            fd, self._fd = self._fd, None
            # Closing a file descriptor does not block on a regular file.
            os.close(fd)


@implementer(IBlobStore)
class FilesystemBlobStore:
    """Blobs and uploads as files under ``root``."""

    def __init__(self, root: str, reactor: IReactorFromThreads, pool: ThreadPool) -> None:
        self.root = root
        self._blobs = os.path.join(root, "blobs")
        self._uploads = os.path.join(root, "uploads")
        self._worker = _Worker(reactor, pool)
        #: Fingerprints of files whose content was hashed and matched, by digest.
        self._verified: OrderedDict[str, Fingerprint] = OrderedDict()
        for path in (self._blobs, self._uploads):
            os.makedirs(path, exist_ok=True)

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self._blobs, digest.algorithm, digest.encoded[:2], digest.encoded)

    def upload_path(self, upload_id: str) -> str:
        if not _UPLOAD_ID.match(upload_id):
            raise BlobUploadUnknown("malformed upload id")
        return os.path.join(self._uploads, upload_id)

    # Blocking helpers, run on the pool.

    def _create_upload(self, upload_id: str) -> None:
        path = self.upload_path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        # The upload's entry must survive a crash along with its session row.
        _fsync_directory(self._uploads)

    def _open_upload(self, upload_id: str, offset: int, algorithm: str) -> tuple[int, Hasher]:
        path = self.upload_path(upload_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise BlobUploadUnknown("upload has no data file") from None
        try:
            # Before the truncation below: never cut bytes another request
            # (maybe in another process) is writing.
            _lock_upload(fd)
            hasher = new_hasher(algorithm)
            _hash_file(fd, hasher, offset)
            # Bytes past the durable offset were never acknowledged: drop them.
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return fd, hasher

    def _rehash(self, fd: int, algorithm: str, length: int) -> str:
        hasher = new_hasher(algorithm)
        _hash_file(fd, hasher, length)
        return hasher.hexdigest()

    def _commit_file(self, upload_id: str, fd: int, digest: Digest) -> tuple[int, int]:
        """
        Make the upload's content durable and give it its blob name too (a
        hard link); return the file's (device, inode).

        First the upload file is renamed to ``<id>.committing``, a name no
        request can open (upload ids have no dot), so that no other request
        on the same upload (in this process or another) appends to or
        truncates what is now the blob's file.  That name is kept until
        :meth:`_drop_upload_name`, so the bytes survive if garbage collection
        removes the blob name before the metadata records the blob (see
        docs/operations.md, "Why GC cannot lose data").
        """
        try:
            status = os.fstat(fd)
            if not os.path.exists(self.blob_path(digest)):
                # The same content already committed is durable: no sync needed.
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(self.upload_path(upload_id), self.committing_path(upload_id))
        self._link_blob(upload_id, digest)
        return status.st_dev, status.st_ino

    def committing_path(self, upload_id: str) -> str:
        """The upload file's name between its commit and the metadata recording the blob."""
        return self.upload_path(upload_id) + COMMITTING

    def _link_blob(self, upload_id: str, digest: Digest) -> None:
        """Give the (synced) committing upload file the blob's name, unless that name exists."""
        source = self.committing_path(upload_id)
        target = self.blob_path(digest)
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            # A new prefix directory: make its own entry durable too.
            _fsync_directory(os.path.dirname(directory))
            _fsync_directory(os.path.dirname(os.path.dirname(directory)))
        try:
            os.link(source, target)
        except FileExistsError:
            return  # The same content is committed already; keep that copy.
        _fsync_directory(directory)

    def _relink_blob(self, upload_id: str, digest: Digest) -> None:
        """Place the upload's content again; it may not have been synced (it was a duplicate)."""
        fd = os.open(self.committing_path(upload_id), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._link_blob(upload_id, digest)

    def _drop_upload_name(
        self, upload_id: str, digest: Digest, identity: tuple[int, int] | None
    ) -> Fingerprint | None:
        """
        The metadata records the blob: remove the upload's own name, durably.
        Return the blob file's fingerprint if it is the upload's file (so its
        hash is known good), else None.
        """
        self._delete_file(self.committing_path(upload_id))
        _fsync_directory(self._uploads)
        try:
            status = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            return None
        if (status.st_dev, status.st_ino) != identity:
            return None
        return fingerprint(status)

    def holds(self, digest: Digest) -> bool:
        return os.path.exists(self.blob_path(digest))

    def _stat(self, digest: Digest) -> int | None:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            return None

    def _open(self, digest: Digest) -> tuple[int, Fingerprint]:
        try:
            fd = os.open(self.blob_path(digest), os.O_RDONLY)
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} has no content") from None
        return fd, fingerprint(os.fstat(fd))

    def remember_verified(self, digest: Digest, print_: Fingerprint) -> None:
        """The file with ``print_`` was just hashed and matched ``digest`` (reactor thread)."""
        key = str(digest)
        self._verified[key] = print_
        self._verified.move_to_end(key)
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)

    def forget_verified(self, digest: Digest) -> None:
        """The blob was deleted (by garbage collection): stop trusting any file for it."""
        self._verified.pop(str(digest), None)

    def is_verified(self, digest: Digest, print_: Fingerprint) -> bool:
        """Whether the file with ``print_`` is the one last verified for ``digest``."""
        return self._verified.get(str(digest)) == print_

    def _quarantine_blob(self, digest: Digest, print_: Fingerprint | None) -> str | None:
        """Move a blob's file aside, unless it is gone or (by inode) no longer the one read."""
        path = self.blob_path(digest)
        try:
            status = os.stat(path)
        except FileNotFoundError:
            return None
        if print_ is not None and (status.st_dev, status.st_ino) != (print_.device, print_.inode):
            # Good bytes were committed again since: keep them.
            return None
        return quarantine_file(self.root, path)

    def _delete_file(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    # IBlobStore

    def create_upload(self, upload_id: str) -> Deferred[None]:
        return self._worker.run(self._create_upload, upload_id)

    def open_upload(self, upload_id: str, offset: int, algorithm: str) -> Deferred[IUploadWriter]:
        async def open_upload() -> IUploadWriter:
            fd, hasher = await self._worker.run(self._open_upload, upload_id, offset, algorithm)
            return FileUploadWriter(self._worker, self, upload_id, fd, offset, hasher, algorithm)

        return Deferred.fromCoroutine(open_upload())

    def delete_upload(self, upload_id: str) -> Deferred[None]:
        def delete() -> None:
            self._delete_file(self.upload_path(upload_id))
            self._delete_file(self.committing_path(upload_id))

        return self._worker.run(delete)

    def upload_ids(self) -> Deferred[list[str]]:
        return self._worker.run(lambda: sorted(os.listdir(self._uploads)))

    def stat(self, digest: Digest) -> Deferred[int | None]:
        return self._worker.run(self._stat, digest)

    def open(self, digest: Digest) -> Deferred[IBlobReader]:
        async def open_blob() -> IBlobReader:
            fd, print_ = await self._worker.run(self._open, digest)
            return FileBlobReader(self._worker, fd, print_.size, digest, self, print_)

        return Deferred.fromCoroutine(open_blob())

    def delete(self, digest: Digest) -> Deferred[None]:
        return self._worker.run(self._delete_file, self.blob_path(digest))
