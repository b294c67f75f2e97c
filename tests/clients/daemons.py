"""
Private container daemons for the client tests: a containerd and a Docker
engine (``dockerd``) that live in a temporary directory and are stopped
when the tests that need them are done.

Nothing is shared with a system daemon: each has its own configuration,
root, state directory and UNIX socket, containerd has its CRI plugin
disabled and dockerd has no bridge network, no iptables rules and the
``vfs`` storage driver.  (dockerd still creates an empty
``/run/docker/plugins``; that path is fixed in the engine.)

trial has no ``setUpClass``: :class:`SharedDaemonTestCase` starts its
daemons for the first test of a class that asks for them and stops them
after the last test of that class has run (and, failing that, at exit).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any, ClassVar

from twisted.trial.unittest import SkipTest, TestCase

from tests.clients.base import require_binary

#: How long a daemon may take to answer on its socket.
START_TIMEOUT = 30.0


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class Daemon:
    """A background process with a log file, stopped with SIGTERM (SIGKILL if it hangs)."""

    def __init__(self, name: str, command: list[str], log_path: str, env: dict[str, str] | None = None):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Poll ``ready``; raise :class:`SkipTest` with the log's end if the daemon dies or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                status = self.process.returncode
                raise SkipTest(f"{self.name} cannot run here: it exited {status}:\n{_tail(self.log_path)}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise SkipTest(f"{self.name} did not become ready in {timeout:.0f}s:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _answers(command: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        result = subprocess.run(command, capture_output=True, timeout=10, env=env)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


class PrivateContainerd:
    """``containerd`` with its own config.toml, root, state, socket and no CRI plugin."""

    def __init__(self, directory: str) -> None:
        self.containerd = require_binary("containerd")
        self.ctr_binary = require_binary("ctr")
        self.directory = directory
        self.socket = os.path.join(directory, "containerd.sock")
        self.config = os.path.join(directory, "config.toml")
        with open(self.config, "w") as f:
            f.write(
                "version = 2\n"
                f'root = "{directory}/root"\n'
                f'state = "{directory}/state"\n'
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n\n'
                f'[grpc]\n  address = "{self.socket}"\n\n'
                f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n\n'
                '[debug]\n  address = ""\n\n'
                '[metrics]\n  address = ""\n\n'
                # A namespace sees only the content it fetched itself: a pull into a
                # fresh namespace downloads every blob again.
                '[plugins."io.containerd.metadata.v1.bolt"]\n  content_sharing_policy = "isolated"\n\n'
                # Otherwise containerd creates /opt/containerd.
                f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{directory}/opt"\n'
            )
        self.daemon = Daemon(
            "containerd", [self.containerd, "--config", self.config],
            os.path.join(directory, "containerd.log"),
        )
        self.daemon.wait_until(lambda: _answers([self.ctr_binary, "-a", self.socket, "version"]))

    def ctr_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The native snapshotter copies files: it needs no overlay mount.
        env["CONTAINERD_SNAPSHOTTER"] = "native"
        env.pop("CONTAINERD_ADDRESS", None)
        env.pop("CONTAINERD_NAMESPACE", None)
        return env

    def stop(self) -> None:
        self.daemon.stop()


class PrivateDockerd:
    """``dockerd`` on a private socket and data root, using a :class:`PrivateContainerd`."""

    def __init__(self, directory: str, containerd: PrivateContainerd, insecure_registry: str) -> None:
        self.dockerd = require_binary("dockerd")
        self.docker = require_binary("docker")
        self.directory = directory
        self.socket = os.path.join(directory, "docker.sock")
        self.host = f"unix://{self.socket}"
        config_file = os.path.join(directory, "daemon.json")
        with open(config_file, "w") as f:
            # Not /etc/docker/daemon.json, and no /etc/docker/key.json either.
            json.dump({"deprecated-key-path": os.path.join(directory, "key.json")}, f)
        self.client_config = os.path.join(directory, "client")
        os.makedirs(self.client_config)
        self.daemon = Daemon(
            "dockerd",
            [
                self.dockerd,
                "--config-file", config_file,
                "--data-root", os.path.join(directory, "data"),
                "--exec-root", os.path.join(directory, "exec"),
                "--pidfile", os.path.join(directory, "dockerd.pid"),
                "-H", self.host,
                "--containerd", containerd.socket,
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--storage-driver=vfs",
                "--insecure-registry", insecure_registry,
            ],
            os.path.join(directory, "dockerd.log"),
        )
        self.daemon.wait_until(lambda: _answers([self.docker, "version"], self.env()))

    def env(self) -> dict[str, str]:
        """The environment for the docker CLI: this engine, a private client config, no BuildKit."""
        env = dict(os.environ)
        env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=self.client_config, DOCKER_BUILDKIT="0")
        for name in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"]:
            env.pop(name, None)
        return env

    def stop(self) -> None:
        self.daemon.stop()


class DockerdForRegistry:
    """
    A registry server (already started) with a private containerd and a
    dockerd that trusts it as an insecure registry, stopped together; the
    server is stopped too if the daemons fail to start.
    """

    def __init__(self, directory: str, server: Any) -> None:
        self.server = server
        try:
            for sub in ["c", "d"]:
                os.makedirs(os.path.join(directory, sub), exist_ok=True)
            self.containerd = PrivateContainerd(os.path.join(directory, "c"))
        except BaseException:
            server.stop()
            raise
        try:
            self.dockerd = PrivateDockerd(os.path.join(directory, "d"), self.containerd, server.address)
        except BaseException:
            self.containerd.stop()
            server.stop()
            raise

    def stop(self) -> None:
        try:
            self.dockerd.stop()
        finally:
            try:
                self.containerd.stop()
            finally:
                self.server.stop()


class SharedDaemonTestCase(TestCase):
    """
    A test case whose daemons are started once for its class.

    Subclasses implement :meth:`start_shared`, which returns the objects to
    share and a function that stops them; tests reach them with
    :meth:`shared`.  A :class:`SkipTest` from ``start_shared`` is kept, so
    every test of the class skips with the same reason at once.
    """

    _planned: ClassVar[dict[type, int]] = {}
    _running: ClassVar[dict[type, tuple[Any, Callable[[], None]]]] = {}
    _skipped: ClassVar[dict[type, SkipTest]] = {}

    def __init__(self, methodName: str = "runTest") -> None:
        super().__init__(methodName)
        # trial makes one instance per test it is going to run.
        cls = type(self)
        SharedDaemonTestCase._planned[cls] = SharedDaemonTestCase._planned.get(cls, 0) + 1

    @classmethod
    def start_shared(cls, directory: str) -> tuple[Any, Callable[[], None]]:
        raise NotImplementedError

    def shared(self) -> Any:
        cls = type(self)
        if cls in self._skipped:
            raise self._skipped[cls]
        if cls not in self._running:
            directory = tempfile.mkdtemp(prefix="txoci-daemons-")  # Short: UNIX socket paths.
            try:
                value, stop = cls.start_shared(directory)
            except SkipTest as e:
                shutil.rmtree(directory, ignore_errors=True)
                self._skipped[cls] = e
                raise

            def stop_and_remove() -> None:
                try:
                    stop()
                finally:
                    shutil.rmtree(directory, ignore_errors=True)

            self._running[cls] = (value, stop_and_remove)
            atexit.register(_stop_class, cls)
        return self._running[cls][0]

    def run(self, result: Any = None) -> Any:
        try:
            return super().run(result)
        finally:
            cls = type(self)
            self._planned[cls] = self._planned.get(cls, 1) - 1
            if self._planned[cls] <= 0:
                _stop_class(cls)


def _stop_class(cls: type) -> None:
    running = SharedDaemonTestCase._running.pop(cls, None)
    if running is not None:
        running[1]()
