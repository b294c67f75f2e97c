"""
Offline-style checks over a data dir that are safe while the registry runs:
``txoci check`` (integrity, with optional repair) and ``txoci du`` (storage
use per repository).

Everything here is plain blocking code over the data dir's files and its
SQLite database (WAL), meant for a command-line process beside a running
``twistd oci``:

- reads run in short read transactions (a WAL snapshot, no lock that blocks
  the registry's writer); hashing the blobs happens outside any transaction;
- anything that looks wrong in a snapshot is re-checked in a fresh
  transaction before it is reported, and files younger than a grace period
  are skipped, so a push in flight (its file renamed into ``blobs/`` a
  moment before its metadata row is committed) is never reported or moved;
- repairs never delete: files are moved under ``quarantine/``, and corrupt
  or missing blobs are marked corrupt in the metadata (one short write
  transaction each), so that the registry answers ``BLOB_UNKNOWN`` for them
  and clients push them again.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs

from txoci.registry.digest import ALGORITHMS, Digest, new_hasher
from txoci.storage.filesystem import COMMITTING, QUARANTINE, READ_SIZE, quarantine_file
from txoci.storage.sqlite import (
    UNREFERENCED_BLOB,
    SQLiteTransaction,
    WriteGeneration,
    connect,
    generation_path,
    run_write,
)

T = TypeVar("T")

#: Files changed more recently than this (seconds) are not judged orphaned:
#: a commit renames the file into place just before recording it.
DEFAULT_GRACE = 60.0
#: How long to wait before re-checking an upload recorded without its file.
UPLOAD_RECHECK_DELAY = 2.0
METADATA_FILE = "metadata.sqlite3"

_BLOB_PATH = re.compile(r"^([a-z0-9]+)/([a-f0-9]{2})/([a-f0-9]+)$")


class DataDirError(Exception):
    """The data dir cannot be checked at all (missing, or not a registry)."""


@attrs.frozen
class Problem:
    """One thing wrong in a data dir."""

    #: ``corrupt``, ``missing``, ``marked-corrupt``, ``orphan-blob``,
    #: ``stray-file``, ``orphan-upload``, ``missing-upload``,
    #: ``dangling-reference``, ``corrupt-manifest`` or ``metadata``.
    kind: str
    #: A digest, a path relative to the data dir, or ``repository@digest``.
    subject: str
    detail: str
    #: What ``--repair`` did about it, if anything.
    repaired: str | None = None

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class CheckReport:
    """What ``txoci check`` found."""

    data_dir: str
    blobs: int = 0
    blob_bytes: int = 0
    manifests: int = 0
    upload_files: int = 0
    #: Suspicious files skipped because they changed within the grace period.
    skipped_recent: int = 0
    problems: list[Problem] = attrs.Factory(list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "manifests": self.manifests,
            "upload_files": self.upload_files,
            "skipped_recent": self.skipped_recent,
            "problems": [problem.as_json() for problem in self.problems],
        }


def open_metadata(data_dir: str) -> sqlite3.Connection:
    """The data dir's database (migrated like the registry does at start-up)."""
    if not os.path.isdir(data_dir):
        raise DataDirError(f"{data_dir} is not a directory")
    path = os.path.join(data_dir, METADATA_FILE)
    if not os.path.exists(path):
        raise DataDirError(f"{data_dir} holds no registry ({METADATA_FILE} is missing)")
    return connect(path)


def read(connection: sqlite3.Connection, work: Callable[[SQLiteTransaction], T]) -> T:
    """Run ``work`` in one short read transaction (a snapshot; nothing is locked)."""
    connection.execute("BEGIN")
    try:
        return work(SQLiteTransaction(connection))
    finally:
        connection.execute("ROLLBACK")


def write(connection: sqlite3.Connection, work: Callable[[SQLiteTransaction], T]) -> T:
    """
    Run ``work`` in one write transaction, committed if it returns, and tell
    a registry serving the same data dir (its write generation) that its
    cached lookups are stale.
    """
    path = str(connection.execute("PRAGMA database_list").fetchone()[2])
    generation = WriteGeneration(generation_path(path))
    try:
        result: T = run_write(connection, generation, work)
    finally:
        generation.close()
    return result


