"""
A host Twisted web application that serves a txoci registry as its ``/v2``.

The application has its own root resource with a ``/hello`` page; the
registry is mounted beside it as the ``v2`` child, which is where OCI clients
look for it.  Run it with::

    python docs/examples/embed_app.py [DATA_DIR] [PORT]

and then, for instance, ``curl -s localhost:8080/hello`` and
``skopeo copy --dest-tls-verify=false docker-archive:image.tar docker://localhost:8080/demo:v1``.

:func:`main` starts everything and returns a :class:`RunningApp`, so a test
(or a bigger program) can call it, find the listening port and stop it again.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import react
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

import txoci
from txoci import streaming_site


class Hello(Resource):
    """The host application's own page."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"Hello from the host application; the registry is at /v2/.\n"


def build_root(opened: txoci.OpenRegistry) -> Resource:
    """The host's root resource: its own pages, and the registry as ``v2``."""
    root = Resource()
    root.putChild(b"hello", Hello())
    root.putChild(b"v2", opened.api_resource())
    return root


def build_site(root: Resource, streaming: bool = True) -> Site:
    """
    A :class:`Site` for ``root``.

    The streaming site hands blob bodies to the registry as they arrive.  A
    plain ``Site(root)`` works too, but twisted.web then collects each whole
    request body (in memory or a temporary file) before the registry sees it.
    """
    return streaming_site(root) if streaming else Site(root)


class RunningApp:
    """The host application, listening."""

    def __init__(self, opened: txoci.OpenRegistry, port: IListeningPort) -> None:
        self.opened = opened
        self.port = port

    @property
    def url(self) -> str:
        address: Any = self.port.getHost()
        return f"http://{address.host}:{address.port}"

    async def stop(self) -> None:
        """Stop listening, then close the registry (open uploads stay resumable)."""
        await maybeDeferred(self.port.stopListening)
        await self.opened.close()


async def main(
    reactor: Any,
    data_dir: str = "embed-data",
    port: int = 8080,
    interface: str = "127.0.0.1",
    streaming: bool = True,
) -> RunningApp:
    """Open the registry in ``data_dir`` and serve the host app on ``port`` (0: any free port)."""
    opened = await txoci.open_registry(txoci.Settings(data_dir=data_dir), reactor)
    try:
        site = build_site(build_root(opened), streaming)
        listening = await TCP4ServerEndpoint(reactor, port, interface=interface).listen(site)
    except BaseException:
        await opened.close()
        raise
    return RunningApp(opened, listening)


async def _serve_forever(reactor: Any, data_dir: str, port: int) -> None:
    app = await main(reactor, data_dir, port)
    print(f"serving {app.url}/hello and the registry at {app.url}/v2/ (data in {data_dir})")
    # Close the registry cleanly when the reactor shuts down (Ctrl-C).
    reactor.addSystemEventTrigger("before", "shutdown", lambda: ensureDeferred(app.stop()))
    await Deferred()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    data_dir = arguments[0] if arguments else "embed-data"
    port = int(arguments[1]) if len(arguments) > 1 else 8080
    react(lambda reactor: ensureDeferred(_serve_forever(reactor, data_dir, port)))
