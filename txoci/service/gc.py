"""
Garbage collection inside the service: :func:`txoci.storage.gc.collect` run
on a thread every ``interval`` seconds (scheduled with the reactor's
``callLater``, so tests drive it with a ``task.Clock``), and on demand.

The collector runs exactly what ``txoci gc`` runs, with two things only the
serving process knows: the uploads that have an open writer in memory are
never purged, and the blobs it deleted are forgotten by the blob store's
verified-fingerprint cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from txoci.registry.digest import Digest
from txoci.registry.operations import Registry
from txoci.service.metrics import RegistryMetrics
from txoci.storage import gc
from txoci.storage.filesystem import FilesystemBlobStore

log = Logger()


class GarbageCollector:
    """Runs GC over one open registry's data dir, periodically and on demand."""

    def __init__(
        self,
        registry: Registry,
        blobs: FilesystemBlobStore,
        data_dir: str,
        pool: ThreadPool,
        reactor: Any,
        policy: gc.Policy,
        interval: float | None,
        metrics: RegistryMetrics | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.blobs = blobs
        self.data_dir = data_dir
        self.policy = policy
        #: Seconds between runs; None (or 0) runs only on demand.
        self.interval = interval or None
        self.metrics = metrics
        self._pool = pool
        self._reactor = reactor
        self._clock: IReactorTime = reactor
        self._wall_clock = wall_clock
        self._call: IDelayedCall | None = None
        #: Callers waiting for the run in progress (empty: no run in progress).
        self._waiters: list[Deferred[gc.Report]] = []
        self._stopped = False
        #: The last finished run's report.
        self.last: gc.Report | None = None

    def start(self) -> None:
        """Schedule the periodic runs (none in read-only mode, or without an interval)."""
        if self.registry.config.read_only or self.interval is None:
            return
        self._stopped = False
        self._schedule()

    def _schedule(self) -> None:
        assert self.interval is not None
        self._call = self._clock.callLater(self.interval, self._scheduled)

    def _scheduled(self) -> None:
        self._call = None

        def again(result: object) -> None:
            if not self._stopped:
                self._schedule()

        # A failed run is logged and counted in ``run``; the schedule goes on.
        self.run().addErrback(lambda failure: None).addBoth(again)

    def run(self, dry_run: bool = False) -> Deferred[gc.Report]:
        """
        One run now; fires with its :class:`~txoci.storage.gc.Report`.  While
        a run is going, another request waits for that one instead.
        """
        if dry_run:
            return Deferred.fromCoroutine(self._run(True))
        waiter: Deferred[gc.Report] = Deferred()
        self._waiters.append(waiter)
        if len(self._waiters) == 1:
            Deferred.fromCoroutine(self._run(False)).addBoth(self._finished)
        return waiter

    def _finished(self, result: gc.Report | Failure) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _run(self, dry_run: bool) -> gc.Report:
        if self.registry.config.read_only and not dry_run:
            raise RuntimeError("garbage collection does not run in read-only mode")
        in_use = self.registry.uploads_in_use()
        started = self._wall_clock()
        try:
            report: gc.Report = await deferToThreadPool(
                self._reactor, self._pool, gc.collect, self.data_dir, self.policy, dry_run,
                None, in_use,
            )
        except Exception:
            log.failure("garbage collection failed")
            if self.metrics is not None:
                self.metrics.gc_failed()
            raise
        duration = self._wall_clock() - started
        if dry_run:
            return report
        for item in report.items:
            if item.kind == gc.BLOB:
                self.blobs.forget_verified(Digest.parse(item.subject))
        self.last = report
        if self.metrics is not None:
            self.metrics.observe_gc(report, duration)
        # Quiet when there was nothing to do: a short interval must not flood the log.
        emit = log.info if report.items or report.kept or report.recovered else log.debug
        emit(
            "garbage collection reclaimed {bytes} bytes: {blobs} blobs, {files} orphaned blob "
            "files, {manifests} manifests, {uploads} uploads, {upload_files} orphaned upload "
            "files ({kept} kept in use) in {duration:.3f}s",
            bytes=report.bytes, blobs=report.count(gc.BLOB),
            files=report.count(gc.ORPHAN_BLOB_FILE), manifests=report.count(gc.MANIFEST),
            uploads=report.count(gc.UPLOAD), upload_files=report.count(gc.ORPHAN_UPLOAD_FILE),
            kept=report.kept, duration=duration,
        )
        return report

    async def stop(self) -> None:
        """Stop scheduling runs and wait for one in progress."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._waiters:
            try:
                await self.run()
            except Exception:
                pass
