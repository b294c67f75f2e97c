"""
Garbage collection of a data dir: the rules, shared by the service's
periodic collector and ``txoci gc``.

Plain blocking code over the data dir's files and its own SQLite connection,
like :mod:`txoci.storage.check`, so it runs the same on a thread of the
service and in a separate ``txoci gc`` process beside a running server.

A run has two phases.  **Planning** reads one snapshot (a WAL read
transaction, which locks nothing) and lists the candidates.  **Reclaiming**
then takes each batch of candidates in one short *write* transaction that
re-checks every candidate against the current state, with the same query
that found it, and only then removes it; for a blob it moves the file aside
(to ``gc-trash/``) inside that transaction and deletes it after the commit.
Every other writer (a push recording a blob, a mount, a manifest push
checking its references) is a write transaction too, and SQLite runs write
transactions one at a time, across threads and processes.  The argument for
why that loses no data is in docs/operations.md ("Why GC cannot lose data").

What is reclaimed:

- **links** of a blob to a repository, once a manifest of that repository
  referenced it and none does any more (the image was deleted), for longer
  than the grace period, unless the blob was linked again since (pushed or
  mounted anew); a blob that was uploaded and not referenced yet keeps its
  link, so a push that uploads layers and then the manifest is never cut;
- **blobs** that no repository links and no manifest references, unreferenced
  for longer than the grace period: the row, then the file;
- **blob files** no row records (a commit interrupted by a crash), older than
  the grace period;
- **untagged manifests** that no other manifest references and whose subject
  (if any) is gone, older than the manifest retention, when one is set;
- **upload sessions** without a request for longer than the upload age limit,
  with their files; sessions whose file is missing and **upload files** no
  session records, older than the grace period.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeVar

import attrs

from txoci.registry.digest import ALGORITHMS, Digest
from txoci.storage.check import (
    _BLOB_PATH,
    _blob_path,
    _recent,
    _rows,
    _walk_files,
    open_metadata,
    read,
    write,
)
from txoci.storage.filesystem import COMMITTING
from txoci.storage.sqlite import UNREFERENCED_BLOB, SQLiteTransaction

T = TypeVar("T")

#: Seconds something must have been unreferenced (or a file unrecorded) before
#: GC removes it: a margin on top of the transactional re-check.
DEFAULT_GRACE = 3600.0
#: Seconds an upload session may go without a request before GC purges it.
DEFAULT_UPLOAD_MAX_AGE = 24 * 3600.0
#: Candidates re-checked and removed per write transaction (keeps each short).
BATCH = 100
#: Where blob files wait, between the transaction that removed their row and their deletion.
TRASH = "gc-trash"

LINK = "link"
BLOB = "blob"
ORPHAN_BLOB_FILE = "orphan-blob-file"
MANIFEST = "manifest"
UPLOAD = "upload"
ORPHAN_UPLOAD_FILE = "orphan-upload-file"
KINDS = (MANIFEST, LINK, BLOB, ORPHAN_BLOB_FILE, UPLOAD, ORPHAN_UPLOAD_FILE)


@attrs.frozen
class Policy:
    """What GC may reclaim, and after how long."""

    #: Seconds a blob stays after its last link or reference went (and an
    #: unrecorded blob or upload file after it last changed).
    grace: float = DEFAULT_GRACE
    #: Seconds an untagged, unreferenced manifest is kept; None keeps them forever.
    manifest_retention: float | None = None
    #: Seconds an upload session may go without a request.
    upload_max_age: float = DEFAULT_UPLOAD_MAX_AGE

    def __attrs_post_init__(self) -> None:
        for name in ("grace", "upload_max_age"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.manifest_retention is not None and self.manifest_retention < 0:
            raise ValueError("manifest_retention must not be negative")


@attrs.frozen
class Item:
    """One thing GC reclaims (or, in a dry run, would reclaim)."""

    #: One of :data:`KINDS`.
    kind: str
    #: A digest, ``repository@digest``, an upload id or a path under the data dir.
    subject: str
    #: Bytes freed.
    size: int
    #: Why it is garbage.
    reason: str

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class Report:
    """What a GC run reclaimed, or would reclaim in a dry run."""

    data_dir: str
    dry_run: bool
    items: list[Item] = attrs.Factory(list)
    #: Candidates that the re-check at deletion time found in use again.
    kept: int = 0
    #: Blob files found in ``gc-trash/`` from an interrupted run: restored or deleted.
    recovered: int = 0

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.items)

    def count(self, kind: str) -> int:
        return sum(1 for item in self.items if item.kind == kind)

    def size(self, kind: str) -> int:
        return sum(item.size for item in self.items if item.kind == kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "dry_run": self.dry_run,
            "bytes": self.bytes,
            "counts": {kind: self.count(kind) for kind in KINDS},
            "kept": self.kept,
            "recovered": self.recovered,
            "items": [item.as_json() for item in self.items],
        }


def _since(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# The candidate queries.  Planning runs them over everything; reclaiming runs
# the same query for one candidate inside the write transaction that removes
# it, so "garbage" means one thing in both places.

_BLOBS = f"""
SELECT b.digest, b.size, MAX(b.created_at, COALESCE(q.queued_at, 0)) AS since
FROM blobs b LEFT JOIN gc_blob_review q ON q.digest = b.digest
WHERE {UNREFERENCED_BLOB}
AND since <= :cutoff {{only}}
ORDER BY b.digest
"""

_LINKS = """
SELECT r.name, rb.digest, b.size, q.queued_at
FROM gc_link_review q
JOIN repository_blobs rb ON rb.repository_id = q.repository_id AND rb.digest = q.digest
JOIN repositories r ON r.id = q.repository_id
JOIN blobs b ON b.digest = rb.digest
WHERE q.queued_at <= :cutoff AND q.queued_at >= rb.linked_at
AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                WHERE mr.repository_id = q.repository_id AND mr.referenced_digest = q.digest) {only}
ORDER BY r.name, rb.digest
"""

_MANIFESTS = """
SELECT r.name, m.digest, LENGTH(m.content), m.subject,
       MAX(m.created_at, COALESCE(q.queued_at, 0)) AS since
