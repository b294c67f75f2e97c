"""
Prometheus metrics of one registry, built on ``prometheus_client``.

Each :class:`RegistryMetrics` has its own
:class:`~prometheus_client.CollectorRegistry` (never the global one), so
several registries in one process keep separate numbers.

Request metrics come from the access records of
:class:`~txoci.web.site.RegistrySite`, labelled by route *template*
(``/v2/{name}/blobs/{digest}``), never by a raw repository name, so the
number of series stays bounded.  What the registry stores (blob and manifest
counts and bytes, uploads in progress) comes from aggregate queries on the
metadata store, run off the reactor thread and cached for a few seconds, so
scrapes never touch the blobs and cost one query batch per cache period.

Under ``twistd oci --workers N`` the parent gives every worker the same
``PROMETHEUS_MULTIPROC_DIR``, so ``prometheus_client`` keeps each process's
values in files there and any worker's ``/metrics`` answers with the sum over
all of them (``prometheus_client``'s multiprocess mode); the stored-content
gauges show the most recent figure any worker read.
"""

from __future__ import annotations

import os
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from txoci.storage import gc
from txoci.storage.interfaces import IMetadataStore, IMetadataTransaction, StorageStats
from txoci.web.accesslog import UNMATCHED, RequestRecord

#: Seconds the stored-content figures are reused before being queried again.
STATS_CACHE_SECONDS = 5.0
#: Latency buckets (seconds): manifest lookups take milliseconds, layer pushes minutes.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, float("inf"),
)
#: The ``status`` label of a request whose client went away before the answer.
ABORTED = "aborted"
#: Methods counted by name; any other (a client may send anything) counts as :data:`OTHER_METHOD`,
#: so the labels of the request metrics stay a small, fixed set.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Set (by the worker pool) to share the metrics of several processes.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
#: How a gauge of figures read from the shared metadata combines across processes.
_SHARED_FIGURE: Final = "mostrecent"


def multiprocess_directory() -> str | None:
    """The directory of multiprocess metrics, if this process shares its metrics."""
    return os.environ.get(MULTIPROCESS_DIRECTORY) or None


def _stats(tx: IMetadataTransaction) -> StorageStats:
    return tx.storage_stats()


