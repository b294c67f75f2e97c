"""
Readiness of a registry: can its metadata store and data dir be used?

:class:`HealthChecker` answers in milliseconds and never touches the blobs:

- the metadata store runs a trivial read transaction and an empty write
  transaction (which takes and releases SQLite's write lock);
- the data dir gets a small probe file written, fsynced and unlinked, on a
  thread of its own, never the reactor thread.

Every check has a short timeout, so a hung disk turns into "not ready"
instead of a hung probe.  A check still running from an earlier probe is
shared, not started again, so a stuck disk never piles up threads.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from txoci.storage.interfaces import IMetadataStore, IMetadataTransaction

#: Seconds each check may take before the registry counts as not ready.
CHECK_TIMEOUT = 2.0
#: The probe file written (and removed) in the data dir.
PROBE_NAME = ".txoci-readyz-probe"


@attrs.frozen
class Readiness:
    """The outcome of a readiness probe: a reason per failed check."""

    failures: dict[str, str] = attrs.field(factory=dict)

    @property
    def ready(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        """The body ``/readyz`` answers with."""
        checks = {name: self.failures.get(name, "ok") for name in CHECKS}
        return {"status": "ready" if self.ready else "not ready", "checks": checks}


#: The checks, in the order they are reported.
CHECKS = ("metadata", "data_dir")


def _probe_read(tx: IMetadataTransaction) -> None:
    tx.repository_exists("txoci/readyz")


def _probe_write(tx: IMetadataTransaction) -> None:
    """Nothing to change: taking and committing the write transaction is the check."""


def _probe_data_dir(data_dir: str) -> None:
    path = os.path.join(data_dir, PROBE_NAME)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"ready\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)


def _reason(error: BaseException) -> str:
    if isinstance(error, DeferredTimeout):
        return "timed out"
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class HealthChecker:
    """Readiness checks over one registry's stores, for ``/readyz``."""

    def __init__(
        self,
        metadata: IMetadataStore,
        data_dir: str,
        reactor: Any,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self._metadata = metadata
        self._data_dir = data_dir
        self._reactor: IReactorTime = reactor
        self._threads: IReactorFromThreads = reactor
        self.timeout = timeout
        self._pool = ThreadPool(minthreads=0, maxthreads=1, name="txoci-health")
        #: The waiters of each check still running, shared by every probe until it ends.
        self._running: dict[str, list[Deferred[None]]] = {}

    def _shared(self, name: str, start: Callable[[], Awaitable[None]]) -> Deferred[None]:
        """A wait on check ``name``, starting it unless it is still running."""
        # Each caller gets its own Deferred, so a timeout cancels only its wait.
        waiter: Deferred[None] = Deferred()
        waiters = self._running.get(name)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        waiters = self._running[name] = [waiter]

        def done(result: object) -> None:
            for each in self._running.pop(name, []):
                if each.called:
                    continue
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(None)

        Deferred.fromCoroutine(_await(start)).addBoth(done)
        return waiter

    async def _metadata_check(self) -> None:
        await self._metadata.read(_probe_read)
        await self._metadata.transact(_probe_write)

    async def _data_dir_check(self) -> None:
        if not self._pool.started:
            self._pool.start()
        await deferToThreadPool(self._threads, self._pool, _probe_data_dir, self._data_dir)

    async def _check(self, name: str, start: Callable[[], Awaitable[None]]) -> str | None:
        waiter = self._shared(name, start)
        waiter.addTimeout(self.timeout, self._reactor)
        try:
            await waiter
        except Exception as error:
            return _reason(error)
        return None

    async def readiness(self) -> Readiness:
        """Run every check at once; the failures and their reasons."""
        checks = {
            "metadata": Deferred.fromCoroutine(self._check("metadata", self._metadata_check)),
            "data_dir": Deferred.fromCoroutine(self._check("data_dir", self._data_dir_check)),
        }
        failures = {}
        for name, check in checks.items():
            reason = await check
            if reason is not None:
                failures[name] = reason
        return Readiness(failures)

    def close(self) -> None:
        """Stop the probe thread (a probe stuck on a hung disk is left behind)."""
        if self._pool.started:
            self._pool.stop()


async def _await(start: Callable[[], Awaitable[None]]) -> None:
    await start()

