"""
``twistd oci --workers N``: one registry served by N processes, so that it
uses every core.

The parent process (the twistd service, :class:`WorkerPool`) opens the
listening sockets, stops accepting on them itself, and starts N workers
(``python -m txoci.service.worker``), handing each the sockets as inherited
file descriptors.  Every worker adopts them
(:class:`~twisted.internet.endpoints.AdoptedStreamServerEndpoint`) and runs an
ordinary :class:`~txoci.service.embed.RegistryService` on the shared data dir,
so the kernel spreads new connections over the workers.

What keeps several processes on one data dir correct:

- SQLite serialises writers across processes (``BEGIN IMMEDIATE`` and a busy
  timeout), and every process reads committed snapshots (WAL);
- the write generation (:class:`txoci.storage.sqlite.WriteGeneration`) is
  shared, so no worker's lookup cache outlives a write made by another;
- an upload is locked (``flock``) by the request writing to it, and a worker
  re-checks the recorded offset before reusing an upload file it still has
  open, so consecutive ``PATCH`` requests may land on different workers.

Each worker's ``/metrics`` answers for all of them: they share a
``prometheus_client`` multiprocess directory (see :mod:`txoci.service.metrics`).

Workers log by writing Twisted's JSON log events to a pipe; the parent
re-publishes them (with a ``worker`` field) to its own observers, so
``--log-format`` and ``--logfile`` work as with one process.  A worker that
dies is restarted after a back-off.  On SIGTERM the parent passes SIGTERM on,
and each worker drains its requests as a single process would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import ILogObserver, Logger, eventFromJSON, globalLogPublisher
from twisted.python.failure import Failure

from txoci.service.embed import LoggingService, Settings
from txoci.service.metrics import MULTIPROCESS_DIRECTORY
from txoci.web.site import HANDLER_GRACE

log = Logger()

#: Seconds before restarting a worker that died, doubled on each quick death.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
#: A worker that lived this long is healthy: its next restart waits RESTART_DELAY.
HEALTHY_SECONDS = 60.0
#: The first descriptor handed to a worker (0-2 are its standard streams).
FIRST_FD = 3

#: Address families a worker can adopt, by the name used on its command line.
FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}


class WorkerSetupError(Exception):
    """The listening endpoints cannot be shared with worker processes."""


@attrs.frozen
class SharedSocket:
    """A listening socket the workers inherit: its role and address family."""

    role: str  # "registry" or "metrics"
    family: str  # a key of FAMILIES
    fileno: int


def check_shareable(descriptions: Sequence[str]) -> None:
    """Refuse endpoints whose sockets workers cannot adopt (TLS ones)."""
    for description in descriptions:
        if description.split(":", 1)[0].strip().lower() == "ssl":
            raise WorkerSetupError(
                f"--workers cannot share the TLS endpoint {description.split(':', 1)[0]}:...; "
                "terminate TLS in a reverse proxy in front of plain tcp: endpoints, "
                "or run a single process"
            )


def _family_name(port: IListeningPort) -> str:
    family = getattr(port, "socket").family  # noqa: B009 - tcp and unix ports both have one
    for name, value in FAMILIES.items():
        if value == family:
            return name
    raise WorkerSetupError(f"cannot share a listening socket of address family {family}")


class _WorkerProtocol(ProcessProtocol):
    """One worker process: re-publishes its log events and reports its end."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.ended: Deferred[None] = Deferred()
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *records, self._buffer = self._buffer.split(b"\n")
        for record in records:
            self._publish(record)

    def _publish(self, record: bytes) -> None:
        text = record.decode("utf-8", "replace").lstrip("\x1e").strip()
        if not text:
            return
        try:
            event = eventFromJSON(text)
        except ValueError:
            log.warn("worker {worker}: {line}", worker=self.index, line=text)
            return
        event["worker"] = self.index
        globalLogPublisher(event)

    def processEnded(self, reason: Failure) -> None:
        if self._buffer:
            self._publish(self._buffer)
            self._buffer = b""
        self.pool._worker_ended(self, reason)
        self.ended.callback(None)


