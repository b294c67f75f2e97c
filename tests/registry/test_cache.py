"""The lookup cache never serves what a write of this process replaced."""

from __future__ import annotations

import os

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.support import RegistryTestCase
from txoci.registry.cache import LookupCache
from txoci.storage.check import write
from txoci.storage.sqlite import WriteGeneration, connect


class LookupCacheTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.generation = 0
        self.cache = LookupCache(self.clock, lambda: self.generation, ttl=1.0, max_bytes=1600)
        self.calls = 0

    def lookup(self, value: object) -> Deferred[object]:
        self.calls += 1
        return succeed(value)

    async def test_a_repeated_lookup_is_served_from_the_cache(self) -> None:
        self.assertEqual(await self.cache.get("k", lambda: self.lookup("a")), "a")
        self.assertEqual(await self.cache.get("k", lambda: self.lookup("b")), "a")
        self.assertEqual(self.calls, 1)

    async def test_any_write_invalidates_every_entry(self) -> None:
        await self.cache.get("k", lambda: self.lookup("old"))
        self.generation += 1
        self.assertEqual(await self.cache.get("k", lambda: self.lookup("new")), "new")

    async def test_entries_expire_after_the_ttl(self) -> None:
        await self.cache.get("k", lambda: self.lookup("old"))
        self.clock.advance(1.0)
        self.assertEqual(await self.cache.get("k", lambda: self.lookup("new")), "new")

    async def test_a_lookup_that_raced_with_a_write_is_not_kept(self) -> None:
        pending: Deferred[object] = Deferred()
        racing = Deferred.fromCoroutine(self.cache.get("k", lambda: pending))
        self.generation += 1  # a write started while the lookup ran
        pending.callback("maybe stale")
        self.assertEqual(await racing, "maybe stale")
        self.assertEqual(await self.cache.get("k", lambda: self.lookup("fresh")), "fresh")
        self.assertEqual(self.calls, 1)

    async def test_a_zero_ttl_disables_the_cache(self) -> None:
        self.cache.ttl = 0
        await self.cache.get("k", lambda: self.lookup("a"))
        self.assertEqual(await self.cache.get("k", lambda: self.lookup("b")), "b")

    async def test_large_values_are_not_kept(self) -> None:
        await self.cache.get("big", lambda: self.lookup(b"x" * 200), len)
        self.assertEqual(await self.cache.get("big", lambda: self.lookup(b"y")), b"y")

    async def test_a_full_cache_starts_over_within_its_byte_budget(self) -> None:
        for index in range(20):
            await self.cache.get(index, lambda: self.lookup(b"z" * 99), len)
        self.assertLessEqual(self.cache._bytes, 1600)
        self.assertEqual(self.calls, 20)

    async def test_concurrent_misses_share_one_lookup(self) -> None:
        pending: Deferred[object] = Deferred()
        first = Deferred.fromCoroutine(self.cache.get("k", lambda: pending))
        second = Deferred.fromCoroutine(self.cache.get("k", lambda: self.lookup("second")))
        pending.callback("shared")
        self.assertEqual((await first, await second), ("shared", "shared"))
        self.assertEqual(self.calls, 0)

    async def test_a_miss_after_a_write_does_not_share_a_lookup_started_before_it(self) -> None:
        pending: Deferred[object] = Deferred()
        first = Deferred.fromCoroutine(self.cache.get("k", lambda: pending))
        self.generation += 1
        self.assertEqual(await self.cache.get("k", lambda: self.lookup("fresh")), "fresh")
        pending.callback("maybe stale")
        self.assertEqual(await first, "maybe stale")

    async def test_a_failed_lookup_fails_every_request_that_shared_it(self) -> None:
        pending: Deferred[object] = Deferred()
        first = Deferred.fromCoroutine(self.cache.get("k", lambda: pending))
        second = Deferred.fromCoroutine(self.cache.get("k", lambda: self.lookup("unused")))
        pending.errback(KeyError("gone"))
        self.failureResultOf(first, KeyError)
        self.failureResultOf(second, KeyError)
        self.assertEqual(self.calls, 0)

    async def test_waiters_look_up_themselves_when_the_shared_lookup_is_cancelled(self) -> None:
        pending: Deferred[object] = Deferred()
        first = Deferred.fromCoroutine(self.cache.get("k", lambda: pending))
        second = Deferred.fromCoroutine(self.cache.get("k", lambda: self.lookup("own")))
        first.cancel()
        self.failureResultOf(first, CancelledError)
        self.assertEqual(await second, "own")
        self.assertEqual(self.calls, 1)


class OtherProcessWriteTests(RegistryTestCase):
    """A write by another process on the same data dir (``txoci gc``, a worker) is seen at once."""

    async def test_a_tag_deleted_by_another_writer_is_gone_at_once(self) -> None:
        digest, _ = await self.push_image("cache/shared", "latest", [b"layer"])
        for _ in range(2):  # the second GET is served from the cache
            response, _ = await self.request("GET", "/v2/cache/shared/manifests/latest")
            self.assertEqual(response.code, 200)
        connection = connect(os.path.join(self.data_dir, "metadata.sqlite3"))
        self.addCleanup(connection.close)
        await deferToThread(write, connection, lambda tx: tx.delete_tag("cache/shared", "latest"))
        response, body = await self.request("GET", "/v2/cache/shared/manifests/latest")
        self.assertError(response, body, 404, "MANIFEST_UNKNOWN")
        response, _ = await self.request("GET", f"/v2/cache/shared/manifests/{digest}")
        self.assertEqual(response.code, 200)


class WriteGenerationTests(TestCase):
    def test_every_handle_on_the_file_sees_every_bump(self) -> None:
        path = os.path.abspath(self.mktemp())
        first, second = WriteGeneration(path), WriteGeneration(path)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        start = first.value
        for handle in (first, second):
            with handle.locked():
                handle.bump()
        self.assertEqual((first.value, second.value), (start + 2, start + 2))