FROM manifests m JOIN repositories r ON r.id = m.repository_id
LEFT JOIN gc_manifest_review q ON q.repository_id = m.repository_id AND q.digest = m.digest
WHERE NOT EXISTS (SELECT 1 FROM tags t
                  WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)
AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                WHERE mr.repository_id = m.repository_id AND mr.referenced_digest = m.digest)
AND (m.subject IS NULL OR NOT EXISTS (
     SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject))
AND since <= :cutoff {only}
ORDER BY r.name, m.digest
"""

_UPLOADS = """
SELECT id, repository, offset, MAX(started_at, updated_at) AS since FROM uploads
WHERE since <= :cutoff {only}
ORDER BY id
"""


def _blob_candidates(tx: SQLiteTransaction, cutoff: float, digest: str | None = None) -> list[Item]:
    only = "AND b.digest = :digest" if digest is not None else ""
    rows = tx._db.execute(_BLOBS.format(only=only), {"cutoff": cutoff, "digest": digest})
    return [
        Item(BLOB, str(d), int(size), f"no repository links it and no manifest references it "
             f"(since {_since(since)})")
        for d, size, since in rows
    ]


def _link_candidates(
    tx: SQLiteTransaction, cutoff: float, subject: tuple[str, str] | None = None
) -> list[Item]:
    only = "AND r.name = :repository AND rb.digest = :digest" if subject is not None else ""
    repository, digest = subject if subject is not None else (None, None)
    rows = tx._db.execute(
        _LINKS.format(only=only), {"cutoff": cutoff, "repository": repository, "digest": digest}
    )
    # No bytes yet: the blob itself goes in a later run, if no other repository holds it.
    return [
        Item(LINK, f"{name}@{d}", 0, f"no manifest of the repository references this "
             f"{size}-byte blob any more (since {_since(since)}); it is not linked again since")
        for name, d, size, since in rows
    ]


def _manifest_candidates(
    tx: SQLiteTransaction, cutoff: float, subject: tuple[str, str] | None = None
) -> list[Item]:
    only = "AND r.name = :repository AND m.digest = :digest" if subject is not None else ""
    repository, digest = subject if subject is not None else (None, None)
    rows = tx._db.execute(
        _MANIFESTS.format(only=only),
        {"cutoff": cutoff, "repository": repository, "digest": digest},
    )
    items = []
    for name, d, size, referred, since in rows:
        if referred is not None:
            reason = f"a referrer whose subject {referred} is gone, untagged (since {_since(since)})"
        else:
            reason = f"untagged and referenced by no manifest (since {_since(since)})"
        items.append(Item(MANIFEST, f"{name}@{d}", int(size), reason))
    return items


def _upload_candidates(
    tx: SQLiteTransaction, cutoff: float, in_use: Collection[str], upload_id: str | None = None
) -> list[Item]:
    only = "AND id = :id" if upload_id is not None else ""
    rows = tx._db.execute(_UPLOADS.format(only=only), {"cutoff": cutoff, "id": upload_id})
    return [
        Item(UPLOAD, str(uid), int(offset), f"upload to {repository} without a request "
             f"since {_since(since)}")
        for uid, repository, offset, since in rows
        if uid not in in_use
    ]


def _fileless_upload_candidates(
    tx: SQLiteTransaction, data_dir: str, cutoff: float, in_use: Collection[str],
    upload_id: str | None = None,
) -> list[Item]:
    """Sessions whose file is missing (a crash between the two): resuming them cannot work."""
    only = "AND id = :id" if upload_id is not None else ""
    rows = tx._db.execute(_UPLOADS.format(only=only), {"cutoff": cutoff, "id": upload_id})
    return [
        Item(UPLOAD, str(uid), 0, f"upload to {repository} whose file is missing "
             f"(since {_since(since)})")
        for uid, repository, offset, since in rows
        if uid not in in_use and not os.path.exists(os.path.join(data_dir, "uploads", str(uid)))
    ]


def _disk_blobs(data_dir: str) -> Iterator[tuple[str, str]]:
    """(digest, path) of every file under ``blobs/`` named like a blob."""
    root = os.path.join(data_dir, "blobs")
    for path in _walk_files(root):
        relative = os.path.relpath(path, root).replace(os.sep, "/")
        match = _BLOB_PATH.match(relative)
        if match and ALGORITHMS.get(match[1]) == len(match[3]) and match[3].startswith(match[2]):
            yield f"{match[1]}:{match[3]}", path


def _upload_files(data_dir: str) -> list[str]:
    root = os.path.join(data_dir, "uploads")
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _recorded_blobs(tx: SQLiteTransaction) -> set[str]:
    return {str(row[0]) for row in _rows(tx, "SELECT digest FROM blobs")}


def _recorded_uploads(tx: SQLiteTransaction) -> set[str]:
    return {str(row[0]) for row in _rows(tx, "SELECT id FROM uploads")}


def plan(
    connection: sqlite3.Connection,
    data_dir: str,
    policy: Policy,
    now: float,
    in_use: Collection[str] = (),
) -> list[Item]:
    """Every candidate, from one snapshot of the metadata and a walk of the files."""

    def snapshot(tx: SQLiteTransaction) -> tuple[list[Item], set[str], set[str]]:
        items: list[Item] = []
        if policy.manifest_retention is not None:
            items += _manifest_candidates(tx, now - policy.manifest_retention)
        items += _link_candidates(tx, now - policy.grace)
        items += _blob_candidates(tx, now - policy.grace)
        uploads = _upload_candidates(tx, now - policy.upload_max_age, in_use)
        expired = {item.subject for item in uploads}
        items += uploads + [
            item for item in _fileless_upload_candidates(tx, data_dir, now - policy.grace, in_use)
            if item.subject not in expired
        ]
        return items, _recorded_blobs(tx), _recorded_uploads(tx)

    # The files are listed before the snapshot is taken: a file committed
    # in between is then in the snapshot, never mistaken for an orphan.
    disk_blobs = list(_disk_blobs(data_dir))
    upload_files = _upload_files(data_dir)
    items, recorded, sessions = read(connection, snapshot)
    for digest, path in disk_blobs:
        if digest not in recorded and not _recent(path, now, policy.grace):
            items.append(Item(ORPHAN_BLOB_FILE, os.path.relpath(path, data_dir), _file_size(path),
                              "a blob file that no metadata records (a commit interrupted by a crash)"))
    for name in upload_files:
        path = os.path.join(data_dir, "uploads", name)
        session = _session_of(name)
        if session not in sessions and session not in in_use and not _recent(path, now, policy.grace):
            items.append(Item(ORPHAN_UPLOAD_FILE, os.path.relpath(path, data_dir), _file_size(path),
                              "an upload file that no upload session records"))
    return items


def _trash_path(data_dir: str, digest: str) -> str:
    return os.path.join(data_dir, TRASH, f"{digest.replace(':', '-')}.{time.time_ns()}")


def _move_to_trash(data_dir: str, path: str, digest: str) -> str | None:
    """Move a blob file into the trash (inside the transaction); None if it is gone."""
    target = _trash_path(data_dir, digest)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


def _delete_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _reclaim_one(
    tx: SQLiteTransaction,
    data_dir: str,
    item: Item,
    policy: Policy,
    now: float,
    in_use: Collection[str],
    trash: list[str],
) -> Item | None:
    """Re-check ``item`` against the current state and remove it; the item removed, or None."""
    db = tx._db
    if item.kind == MANIFEST:
        if policy.manifest_retention is None:
            return None
        repository, _, digest = item.subject.partition("@")
        current = _manifest_candidates(tx, now - policy.manifest_retention, (repository, digest))
        if not current:
            return None
        tx.delete_manifest(repository, digest)
        return current[0]
    if item.kind == LINK:
        repository, _, digest = item.subject.partition("@")
        current = _link_candidates(tx, now - policy.grace, (repository, digest))
        if not current:
            return None
        tx.unlink_blob(repository, digest)
        return current[0]
    if item.kind == BLOB:
        current = _blob_candidates(tx, now - policy.grace, item.subject)
        if not current:
            return None
        digest = item.subject
        db.execute("DELETE FROM corrupt_blobs WHERE digest = ?", (digest,))
        db.execute("DELETE FROM gc_blob_review WHERE digest = ?", (digest,))
        db.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
        moved = _move_to_trash(data_dir, _blob_path(data_dir, Digest.parse(digest)), digest)
        if moved is not None:
            trash.append(moved)
        return current[0]
    if item.kind == ORPHAN_BLOB_FILE:
        path = os.path.join(data_dir, item.subject)
        digest = _digest_of(data_dir, path)
        recorded = _rows(tx, "SELECT 1 FROM blobs WHERE digest = ?", digest)
        if recorded or _recent(path, now, policy.grace):
            return None
        moved = _move_to_trash(data_dir, path, digest)
        if moved is None:
            return None
        trash.append(moved)
        return item
    if item.kind == UPLOAD:
        current = _upload_candidates(
            tx, now - policy.upload_max_age, in_use, item.subject
        ) or _fileless_upload_candidates(tx, data_dir, now - policy.grace, in_use, item.subject)
        if not current or _upload_locked(data_dir, item.subject):
            return None
        tx.delete_upload(item.subject)
        # The session row is gone in this transaction: no request can use the file now.
        trash.append(os.path.join(data_dir, "uploads", item.subject))
        return current[0]
    if item.kind == ORPHAN_UPLOAD_FILE:
        path = os.path.join(data_dir, item.subject)
        upload_id = _session_of(os.path.basename(path))
        if (_rows(tx, "SELECT 1 FROM uploads WHERE id = ?", upload_id) or upload_id in in_use
                or _recent(path, now, policy.grace)):
            return None
        if not os.path.exists(path):
            return None
        trash.append(path)
        return item
    raise ValueError(f"unknown GC item kind {item.kind!r}")


def _upload_locked(data_dir: str, upload_id: str) -> bool:
    """Whether a request (in any process) holds the upload file's lock right now."""
    try:
        fd = os.open(os.path.join(data_dir, "uploads", upload_id), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # Closing releases the lock, if this took it.
    return False


def _session_of(name: str) -> str:
    """The upload session a file in ``uploads/`` belongs to (``<id>`` or ``<id>.committing``)."""
    return name.removesuffix(COMMITTING)


def _digest_of(data_dir: str, path: str) -> str:
    relative = os.path.relpath(path, os.path.join(data_dir, "blobs")).replace(os.sep, "/")
    match = _BLOB_PATH.match(relative)
    if match is None:
        raise ValueError(f"{path} is not a blob file")
    return f"{match[1]}:{match[3]}"


def recover_trash(connection: sqlite3.Connection, data_dir: str) -> int:
    """
    Finish what an interrupted run left in ``gc-trash/``: a file whose blob
    row still exists (the run's transaction never committed) goes back into
    place; every other file is deleted.  Runs in a write transaction, so no
    other GC is between its rename and its commit meanwhile.
    """
    root = os.path.join(data_dir, TRASH)
    if not os.path.isdir(root) or not os.listdir(root):
        return 0

    def recover(tx: SQLiteTransaction) -> int:
        count = 0
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            count += 1
            digest = name.rsplit(".", 1)[0].replace("-", ":", 1)
            try:
                parsed = Digest.parse(digest)
            except Exception:
                continue  # Not ours: leave it for the operator.
            if _rows(tx, "SELECT 1 FROM blobs WHERE digest = ?", digest):
                target = _blob_path(data_dir, parsed)
                try:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.link(path, target)
                except FileExistsError:
                    pass
            _delete_file(path)
        return count

    return write(connection, recover)


def reclaim(
    connection: sqlite3.Connection,
    data_dir: str,
    items: list[Item],
    policy: Policy,
    now: float,
    in_use: Collection[str] = (),
    on_batch: Callable[[list[Item]], None] | None = None,
) -> tuple[list[Item], int]:
    """
    Remove ``items`` in batches, each re-checked in the write transaction
    that removes it; files are deleted after each commit.  Return what was
    removed and how many candidates were kept because they were in use again.
    """
    removed: list[Item] = []
    kept = 0
    for first in range(0, len(items), BATCH):
        batch = items[first : first + BATCH]
        trash: list[str] = []

        def work(tx: SQLiteTransaction, batch: list[Item] = batch, trash: list[str] = trash) -> list[Item]:
            trash.clear()
            done = []
            for item in batch:
                result = _reclaim_one(tx, data_dir, item, policy, now, in_use, trash)
                if result is not None:
                    done.append(result)
            return done

        done = write(connection, work)
        # Committed: nothing can reach these files any more.
        for path in trash:
            _delete_file(path)
        kept += len(batch) - len(done)
        removed += done
        if on_batch is not None:
            on_batch(done)
    return removed, kept


def collect(
    data_dir: str,
    policy: Policy = Policy(),
    dry_run: bool = False,
    now: float | None = None,
    in_use: Collection[str] = (),
) -> Report:
    """
    One GC run over ``data_dir`` (``txoci gc``; the service runs the same
    on a thread).  A dry run only plans.
    """
    data_dir = os.path.abspath(data_dir)
    connection = open_metadata(data_dir)
    try:
        return collect_with(connection, data_dir, policy, dry_run, now, in_use)
    finally:
        connection.close()


def collect_with(
    connection: sqlite3.Connection,
    data_dir: str,
    policy: Policy,
    dry_run: bool = False,
    now: float | None = None,
    in_use: Collection[str] = (),
) -> Report:
    """:func:`collect` over an open connection."""
    report = Report(data_dir, dry_run)
    if not dry_run:
        report.recovered = recover_trash(connection, data_dir)
    moment = time.time() if now is None else now
    items = plan(connection, data_dir, policy, moment, in_use)
    if dry_run:
        report.items = items
        return report
    # Manifests first: the blobs they free count from this run (their grace starts now).
    items.sort(key=lambda item: KINDS.index(item.kind))
    report.items, report.kept = reclaim(connection, data_dir, items, policy, moment, in_use)
    write(connection, _forget_stale_reviews)
    return report


def _forget_stale_reviews(tx: SQLiteTransaction) -> None:
    """Drop review-queue rows about things that are gone (the triggers only ever add)."""
    db = tx._db
    db.execute("DELETE FROM gc_blob_review WHERE digest NOT IN (SELECT digest FROM blobs)")
    db.execute(
        "DELETE FROM gc_link_review WHERE NOT EXISTS (SELECT 1 FROM repository_blobs rb"
        " WHERE rb.repository_id = gc_link_review.repository_id AND rb.digest = gc_link_review.digest)"
    )
    db.execute(
        "DELETE FROM gc_manifest_review WHERE NOT EXISTS (SELECT 1 FROM manifests m"
        " WHERE m.repository_id = gc_manifest_review.repository_id"
        " AND m.digest = gc_manifest_review.digest)"
    )


__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_UPLOAD_MAX_AGE",
    "KINDS",
    "TRASH",
    "Item",
    "Policy",
    "Report",
    "collect",
    "collect_with",
]
