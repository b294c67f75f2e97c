"""The ``twistd oci`` command: options and ``makeService``."""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from txoci.auth.config import AuthSettings
from txoci.service.config import ConfigFileOptions
from txoci.service.embed import SHUTDOWN_TIMEOUT, RegistryService, Settings
from txoci.service.logs import LOG_FORMATS, twistd_json_observer

DEFAULT_LISTEN = "tcp:5000:interface=127.0.0.1"


class Options(ConfigFileOptions):
    """``twistd oci [--config txoci.toml] [--listen ENDPOINT]... [--data-dir DIR]``

    Every option is also a key of the ``--config`` file (see :mod:`txoci.service.config`),
    which also holds the ``[auth]`` table.
    """

    config_tables = {"auth": AuthSettings.from_dict}

    optParameters = [
        ["data-dir", "d", "txoci-data", "Directory holding everything the registry stores."],
        ["log-format", None, "text", "Log format: text (human-readable) or json (one JSON object a line)."],
        ["shutdown-timeout", None, SHUTDOWN_TIMEOUT,
         "Seconds in-flight requests get to finish on SIGTERM before they are cut off.", float],
    ]
    optFlags = [
        ["disable-deletes", None, "Refuse deletes of manifests, tags and blobs with 405 UNSUPPORTED."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["metrics-listen"] = []

    def opt_listen(self, description: str) -> None:
        """Listen on a Twisted server endpoint string (repeatable)."""
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_metrics_listen(self, description: str) -> None:
        """Serve /metrics (with /livez and /readyz) on this endpoint instead of --listen (repeatable)."""
        self["metrics-listen"].append(description)

    def postOptions(self) -> None:
        self.apply_config_file()
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        if self["shutdown-timeout"] < 0:
            raise usage.UsageError("--shutdown-timeout must not be negative")


def makeService(options: Any) -> IService:
    settings = Settings(
        data_dir=options["data-dir"],
        deletes_enabled=not options["disable-deletes"],
        auth=getattr(options, "tables", {}).get("auth"),
    )
    return RegistryService(
        settings,
        options["listen"],
        metrics_listen=options["metrics-listen"],
        shutdown_timeout=options["shutdown-timeout"],
        log_observer=_log_observer(options),
    )


def _log_observer(options: Any) -> Any:
    """The JSON-lines observer for ``--log-format json`` under twistd; None for text."""
    if options["log-format"] != "json":
        return None
    parent = getattr(options, "parent", None)
    if parent is None or "nodaemon" not in parent:
        # ``twist`` configures its own logging: ``twist --log-format json oci``.
        raise usage.UsageError(
            "--log-format json works under twistd; with twist use `twist --log-format json oci`"
        )
    return twistd_json_observer(parent)