class RegistryMetrics:
    """The metrics of one registry, in a :class:`CollectorRegistry` of their own."""

    def __init__(
        self,
        metadata: IMetadataStore,
        clock: IReactorTime,
        cache_seconds: float = STATS_CACHE_SECONDS,
    ) -> None:
        self._metadata = metadata
        self._clock = clock
        self.cache_seconds = cache_seconds
        self._stats_at: float | None = None
        self._waiters: list[Deferred[None]] | None = None
        #: The request metrics' children by (route, method, status): ``labels()`` is
        #: costly enough to show in a profile of small requests.
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}
        registry = self.registry = CollectorRegistry()
        request_labels = ["route", "method"]
        self.requests = Counter(
            "txoci_http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=registry,
        )
        self.latency = Histogram(
            "txoci_http_request_duration_seconds",
            "Time from a request's first line to the end of its answer.",
            request_labels, buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.received = Counter(
            "txoci_http_received_bytes", "Request body bytes received.", request_labels, registry=registry,
        )
        self.sent = Counter(
            "txoci_http_sent_bytes", "Response body bytes sent.", request_labels, registry=registry,
        )
        self.uploads = Gauge(
            "txoci_uploads_in_progress", "Upload sessions started and not yet finished or cancelled.",
            registry=registry, multiprocess_mode=_SHARED_FIGURE,
        )
        self.upload_bytes = Gauge(
            "txoci_uploads_in_progress_bytes", "Bytes held durably by upload sessions in progress.",
            registry=registry, multiprocess_mode=_SHARED_FIGURE,
        )
        self.blobs = Gauge("txoci_blobs", "Blobs stored (each content once).", registry=registry,
                           multiprocess_mode=_SHARED_FIGURE)
        self.blob_bytes = Gauge("txoci_blobs_bytes", "Bytes of the blobs stored.", registry=registry,
                                multiprocess_mode=_SHARED_FIGURE)
        self.manifests = Gauge(
            "txoci_manifests", "Manifests stored, counted once per repository holding them.",
            registry=registry, multiprocess_mode=_SHARED_FIGURE,
        )
        self.manifest_bytes = Gauge(
            "txoci_manifests_bytes", "Bytes of the manifests stored.", registry=registry,
            multiprocess_mode=_SHARED_FIGURE,
        )
        self.repositories = Gauge("txoci_repositories", "Repositories.", registry=registry,
                                  multiprocess_mode=_SHARED_FIGURE)
        self.tags = Gauge("txoci_tags", "Tags, across every repository.", registry=registry,
                          multiprocess_mode=_SHARED_FIGURE)
        self.gc_runs = Counter(
            "txoci_gc_runs", "Garbage collection runs, by result (ok or error).", ["result"],
            registry=registry,
        )
        self.gc_reclaimed = Counter(
            "txoci_gc_reclaimed", "Things garbage collection removed, by kind (manifest, link, "
            "blob, orphan-blob-file, upload, orphan-upload-file).", ["kind"], registry=registry,
        )
        self.gc_reclaimed_bytes = Counter(
            "txoci_gc_reclaimed_bytes", "Bytes garbage collection freed, by kind.", ["kind"],
            registry=registry,
        )
        self.gc_kept = Counter(
            "txoci_gc_kept", "GC candidates found in use again by the re-check at deletion time.",
            registry=registry,
        )
        self.gc_last_run = Gauge(
            "txoci_gc_last_success_timestamp_seconds",
            "When the last successful garbage collection run finished (Unix time).",
            registry=registry, multiprocess_mode="max",
        )
        self.gc_duration = Gauge(
            "txoci_gc_last_duration_seconds", "How long the last successful GC run took.",
            registry=registry, multiprocess_mode=_SHARED_FIGURE,
        )
        self.auth_failures = Counter(
            "txoci_auth_failures",
            "Refused logins and bearer tokens, by reason (password, rate_limited, token_expired...).",
            ["reason"], registry=registry,
        )
        self.stats_errors = Counter(
            "txoci_metrics_store_query_errors",
            "Failed queries for the stored-content figures (the last values are kept).",
            registry=registry,
        )

    def observe(self, record: RequestRecord) -> None:
        """Count one finished (or cut off) request; an observer of the site."""
        route = record.route or UNMATCHED
        method = record.method if record.method in COUNTED_METHODS else OTHER_METHOD
        status = ABORTED if record.status is None else str(record.status)
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, status),
                self.latency.labels(route, method),
                self.received.labels(route, method),
                self.sent.labels(route, method),
            )
        requests, latency, received, sent = children
        requests.inc()
        latency.observe(record.duration)
        if record.bytes_in:
            received.inc(record.bytes_in)
        if record.bytes_out:
            sent.inc(record.bytes_out)

    __call__ = observe

    def observe_gc(self, report: gc.Report, duration: float) -> None:
        """Count a finished garbage collection run."""
        self.gc_runs.labels("ok").inc()
        for kind in gc.KINDS:
            self.gc_reclaimed.labels(kind).inc(report.count(kind))
            self.gc_reclaimed_bytes.labels(kind).inc(report.size(kind))
        self.gc_kept.inc(report.kept)
        self.gc_last_run.set_to_current_time()
        self.gc_duration.set(duration)

    def gc_failed(self) -> None:
        self.gc_runs.labels("error").inc()
    def auth_failed(self, reason: str) -> None:
        """Count one refused login or token (the reasons are a small fixed set)."""
        self.auth_failures.labels(reason).inc()

    def _apply(self, stats: StorageStats) -> None:
        self.repositories.set(stats.repositories)
        self.blobs.set(stats.blobs)
        self.blob_bytes.set(stats.blob_bytes)
        self.manifests.set(stats.manifests)
        self.manifest_bytes.set(stats.manifest_bytes)
        self.tags.set(stats.tags)
        self.uploads.set(stats.uploads)
        self.upload_bytes.set(stats.upload_bytes)

    async def _refresh(self) -> None:
        try:
            stats = await self._metadata.read(_stats)
        except Exception:
            self.stats_errors.inc()
            raise
        self._apply(stats)
        self._stats_at = self._clock.seconds()

    async def refresh(self) -> None:
        """Query the stored-content figures unless the cached ones are recent."""
        now = self._clock.seconds()
        if self._stats_at is not None and now - self._stats_at < self.cache_seconds:
            return
        # Concurrent scrapes share one query batch.
        waiter: Deferred[None] = Deferred()
        if self._waiters is not None:
            self._waiters.append(waiter)
        else:
            self._waiters = [waiter]
            Deferred.fromCoroutine(self._refresh()).addBoth(self._refreshed)
        await waiter

    def _refreshed(self, result: object) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    async def exposition(self) -> bytes:
        """The metrics in the Prometheus text format (stored-content figures refreshed)."""
        try:
            await self.refresh()
        except Exception:
            pass  # Counted in txoci_metrics_store_query_errors; the last values stand.
        directory = multiprocess_directory()
        if directory is None:
            return bytes(generate_latest(self.registry))
        every_process = CollectorRegistry()
        MultiProcessCollector(every_process, directory)
        return bytes(generate_latest(every_process))
