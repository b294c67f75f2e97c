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
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import IResource
from twisted.web.server import Site

from txoci.registry.operations import Registry, RegistryConfig
from txoci.storage.filesystem import FilesystemBlobStore
from txoci.storage.sqlite import SQLiteMetadataStore
from txoci.web.app import RegistryApp, root_resource
from txoci.web.request import streaming_site

log = Logger()

#: Threads for blob file work: enough to overlap hashing with disk waits.
BLOB_THREADS = 8


@attrs.frozen
class Settings:
    """Everything needed to open a registry."""

    data_dir: str = "txoci-data"
    deletes_enabled: bool = True
    chunk_min_length: int = 1024 * 1024

    def registry_config(self) -> RegistryConfig:
        return RegistryConfig(
            deletes_enabled=self.deletes_enabled, chunk_min_length=self.chunk_min_length
        )


class OpenRegistry:
    """A registry open on a data dir: its operations, resources and lifetime."""

    def __init__(self, registry: Registry, metadata: SQLiteMetadataStore, pool: ThreadPool) -> None:
        self.registry = registry
        self._metadata = metadata
        self._pool = pool

    def resource(self) -> IResource:
        """A site root serving the API at ``/v2``."""
        return root_resource(self.registry)

    def api_resource(self) -> IResource:
        """The resource for the tree below ``/v2`` (mount it as ``v2``)."""
        return RegistryApp(self.registry).resource()

    def site(self, **kwargs: Any) -> Site:
        """A :class:`Site` for :meth:`resource`, with streaming request bodies."""
        return streaming_site(self.resource(), **kwargs)

    async def close(self) -> None:
        """Close the stores; open uploads stay resumable."""
        await self.registry.close()
        await self._metadata.close()
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
    return OpenRegistry(registry, metadata, pool)


class RegistryService(Service):
    """Serves a registry on endpoint strings (``tcp:5000``, ``ssl:...``)."""

    def __init__(self, settings: Settings, listen: Sequence[str], reactor: Any = None) -> None:
        self.settings = settings
        self.listen = list(listen)
        self._reactor = reactor
        self.opened: OpenRegistry | None = None
        self.ports: list[IListeningPort] = []

    def startService(self) -> None:
        super().startService()
        self._starting = Deferred.fromCoroutine(self._start())

        def failed(failure: Any) -> None:
            log.failure("txoci failed to start", failure)
            from twisted.internet import reactor

            reactor.stop()  # type: ignore[attr-defined]

        self._starting.addErrback(failed)

    async def _start(self) -> None:
        from twisted.internet import reactor as default_reactor

        reactor = self._reactor or default_reactor
        self.opened = await open_registry(self.settings, reactor)
        site = self.opened.site()
        for description in self.listen:
            port = await serverFromString(reactor, description).listen(site)
            self.ports.append(port)
            log.info("txoci serving {data_dir} on {address}",
                     data_dir=self.settings.data_dir, address=port.getHost())

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
        if self.opened is not None:
            await self.opened.close()
            self.opened = None
