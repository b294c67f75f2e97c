"""
A short-lived cache of metadata lookups for the hot read paths (``GET`` and
``HEAD`` of manifests, ``HEAD`` of blobs, tag pages).

Correctness rests on the metadata store's write generation
(:attr:`txoci.storage.interfaces.IMetadataStore.generation`), which changes
when any write transaction of this process starts and again when it ends:

- an entry is stored only if no write started or ended while its lookup ran,
  so a lookup that raced with a write never stores what the write replaced;
- an entry is used only while the generation is still the one it was read
  at, so every write in this process (push, tag move, delete, garbage
  collection) invalidates everything at once, before its client is answered.

Readers in this process therefore see their own and each other's writes at
once, exactly as without the cache.  Writes made by *another* process on the
same data dir (``txoci gc``, ``txoci check --repair``) are not seen by the
generation; entries expire after ``ttl`` seconds, which bounds that staleness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from twisted.internet.interfaces import IReactorTime

T = TypeVar("T")

#: Entries kept at most; the cache is cleared when full (a cheap, adequate policy
#: for lookups that are re-read within milliseconds when hot).
MAX_ENTRIES = 20_000
#: Bytes of cached values (manifest bodies) kept at most.
MAX_BYTES = 64 * 1024 * 1024


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
        value = await lookup()
        cost = size(value)
        if self._generation() != generation or cost > self._max_bytes // 16:
            return value
        if len(self._entries) >= self._max_entries or self._bytes + cost > self._max_bytes:
            self._clear()
        self._entries[key] = (now + self.ttl, value)
        self._bytes += cost
        return value
