"""
The public way to run a registry inside a Twisted program.

:func:`open_registry` opens a data dir and returns an :class:`OpenRegistry`,
whose :meth:`~OpenRegistry.resource` is a twisted.web resource to serve (as a
site root, or as the ``v2`` child of an application's own root) and whose
:meth:`~OpenRegistry.site` is a ready :class:`~twisted.web.server.Site` with
streaming uploads.  :class:`RegistryService` wraps the same thing as an
``IService`` that also listens on endpoints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import IResource

from txoci.auth.access import AccessControl
from txoci.auth.config import AuthSettings
from txoci.registry.operations import Registry, RegistryConfig
from txoci.service.gc import GarbageCollector
from txoci.service.health import HealthChecker
from txoci.service.metrics import RegistryMetrics
from txoci.storage import gc
from txoci.storage.filesystem import FilesystemBlobStore
from txoci.storage.sqlite import SQLiteMetadataStore
from txoci.web.accesslog import AccessLog
from txoci.web.app import RegistryApp, root_resource
from txoci.web.guard import Guard, GuardedResource
from txoci.web.health import LivezResource, ReadyzResource
from txoci.web.metrics import MetricsResource
from txoci.web.request import streaming_site
from txoci.web.site import RegistrySite
from txoci.web.token import TokenResource

log = Logger()

#: Threads for blob file work: enough to overlap hashing with disk waits.
BLOB_THREADS = 8
#: Seconds in-flight requests get to finish when the service stops.
SHUTDOWN_TIMEOUT = 30.0
#: Seconds between garbage collection runs by default.
DEFAULT_GC_INTERVAL = 3600.0


@attrs.frozen
class Settings:
    """
    Everything needed to open a registry.

    :ivar data_dir: The directory holding blobs, uploads and the metadata database, created if
        missing.
    :ivar deletes_enabled: With False, ``DELETE`` of manifests, tags and blobs answers
        ``405 UNSUPPORTED`` (``twistd oci --disable-deletes``).
    :ivar chunk_min_length: The ``OCI-Chunk-Min-Length`` the registry advertises when an upload
        starts.
    """

    data_dir: str = "txoci-data"
    deletes_enabled: bool = True
    chunk_min_length: int = 1024 * 1024
    #: Authentication and access control (the ``[auth]`` table); None serves an open registry.
    auth: AuthSettings | None = None
    #: Refuse every write with 405 UNSUPPORTED; reads go on (maintenance, migrations).
    read_only: bool = False
    #: Seconds between garbage collection runs; None runs GC only on demand.
    gc_interval: float | None = DEFAULT_GC_INTERVAL
    #: Seconds a blob stays after its last link or reference went.
    gc_grace: float = gc.DEFAULT_GRACE
    #: Seconds untagged, unreferenced manifests are kept; None keeps them forever.
    manifest_retention: float | None = None
    #: Seconds an upload session may go without a request before GC purges it.
    upload_max_age: float = gc.DEFAULT_UPLOAD_MAX_AGE
    #: Emit one ``txoci.access`` log event per request; metrics count requests either way.
    access_log: bool = True

    def registry_config(self) -> RegistryConfig:
        return RegistryConfig(
            deletes_enabled=self.deletes_enabled,
            chunk_min_length=self.chunk_min_length,
            read_only=self.read_only,
        )

    def gc_policy(self) -> gc.Policy:
        return gc.Policy(self.gc_grace, self.manifest_retention, self.upload_max_age)


class OpenRegistry:
    """
    A registry open on a data dir: its operations, resources and lifetime,
    its health checks (:attr:`health`) and its metrics (:attr:`metrics`).
    """

    def __init__(
        self,
        registry: Registry,
        metadata: SQLiteMetadataStore,
        pool: ThreadPool,
        data_dir: str | None = None,
        reactor: Any = None,
        auth: AuthSettings | None = None,
        gc_policy: gc.Policy | None = None,
        gc_interval: float | None = None,
        access_log: bool = True,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.registry = registry
        self._metadata = metadata
        self._pool = pool
        self._reactor = reactor
        #: Whether :meth:`site` logs one ``txoci.access`` event per request.
        self.access_log = access_log
        data_dir = data_dir if data_dir is not None else os.path.dirname(os.path.abspath(metadata.path))
        #: The readiness checks behind ``/readyz``.
        self.health = HealthChecker(metadata, data_dir, reactor)
        #: The Prometheus metrics behind ``/metrics``, in a registry of their own.
        self.metrics = RegistryMetrics(metadata, reactor)
        #: Authentication and authorization of every request; None for an open registry.
        self.guard: Guard | None = None
        if auth is not None:
            self.guard = Guard(AccessControl(auth, reactor, on_failure=self.metrics.auth_failed))
        blobs = registry.blobs
        assert isinstance(blobs, FilesystemBlobStore)
        #: Garbage collection: periodic once :meth:`GarbageCollector.start` ran
        #: (``open_registry`` does), and on demand with ``gc.run()``.
        self.gc = GarbageCollector(
            registry, blobs, data_dir, pool, reactor, gc_policy or gc.Policy(), gc_interval,
            self.metrics,
        )

    def operational_resources(self, metrics: bool = True) -> dict[bytes, IResource]:
        """``livez``, ``readyz`` and (if ``metrics``) ``metrics``, to mount at a site root."""
        resources: dict[bytes, IResource] = {
            b"livez": LivezResource(),
            b"readyz": ReadyzResource(self.health),
        }
        if metrics:
            metrics_resource: IResource = MetricsResource(self.metrics)
            if self.guard is not None:
                metrics_resource = GuardedResource(metrics_resource, self.guard.admit_metrics, "/metrics")
            resources[b"metrics"] = metrics_resource
        return resources

    def token_resources(self) -> dict[bytes, IResource]:
        """``token`` (the built-in token issuer) when it is configured, to mount at a site root."""
        if self.guard is None or self.guard.control.issuer is None:
            return {}
        return {b"token": TokenResource(self.guard)}

    def resource(self, metrics: bool = True) -> IResource:
        """
        A site root serving the API at ``/v2``, with ``/livez``, ``/readyz``
        and (unless ``metrics`` is false) ``/metrics`` beside it.
        """
        resources = {**self.operational_resources(metrics), **self.token_resources()}
        return root_resource(self.registry, resources, self.guard)

    def operations_resource(self) -> IResource:
        """A site root with only ``/livez``, ``/readyz`` and ``/metrics`` (no API)."""
        return root_resource(None, self.operational_resources())

    def api_resource(self) -> IResource:
        """The resource for the tree below ``/v2`` (mount it as ``v2``)."""
        return RegistryApp(self.registry, self.guard).resource()

    def site(self, resource: IResource | None = None, **kwargs: Any) -> RegistrySite:
        """
        A :class:`~txoci.web.site.RegistrySite` for ``resource`` (default
        :meth:`resource`), with streaming request bodies, the structured
        access log and request metrics.
        """
        site = streaming_site(
            self.resource() if resource is None else resource,
            site_class=RegistrySite,
            observers=[*([AccessLog()] if self.access_log else []), self.metrics.observe],
            clock=self._reactor,
            **kwargs,
        )
        assert isinstance(site, RegistrySite)
        return site

    async def close(self) -> None:
        """Close the stores; open uploads stay resumable."""
        await self.gc.stop()
        await self.registry.close()
        await self._metadata.close()
        self.health.close()
        self._pool.stop()


async def open_registry(settings: Settings, reactor: Any = None) -> OpenRegistry:
    """Open (creating if needed) the registry stored in ``settings.data_dir``."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    os.makedirs(settings.data_dir, exist_ok=True)
    pool = ThreadPool(minthreads=0, maxthreads=BLOB_THREADS, name="txoci-blobs")
    pool.start()
    metadata = SQLiteMetadataStore(os.path.join(settings.data_dir, "metadata.sqlite3"), reactor)
    try:
        await metadata.start()
        blobs = FilesystemBlobStore(settings.data_dir, reactor, pool)
    except BaseException:
        pool.stop()
        await metadata.close()
        raise
    registry = Registry(blobs, metadata, reactor, settings.registry_config())
    opened = OpenRegistry(
        registry, metadata, pool, settings.data_dir, reactor, settings.auth,
        gc_policy=settings.gc_policy(), gc_interval=settings.gc_interval,
        access_log=settings.access_log,
    )
    opened.gc.start()
    return opened


