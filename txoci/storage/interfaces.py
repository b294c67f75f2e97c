"""
The storage contracts.

Two stores sit behind these interfaces: a blob store for content-addressed
bytes (files today, object storage later) and a metadata store for everything
else (SQLite today, PostgreSQL later).  The registry operations speak only to
these interfaces, so a new backend is a new module beside the existing ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from zope.interface import Attribute, Interface

from txoci.registry.digest import Digest

T = TypeVar("T")


class TransferStopped(Exception):
    """The consumer of a blob stopped the transfer (the client went away)."""


class UploadInUse(Exception):
    """Another request (maybe in another process) is writing to this upload."""


class CorruptBlob(Exception):
    """
    A blob's bytes do not match its digest (or its file has the wrong size).
    Raised by :meth:`IBlobReader.produce` *before* the last chunk is written,
    so a consumer never receives the whole (bad) content.
    """

    def __init__(self, digest: Digest, reason: str) -> None:
        super().__init__(f"blob {digest} is corrupt: {reason}")
        self.digest = digest
        self.reason = reason


class IUploadWriter(IConsumer):
    """
    Consumes the bytes of one upload, hashing them as they are written.

    ``write`` is called on the reactor thread; the writer queues the bytes,
    hashes and writes them off the reactor thread, and pauses a registered
    producer while too much is queued.
    """

    offset = Attribute("Bytes accepted so far (queued or written).")
    algorithm = Attribute("The digest algorithm the writer hashes with.")

    def flush() -> Deferred[int]:
        """Wait until every accepted byte is written and synced; fire with the offset."""

    def resume(recorded_offset: int) -> Deferred[bool]:
        """
        Take the upload again for a new request, after :meth:`suspend`: lock it
        (or fail with :class:`UploadInUse`), and check that nobody else moved
        it on meanwhile.  Fires False when the metadata's ``recorded_offset``
        is not this writer's offset: the writer is stale, close it and open the
        upload anew.  A writer fresh from ``open_upload`` is already locked.
        """

    def suspend() -> None:
        """Unlock the upload between requests; the writer stays open."""

    def commit(expected: Digest) -> Deferred[int]:
        """
        Flush, verify the content against ``expected`` and place it in the
        blob store atomically and durably (unless the same content is there
        already).  Fire with the size, or fail with ``DIGEST_INVALID``
        leaving the upload as it was.  The upload's own file stays until
        :meth:`finish`, so the bytes can be placed again with
        :meth:`recommit` if garbage collection removed the blob meanwhile.
        """

    def recommit() -> Deferred[None]:
        """Place the committed content in the blob store again, if it is missing there."""

    def finish() -> Deferred[None]:
        """The metadata records the blob now: drop the upload's own file."""

    def close() -> Deferred[None]:
        """Release the writer's file without committing."""


class IBlobReader(Interface):
    """An open blob, ready to be produced to a consumer."""

    size = Attribute("The blob's size in bytes.")

    def produce(consumer: IConsumer, start: int, length: int) -> Deferred[None]:
        """
        Write ``length`` bytes from ``start`` to ``consumer`` with back-pressure.
        Fires when done; the reader is closed afterwards.

        When the range is the whole blob, the bytes are hashed as they pass and
        the digest is checked before the last chunk is written: on a mismatch
        the last chunk is withheld and the Deferred fails with
        :class:`CorruptBlob`.
        """

    def quarantine() -> Deferred[str | None]:
        """
        Move this blob's file aside (never delete it) if it is still the file
        this reader has open; fire with where it went, or None.
        """

    def close() -> None:
        """Release the blob without producing it."""


class IBlobStore(Interface):
    """Content-addressed bytes and the upload files that become them."""

    def create_upload(upload_id: str) -> Deferred[None]:
        """Create the empty file of a new upload."""

    def open_upload(upload_id: str, offset: int, algorithm: str) -> Deferred[IUploadWriter]:
        """
        Open an upload for appending at ``offset`` (bytes past it are dropped),
        restoring the running hash of the bytes before it.
        """

    def delete_upload(upload_id: str) -> Deferred[None]:
        """Remove an upload's file, if it exists."""

    def upload_ids() -> Deferred[list[str]]:
        """Every upload file present."""

    def stat(digest: Digest) -> Deferred[int | None]:
        """The size of a committed blob, or None."""

    def open(digest: Digest) -> Deferred[IBlobReader]:
        """Open a committed blob for reading; fail with ``BLOB_UNKNOWN``."""

    def delete(digest: Digest) -> Deferred[None]:
        """Remove a committed blob's bytes."""

    def holds(digest: Digest) -> bool:
        """
        Whether a committed blob's bytes are present.  Blocking and callable
        from any thread: it is the re-check, inside the metadata transaction
        that records a blob, that garbage collection has not removed them.
        """


