"""
Shared pieces of the real-client tests: a ``twistd oci`` process per test,
and helpers that skip when a client is not installed.

The clients block, so the tests are plain synchronous methods: the registry
runs in its own process and the reactor thread may wait on it.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

from twisted.trial.unittest import SkipTest, TestCase

from tests.support import TwistdServer


def require_module(name: str) -> ModuleType:
    """Import ``name`` or skip the test."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise SkipTest(f"Python module {name!r} is not installed ({e}); CI installs it") from e


def require_binary(name: str) -> str:
    """The path of executable ``name``, or skip the test."""
    path = shutil.which(name)
    if path is None:
        raise SkipTest(f"{name!r} is not on PATH; CI installs it")
    return path


class ServerTestCase(TestCase):
    """A fresh ``twistd oci`` on a temporary data directory for each test."""

    def setUp(self) -> None:
        self.data_dir = os.path.abspath(self.mktemp())
        self.server = self.start_server()

    def start_server(self) -> TwistdServer:
        """Start a server on ``self.data_dir``; it is stopped at cleanup."""
        server = TwistdServer(self.data_dir)
        self.addCleanup(server.stop)
        return server

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def base(self) -> str:
        return f"http://{self.server.address}"
