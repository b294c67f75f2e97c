"""
A short-lived cache of metadata lookups for the hot read paths (``GET`` and
``HEAD`` of manifests, ``HEAD`` of blobs, tag pages).

Correctness rests on the metadata store's write generation
(:attr:`txoci.storage.interfaces.IMetadataStore.generation`), a counter
shared by every process on the data dir (the workers of ``twistd oci
--workers``, ``txoci gc``, ``txoci check --repair``), which changes once a
write transaction holds the database's write lock and again after it
committed:

- an entry is stored only if the generation did not change while its lookup
  ran, so a lookup that raced with a write never stores what the write
  replaced;
- an entry is used only while the generation is still the one it was read
  at, so every write (push, tag move, delete, garbage collection, in any
  process) invalidates everything at once, before its client is answered.

Readers therefore see every write as soon as it was acknowledged, exactly as
without the cache.

Concurrent misses on one key share a single lookup, provided the generation
is still the one that lookup started at (so nothing was written since it
began): when a hot entry expires under load, one query goes to the database
instead of one per waiting request.

Entries also expire after ``ttl`` seconds: a bound on staleness should a
writer die between its commit and its second bump.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

T = TypeVar("T")

#: Entries kept at most; the cache is cleared when full (a cheap, adequate policy
#: for lookups that are re-read within milliseconds when hot).
MAX_ENTRIES = 20_000
#: Bytes of cached values (manifest bodies) kept at most.
MAX_BYTES = 64 * 1024 * 1024

#: What the waiters of a lookup get when the request running it was cancelled.
_CANCELLED = object()


class LookupCache:
    """Lookups by key, valid for one write generation and at most ``ttl`` seconds."""

    def __init__(
        self,
        clock: IReactorTime,
        generation: Callable[[], int],
        ttl: float,
        *,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._clock = clock
        self._generation = generation
        self.ttl = ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        #: key -> (expiry time, value), all read at ``_entries_generation``.
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._bytes = 0
        self._entries_generation = -1
        #: key -> (generation it started at, requests waiting for it) of lookups in flight.
        self._in_flight: dict[Hashable, tuple[int, list[Deferred[Any]]]] = {}

    def _clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    async def get(
        self,
        key: Hashable,
        lookup: Callable[[], Awaitable[T]],
        size: Callable[[T], int] = lambda value: 0,
    ) -> T:
        """The value of ``key``: cached, or from ``lookup()`` (and then cached if it may be)."""
        if self.ttl <= 0:
            return await lookup()
        generation = self._generation()
        if generation != self._entries_generation:
            # Something was written since the entries were read: none is valid.
            self._clear()
            self._entries_generation = generation
        now = self._clock.seconds()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            value: T = entry[1]
            return value
        in_flight = self._in_flight.get(key)
        if in_flight is not None and in_flight[0] == generation:
            waiter: Deferred[Any] = Deferred()
            in_flight[1].append(waiter)
            shared = await waiter
            if shared is _CANCELLED:
                # The request that ran the lookup went away; its waiters did not.
                return await self.get(key, lookup, size)
            result: T = shared
            return result
        waiters: list[Deferred[Any]] = []
        self._in_flight[key] = (generation, waiters)
        try:
            value = await lookup()
        except CancelledError:
            self._landed(key, waiters)
            for waiter in waiters:
                waiter.callback(_CANCELLED)
            raise
        except BaseException:
            failure = Failure()
            self._landed(key, waiters)
            for waiter in waiters:
                waiter.errback(failure)
            raise
        self._landed(key, waiters)
        for waiter in waiters:
            waiter.callback(value)
        cost = size(value)
        if self._generation() != generation or cost > self._max_bytes // 16:
            return value
        if len(self._entries) >= self._max_entries or self._bytes + cost > self._max_bytes:
            self._clear()
        self._entries[key] = (now + self.ttl, value)
        self._bytes += cost
        return value

    def _landed(self, key: Hashable, waiters: list[Deferred[Any]]) -> None:
        """The lookup with ``waiters`` finished: later misses start their own."""
        in_flight = self._in_flight.get(key)
        if in_flight is not None and in_flight[1] is waiters:
            del self._in_flight[key]