@attrs.frozen
class ManifestRecord:
    """A stored manifest."""

    digest: str
    media_type: str
    content: bytes
    subject: str | None = None
    artifact_type: str | None = None
    annotations_json: str | None = None

    @property
    def size(self) -> int:
        return len(self.content)


@attrs.frozen
class UploadRecord:
    """A blob upload session."""

    upload_id: str
    repository: str
    algorithm: str
    offset: int
    started_at: float


@attrs.frozen
class StorageStats:
    """What the metadata records: counts, and sizes in bytes."""

    repositories: int
    blobs: int
    blob_bytes: int
    manifests: int
    manifest_bytes: int
    tags: int
    uploads: int
    upload_bytes: int


class IMetadataTransaction(Interface):
    """
    The metadata operations available inside one transaction.  Every method
    runs on the store's own thread; none of them may be called elsewhere.
    """

    def repository_exists(repository: str) -> bool:
        """Whether the repository has ever held content."""

    def blob_size(digest: str) -> int | None:
        """The size of a committed blob known to the registry, or None."""

    def add_blob(digest: str, size: int) -> None:
        """Record a committed blob."""

    def linked_blob_size(repository: str, digest: str) -> int | None:
        """The size of a blob visible in ``repository``, or None."""

    def mark_blob_corrupt(digest: str, reason: str) -> None:
        """
        Record that a committed blob's bytes failed an integrity check: it is
        then unknown to :meth:`blob_size` and :meth:`linked_blob_size` until
        :meth:`add_blob` records freshly verified bytes for it again.
        """

    def corrupt_blobs() -> dict[str, str]:
        """The blobs marked corrupt, and why."""

    def link_blob(repository: str, digest: str) -> None:
        """Make a committed blob visible in ``repository``."""

    def repositories_linking(digest: str) -> list[str]:
        """The repositories a committed (not corrupt) blob is visible in, in byte order."""

    def unlink_blob(repository: str, digest: str) -> bool:
        """Hide a blob from ``repository``; False if it was not linked."""

    def get_manifest(repository: str, digest: str) -> ManifestRecord | None:
        """A manifest of ``repository`` by digest."""

    def manifest_exists(repository: str, digest: str) -> bool:
        """Whether ``repository`` holds the manifest."""

    def put_manifest(repository: str, record: ManifestRecord, references: list[str]) -> None:
        """Store a manifest and the digests it references."""

    def delete_manifest(repository: str, digest: str) -> bool:
        """Delete a manifest, its tags and its references; False if absent."""

    def resolve_tag(repository: str, tag: str) -> str | None:
        """The digest a tag points at."""

    def set_tag(repository: str, tag: str, digest: str) -> None:
        """Point ``tag`` at ``digest``."""

    def delete_tag(repository: str, tag: str) -> bool:
        """Remove a tag; False if absent."""

    def list_tags(repository: str, last: str | None, limit: int) -> list[str]:
        """Tags in byte order, after ``last``, at most ``limit``."""

    def list_repositories(last: str | None, limit: int) -> list[str]:
        """Repositories in byte order, after ``last``, at most ``limit``."""

    def referrers(repository: str, subject: str) -> list[ManifestRecord]:
        """Manifests of ``repository`` whose subject is ``subject``."""

    def create_upload(record: UploadRecord) -> None:
        """Record a new upload session."""

    def get_upload(upload_id: str) -> UploadRecord | None:
        """An upload session."""

    def set_upload_offset(upload_id: str, offset: int) -> bool:
        """
        Record how many bytes an upload holds durably (and that it was just
        used); False if the session is gone (cancelled, or purged by GC).
        """

    def delete_upload(upload_id: str) -> None:
        """Forget an upload session."""

    def storage_stats() -> StorageStats:
        """Counts and sizes of what the registry holds (aggregate queries, for metrics)."""


class IMetadataStore(Interface):
    """Runs transactions over the registry's metadata."""

    generation = Attribute(
        """
        An integer, read on the reactor thread, that changes when a write
        transaction on this store's data (by any process) has begun and again
        once it committed or failed, before its caller sees the result.
        Caches of lookups compare it to know that nothing was written since
        they read.
        """
    )


    def transact(work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """
        Run ``work(transaction, *args)`` in one transaction on the store's
        thread; commit if it returns, roll back if it raises.
        """

    def read(work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """
        Run ``work(transaction, *args)`` in one read-only transaction, which
        sees everything committed before it began; ``work`` must not write.
        """

    def close() -> Deferred[None]:
        """Close the store."""