def _rows(tx: SQLiteTransaction, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return list(tx._db.execute(sql, args).fetchall())


def _blob_rows(tx: SQLiteTransaction) -> dict[str, int]:
    return {str(digest): int(size) for digest, size in _rows(tx, "SELECT digest, size FROM blobs")}


def _blob_exists(connection: sqlite3.Connection, digest: str) -> bool:
    return bool(read(connection, lambda tx: _rows(tx, "SELECT 1 FROM blobs WHERE digest = ?", digest)))


def _upload_recorded(connection: sqlite3.Connection, upload_id: str) -> bool:
    return read(connection, lambda tx: tx.get_upload(upload_id) is not None)


def _hash_file(path: str, algorithm: str) -> tuple[str, tuple[int, int]]:
    """The file's hex digest, and its (device, inode) as it was read."""
    hasher = new_hasher(algorithm)
    with open(path, "rb", buffering=0) as f:
        status = os.fstat(f.fileno())
        while chunk := f.read(READ_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest(), (status.st_dev, status.st_ino)


def _blob_path(data_dir: str, digest: Digest) -> str:
    return os.path.join(data_dir, "blobs", digest.algorithm, digest.encoded[:2], digest.encoded)


def _walk_files(top: str) -> Iterator[str]:
    for directory, _, files in os.walk(top):
        for name in files:
            yield os.path.join(directory, name)


def _recent(path: str, now: float, grace: float) -> bool:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return True
    return now - max(status.st_mtime, status.st_ctime) < grace


def _quarantine(data_dir: str, path: str, identity: tuple[int, int] | None = None) -> str | None:
    """Move ``path`` aside unless it is gone or (by inode) no longer the file judged."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    if identity is not None and (status.st_dev, status.st_ino) != identity:
        return None
    return os.path.relpath(quarantine_file(data_dir, path), data_dir)


def _mark_corrupt(connection: sqlite3.Connection, digest: str, reason: str) -> None:
    write(connection, lambda tx: tx.mark_blob_corrupt(digest, reason))


def check(
    data_dir: str,
    repair: bool = False,
    grace: float = DEFAULT_GRACE,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    """
    Re-hash every blob and check that the metadata and the files agree.
    With ``repair``, quarantine what is corrupt or orphaned (see the module).
    """
    data_dir = os.path.abspath(data_dir)
    connection = open_metadata(data_dir)
    try:
        return _check(connection, data_dir, repair, grace, progress or (lambda line: None))
    finally:
        connection.close()


def _check(
    connection: sqlite3.Connection,
    data_dir: str,
    repair: bool,
    grace: float,
    progress: Callable[[str], None],
) -> CheckReport:
    report = CheckReport(data_dir)
    problems = report.problems

    # 1. The database itself.
    for (result,) in connection.execute("PRAGMA quick_check").fetchall():
        if result != "ok":
            problems.append(Problem("metadata", METADATA_FILE, str(result)))
    for table, rowid, parent, _ in connection.execute("PRAGMA foreign_key_check").fetchall():
        problems.append(
            Problem("metadata", f"{table} row {rowid}", f"refers to a missing {parent} row")
        )

    # 2. One snapshot of what the metadata holds.
    def snapshot(tx: SQLiteTransaction) -> tuple[Any, ...]:
        blobs = _blob_rows(tx)
        marked = tx.corrupt_blobs()
        uploads = {str(row[0]) for row in _rows(tx, "SELECT id FROM uploads")}
        manifests = _rows(
            tx,
            "SELECT r.name, m.digest, m.content FROM manifests m "
            "JOIN repositories r ON r.id = m.repository_id",
        )
        dangling = _rows(
            tx,
            "SELECT r.name, mr.manifest_digest, mr.referenced_digest FROM manifest_references mr "
            "JOIN repositories r ON r.id = mr.repository_id WHERE NOT EXISTS ("
            " SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = mr.repository_id"
            " AND rb.digest = mr.referenced_digest) AND NOT EXISTS ("
            " SELECT 1 FROM manifests m WHERE m.repository_id = mr.repository_id"
            " AND m.digest = mr.referenced_digest) ORDER BY 1, 2, 3",
        )
        return blobs, marked, uploads, manifests, dangling

    blobs, marked, uploads, manifests, dangling = read(connection, snapshot)

    # 3. Manifests live in the database: their bytes must match their digests.
    report.manifests = len(manifests)
    for repository, digest_text, content in manifests:
        digest = Digest.parse(digest_text)
        if Digest.of(bytes(content), digest.algorithm) != digest:
            problems.append(Problem("corrupt-manifest", f"{repository}@{digest_text}",
                                    "the stored manifest bytes do not match the digest"))
    for repository, manifest, referenced in dangling:
        problems.append(Problem("dangling-reference", f"{repository}@{manifest}",
                                f"references {referenced}, which the repository does not hold"))

    # 4. Every recorded blob: present, the right size, the right content.
    for digest_text, size in sorted(blobs.items()):
        digest = Digest.parse(digest_text)
        path = _blob_path(data_dir, digest)
        if digest_text in marked:
            problems.append(Problem("marked-corrupt", digest_text,
                                    f"found corrupt earlier ({marked[digest_text]}); push it again"))
            continue
        report.blobs += 1
        try:
            actual_size = os.stat(path).st_size
            actual, identity = _hash_file(path, digest.algorithm)
        except FileNotFoundError:
            if not _blob_exists(connection, digest_text):
                continue  # deleted meanwhile
            problem = Problem("missing", digest_text, "the metadata records it but its file is missing")
            if repair:
                _mark_corrupt(connection, digest_text, "its file is missing")
                problem = attrs.evolve(problem, repaired="marked corrupt (clients push it again)")
            problems.append(problem)
            continue
        report.blob_bytes += actual_size
        progress(f"hashed {digest_text} ({actual_size} bytes)")
        if actual_size == size and actual == digest.encoded:
            continue
        if not _blob_exists(connection, digest_text):
            continue
        if actual_size != size:
            reason = f"its file holds {actual_size} bytes, not {size}"
        else:
            reason = f"its content has digest {digest.algorithm}:{actual}"
        problem = Problem("corrupt", digest_text, reason)
        if repair:
            moved = _quarantine(data_dir, path, identity)
            _mark_corrupt(connection, digest_text, reason)
            what = f"moved to {moved}, " if moved else ""
            problem = attrs.evolve(problem, repaired=f"{what}marked corrupt (clients push it again)")
        problems.append(problem)

    # 5. Files under blobs/ that the metadata does not know.
    now = time.time()
    orphans: list[tuple[Problem, str, str | None]] = []
    blobs_root = os.path.join(data_dir, "blobs")
    for path in sorted(_walk_files(blobs_root)):
        relative = os.path.relpath(path, blobs_root).replace(os.sep, "/")
        match = _BLOB_PATH.match(relative)
        digest_text = None
        if match and ALGORITHMS.get(match[1]) == len(match[3]) and match[3].startswith(match[2]):
            digest_text = f"{match[1]}:{match[3]}"
            if digest_text in blobs:
                continue
        if _recent(path, now, grace):
            report.skipped_recent += 1
            continue
        if digest_text is not None and _blob_exists(connection, digest_text):
            continue  # committed since the snapshot
        subject = os.path.relpath(path, data_dir)
        if digest_text is None:
            orphans.append((Problem("stray-file", subject, "not a blob file"), path, None))
        else:
            orphans.append((Problem("orphan-blob", subject, "no metadata records this blob"),
                            path, digest_text))
    moved_orphans: list[tuple[str, str]] = []
    for problem, path, digest_text in orphans:
        if repair:
            moved = _quarantine(data_dir, path)
            if moved is not None:
                problem = attrs.evolve(problem, repaired=f"moved to {moved}")
                if digest_text is not None:
                    moved_orphans.append((digest_text, moved))
        problems.append(problem)
    if moved_orphans:
        _restore_committed(connection, data_dir, moved_orphans, problems)

    # 6. Upload files and sessions.
    uploads_root = os.path.join(data_dir, "uploads")
    files = set(os.listdir(uploads_root)) if os.path.isdir(uploads_root) else set()
    report.upload_files = len(files)
    # ``<id>.committing`` belongs to session ``<id>`` while its blob is recorded.
    for name in sorted(name for name in files if name.removesuffix(COMMITTING) not in uploads):
        path = os.path.join(uploads_root, name)
        if _recent(path, now, grace):
            report.skipped_recent += 1
            continue
        if _upload_recorded(connection, name):
            continue
        problem = Problem("orphan-upload", os.path.relpath(path, data_dir), "no upload session records it")
        if repair:
            moved = _quarantine(data_dir, path)
            if moved is not None:
                problem = attrs.evolve(problem, repaired=f"moved to {moved}")
        problems.append(problem)
    missing = sorted(uploads - files - {name.removesuffix(COMMITTING) for name in files})
    if missing:
        # A commit renames the file away just before it forgets the session.
        time.sleep(UPLOAD_RECHECK_DELAY)
        for upload_id in missing:
            if os.path.exists(os.path.join(uploads_root, upload_id)):
                continue
            if not _upload_recorded(connection, upload_id):
                continue
            problems.append(Problem("missing-upload", upload_id,
                                    "an upload session has no file (resuming it fails; GC purges it)"))
    return report


def _restore_committed(
    connection: sqlite3.Connection,
    data_dir: str,
    moved: list[tuple[str, str]],
    problems: list[Problem],
) -> None:
    """
    A push of the same content may have found an orphan in place (so kept it)
    just before it was moved: put such files back once their row shows up.
    """
    time.sleep(UPLOAD_RECHECK_DELAY)
    for digest_text, relative in moved:
        if not _blob_exists(connection, digest_text):
            continue
        target = _blob_path(data_dir, Digest.parse(digest_text))
        source = os.path.join(data_dir, relative)
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno != errno.ENOENT:
                raise
            continue
        os.unlink(source)
        for index, problem in enumerate(problems):
            if problem.kind == "orphan-blob" and problem.repaired == f"moved to {relative}":
                problems[index] = attrs.evolve(problem, repaired="committed meanwhile: left in place")


@attrs.frozen
class RepositoryUsage:
    """Storage use of one repository, shared blobs counted once in it."""

    repository: str
    blobs: int
    blob_bytes: int
    manifests: int
    manifest_bytes: int
    uploads: int
    upload_bytes: int

    @property
    def total(self) -> int:
        return self.blob_bytes + self.manifest_bytes + self.upload_bytes

    def as_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "total": self.total}


@attrs.frozen
class Usage:
    """``txoci du``: per repository, and for the whole registry (each blob once)."""

    repositories: list[RepositoryUsage]
    total: RepositoryUsage
    #: Blobs no repository links and no manifest references: what GC would reclaim.
    unreferenced_blobs: int
    unreferenced_blob_bytes: int

    def as_json(self) -> dict[str, Any]:
        return {
            "repositories": [usage.as_json() for usage in self.repositories],
            "total": self.total.as_json(),
            "unreferenced_blobs": self.unreferenced_blobs,
            "unreferenced_blob_bytes": self.unreferenced_blob_bytes,
        }


_USAGE_SQL = """
WITH repository_content AS (
    SELECT repository_id, digest FROM repository_blobs
    UNION
    SELECT mr.repository_id, mr.referenced_digest FROM manifest_references mr
    JOIN blobs b ON b.digest = mr.referenced_digest
),
blob_use AS (
    SELECT rc.repository_id, COUNT(*) AS blobs, SUM(b.size) AS bytes
    FROM repository_content rc JOIN blobs b ON b.digest = rc.digest
    GROUP BY rc.repository_id
),
manifest_use AS (
    SELECT repository_id, COUNT(*) AS manifests, SUM(LENGTH(content)) AS bytes
    FROM manifests GROUP BY repository_id
),
upload_use AS (
    SELECT repository, COUNT(*) AS uploads, SUM(offset) AS bytes FROM uploads GROUP BY repository
)
SELECT r.name, COALESCE(bu.blobs, 0), COALESCE(bu.bytes, 0),
       COALESCE(mu.manifests, 0), COALESCE(mu.bytes, 0),
       COALESCE(uu.uploads, 0), COALESCE(uu.bytes, 0)
FROM repositories r
LEFT JOIN blob_use bu ON bu.repository_id = r.id
LEFT JOIN manifest_use mu ON mu.repository_id = r.id
LEFT JOIN upload_use uu ON uu.repository = r.name
ORDER BY r.name
"""


def usage(data_dir: str) -> Usage:
    """Storage use per repository, in one short read transaction."""
    connection = open_metadata(os.path.abspath(data_dir))
    try:
        return read(connection, _usage)
    finally:
        connection.close()


def _usage(tx: SQLiteTransaction) -> Usage:
    def ints(row: tuple[Any, ...]) -> list[int]:
        return [int(value or 0) for value in row]

    repositories = [RepositoryUsage(str(row[0]), *ints(row[1:])) for row in _rows(tx, _USAGE_SQL)]
    # Uploads to a repository that holds nothing yet have no repositories row.
    known = {usage.repository for usage in repositories}
    for name, count, size in _rows(
        tx, "SELECT repository, COUNT(*), SUM(offset) FROM uploads GROUP BY repository ORDER BY 1"
    ):
        if name not in known:
            repositories.append(RepositoryUsage(str(name), 0, 0, 0, 0, int(count), int(size or 0)))
    repositories.sort(key=lambda usage: usage.repository.encode("utf-8"))
    (blobs, blob_bytes), = (ints(row) for row in _rows(tx, "SELECT COUNT(*), SUM(size) FROM blobs"))
    (manifests, manifest_bytes), = (
        ints(row) for row in _rows(tx, "SELECT COUNT(*), SUM(LENGTH(content)) FROM manifests")
    )
    (uploads, upload_bytes), = (ints(row) for row in _rows(tx, "SELECT COUNT(*), SUM(offset) FROM uploads"))
    (unreferenced, unreferenced_bytes), = (
        ints(row)
        for row in _rows(
            tx,
            f"SELECT COUNT(*), SUM(size) FROM blobs b WHERE {UNREFERENCED_BLOB}",
        )
    )
    total = RepositoryUsage("", blobs, blob_bytes, manifests, manifest_bytes, uploads, upload_bytes)
    return Usage(repositories, total, unreferenced, unreferenced_bytes)


__all__ = [
    "QUARANTINE",
    "CheckReport",
    "DataDirError",
    "Problem",
    "RepositoryUsage",
    "Usage",
    "check",
    "usage",
]
