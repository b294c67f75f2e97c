"""The ``twistd oci`` command: options and ``makeService``."""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from txoci.service.embed import RegistryService, Settings

DEFAULT_LISTEN = "tcp:5000:interface=127.0.0.1"


class Options(usage.Options):
    """``twistd oci [--listen ENDPOINT]... [--data-dir DIR]``"""

    optParameters = [
        ["data-dir", "d", "txoci-data", "Directory holding everything the registry stores."],
    ]
    optFlags = [
        ["disable-deletes", None, "Refuse deletes of manifests, tags and blobs with 405 UNSUPPORTED."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """Listen on a Twisted server endpoint string (repeatable)."""
        self["listen"].append(description)

    opt_l = opt_listen

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]


def makeService(options: Any) -> IService:
    settings = Settings(data_dir=options["data-dir"], deletes_enabled=not options["disable-deletes"])
    return RegistryService(settings, options["listen"])
