"""
The registry operations: every rule of the distribution spec, in one place.

The web layer parses HTTP and calls one method here; this module decides what
is allowed, talks to the blob store and the metadata store, and raises a
typed :class:`~txoci.registry.errors.RegistryError` when something is not.
Each operation's metadata changes run in one transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IDelayedCall, IReactorTime
from twisted.logger import Logger

from txoci.registry.cache import LookupCache
from txoci.registry.digest import DEFAULT_ALGORITHM, Digest, validate_algorithm
from txoci.registry.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    Denied,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RegistryError,
    Unsupported,
)
from txoci.registry.manifest import Descriptor, parse_manifest
from txoci.registry.names import Reference, validate_name, validate_tag
from txoci.storage.interfaces import (
    CorruptBlob,
    IBlobReader,
    IBlobStore,
    IMetadataStore,
    IMetadataTransaction,
    IUploadWriter,
    ManifestRecord,
    UploadInUse,
    UploadRecord,
)

log = Logger()

#: Largest manifest accepted; the spec asks for at least 4 MiB.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
#: An upload's writer (an open file and its running hash) is released after
#: this long without a request; the session stays and resumes from its file.
WRITER_IDLE_SECONDS = 300.0
#: Most tags a multi-tag push may carry.
MAX_TAGS_PER_PUSH = 100
#: Tries at recording a committed blob whose file garbage collection keeps removing.
PLACE_ATTEMPTS = 5
#: Repository names read at a time while filtering the catalog for a caller.
CATALOG_SCAN_BATCH = 500


class ByteSource(Protocol):
    """A request body, or any other stream of bytes to store."""

    @property
    def length(self) -> int | None:
        """The declared length, if known in advance."""

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """Write every byte to ``consumer``; fire with the count at the end."""


@attrs.frozen
class RegistryConfig:
    """The behaviour switches of a registry."""

    deletes_enabled: bool = True
    #: Refuse every write (uploads, manifest pushes, deletes) with 405 UNSUPPORTED.
    read_only: bool = False
    #: Advertised as ``OCI-Chunk-Min-Length``: smaller chunks cost a sync each.
    chunk_min_length: int = 1024 * 1024
    max_manifest_size: int = MAX_MANIFEST_SIZE
    #: Seconds a cached manifest, blob or tag lookup may be reused (0: no
    #: cache).  Every write, by any process, invalidates the cache at once;
    #: this is only a backstop.  See :mod:`txoci.registry.cache`.
    lookup_cache_ttl: float = 1.0


@attrs.frozen
class UploadStatus:
    """Where an upload stands."""

    repository: str
    upload_id: str
    offset: int


@attrs.frozen
class BlobInfo:
    digest: Digest
    size: int


@attrs.frozen
class PutManifestResult:
    digest: Digest
    subject: Digest | None
    tags: tuple[str, ...]


@attrs.frozen
class Page:
    """One page of a listing, and whether more follows."""

    items: list[str]
    more: bool


def _listed_size(names: list[str] | None) -> int:
    return 0 if names is None else sum(len(name) for name in names)


def _in_use(offset: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        "another request is writing to this upload", headers=_range_header(offset)
    )


class _ActiveUpload:
    """An upload's open writer, kept between requests so its hash stays warm."""

    def __init__(self, writer: IUploadWriter, record: UploadRecord) -> None:
        self.writer = writer
        self.record = record
        self.busy = False
        self.idle_timer: IDelayedCall | None = None


