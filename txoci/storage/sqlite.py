"""
The SQLite metadata store.

One database file in WAL mode with ``synchronous=FULL``, so a transaction
that returned is on disk.  A single dedicated thread owns the connection and
runs every transaction in turn: SQLite serialises writers anyway, and one
thread keeps all blocking database work off the reactor thread.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS`
holds one script per version, applied in order at start-up.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import sqlite3
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from txoci.registry.errors import StorageFull
from txoci.storage.interfaces import (
    IMetadataStore,
    IMetadataTransaction,
    ManifestRecord,
    StorageStats,
    UploadRecord,
)

MIGRATIONS: list[str] = [
    # Version 1: the registry core.
    """
    CREATE TABLE repositories (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
    ) WITHOUT ROWID;
    CREATE TABLE repository_blobs (
        repository_id INTEGER NOT NULL REFERENCES repositories(id),
        digest TEXT NOT NULL REFERENCES blobs(digest),
        linked_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
        PRIMARY KEY (repository_id, digest)
    ) WITHOUT ROWID;
    CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);
    CREATE TABLE manifests (
        repository_id INTEGER NOT NULL REFERENCES repositories(id),
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        content BLOB NOT NULL,
        subject TEXT,
        artifact_type TEXT,
        annotations TEXT,
        created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
        PRIMARY KEY (repository_id, digest)
    ) WITHOUT ROWID;
    CREATE INDEX manifests_by_subject ON manifests(repository_id, subject)
        WHERE subject IS NOT NULL;
    CREATE TABLE manifest_references (
        repository_id INTEGER NOT NULL,
        manifest_digest TEXT NOT NULL,
        referenced_digest TEXT NOT NULL,
        PRIMARY KEY (repository_id, manifest_digest, referenced_digest),
        FOREIGN KEY (repository_id, manifest_digest)
            REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX manifest_references_by_target
        ON manifest_references(referenced_digest);
    CREATE TABLE tags (
        repository_id INTEGER NOT NULL REFERENCES repositories(id),
        name TEXT NOT NULL,
        manifest_digest TEXT NOT NULL,
        updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
        PRIMARY KEY (repository_id, name),
        FOREIGN KEY (repository_id, manifest_digest)
            REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        offset INTEGER NOT NULL,
        started_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # Version 2: blobs whose bytes failed an integrity check (never served).
    """
    CREATE TABLE corrupt_blobs (
        digest TEXT PRIMARY KEY REFERENCES blobs(digest),
        detected_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
        reason TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # Version 3: garbage collection.  The triggers note *when* something may
    # have become garbage (a link or reference removed, a tag moved away, a
    # subject deleted), so that GC's grace period and manifest retention count
    # from that moment; GC re-checks every candidate before deleting it.
    """
    CREATE TABLE gc_blob_review (
        digest TEXT PRIMARY KEY,
        queued_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
    ) WITHOUT ROWID;
    CREATE TABLE gc_manifest_review (
        repository_id INTEGER NOT NULL,
        digest TEXT NOT NULL,
        queued_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
        PRIMARY KEY (repository_id, digest)
    ) WITHOUT ROWID;
    CREATE TABLE gc_link_review (
        repository_id INTEGER NOT NULL,
        digest TEXT NOT NULL,
        queued_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
        PRIMARY KEY (repository_id, digest)
    ) WITHOUT ROWID;
    ALTER TABLE uploads ADD COLUMN updated_at REAL NOT NULL DEFAULT 0;
    UPDATE uploads SET updated_at = started_at;
    CREATE TRIGGER gc_review_unlinked_blob AFTER DELETE ON repository_blobs BEGIN
        INSERT INTO gc_blob_review (digest) VALUES (old.digest)
        ON CONFLICT (digest) DO UPDATE SET queued_at = excluded.queued_at;
    END;
    CREATE TRIGGER gc_review_unreferenced AFTER DELETE ON manifest_references BEGIN
        INSERT INTO gc_blob_review (digest) VALUES (old.referenced_digest)
        ON CONFLICT (digest) DO UPDATE SET queued_at = excluded.queued_at;
        INSERT INTO gc_manifest_review (repository_id, digest)
        VALUES (old.repository_id, old.referenced_digest)
        ON CONFLICT (repository_id, digest) DO UPDATE SET queued_at = excluded.queued_at;
        INSERT INTO gc_link_review (repository_id, digest)
        VALUES (old.repository_id, old.referenced_digest)
        ON CONFLICT (repository_id, digest) DO UPDATE SET queued_at = excluded.queued_at;
    END;
    CREATE TRIGGER gc_review_link_gone AFTER DELETE ON repository_blobs BEGIN
        DELETE FROM gc_link_review
        WHERE repository_id = old.repository_id AND digest = old.digest;
    END;
    CREATE TRIGGER gc_review_untagged AFTER DELETE ON tags BEGIN
        INSERT INTO gc_manifest_review (repository_id, digest)
        VALUES (old.repository_id, old.manifest_digest)
        ON CONFLICT (repository_id, digest) DO UPDATE SET queued_at = excluded.queued_at;
    END;
    CREATE TRIGGER gc_review_retagged AFTER UPDATE OF manifest_digest ON tags BEGIN
        INSERT INTO gc_manifest_review (repository_id, digest)
        VALUES (old.repository_id, old.manifest_digest)
        ON CONFLICT (repository_id, digest) DO UPDATE SET queued_at = excluded.queued_at;
    END;
    CREATE TRIGGER gc_review_orphaned_referrers AFTER DELETE ON manifests BEGIN
        INSERT INTO gc_manifest_review (repository_id, digest)
        SELECT repository_id, digest FROM manifests
        WHERE repository_id = old.repository_id AND subject = old.digest
        ON CONFLICT (repository_id, digest) DO UPDATE SET queued_at = excluded.queued_at;
        DELETE FROM gc_manifest_review
        WHERE repository_id = old.repository_id AND digest = old.digest;
    END;
    """,
]


#: The one definition of a blob nothing holds (``b`` is the ``blobs`` row): no
#: repository links it and no manifest references it.  ``txoci du`` counts
#: these, and garbage collection reclaims them once the grace period passed.
UNREFERENCED_BLOB = (
    "NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest) AND "
    "NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.referenced_digest = b.digest)"
)


def _statements(script: str) -> list[str]:
    """The SQL statements of a migration script (a trigger body holds semicolons)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n\t;"):
        statements.append(pending.strip().rstrip(";"))  # the last one may omit its semicolon
    return statements


def _migrate(connection: sqlite3.Connection) -> None:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"metadata schema version {version} is newer than this txoci "
            f"understands ({len(MIGRATIONS)}); upgrade txoci"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


def connect(path: str) -> sqlite3.Connection:
    """Open (and migrate) the database at ``path``."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 10000")
    try:
        _migrate(connection)
    except BaseException:
        connection.close()
        raise
    return connection


class WriteGeneration:
    """
    A counter beside the database, shared by every process that writes it
    (the workers of ``twistd oci --workers``, ``txoci gc``), and the lock
    that takes writers in turn.  Each write transaction runs holding
    :meth:`locked`, and bumps the counter once it began and once more after
    it committed.  Readers compare the counter to know that nothing was
    written since they read (see :mod:`txoci.registry.cache`).

    The lock (``flock`` on this file, and a thread lock) queues writers of
    every process: one wakes as soon as the one before it is done, where
    SQLite's own busy handler would poll with sleeps of up to 100 ms.  The
    file is mapped into memory, so reading the counter (on the reactor
    thread) is a memory read, not a system call.  It is not made durable:
    after a restart every cache starts empty anyway.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(self._fd).st_size < _COUNTER.size:
                os.ftruncate(self._fd, _COUNTER.size)
            self._map = mmap.mmap(self._fd, _COUNTER.size)
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def value(self) -> int:
        # A torn read (another process mid-write) only yields a value that
        # differs from both: readers then just don't trust their cache.
        (value,) = _COUNTER.unpack_from(self._map)
        return int(value)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writers' lock (blocking: run it where blocking is allowed)."""
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def bump(self) -> None:
        """Increment the counter; only while holding :meth:`locked`."""
        _COUNTER.pack_into(self._map, 0, (self.value + 1) % 2**64)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


_COUNTER = struct.Struct("<Q")


def generation_path(database_path: str) -> str:
    """Where the :class:`WriteGeneration` of the database at ``database_path`` lives."""
    return database_path + "-generation"


def run_writes(
    connection: sqlite3.Connection,
    generation: WriteGeneration,
    works: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
) -> list[Any]:
    """
    Run each ``work(SQLiteTransaction, *args)`` of ``works``, in order, in
    one write transaction (a group commit: one fsync for all of them), in
    turn with every other writer of the database, bumping ``generation`` once
    it began and again after the commit.

    Each work runs in a savepoint of its own, so one that raises is rolled
    back alone: its outcome is a :class:`Failure`, and the others' changes
    are committed.  The outcomes come back in the order of ``works`` (a work
    itself never returns a Failure).  If the transaction as a whole fails
    (its COMMIT, or SQLite undoing it all on a full disk or an I/O error),
    this raises and nothing is committed.
    """
    outcomes: list[Any] = []
    with generation.locked():
        connection.execute("BEGIN IMMEDIATE")
        try:
            generation.bump()
            for work, args in works:
                connection.execute("SAVEPOINT work")
                try:
                    outcome = work(SQLiteTransaction(connection), *args)
                except Exception:
                    outcome = Failure()
                    if not connection.in_transaction:
                        # SQLite undid the whole transaction: the works before this one too.
                        raise
                    connection.execute("ROLLBACK TO work")
                connection.execute("RELEASE work")
                outcomes.append(outcome)
            connection.execute("COMMIT")
        except BaseException:
            # Also after a failed COMMIT: never leave the transaction open.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            generation.bump()
    return outcomes


def run_write(
    connection: sqlite3.Connection,
    generation: WriteGeneration,
    work: Callable[..., Any],
    *args: Any,
) -> Any:
    """
    Run ``work(SQLiteTransaction, *args)`` in one write transaction (see
    :func:`run_writes`): its changes are committed when it returns and
    rolled back when it raises.
    """
    (outcome,) = run_writes(connection, generation, [(work, args)])
    if isinstance(outcome, Failure):
        outcome.raiseException()
    return outcome


@implementer(IMetadataTransaction)
class SQLiteTransaction:
    """The metadata operations, over one open SQLite transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._repository_ids: dict[str, int] = {}

    def _repository_id(self, repository: str) -> int | None:
        cached = self._repository_ids.get(repository)
        if cached is not None:
            return cached
        row = self._db.execute("SELECT id FROM repositories WHERE name = ?", (repository,)).fetchone()
        if row is None:
            return None
        self._repository_ids[repository] = row[0]
        return int(row[0])

    def _ensure_repository(self, repository: str) -> int:
        existing = self._repository_id(repository)
        if existing is not None:
            return existing
        cursor = self._db.execute("INSERT INTO repositories (name) VALUES (?)", (repository,))
        assert cursor.lastrowid is not None
        self._repository_ids[repository] = cursor.lastrowid
        return cursor.lastrowid

    def repository_exists(self, repository: str) -> bool:
        return self._repository_id(repository) is not None

    def blob_size(self, digest: str) -> int | None:
        row = self._db.execute(
            "SELECT size FROM blobs WHERE digest = ? "
            "AND NOT EXISTS (SELECT 1 FROM corrupt_blobs c WHERE c.digest = blobs.digest)",
            (digest,),
        ).fetchone()
        return None if row is None else int(row[0])

    def add_blob(self, digest: str, size: int) -> None:
        self._db.execute(
            "INSERT INTO blobs (digest, size) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (digest, size),
        )
        # Freshly verified bytes were just committed: the blob is whole again.
        self._db.execute("DELETE FROM corrupt_blobs WHERE digest = ?", (digest,))

    def linked_blob_size(self, repository: str, digest: str) -> int | None:
        row = self._db.execute(
            "SELECT b.size FROM repository_blobs rb "
            "JOIN repositories r ON r.id = rb.repository_id "
            "JOIN blobs b ON b.digest = rb.digest "
            "WHERE r.name = ? AND rb.digest = ? "
            "AND NOT EXISTS (SELECT 1 FROM corrupt_blobs c WHERE c.digest = b.digest)",
            (repository, digest),
        ).fetchone()
        return None if row is None else int(row[0])

    def mark_blob_corrupt(self, digest: str, reason: str) -> None:
        self._db.execute(
            "INSERT INTO corrupt_blobs (digest, reason) SELECT digest, ? FROM blobs WHERE digest = ? "
            "ON CONFLICT (digest) DO UPDATE SET reason = excluded.reason",
            (reason, digest),
        )

    def corrupt_blobs(self) -> dict[str, str]:
        rows = self._db.execute("SELECT digest, reason FROM corrupt_blobs ORDER BY digest").fetchall()
        return {str(digest): str(reason) for digest, reason in rows}

    def link_blob(self, repository: str, digest: str) -> None:
        repository_id = self._ensure_repository(repository)
        self._db.execute(
            # Linking again (a new upload or mount) restarts the link's GC clock.
            "INSERT INTO repository_blobs (repository_id, digest) VALUES (?, ?) "
            "ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at",
            (repository_id, digest),
        )

    def repositories_linking(self, digest: str) -> list[str]:
        rows = self._db.execute(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id "
            "WHERE rb.digest = ? AND NOT EXISTS (SELECT 1 FROM corrupt_blobs c WHERE c.digest = rb.digest) "
            "ORDER BY r.name",
            (digest,),
        ).fetchall()
        return [row[0] for row in rows]

    def unlink_blob(self, repository: str, digest: str) -> bool:
        repository_id = self._repository_id(repository)
        if repository_id is None:
            return False
        cursor = self._db.execute(
            "DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?",
            (repository_id, digest),
        )
        return cursor.rowcount > 0

    def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        row = self._db.execute(
            "SELECT m.digest, m.media_type, m.content, m.subject, m.artifact_type, m.annotations "
            "FROM manifests m JOIN repositories r ON r.id = m.repository_id "
            "WHERE r.name = ? AND m.digest = ?",
            (repository, digest),
        ).fetchone()
        return None if row is None else ManifestRecord(*row)

    def manifest_exists(self, repository: str, digest: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repository_id "
            "WHERE r.name = ? AND m.digest = ?",
            (repository, digest),
        ).fetchone()
        return row is not None

    def put_manifest(self, repository: str, record: ManifestRecord, references: list[str]) -> None:
        repository_id = self._ensure_repository(repository)
        self._db.execute(
            "INSERT INTO manifests "
            "(repository_id, digest, media_type, content, subject, artifact_type, annotations) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                repository_id,
                record.digest,
                record.media_type,
                record.content,
                record.subject,
                record.artifact_type,
                record.annotations_json,
            ),
        )
        self._db.executemany(
            "INSERT INTO manifest_references "
            "(repository_id, manifest_digest, referenced_digest) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(repository_id, record.digest, ref) for ref in references],
        )
        # Pushed (again) just now: an untagged manifest's retention counts from here.
        self._db.execute(
            "INSERT INTO gc_manifest_review (repository_id, digest) VALUES (?, ?) "
            "ON CONFLICT (repository_id, digest) DO UPDATE SET queued_at = excluded.queued_at",
            (repository_id, record.digest),
        )

    def delete_manifest(self, repository: str, digest: str) -> bool:
        repository_id = self._repository_id(repository)
        if repository_id is None:
            return False
        cursor = self._db.execute(
            "DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
            (repository_id, digest),
        )
        return cursor.rowcount > 0

    def resolve_tag(self, repository: str, tag: str) -> str | None:
        row = self._db.execute(
            "SELECT t.manifest_digest FROM tags t JOIN repositories r ON r.id = t.repository_id "
            "WHERE r.name = ? AND t.name = ?",
            (repository, tag),
        ).fetchone()
        return None if row is None else str(row[0])

    def set_tag(self, repository: str, tag: str, digest: str) -> None:
        repository_id = self._ensure_repository(repository)
        self._db.execute(
            "INSERT INTO tags (repository_id, name, manifest_digest) VALUES (?, ?, ?) "
            "ON CONFLICT (repository_id, name) DO UPDATE SET "
            "manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
            (repository_id, tag, digest),
        )

    def delete_tag(self, repository: str, tag: str) -> bool:
        repository_id = self._repository_id(repository)
        if repository_id is None:
            return False
        cursor = self._db.execute(
            "DELETE FROM tags WHERE repository_id = ? AND name = ?", (repository_id, tag)
        )
        return cursor.rowcount > 0

    def list_tags(self, repository: str, last: str | None, limit: int) -> list[str]:
        repository_id = self._repository_id(repository)
        if repository_id is None:
            return []
        rows = self._db.execute(
            "SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?",
            (repository_id, last or "", limit),
        ).fetchall()
        return [row[0] for row in rows]

    def list_repositories(self, last: str | None, limit: int) -> list[str]:
        rows = self._db.execute(
            "SELECT name FROM repositories r WHERE name > ? AND ("
            " EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) OR"
            " EXISTS (SELECT 1 FROM repository_blobs b WHERE b.repository_id = r.id)"
            ") ORDER BY name LIMIT ?",
            (last or "", limit),
        ).fetchall()
        return [row[0] for row in rows]

    def referrers(self, repository: str, subject: str) -> list[ManifestRecord]:
        repository_id = self._repository_id(repository)
        if repository_id is None:
            return []
        rows = self._db.execute(
            "SELECT digest, media_type, content, subject, artifact_type, annotations "
            "FROM manifests WHERE repository_id = ? AND subject = ? ORDER BY digest",
            (repository_id, subject),
        ).fetchall()
        return [ManifestRecord(*row) for row in rows]

    def create_upload(self, record: UploadRecord) -> None:
        self._db.execute(
            "INSERT INTO uploads (id, repository, algorithm, offset, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (record.upload_id, record.repository, record.algorithm, record.offset, record.started_at,
             record.started_at),
        )

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = self._db.execute(
            "SELECT id, repository, algorithm, offset, started_at FROM uploads WHERE id = ?",
            (upload_id,),
        ).fetchone()
        return None if row is None else UploadRecord(*row)

    def set_upload_offset(self, upload_id: str, offset: int) -> bool:
        cursor = self._db.execute(
            "UPDATE uploads SET offset = ?, "
            "updated_at = (julianday('now') - 2440587.5) * 86400.0 WHERE id = ?",
            (offset, upload_id),
        )
        return cursor.rowcount > 0

    def delete_upload(self, upload_id: str) -> None:
        self._db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def storage_stats(self) -> StorageStats:
        def one(sql: str) -> tuple[int, ...]:
            return tuple(int(value or 0) for value in self._db.execute(sql).fetchone())

        (repositories,) = one("SELECT COUNT(*) FROM repositories")
        blobs, blob_bytes = one("SELECT COUNT(*), SUM(size) FROM blobs")
        manifests, manifest_bytes = one("SELECT COUNT(*), SUM(LENGTH(content)) FROM manifests")
        (tags,) = one("SELECT COUNT(*) FROM tags")
        uploads, upload_bytes = one("SELECT COUNT(*), SUM(offset) FROM uploads")
        return StorageStats(
            repositories, blobs, blob_bytes, manifests, manifest_bytes, tags, uploads, upload_bytes
        )


#: SQLite's result code for a full disk (``database or disk is full``).
_SQLITE_FULL = 13


def _storage_failure(outcome: Any) -> Any:
    """A failure of SQLite for lack of space as :class:`StorageFull`; anything else as it is."""
    if isinstance(outcome, Failure) and isinstance(outcome.value, sqlite3.OperationalError):
        if getattr(outcome.value, "sqlite_errorcode", None) == _SQLITE_FULL:
            full = StorageFull("the registry has no space left for its metadata")
            full.__cause__ = outcome.value
            return Failure(full)
    return outcome


def _settle(settled: list[tuple[Deferred[Any], Any]]) -> None:
    """On the reactor thread: fire each write's Deferred with its outcome."""
    for result, outcome in settled:
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)


#: Threads (each with its own connection) for read-only transactions.
READ_THREADS = 2

#: Writes that share one transaction at most (see :meth:`SQLiteMetadataStore.transact`).
GROUP_COMMIT_LIMIT = 64


@implementer(IMetadataStore)
class SQLiteMetadataStore:
    """
    Metadata in one SQLite database.  Writes run in turn on one thread with
    one connection; reads run on a small pool of their own connections, so
    a lookup never waits behind a write's fsync (WAL gives each read
    transaction a consistent snapshot of what was committed before it began).

    Writes that queue while the writer thread is busy are committed together
    (a group commit): under concurrent pushes one fsync serves many writes,
    and still none is answered before the commit that made it durable.
    """

    def __init__(self, path: str, reactor: IReactorFromThreads) -> None:
        self.path = path
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="txoci-sqlite")
        self._read_pool = ThreadPool(minthreads=0, maxthreads=READ_THREADS, name="txoci-sqlite-read")
        self._read_local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._read_connections_lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._generation: WriteGeneration | None = None
        #: Writes not yet taken by the writer thread: (work, args, result).
        self._queued: deque[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = deque()

    def start(self) -> Deferred[None]:
        """Start the store's thread and open (and migrate) the database."""
        self._pool.start()

        def open_database() -> None:
            self._connection = connect(self.path)
            self._generation = WriteGeneration(generation_path(self.path))

        return deferToThreadPool(self._reactor, self._pool, open_database)

    def _write_queued(self) -> None:
        """On the writer thread: commit the writes queued so far, together."""
        batch: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []
        while len(batch) < GROUP_COMMIT_LIMIT:
            try:
                batch.append(self._queued.popleft())
            except IndexError:
                break
        if not batch:
            return  # An earlier call took them: each transact() schedules one call.
        try:
            if self._connection is None:
                raise RuntimeError("the metadata store is closed")
            assert self._generation is not None
            outcomes = run_writes(self._connection, self._generation, [(w, a) for w, a, _ in batch])
        except Exception:
            outcomes = [Failure()] * len(batch)
        # One hop to the reactor thread for the whole group, not one per write.
        settled = [(result, _storage_failure(outcome))
                   for (_, _, result), outcome in zip(batch, outcomes, strict=True)]
        self._reactor.callFromThread(_settle, settled)

    def transact(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        result: Deferred[Any] = Deferred()
        self._queued.append((work, args, result))
        self._pool.callInThread(self._write_queued)
        return result

    @property
    def generation(self) -> int:
        """See IMetadataStore.generation: shared by every process on this database."""
        return -1 if self._generation is None else self._generation.value

    def _read_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._read_local, "connection", None)
        if connection is None:
            # The writer's connection migrated the schema before any read runs.
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA query_only = ON")
            self._read_local.connection = connection
            with self._read_connections_lock:
                self._read_connections.append(connection)
        return connection

    def _read(self, work: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._connection is None:
            raise RuntimeError("the metadata store is closed")
        connection = self._read_connection()
        connection.execute("BEGIN")
        try:
            return work(SQLiteTransaction(connection), *args)
        finally:
            # A read transaction has nothing to commit.
            connection.execute("ROLLBACK")

    def read(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        if self._connection is None:
            # Never (re)start the read threads of a store that is closed.
            return fail(RuntimeError("the metadata store is closed"))
        if not self._read_pool.started:
            self._read_pool.start()
        return deferToThreadPool(self._reactor, self._read_pool, self._read, work, args)

    def close(self) -> Deferred[None]:
        def close_database() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._generation is not None:
                self._generation.close()
                self._generation = None

        async def close() -> None:
            if not self._pool.started:
                return
            try:
                await deferToThreadPool(self._reactor, self._pool, close_database)
            finally:
                self._pool.stop()
                if self._read_pool.started:
                    self._read_pool.stop()
                with self._read_connections_lock:
                    readers, self._read_connections = self._read_connections, []
                for reader in readers:
                    reader.close()

        return Deferred.fromCoroutine(close())
