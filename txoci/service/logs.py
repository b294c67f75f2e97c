"""
``twistd oci --log-format json``: every log event as one JSON object a line.

twistd picks its log destination (``--logfile``, standard output with
``--nodaemon``) itself; :func:`twistd_json_observer` makes the same choice and
writes JSON lines there instead of text.  The application installs it as its
``ILogObserver`` component, which twistd uses in place of its own observer.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.logger import ILogObserver
from twisted.python import logfile, usage

from txoci.web.accesslog import json_lines_observer

LOG_FORMATS = ("text", "json")


def twistd_json_observer(twistd_options: Any) -> ILogObserver:
    """A JSON-lines observer writing where twistd would write its text log."""
    if twistd_options.get("syslog"):
        raise usage.UsageError("--log-format json cannot be combined with twistd's --syslog")
    filename = twistd_options.get("logfile")
    out: Any
    if filename == "-" and not twistd_options.get("nodaemon"):
        raise usage.UsageError("daemons cannot log to stdout")
    if filename == "-" or (twistd_options.get("nodaemon") and not filename):
        out = sys.stdout
    else:
        out = logfile.LogFile.fromFullPath(filename or "twistd.log")
    return json_lines_observer(out)