class LoggingService(Service):
    """A service that may bring the application's log observer (``--log-format json``)."""

    log_observer: ILogObserver | None = None

    def setServiceParent(self, parent: Any) -> None:
        # twistd asks the application for an ILogObserver before it starts logging.
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)


#: Where to listen: an endpoint string (``tcp:5000``), or an endpoint.
Listen = str | IStreamServerEndpoint


class RegistryService(LoggingService):
    """
    Serves a registry on endpoint strings (``tcp:5000``, ``ssl:...``) or
    endpoints, with
    ``/metrics`` on ``metrics_listen`` endpoints instead when there are any.

    Stopping (twistd's SIGTERM) stops listening, lets the requests in flight
    finish for up to ``shutdown_timeout`` seconds, cuts off the rest (their
    uploads stay resumable) and closes the registry.
    """

    def __init__(
        self,
        settings: Settings,
        listen: Sequence[Listen],
        reactor: Any = None,
        *,
        metrics_listen: Sequence[Listen] = (),
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        log_observer: ILogObserver | None = None,
    ) -> None:
        self.settings = settings
        self.listen = list(listen)
        self.metrics_listen = list(metrics_listen)
        self.shutdown_timeout = shutdown_timeout
        #: Installed as the application's log observer (``--log-format json``).
        self.log_observer = log_observer
        self._reactor = reactor
        self.opened: OpenRegistry | None = None
        self.ports: list[IListeningPort] = []
        self.sites: list[RegistrySite] = []


    def startService(self) -> None:
        super().startService()
        self._starting = Deferred.fromCoroutine(self._start())

        def failed(failure: Any) -> None:
            log.failure("txoci failed to start", failure)
            from twisted.internet import reactor

            reactor.stop()  # type: ignore[attr-defined]

        self._starting.addErrback(failed)

    async def _listen(
        self, reactor: Any, site: RegistrySite, descriptions: Sequence[Listen], what: str
    ) -> None:
        self.sites.append(site)
        for description in descriptions:
            endpoint = (
                serverFromString(reactor, description) if isinstance(description, str) else description
            )
            port = await endpoint.listen(site)
            self.ports.append(port)
            log.info("txoci serving {what} of {data_dir} on {address}",
                     what=what, data_dir=self.settings.data_dir, address=port.getHost())

    async def _start(self) -> None:
        from twisted.internet import reactor as default_reactor

        reactor = self._reactor or default_reactor
        self.opened = await open_registry(self.settings, reactor)
        separate = bool(self.metrics_listen)
        await self._listen(reactor, self.opened.site(self.opened.resource(metrics=not separate)),
                           self.listen, "the registry")
        if separate:
            await self._listen(reactor, self.opened.site(self.opened.operations_resource()),
                               self.metrics_listen, "metrics and health")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        try:
            await self._starting
        except Exception:
            pass
        for port in self.ports:
            await maybeDeferred(port.stopListening)
        self.ports = []
        if self.sites:
            log.info("txoci stopping: waiting up to {timeout}s for requests in flight",
                     timeout=self.shutdown_timeout)
            await gatherResults([
                Deferred.fromCoroutine(site.drain(self.shutdown_timeout)) for site in self.sites
            ])
            self.sites = []
        if self.opened is not None:
            await self.opened.close()
            self.opened = None
