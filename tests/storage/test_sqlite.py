"""The SQLite metadata store: migrations, transactions and every query."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from txoci.registry.digest import Digest
from txoci.storage import sqlite
from txoci.storage.interfaces import IMetadataStore, IMetadataTransaction, ManifestRecord, UploadRecord
from txoci.storage.sqlite import MIGRATIONS, SQLiteMetadataStore


def d(n: int) -> str:
    return str(Digest.of(b"content %d" % n))


def manifest(n: int, subject: str | None = None, artifact_type: str | None = None) -> ManifestRecord:
    content = b'{"n": %d}' % n
    return ManifestRecord(
        digest=str(Digest.of(content)),
        media_type="application/vnd.oci.image.manifest.v1+json",
        content=content,
        subject=subject,
        artifact_type=artifact_type,
        annotations_json=json.dumps({"n": str(n)}) if artifact_type else None,
    )


class SQLiteTestCase(TestCase):
    def setUp(self) -> Deferred[SQLiteMetadataStore]:
        self.path = os.path.abspath(self.mktemp())
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return Deferred.fromCoroutine(self.open_store())

    def new_store(self) -> SQLiteMetadataStore:
        store = SQLiteMetadataStore(self.path, reactor)

        def close() -> Deferred[None] | None:
            # A closed store's thread is gone: closing again would never finish.
            return store.close() if store._pool.started else None

        self.addCleanup(close)
        return store

    async def open_store(self) -> SQLiteMetadataStore:
        store = self.new_store()
        await store.start()
        self.store = store
        return store

    def user_version(self) -> int:
        connection = sqlite3.connect(self.path)
        try:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()

    def count(self, table: str) -> int:
        connection = sqlite3.connect(self.path)
        try:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            connection.close()

    def transact(self, work: Any, *args: Any) -> Any:
        return self.store.transact(work, *args)


class MigrationTests(SQLiteTestCase):
    def test_fresh_database_is_at_the_latest_version(self) -> None:
        self.assertEqual(self.user_version(), len(MIGRATIONS))
        verifyObject(IMetadataStore, self.store)

    async def test_reopen_is_a_no_op(self) -> None:
        await self.transact(lambda tx: tx.add_blob(d(1), 10))
        await self.store.close()
        await self.open_store()
        self.assertEqual(self.user_version(), len(MIGRATIONS))
        self.assertEqual(await self.transact(lambda tx: tx.blob_size(d(1))), 10)

    async def test_newer_schema_refuses_to_open(self) -> None:
        await self.store.close()
        connection = sqlite3.connect(self.path)
        connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        connection.commit()
        connection.close()
        store = self.new_store()
        error = await self.assertFailure(store.start(), RuntimeError)
        self.assertIn("newer", str(error))
        self.assertEqual(self.user_version(), len(MIGRATIONS) + 1)

    async def test_new_migrations_apply_in_order(self) -> None:
        await self.transact(lambda tx: tx.add_blob(d(1), 10))
        await self.store.close()
        extra = [
            "CREATE TABLE extra_one (x INTEGER)",
            "INSERT INTO extra_one VALUES (1); INSERT INTO extra_one VALUES (2)",
        ]
        self.patch(sqlite, "MIGRATIONS", MIGRATIONS + extra)
        await self.open_store()
        self.assertEqual(self.user_version(), len(MIGRATIONS) + 2)
        self.assertEqual(self.count("extra_one"), 2)
        self.assertEqual(await self.transact(lambda tx: tx.blob_size(d(1))), 10)

    async def test_failed_migration_rolls_back(self) -> None:
        await self.store.close()
        broken = ["CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table"]
        self.patch(sqlite, "MIGRATIONS", MIGRATIONS + broken)
        store = self.new_store()
        await self.assertFailure(store.start(), sqlite3.OperationalError)
        self.assertEqual(self.user_version(), len(MIGRATIONS))
        self.assertRaises(sqlite3.OperationalError, self.count, "half_done")

    async def test_empty_database_file_is_migrated(self) -> None:
        # A database at version 0 with nothing in it is migrated from scratch.
        await self.store.close()
        os.unlink(self.path)
        sqlite3.connect(self.path).close()
        await self.open_store()
        self.assertEqual(self.user_version(), len(MIGRATIONS))


class TransactionTests(SQLiteTestCase):
    async def test_work_gets_a_transaction_and_arguments(self) -> None:
        def work(tx: Any, a: int, b: int) -> int:
            verifyObject(IMetadataTransaction, tx)
            return a + b

        self.assertEqual(await self.transact(work, 2, 3), 5)

    async def test_raising_rolls_back(self) -> None:
        class Boom(Exception):
            pass

        def work(tx: Any) -> None:
            tx.create_upload(UploadRecord("u1", "repo", "sha256", 0, 1.0))
            tx.add_blob(d(1), 1)
            tx.link_blob("repo", d(1))
            tx.put_manifest("repo", manifest(1), [d(1)])
            tx.set_tag("repo", "latest", manifest(1).digest)
            assert tx.get_upload("u1") is not None
            raise Boom()

        await self.assertFailure(self.transact(work), Boom)

        def check(tx: Any) -> tuple[Any, ...]:
            return (
                tx.get_upload("u1"),
                tx.blob_size(d(1)),
                tx.repository_exists("repo"),
                tx.resolve_tag("repo", "latest"),
                tx.list_repositories(None, 10),
            )

        self.assertEqual(await self.transact(check), (None, None, False, None, []))
        # The connection is usable again after the rollback.
        await self.transact(lambda tx: tx.add_blob(d(2), 2))
        self.assertEqual(await self.transact(lambda tx: tx.blob_size(d(2))), 2)

    async def test_constraint_violation_rolls_back_the_whole_transaction(self) -> None:
        def work(tx: Any) -> None:
            tx.add_blob(d(1), 1)
            # A tag must point at a stored manifest.
            tx.set_tag("repo", "latest", d(99))

        await self.assertFailure(self.transact(work), sqlite3.IntegrityError)
        self.assertIsNone(await self.transact(lambda tx: tx.blob_size(d(1))))


class GroupCommitTests(SQLiteTestCase):
    """Writes that queue while the writer thread is busy share one transaction."""

    def occupy_writer(self) -> tuple[Deferred[Any], threading.Event]:
        """A write that holds the writer thread until the returned event is set."""
        started, release = threading.Event(), threading.Event()

        def hold(tx: Any) -> None:
            started.set()
            release.wait(10)

        holding = self.transact(hold)
        self.assertTrue(started.wait(10))
        return holding, release

    async def test_writes_queued_behind_a_busy_writer_commit_together(self) -> None:
        before = self.store.generation
        holding, release = self.occupy_writer()
        queued = [self.transact(lambda tx, n=n: tx.add_blob(d(n), n)) for n in range(1, 6)]
        release.set()
        await holding
        for each in queued:
            await each
        # Each transaction bumps the generation twice: two transactions, not six.
        self.assertEqual(self.store.generation - before, 4)
        sizes = await self.store.read(lambda tx: [tx.blob_size(d(n)) for n in range(1, 6)])
        self.assertEqual(sizes, [1, 2, 3, 4, 5])

    async def test_a_write_that_raises_is_rolled_back_alone(self) -> None:
        def add_then_fail(tx: Any) -> None:
            tx.add_blob(d(2), 2)
            tx.set_tag("repo", "latest", d(99))  # No such manifest: IntegrityError.

        holding, release = self.occupy_writer()
        first = self.transact(lambda tx: tx.add_blob(d(1), 1))
        failing = self.transact(add_then_fail)
        last = self.transact(lambda tx: tx.add_blob(d(3), 3))
        release.set()
        await holding
        await first
        await self.assertFailure(failing, sqlite3.IntegrityError)
        await last
        sizes = await self.store.read(lambda tx: [tx.blob_size(d(n)) for n in (1, 2, 3)])
        self.assertEqual(sizes, [1, None, 3])

    async def test_when_the_transaction_is_lost_every_write_of_the_group_fails(self) -> None:
        class Lost(Exception):
            pass

        def lose_transaction(tx: Any) -> None:
            # What SQLite does on some errors (a full disk, an I/O error): it
            # undoes the whole transaction, the writes before this one too.
            tx._db.execute("ROLLBACK")
            raise Lost()

        holding, release = self.occupy_writer()
        first = self.transact(lambda tx: tx.add_blob(d(1), 1))
        losing = self.transact(lose_transaction)
        release.set()
        await holding
        await self.assertFailure(first, Lost)
        await self.assertFailure(losing, Lost)
        self.assertIsNone(await self.store.read(lambda tx: tx.blob_size(d(1))))
        # The next write starts a transaction of its own.
        await self.transact(lambda tx: tx.add_blob(d(2), 2))
        self.assertEqual(await self.store.read(lambda tx: tx.blob_size(d(2))), 2)

    async def test_a_group_holds_at_most_the_limit_of_writes(self) -> None:
        before = self.store.generation
        holding, release = self.occupy_writer()
        count = sqlite.GROUP_COMMIT_LIMIT + 1
        queued = [self.transact(lambda tx, n=n: tx.add_blob(d(n), n)) for n in range(count)]
        release.set()
        await holding
        for each in queued:
            await each
        self.assertEqual(self.store.generation - before, 2 * 3)


class BlobTests(SQLiteTestCase):
    async def test_blobs_and_links(self) -> None:
        def work(tx: Any) -> tuple[Any, ...]:
            tx.add_blob(d(1), 100)
            tx.add_blob(d(1), 999)  # already known: unchanged
            before = tx.linked_blob_size("a", d(1))
            tx.link_blob("a", d(1))
            tx.link_blob("a", d(1))
            return before, tx.blob_size(d(1)), tx.linked_blob_size("a", d(1)), tx.linked_blob_size("b", d(1))

        self.assertEqual(await self.transact(work), (None, 100, 100, None))
        self.assertTrue(await self.transact(lambda tx: tx.unlink_blob("a", d(1))))
        self.assertFalse(await self.transact(lambda tx: tx.unlink_blob("a", d(1))))
        self.assertFalse(await self.transact(lambda tx: tx.unlink_blob("nope", d(1))))
        self.assertIsNone(await self.transact(lambda tx: tx.linked_blob_size("a", d(1))))
        self.assertEqual(await self.transact(lambda tx: tx.blob_size(d(1))), 100)


class ManifestTests(SQLiteTestCase):
    async def put(self, repository: str, record: ManifestRecord, references: list[str] = []) -> None:
        await self.transact(lambda tx: tx.put_manifest(repository, record, references))

    async def test_put_and_get(self) -> None:
        record = manifest(1, subject=d(50), artifact_type="application/x")
        await self.put("repo", record, [d(1)])
        await self.put("repo", record, [d(1)])  # idempotent
        self.assertEqual(await self.transact(lambda tx: tx.get_manifest("repo", record.digest)), record)
        self.assertTrue(await self.transact(lambda tx: tx.manifest_exists("repo", record.digest)))
        self.assertFalse(await self.transact(lambda tx: tx.manifest_exists("other", record.digest)))
        self.assertIsNone(await self.transact(lambda tx: tx.get_manifest("other", record.digest)))
        self.assertIsNone(await self.transact(lambda tx: tx.get_manifest("repo", d(7))))

    async def test_tags_sorted_bytewise_with_last_and_limit(self) -> None:
        record = manifest(1)
        await self.put("repo", record)
        tags = ["b", "a", "B", "A", "_", "0", "a-b", "a.b", "a_b", "ab", "Z9", "z"]
        for tag in tags:
            await self.transact(lambda tx, tag=tag: tx.set_tag("repo", tag, record.digest))
        expected = sorted(tags, key=lambda t: t.encode())
        self.assertEqual(await self.transact(lambda tx: tx.list_tags("repo", None, 100)), expected)
        self.assertEqual(await self.transact(lambda tx: tx.list_tags("repo", None, 3)), expected[:3])
        for index, last in enumerate(expected):
            self.assertEqual(
                await self.transact(lambda tx, last=last: tx.list_tags("repo", last, 2)),
                expected[index + 1 : index + 3],
            )
        # ``last`` need not be a tag that exists.
        self.assertEqual(
            await self.transact(lambda tx: tx.list_tags("repo", "a0", 100)),
            [t for t in expected if t.encode() > b"a0"],
        )
        self.assertEqual(await self.transact(lambda tx: tx.list_tags("repo", None, 0)), [])
        self.assertEqual(await self.transact(lambda tx: tx.list_tags("missing", None, 10)), [])

    async def test_tags_move_and_delete(self) -> None:
        first, second = manifest(1), manifest(2)
        await self.put("repo", first)
        await self.put("repo", second)
        await self.transact(lambda tx: tx.set_tag("repo", "latest", first.digest))
        await self.transact(lambda tx: tx.set_tag("repo", "latest", second.digest))
        self.assertEqual(await self.transact(lambda tx: tx.resolve_tag("repo", "latest")), second.digest)
        self.assertIsNone(await self.transact(lambda tx: tx.resolve_tag("other", "latest")))
        self.assertTrue(await self.transact(lambda tx: tx.delete_tag("repo", "latest")))
        self.assertFalse(await self.transact(lambda tx: tx.delete_tag("repo", "latest")))
        self.assertFalse(await self.transact(lambda tx: tx.delete_tag("nope", "latest")))
        # The manifest stays.
        self.assertTrue(await self.transact(lambda tx: tx.manifest_exists("repo", second.digest)))

    async def test_referrers_by_subject(self) -> None:
        subject = d(100)
        referrers = [manifest(n, subject=subject, artifact_type=f"application/x-{n}") for n in range(4)]
        for record in referrers:
            await self.put("repo", record)
        await self.put("repo", manifest(10))
        await self.put("repo", manifest(11, subject=d(101)))
        await self.put("other", manifest(12, subject=subject))
        found = await self.transact(lambda tx: tx.referrers("repo", subject))
        self.assertEqual(found, sorted(referrers, key=lambda r: r.digest))
        self.assertEqual(await self.transact(lambda tx: tx.referrers("repo", d(102))), [])
        self.assertEqual(await self.transact(lambda tx: tx.referrers("missing", subject)), [])
        self.assertEqual(len(await self.transact(lambda tx: tx.referrers("other", subject))), 1)

    async def test_delete_manifest_cascades(self) -> None:
        record, kept = manifest(1), manifest(2)
        await self.put("repo", record, [d(1), d(2)])
        await self.put("repo", kept, [d(1)])
        for tag in ["a", "b"]:
            await self.transact(lambda tx, tag=tag: tx.set_tag("repo", tag, record.digest))
        await self.transact(lambda tx: tx.set_tag("repo", "c", kept.digest))
        self.assertEqual(self.count("manifest_references"), 3)

        self.assertTrue(await self.transact(lambda tx: tx.delete_manifest("repo", record.digest)))
        self.assertFalse(await self.transact(lambda tx: tx.delete_manifest("repo", record.digest)))
        self.assertFalse(await self.transact(lambda tx: tx.delete_manifest("missing", record.digest)))
        self.assertIsNone(await self.transact(lambda tx: tx.resolve_tag("repo", "a")))
        self.assertEqual(await self.transact(lambda tx: tx.list_tags("repo", None, 10)), ["c"])
        self.assertEqual(self.count("tags"), 1)
        self.assertEqual(self.count("manifest_references"), 1)
        self.assertTrue(await self.transact(lambda tx: tx.manifest_exists("repo", kept.digest)))

    async def test_same_manifest_in_two_repositories_is_independent(self) -> None:
        record = manifest(1)
        await self.put("a", record, [d(1)])
        await self.put("b", record, [d(1)])
        await self.transact(lambda tx: tx.delete_manifest("a", record.digest))
        self.assertTrue(await self.transact(lambda tx: tx.manifest_exists("b", record.digest)))
        self.assertEqual(self.count("manifest_references"), 1)


class UploadTests(SQLiteTestCase):
    async def test_round_trip(self) -> None:
        record = UploadRecord("0b7d6c1e-1", "library/x", "sha512", 0, 1234.5)
        await self.transact(lambda tx: tx.create_upload(record))
        self.assertEqual(await self.transact(lambda tx: tx.get_upload(record.upload_id)), record)
        await self.transact(lambda tx: tx.set_upload_offset(record.upload_id, 4096))
        self.assertEqual(
            await self.transact(lambda tx: tx.get_upload(record.upload_id)),
            UploadRecord("0b7d6c1e-1", "library/x", "sha512", 4096, 1234.5),
        )
        await self.transact(lambda tx: tx.delete_upload(record.upload_id))
        self.assertIsNone(await self.transact(lambda tx: tx.get_upload(record.upload_id)))
        await self.transact(lambda tx: tx.delete_upload(record.upload_id))

    async def test_duplicate_id_refused(self) -> None:
        record = UploadRecord("u", "r", "sha256", 0, 1.0)
        await self.transact(lambda tx: tx.create_upload(record))
        await self.assertFailure(self.transact(lambda tx: tx.create_upload(record)), sqlite3.IntegrityError)

    async def test_uploads_do_not_create_repositories(self) -> None:
        await self.transact(lambda tx: tx.create_upload(UploadRecord("u", "r", "sha256", 0, 1.0)))
        self.assertFalse(await self.transact(lambda tx: tx.repository_exists("r")))
        self.assertEqual(await self.transact(lambda tx: tx.list_repositories(None, 10)), [])


class RepositoryTests(SQLiteTestCase):
    async def test_list_repositories_only_with_content(self) -> None:
        def work(tx: Any) -> None:
            tx.add_blob(d(1), 1)
            tx.link_blob("with/blob", d(1))
            tx.put_manifest("with/manifest", manifest(1), [])
            # Had content once, none now.
            tx.link_blob("emptied/blob", d(1))
            tx.unlink_blob("emptied/blob", d(1))
            tx.put_manifest("emptied/manifest", manifest(2), [])
            tx.delete_manifest("emptied/manifest", manifest(2).digest)

        await self.transact(work)
        self.assertEqual(
            await self.transact(lambda tx: tx.list_repositories(None, 10)), ["with/blob", "with/manifest"]
        )
        self.assertEqual(await self.transact(lambda tx: tx.list_repositories(None, 1)), ["with/blob"])
        self.assertEqual(
            await self.transact(lambda tx: tx.list_repositories("with/blob", 10)), ["with/manifest"]
        )
        self.assertEqual(await self.transact(lambda tx: tx.list_repositories("with/manifest", 10)), [])
        # An emptied repository is still known (tag listing answers 200, not 404).
        self.assertTrue(await self.transact(lambda tx: tx.repository_exists("emptied/blob")))
        self.assertFalse(await self.transact(lambda tx: tx.repository_exists("never")))

    async def test_repositories_sorted_bytewise(self) -> None:
        names = ["b", "a/b", "a", "a-b", "a.b", "a_b", "a0", "ab"]
        await self.transact(lambda tx: tx.add_blob(d(1), 1))
        for name in names:
            await self.transact(lambda tx, name=name: tx.link_blob(name, d(1)))
        expected = sorted(names, key=lambda n: n.encode())
        self.assertEqual(await self.transact(lambda tx: tx.list_repositories(None, 100)), expected)
        self.assertEqual(await self.transact(lambda tx: tx.list_repositories("a", 2)), expected[1:3])
