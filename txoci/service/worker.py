"""
One worker of ``twistd oci --workers N`` (see :mod:`txoci.service.workers`).

Started by the parent as ``python -m txoci.service.worker CONFIGURATION``,
with the listening sockets as inherited descriptors and its standard output
a pipe to the parent, which receives its log events as Twisted JSON.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any


def _stop_with_parent(parent: int) -> None:
    """Get SIGTERM when the parent dies (even by SIGKILL): never serve orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        # The parent died before the line above took effect.
        sys.exit(0)


#: prctl(2): the signal a process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def _preformatted(observer: Any) -> Any:
    """
    Send events with their message already formatted: Twisted's JSON
    serialisation keeps every field but loses format specs (``{x:.3f}``) and
    the ``repr`` of objects it cannot serialise.
    """
    from twisted.logger import formatEvent

    def observe(event: Any) -> None:
        text = formatEvent(event)
        event = {key: value for key, value in event.items() if key != "log_flattened"}
        event["log_format"] = text.replace("{", "{{").replace("}", "}}")
        observer(event)

    return observe


def worker_settings(settings: Any, index: int) -> Any:
    """Worker ``index``'s settings: one periodic garbage collector is enough, worker 0's."""
    import attrs

    return settings if index == 0 else attrs.evolve(settings, gc_interval=None)


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    configuration: dict[str, Any] = json.loads(arguments[0])
    _stop_with_parent(configuration["parent"])

    from twisted.logger import globalLogBeginner, jsonFileLogObserver

    # Everything this process logs goes to the parent, which formats it.
    globalLogBeginner.beginLoggingTo(
        [_preformatted(jsonFileLogObserver(sys.stdout))], redirectStandardIO=False
    )

    from twisted.internet import reactor
    from twisted.internet.endpoints import AdoptedStreamServerEndpoint

    from txoci.service.embed import RegistryService
    from txoci.service.plugin import Options, settings_from_options
    from txoci.service.workers import FAMILIES

    options = Options()
    options.parseOptions(configuration["arguments"])

    def adopted(role: str) -> list[Any]:
        return [
            AdoptedStreamServerEndpoint(reactor, shared["fd"], FAMILIES[shared["family"]])
            for shared in configuration["sockets"]
            if shared["role"] == role
        ]

    service = RegistryService(
        worker_settings(settings_from_options(options), configuration["index"]),
        adopted("registry"),
        reactor,
        metrics_listen=adopted("metrics"),
        shutdown_timeout=configuration["shutdown_timeout"],
    )
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