class Registry:
    """The operations of one registry over its two stores."""

    def __init__(
        self,
        blobs: IBlobStore,
        metadata: IMetadataStore,
        clock: IReactorTime,
        config: RegistryConfig = RegistryConfig(),
        new_upload_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.blobs = blobs
        self.metadata = metadata
        self.clock = clock
        self.config = config
        self._new_upload_id = new_upload_id
        self._active: dict[str, _ActiveUpload] = {}
        #: Uploads whose writer is being opened (which truncates the file).
        self._opening: set[str] = set()
        #: Blobs found corrupt by this process; the metadata marks them too
        #: (except in read-only mode), this also covers a failed marking.
        self._corrupt: set[str] = set()
        self._closed = False
        self._lookups = LookupCache(clock, lambda: metadata.generation, config.lookup_cache_ttl)

    # Helpers

    def _transact(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return self.metadata.transact(work, *args)

    def _read(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return self.metadata.read(work, *args)

    def _require_deletes(self) -> None:
        self._require_writable()
        if not self.config.deletes_enabled:
            raise Unsupported("deletes are disabled on this registry")

    def _require_writable(self) -> None:
        if self.config.read_only:
            raise Unsupported("registry is in read-only mode", headers={"Allow": "GET, HEAD"})

    # Blobs

    async def stat_blob(self, repository: str, digest: Digest) -> BlobInfo:
        """A blob visible in ``repository`` (HEAD and GET)."""
        validate_name(repository)
        if str(digest) in self._corrupt:
            raise BlobUnknown(f"blob {digest} failed its integrity check; push it again")
        size = await self._lookups.get(
            ("blob", repository, str(digest)),
            lambda: self._read(lambda tx: tx.linked_blob_size(repository, str(digest))),
        )
        if size is None:
            raise BlobUnknown(f"blob {digest} is not in repository {repository}")
        return BlobInfo(digest, size)

    async def open_blob(self, repository: str, digest: Digest) -> tuple[BlobInfo, IBlobReader]:
        """
        A blob visible in ``repository``, opened for reading.  Produce it with
        :meth:`send_blob`, which handles a failed integrity check.
        """
        info = await self.stat_blob(repository, digest)
        reader = await self.blobs.open(digest)
        if reader.size != info.size:
            # Truncated or grown: caught before a byte is sent.
            reader.close()
            await self.blob_corrupt(
                reader, CorruptBlob(digest, f"its file holds {reader.size} bytes, not {info.size}")
            )
            raise BlobUnknown(f"blob {digest} failed its integrity check; push it again")
        return info, reader

    async def send_blob(self, reader: IBlobReader, consumer: IConsumer, start: int, length: int) -> None:
        """
        Produce a range of an opened blob to ``consumer``.  A whole-blob range
        is verified as it streams; on a mismatch this fails with
        :class:`~txoci.storage.interfaces.CorruptBlob` (the last chunk withheld)
        after the blob has been quarantined and marked corrupt.
        """
        try:
            await reader.produce(consumer, start, length)
        except CorruptBlob as error:
            await self.blob_corrupt(reader, error)
            raise

    async def blob_corrupt(self, reader: IBlobReader, error: CorruptBlob) -> None:
        """
        Never serve this blob again: log it, move its file aside and mark it
        corrupt in the metadata, so that HEAD, GET and mounts answer
        ``BLOB_UNKNOWN`` until a client pushes the content again.  In
        read-only mode only this process remembers it, and nothing is moved.
        """
        digest = str(error.digest)
        self._corrupt.add(digest)
        log.critical("blob {digest} is corrupt ({reason}); it will not be served", digest=digest,
                     reason=error.reason)
        if self.config.read_only:
            return
        try:
            moved = await reader.quarantine()
            if moved is not None:
                log.warn("corrupt blob {digest} moved to {path}", digest=digest, path=moved)
            await self._transact(lambda tx: tx.mark_blob_corrupt(digest, error.reason))
        except Exception:
            log.failure("could not quarantine corrupt blob {digest}", digest=digest)

    async def delete_blob(self, repository: str, digest: Digest) -> None:
        """Unlink a blob from a repository; its bytes are reclaimed by GC."""
        self._require_deletes()
        validate_name(repository)
        unlinked = await self._transact(lambda tx: tx.unlink_blob(repository, str(digest)))
        if not unlinked:
            raise BlobUnknown(f"blob {digest} is not in repository {repository}")

    async def mount_blob(
        self,
        repository: str,
        digest: Digest,
        source: str | None,
        readable: Callable[[str], bool] | None = None,
    ) -> BlobInfo | None:
        """
        Link a blob from ``source`` (or, without one, from anywhere in the
        registry) into ``repository``; None when it cannot be mounted, and the
        caller falls back to a normal upload.  With ``readable`` (a predicate
        on repository names, called on the metadata thread), a mount without
        ``source`` links only a blob in some repository it accepts.
        """
        self._require_writable()
        validate_name(repository)
        if source is not None:
            validate_name(source)

        def mount(tx: IMetadataTransaction) -> int | None:
            if source is not None:
                size = tx.linked_blob_size(source, str(digest))
            elif readable is not None:
                holders = [name for name in tx.repositories_linking(str(digest)) if readable(name)]
                size = tx.linked_blob_size(holders[0], str(digest)) if holders else None
            else:
                size = tx.blob_size(str(digest))
            # The file too, inside the transaction: only a GC interrupted
            # between moving a file aside and committing leaves a row without it.
            if size is None or not self.blobs.holds(digest):
                return None
            tx.link_blob(repository, str(digest))
            return size

        size = await self._transact(mount)
        return None if size is None else BlobInfo(digest, size)

    # Uploads

    async def start_upload(self, repository: str, algorithm: str | None = None) -> UploadStatus:
        """Open an upload session (``POST .../blobs/uploads/``)."""
        self._require_writable()
        validate_name(repository)
        algorithm = validate_algorithm(algorithm or DEFAULT_ALGORITHM)
        upload_id = self._new_upload_id()
        record = UploadRecord(upload_id, repository, algorithm, 0, self.clock.seconds())
        # The session row first: a file without one would look orphaned to GC.
        await self._transact(lambda tx: tx.create_upload(record))
        try:
            await self.blobs.create_upload(upload_id)
        except BaseException:
            await self._transact(lambda tx: tx.delete_upload(upload_id))
            raise
        return UploadStatus(repository, upload_id, 0)

    async def _upload_record(self, repository: str, upload_id: str) -> UploadRecord:
        validate_name(repository)
        active = self._active.get(upload_id)
        if active is not None:
            record = active.record
        else:
            record = await self._read(lambda tx: tx.get_upload(upload_id))
        if record is None or record.repository != repository:
            raise BlobUploadUnknown(f"upload {upload_id[:100]!r} is not in progress")
        return record

    async def upload_status(self, repository: str, upload_id: str) -> UploadStatus:
        """Where an upload stands (``GET`` on the upload)."""
        record = await self._upload_record(repository, upload_id)
        active = self._active.get(upload_id)
        offset = active.writer.offset if active is not None else record.offset
        return UploadStatus(repository, upload_id, offset)

    async def _acquire(self, repository: str, upload_id: str) -> _ActiveUpload:
        """
        The upload's writer, locked for the calling request.  Its recorded
        state is read afresh: another worker process may have moved the
        upload on since this one last wrote to it.
        """
        validate_name(repository)
        record = await self._read(lambda tx: tx.get_upload(upload_id))
        if record is None or record.repository != repository:
            raise BlobUploadUnknown(f"upload {upload_id[:100]!r} is not in progress")
        active = self._active.get(upload_id)
        if active is not None and not active.busy:
            active.busy = True
            if active.idle_timer is not None and active.idle_timer.active():
                active.idle_timer.cancel()
            active.idle_timer = None
            try:
                current = await active.writer.resume(record.offset)
            except UploadInUse:
                self._release(active, locked=False)
                raise _in_use(record.offset) from None
            except BaseException:
                self._release(active, locked=False)
                raise
            if current:
                active.record = record
                return active
            # Stale: reopen from what the metadata records.
            active.busy = False
            await self._forget(upload_id)
            active = None
        if active is None:
            # Opening truncates the file to the recorded offset, so a second
            # open must never race the first: it would cut off bytes the
            # first request is already writing.
            if upload_id in self._opening:
                raise _in_use(record.offset)
            self._opening.add(upload_id)
            try:
                writer = await self.blobs.open_upload(upload_id, record.offset, record.algorithm)
            except UploadInUse:
                raise _in_use(record.offset) from None
            finally:
                self._opening.discard(upload_id)
            active = self._active[upload_id] = _ActiveUpload(writer, record)
            active.busy = True
            return active
        raise _in_use(active.writer.offset)

    def _release(self, active: _ActiveUpload, locked: bool = True) -> None:
        """The request using ``active`` is done; close it if it stays idle."""
        if locked:
            active.writer.suspend()
        active.busy = False
        upload_id = active.record.upload_id
        if self._active.get(upload_id) is not active:
            # Already forgotten (a failed flush, or the registry closed
            # while this request ran): no writer left to time out.
            return
        if self._closed:
            # The registry closed while this request opened its writer: no
            # timer may outlive it.
            Deferred.fromCoroutine(self._forget(upload_id))
            return

        def close_if_idle() -> None:
            if self._active.get(upload_id) is active and not active.busy:
                Deferred.fromCoroutine(self._forget(upload_id))

        active.idle_timer = self.clock.callLater(WRITER_IDLE_SECONDS, close_if_idle)

    async def _append(
        self,
        active: _ActiveUpload,
        body: ByteSource,
        content_range: tuple[int, int] | None,
    ) -> None:
        """Stream ``body`` into the upload, checking ``Content-Range`` first."""
        writer = active.writer
        if content_range is not None:
            start, end = content_range
            if start != writer.offset or end < start:
                raise RangeNotSatisfiable(
                    f"chunk {start}-{end} does not continue the upload at {writer.offset}",
                    headers=_range_header(writer.offset),
                )
            if body.length is not None and body.length != end - start + 1:
                raise RangeNotSatisfiable(
                    "Content-Range does not match Content-Length",
                    headers=_range_header(writer.offset),
                )
        try:
            await body.deliver(writer)
        finally:
            # Whatever arrived is on disk once flushed; record it so a resumed
            # upload (even after a restart) continues from there.
            try:
                offset = await writer.flush()
            except Exception:
                await self._forget(active.record.upload_id)
                raise
            recorded = await self._transact(
                lambda tx: tx.set_upload_offset(active.record.upload_id, offset)
            )
            if not recorded:
                # Purged meanwhile (GC found it abandoned): its file is gone too.
                await self._forget(active.record.upload_id)
                raise BlobUploadUnknown("upload session expired")
            active.record = attrs.evolve(active.record, offset=offset)

    async def append_upload(
        self,
        repository: str,
        upload_id: str,
        body: ByteSource,
        content_range: tuple[int, int] | None,
    ) -> UploadStatus:
        """Append a chunk (``PATCH``)."""
        self._require_writable()
        active = await self._acquire(repository, upload_id)
        try:
            await self._append(active, body, content_range)
        finally:
            self._release(active)
        return UploadStatus(repository, upload_id, active.writer.offset)

    async def finish_upload(
        self,
        repository: str,
        upload_id: str,
        digest: Digest,
        body: ByteSource | None,
        content_range: tuple[int, int] | None,
    ) -> BlobInfo:
        """Append an optional last chunk and commit (``PUT ?digest=``)."""
        self._require_writable()
        active = await self._acquire(repository, upload_id)
        try:
            if body is not None:
                await self._append(active, body, content_range)
            size = await active.writer.commit(digest)
        except BaseException:
            self._release(active)
            raise
        self._active.pop(upload_id, None)
        writer = active.writer

        def link(tx: IMetadataTransaction) -> bool:
            # Garbage collection removes a blob's file only inside a metadata
            # transaction that finds it unreferenced.  Transactions run one at
            # a time, so if the file is here now, the link made below keeps it.
            if not self.blobs.holds(digest):
                return False
            tx.add_blob(str(digest), size)
            tx.link_blob(repository, str(digest))
            tx.delete_upload(upload_id)
            return True

        for _ in range(PLACE_ATTEMPTS):
            if await self._transact(link):
                break
            log.info("blob {digest} was garbage collected while it was committed; placing it again",
                     digest=str(digest))
            await writer.recommit()
        else:
            raise RegistryError(
                f"blob {digest} could not be stored; retry the upload", status=503, detail=None
            )
        await writer.finish()
        # Freshly verified bytes: a blob found corrupt earlier is whole again.
        self._corrupt.discard(str(digest))
        return BlobInfo(digest, size)

    async def monolithic_upload(self, repository: str, digest: Digest, body: ByteSource) -> BlobInfo:
        """A whole blob in one ``POST ?digest=``."""
        status = await self.start_upload(repository, digest.algorithm)
        try:
            return await self.finish_upload(repository, status.upload_id, digest, body, None)
        except BaseException:
            await self._discard(status.upload_id)
            raise

    async def cancel_upload(self, repository: str, upload_id: str) -> None:
        """Abandon an upload (``DELETE`` on the upload)."""
        self._require_writable()
        await self._upload_record(repository, upload_id)
        await self._discard(upload_id)

    async def _forget(self, upload_id: str) -> None:
        active = self._active.pop(upload_id, None)
        if active is not None:
            if active.idle_timer is not None and active.idle_timer.active():
                active.idle_timer.cancel()
            await active.writer.close()

    async def _discard(self, upload_id: str) -> None:
        await self._forget(upload_id)
        # The file first: on a full disk, that frees the space the metadata
        # write needs.  (A crash in between leaves a session without a file,
        # which GC purges.)
        await self.blobs.delete_upload(upload_id)
        await self._transact(lambda tx: tx.delete_upload(upload_id))

    def uploads_in_use(self) -> frozenset[str]:
        """Uploads with a writer open in this process (garbage collection leaves them alone)."""
        return frozenset(self._active) | frozenset(self._opening)

    async def close(self) -> None:
        """Release every open upload writer (their sessions stay resumable)."""
        self._closed = True
        for upload_id in list(self._active):
            await self._forget(upload_id)

    # Manifests

    async def get_manifest(self, repository: str, reference: Reference) -> ManifestRecord:
        """A manifest by tag or digest (``GET``/``HEAD``)."""
        validate_name(repository)

        def lookup(tx: IMetadataTransaction) -> ManifestRecord | None:
            if reference.digest is not None:
                return tx.get_manifest(repository, str(reference.digest))
            assert reference.tag is not None
            digest = tx.resolve_tag(repository, reference.tag)
            return None if digest is None else tx.get_manifest(repository, digest)

        record: ManifestRecord | None = await self._lookups.get(
            ("manifest", repository, str(reference)),
            lambda: self._read(lookup),
            lambda found: 0 if found is None else len(found.content),
        )
        if record is None:
            raise ManifestUnknown(f"manifest {reference} is not in repository {repository}")
        return record

    async def put_manifest(
        self,
        repository: str,
        reference: Reference,
        content_type: str | None,
        body: bytes,
        extra_tags: list[str] = [],
        allow_tag_move: bool = True,
    ) -> PutManifestResult:
        """
        Store a manifest by tag or digest, with optional extra tags.  Without
        ``allow_tag_move`` (the caller may create but not update), a tag that
        already names a different manifest is refused with 403 DENIED and
        nothing is stored.
        """
        self._require_writable()
        validate_name(repository)
        if len(body) > self.config.max_manifest_size:
            raise PayloadTooLarge(
                f"manifest is larger than {self.config.max_manifest_size} bytes"
            )
        if len(extra_tags) > MAX_TAGS_PER_PUSH:
            raise RegistryError(
                f"at most {MAX_TAGS_PER_PUSH} tags per push", status=414, detail=None
            )
        tags = [validate_tag(tag) for tag in extra_tags]
        algorithm = reference.digest.algorithm if reference.digest else DEFAULT_ALGORITHM
        parsed = parse_manifest(body, content_type, algorithm)
        if reference.digest is not None:
            if parsed.digest != reference.digest:
                raise DigestInvalid(
                    f"manifest digest {parsed.digest} does not match reference {reference.digest}"
                )
        else:
            assert reference.tag is not None
            tags.insert(0, reference.tag)
        tags = list(dict.fromkeys(tags))
        record = ManifestRecord(
            digest=str(parsed.digest),
            media_type=parsed.media_type,
            content=body,
            subject=str(parsed.subject) if parsed.subject else None,
            artifact_type=parsed.artifact_type,
            annotations_json=json.dumps(parsed.annotations) if parsed.annotations else None,
        )

        def store(tx: IMetadataTransaction) -> None:
            missing = [
                str(d) for d in parsed.required_blobs if tx.linked_blob_size(repository, str(d)) is None
            ] + [
                str(d) for d in parsed.required_manifests if not tx.manifest_exists(repository, str(d))
            ]
            if missing:
                raise ManifestBlobUnknown(
                    f"manifest references content not in repository {repository}",
                    detail={"missing": missing},
                )
            if not allow_tag_move:
                for tag in tags:
                    current = tx.resolve_tag(repository, tag)
                    if current is not None and current != record.digest:
                        raise Denied(
                            "requested access to the resource is denied: update on repository "
                            f"{repository} (tag {tag} already names another manifest)",
                            detail={"action": "update", "repository": repository, "tag": tag},
                        )
            tx.put_manifest(repository, record, [str(d) for d in parsed.references])
            for tag in tags:
                tx.set_tag(repository, tag, record.digest)

        await self._transact(store)
        return PutManifestResult(parsed.digest, parsed.subject, tuple(tags))

    async def delete_manifest(self, repository: str, reference: Reference) -> None:
        """Delete a tag, or a manifest (with its tags) by digest."""
        self._require_deletes()
        validate_name(repository)

        def delete(tx: IMetadataTransaction) -> bool:
            if not tx.repository_exists(repository):
                raise NameUnknown(f"repository {repository} is not known")
            if reference.tag is not None:
                return bool(tx.delete_tag(repository, reference.tag))
            return bool(tx.delete_manifest(repository, str(reference.digest)))

        if not await self._transact(delete):
            raise ManifestUnknown(f"manifest {reference} is not in repository {repository}")

    # Discovery

    async def list_tags(self, repository: str, limit: int, last: str | None) -> Page:
        """A page of a repository's tags, in byte order."""
        validate_name(repository)

        def page(tx: IMetadataTransaction) -> list[str] | None:
            if not tx.repository_exists(repository):
                return None
            return list(tx.list_tags(repository, last, limit + 1))

        tags = await self._lookups.get(
            ("tags", repository, limit, last), lambda: self._read(page), _listed_size
        )
        if tags is None:
            raise NameUnknown(f"repository {repository} is not known")
        return Page(tags[:limit], len(tags) > limit)

    async def catalog(
        self, limit: int, last: str | None, visible: Callable[[str], bool] | None = None
    ) -> Page:
        """
        A page of repository names, in byte order; with ``visible`` (called on
        the metadata thread) only the names it accepts, still ``limit`` a page.
        """
        if visible is None:
            names = await self._read(lambda tx: list(tx.list_repositories(last, limit + 1)))
            return Page(names[:limit], len(names) > limit)

        def page(tx: IMetadataTransaction) -> list[str]:
            shown: list[str] = []
            cursor = last
            while len(shown) <= limit:
                batch = list(tx.list_repositories(cursor, CATALOG_SCAN_BATCH))
                shown.extend(name for name in batch if visible(name))
                if len(batch) < CATALOG_SCAN_BATCH:
                    break
                cursor = batch[-1]
            return shown

        names = await self._read(page)
        return Page(names[:limit], len(names) > limit)

    async def referrers(
        self, repository: str, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``subject``."""
        validate_name(repository)
        records = await self._read(lambda tx: tx.referrers(repository, str(subject)))
        descriptors = []
        for record in records:
            if artifact_type is not None and record.artifact_type != artifact_type:
                continue
            annotations = json.loads(record.annotations_json) if record.annotations_json else None
            descriptors.append(
                Descriptor(
                    media_type=record.media_type,
                    digest=Digest.parse(record.digest),
                    size=record.size,
                    artifact_type=record.artifact_type,
                    annotations=annotations,
                ).as_json()
            )
        return descriptors


def _range_header(offset: int) -> dict[str, str]:
    """The ``Range`` header of an upload holding ``offset`` bytes."""
    return {"Range": f"0-{max(offset - 1, 0)}"}


def upload_range(offset: int) -> str:
    """The value of an upload's ``Range`` header."""
    return _range_header(offset)["Range"]


__all__ = [
    "BlobInfo",
    "BlobUploadInvalid",
    "ByteSource",
    "Page",
    "PutManifestResult",
    "Registry",
    "RegistryConfig",
    "UploadStatus",
]
