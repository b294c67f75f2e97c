"""The ``twistd oci`` command: options and ``makeService``."""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from txoci.auth.config import AuthSettings
from txoci.service.config import ConfigFileOptions
from txoci.service.embed import DEFAULT_GC_INTERVAL, SHUTDOWN_TIMEOUT, RegistryService, Settings
from txoci.service.logs import LOG_FORMATS, twistd_json_observer
from txoci.service.workers import WorkerPool, WorkerSetupError, check_shareable
from txoci.storage import gc

DEFAULT_LISTEN = "tcp:5000:interface=127.0.0.1"
#: More processes than this only add contention on the database.
MAX_WORKERS = 64


def _retention(text: str) -> float | None:
    """``--manifest-retention``: hours (as seconds), or None for ``keep``."""
    if text == "keep":
        return None
    hours = float(text)
    if hours < 0:
        raise ValueError("must not be negative")
    return hours * 3600.0


_retention.coerceDoc = "A number of hours, or 'keep'."  # type: ignore[attr-defined]


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
        ["workers", "w", 1,
         "Serve with this many processes sharing the listening sockets (1: this process alone).", int],
        ["gc-interval", None, DEFAULT_GC_INTERVAL,
         "Seconds between garbage collection runs; 0 runs none (use `txoci gc`).", float],
        ["gc-grace", None, gc.DEFAULT_GRACE,
         "Seconds a blob stays after its last link or reference went.", float],
        ["manifest-retention", None, "keep",
         "Hours untagged, unreferenced manifests are kept before GC deletes them, or 'keep'.",
         _retention],
        ["upload-max-age", None, gc.DEFAULT_UPLOAD_MAX_AGE / 3600,
         "Hours an upload may go without a request before GC purges it.", float],
    ]
    optFlags = [
        ["disable-deletes", None, "Refuse deletes of manifests, tags and blobs with 405 UNSUPPORTED."],
        ["disable-access-log", None, "Log no line per request (the metrics still count every request)."],
        ["read-only", None, "Refuse every write (pushes, deletes) with 405 UNSUPPORTED; reads go on. "
         "No garbage collection runs."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["metrics-listen"] = []
        #: The arguments as given: ``--workers`` hands them to each worker.
        self.arguments: list[str] = []

    def parseOptions(self, options: Any = None) -> None:
        self.arguments = list(options if options is not None else sys.argv[1:])
        super().parseOptions(options)

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
        if not 1 <= self["workers"] <= MAX_WORKERS:
            raise usage.UsageError(f"--workers must be between 1 and {MAX_WORKERS}")
        for name in ("gc-interval", "gc-grace", "upload-max-age"):
            if self[name] < 0:
                raise usage.UsageError(f"--{name} must not be negative")
        if self["manifest-retention"] == "keep":  # the default, never coerced
            self["manifest-retention"] = None


def settings_from_options(options: Any) -> Settings:
    """The registry :class:`Settings` that parsed ``twistd oci`` options describe."""
    return Settings(
        data_dir=options["data-dir"],
        deletes_enabled=not options["disable-deletes"],
        auth=getattr(options, "tables", {}).get("auth"),
        read_only=bool(options["read-only"]),
        gc_interval=options["gc-interval"] or None,
        gc_grace=options["gc-grace"],
        manifest_retention=options["manifest-retention"],
        upload_max_age=options["upload-max-age"] * 3600.0,
        access_log=not options["disable-access-log"],
    )


def makeService(options: Any) -> IService:
    settings = settings_from_options(options)
    if options["workers"] > 1:
        return _worker_pool(options, settings)
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


def _worker_pool(options: Any, settings: Settings) -> IService:
    try:
        check_shareable(options["listen"] + options["metrics-listen"])
    except WorkerSetupError as error:
        raise usage.UsageError(str(error)) from None
    pool = WorkerPool(
        settings,
        options.arguments,
        options["listen"],
        options["workers"],
        metrics_listen=options["metrics-listen"],
        shutdown_timeout=options["shutdown-timeout"],
        log_observer=_log_observer(options),
    )
    return pool