class WorkerPool(LoggingService):
    """
    The parent of ``twistd oci --workers N``: listens, and keeps N workers
    serving on the shared sockets.
    """

    def __init__(
        self,
        settings: Settings,
        arguments: Sequence[str],
        listen: Sequence[str],
        workers: int,
        reactor: Any = None,
        *,
        metrics_listen: Sequence[str] = (),
        shutdown_timeout: float,
        log_observer: ILogObserver | None = None,
    ) -> None:
        if workers < 2:
            raise ValueError("a worker pool needs at least two workers")
        self.settings = settings
        #: The ``twistd oci`` arguments, which each worker parses again: the
        #: same settings, read the same way (``--config`` included).
        self.arguments = list(arguments)
        self.listen = list(listen)
        self.metrics_listen = list(metrics_listen)
        self.workers = workers
        self.shutdown_timeout = shutdown_timeout
        self.log_observer = log_observer
        self._reactor = reactor
        self.ports: list[IListeningPort] = []
        self.sockets: list[SharedSocket] = []
        self.processes: dict[int, Any] = {}
        self._protocols: dict[int, _WorkerProtocol] = {}
        self._delays = [RESTART_DELAY] * workers
        self._started_at = [0.0] * workers
        self._restarts: dict[int, Any] = {}
        self._stopping = False
        #: Where the workers keep their metrics (prometheus_client multiprocess mode).
        self.metrics_directory: str | None = None

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            return reactor
        return self._reactor

    def startService(self) -> None:
        super().startService()
        self._starting = Deferred.fromCoroutine(self._start())

        def failed(failure: Failure) -> None:
            log.failure("txoci failed to start its workers", failure)
            self.reactor.stop()

        self._starting.addErrback(failed)

    async def _start(self) -> None:
        # The data dir is created and migrated once, here, before the workers
        # race to do it.
        from txoci.service.embed import open_registry

        opened = await open_registry(self.settings, self.reactor)
        await opened.close()
        # Fresh for each start: counters begin at zero, as a single process's do.
        self.metrics_directory = tempfile.mkdtemp(prefix="txoci-metrics-")
        for role, descriptions in (("registry", self.listen), ("metrics", self.metrics_listen)):
            for description in descriptions:
                port = await serverFromString(self.reactor, description).listen(Factory.forProtocol(Protocol))
                # The workers accept; the parent only holds the socket open.
                port.stopReading()  # type: ignore[attr-defined]
                self.ports.append(port)
                self.sockets.append(SharedSocket(role, _family_name(port), port.fileno()))  # type: ignore[attr-defined]
                log.info("txoci serving {role} of {data_dir} on {address} with {workers} workers",
                         role="the registry" if role == "registry" else "metrics and health",
                         data_dir=self.settings.data_dir, address=port.getHost(),
                         workers=self.workers)
        for index in range(self.workers):
            self._spawn(index)

    def worker_arguments(self, index: int) -> list[str]:
        """The command line of worker ``index``."""
        sockets = [
            {"role": shared.role, "family": shared.family, "fd": FIRST_FD + position}
            for position, shared in enumerate(self.sockets)
        ]
        configuration = {
            "index": index,
            "parent": os.getpid(),
            "arguments": self.arguments,
            "sockets": sockets,
            "shutdown_timeout": self.shutdown_timeout,
        }
        return [sys.executable, "-m", "txoci.service.worker", json.dumps(configuration)]

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        child_fds: dict[int, int | str] = {0: "w", 1: "r", 2: 2}
        for position, shared in enumerate(self.sockets):
            child_fds[FIRST_FD + position] = shared.fileno
        protocol = _WorkerProtocol(self, index)
        self._protocols[index] = protocol
        self._started_at[index] = self.reactor.seconds()
        environment = dict(os.environ)
        assert self.metrics_directory is not None
        environment[MULTIPROCESS_DIRECTORY] = self.metrics_directory
        self.processes[index] = self.reactor.spawnProcess(
            protocol, sys.executable, self.worker_arguments(index), env=environment,
            childFDs=child_fds,
        )
        log.info("txoci worker {worker} started (pid {pid})", worker=index,
                 pid=self.processes[index].pid)

    def _worker_ended(self, protocol: _WorkerProtocol, reason: Failure) -> None:
        index = protocol.index
        if self._protocols.get(index) is protocol:
            del self._protocols[index]
            self.processes.pop(index, None)
        if self._stopping:
            return
        status = "exited" if reason.check(ProcessDone) else f"ended: {reason.getErrorMessage()}"
        lived = self.reactor.seconds() - self._started_at[index]
        if lived >= HEALTHY_SECONDS:
            self._delays[index] = RESTART_DELAY
        delay = self._delays[index]
        self._delays[index] = min(delay * 2, MAX_RESTART_DELAY)
        log.error("txoci worker {worker} {status}; restarting it in {delay}s",
                  worker=index, status=status, delay=delay)
        self._restarts[index] = self.reactor.callLater(delay, self._spawn, index)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        try:
            await self._starting
        except Exception:
            pass
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        protocols = list(self._protocols.values())
        for protocol in protocols:
            self._signal(protocol.index, signal.SIGTERM)
        # Each worker drains for up to the shutdown timeout, then its handlers
        # get their grace period to record upload progress.
        deadline = self.shutdown_timeout + HANDLER_GRACE + 5.0
        killer = self.reactor.callLater(deadline, self._kill_all)
        await DeferredList([protocol.ended for protocol in protocols])
        if killer.active():
            killer.cancel()
        for port in self.ports:
            await maybeDeferred(port.stopListening)
        self.ports = []
        if self.metrics_directory is not None:
            shutil.rmtree(self.metrics_directory, ignore_errors=True)
            self.metrics_directory = None

    def _signal(self, index: int, signal_number: int) -> None:
        process = self.processes.get(index)
        if process is None:
            return
        try:
            process.signalProcess(signal_number)
        except (ProcessExitedAlready, OSError):
            pass

    def _kill_all(self) -> None:
        for index in list(self.processes):
            log.warn("txoci worker {worker} did not stop in time; killing it", worker=index)
            self._signal(index, signal.SIGKILL)
