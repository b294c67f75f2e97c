"""
Kill test: a real ``twistd -n oci`` is SIGKILLed at 50+ random moments while
clients push (monolithic and chunked), tag, pull and delete, while the
server's own GC runs every few hundred milliseconds and a second collector
runs on its own connection (as ``txoci gc`` would).  The server is restarted
after each kill.  Afterwards:

- every push that received its 201 is fully readable and its digests verify
  (unless the test itself deleted it);
- no response that arrived whole ever carried bytes that do not match their
  digest (nothing partial or wrong is served);
- after a last offline ``txoci gc``, ``txoci check`` is clean.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

import attrs
import treq
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.support import TwistdServer, image_manifest, sha256
from txoci.storage import gc

KILLS = 52
#: Acknowledged pushes wanted for the result to mean much: on a loaded machine
#: fewer complete between kills, so up to EXTRA_KILLS more cycles run.
MIN_PUSHES = 25
EXTRA_KILLS = 40
WORKERS = 3
GRACE = 0.3
#: A few layers shared by many images, so dedupe, re-link and GC of shared bytes happen.
SHARED = [bytes([65 + n]) * (20_000 * (n + 1)) for n in range(4)]


@attrs.frozen
class Image:
    repository: str
    tag: str
    digest: str
    manifest: bytes
    blobs: tuple[bytes, ...]


@attrs.define
class State:
    """What the clients know: acknowledged images, and what went wrong."""

    images: dict[tuple[str, str], Image] = attrs.Factory(dict)
    violations: list[str] = attrs.Factory(list)
    pushes: int = 0
    deletes: int = 0
    pulls: int = 0
    counter: int = 0


class KillTests(TestCase):
    timeout = 240

    def setUp(self) -> None:
        self.data_dir = os.path.abspath(self.mktemp())
        self.server: TwistdServer | None = None
        self.addCleanup(self.stop_server)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start_server(self) -> None:
        self.server = TwistdServer(
            self.data_dir, "--gc-interval", "0.2", "--gc-grace", str(GRACE),
            "--shutdown-timeout", "1",
        )
        self.base = f"http://{self.server.address}"

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[Any, bytes]:
        response = await treq.request(method, self.base + path, persistent=False, **kwargs)
        return response, await treq.content(response)

    async def push_blob(self, repository: str, data: bytes, rng: random.Random) -> None:
        digest = sha256(data)
        if rng.random() < 0.5:
            response, body = await self.request(
                "POST", f"/v2/{repository}/blobs/uploads/?digest={digest}", data=data)
        else:
            response, body = await self.request("POST", f"/v2/{repository}/blobs/uploads/")
            assert response.code == 202, body
            location = response.headers.getRawHeaders("Location")[0]
            location = location if location.startswith("/") else "/" + location.split("/", 3)[3]
            half = len(data) // 2
            response, body = await self.request(
                "PATCH", location, data=data[:half],
                headers={"Content-Range": f"0-{half - 1}"} if half else {})
            assert response.code == 202, body
            location = response.headers.getRawHeaders("Location")[0]
            separator = "&" if "?" in location else "?"
            response, body = await self.request(
                "PUT", f"{location}{separator}digest={digest}", data=data[half:])
        assert response.code == 201, (response.code, body)

    async def push(self, state: State, rng: random.Random) -> None:
        state.counter += 1
        repository = f"kill/r{rng.randrange(2)}"
        tag = f"t{state.counter}"
        config = json.dumps({"image": state.counter}).encode()
        unique = os.urandom(rng.randrange(100, 300_000))
        blobs = (config, rng.choice(SHARED), unique)
        for blob in blobs:
            await self.push_blob(repository, blob, rng)
        manifest = image_manifest(config, list(blobs[1:]))
        response, body = await self.request(
            "PUT", f"/v2/{repository}/manifests/{tag}", data=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        if response.code == 201:
            state.images[(repository, tag)] = Image(repository, tag, sha256(manifest), manifest, blobs)
            state.pushes += 1
        else:
            state.violations.append(f"push {repository}:{tag} answered {response.code} {body!r}")

    async def delete(self, state: State, rng: random.Random) -> None:
        if not state.images:
            return
        key = rng.choice(sorted(state.images))
        # Forgotten before the request: if the server dies mid-delete, its outcome is unknown.
        image = state.images.pop(key)
        response, body = await self.request(
            "DELETE", f"/v2/{image.repository}/manifests/{image.digest}")
        if response.code == 202:
            state.deletes += 1

    async def pull(self, state: State, rng: random.Random, image: Image | None = None) -> None:
        if image is None:
            if not state.images:
                return
            image = state.images[rng.choice(sorted(state.images))]
        response, body = await self.request(
            "GET", f"/v2/{image.repository}/manifests/{image.tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        if (image.repository, image.tag) not in state.images:
            return  # Deleted meanwhile by another worker.
        if response.code != 200 or body != image.manifest:
            state.violations.append(f"manifest {image.repository}:{image.tag}: {response.code}")
            return
        for blob in image.blobs:
            response, body = await self.request(
                "GET", f"/v2/{image.repository}/blobs/{sha256(blob)}")
            if (image.repository, image.tag) not in state.images:
                return
            if response.code != 200 or sha256(body) != sha256(blob):
                state.violations.append(
                    f"blob {sha256(blob)} of {image.repository}:{image.tag}: {response.code}, "
                    f"{len(body)} bytes")
        state.pulls += 1

    async def worker(self, state: State, rng: random.Random, killed: list[bool]) -> None:
        while not killed[0]:
            operation = rng.choices([self.push, self.pull, self.delete], [5, 4, 1])[0]
            try:
                await operation(state, rng)
            except Exception:
                if not killed[0]:
                    raise
                return  # Cut off by the kill: its outcome is unknown, and not asserted.

    async def test_acknowledged_pushes_survive_sigkill_at_random_moments(self) -> None:
        rng = random.Random(int(os.environ.get("TXOCI_KILL_SEED", "1234")))
        state = State()
        stop = threading.Event()

        def collect_continuously() -> None:
            # Another process's GC, on its own connection, all along.
            while not stop.is_set():
                if os.path.exists(os.path.join(self.data_dir, "metadata.sqlite3")):
                    gc.collect(self.data_dir, gc.Policy(grace=GRACE))
                time.sleep(0.05)

        self.start_server()
        collector = deferToThread(collect_continuously)
        try:
            cycle = 0
            while cycle < KILLS or (state.pushes < MIN_PUSHES and cycle < KILLS + EXTRA_KILLS):
                cycle += 1
                killed = [False]
                workers = [
                    Deferred.fromCoroutine(self.worker(state, random.Random(rng.random()), killed))
                    for _ in range(WORKERS)
                ]
                await task.deferLater(reactor, rng.uniform(0.05, 0.6), lambda: None)
                killed[0] = True
                assert self.server is not None
                self.server.kill()
                await gatherResults(workers)
                self.start_server()
        finally:
            stop.set()
            await collector
        self.assertEqual(state.violations, [])
        self.assertGreaterEqual(state.pushes, MIN_PUSHES, "too few pushes were acknowledged to mean much")

        # Every acknowledged push that was not deleted is whole.
        for image in list(state.images.values()):
            await self.pull(state, rng, image)
        self.assertEqual(state.violations, [])
        self.stop_server()

        # Collect what the crashes and deletes left, offline, then check.
        for _ in range(2):  # links first, then the blobs they held
            self.run_txoci("gc", "--grace", "0")
        code, out = self.run_txoci("check", "--grace", "0")
        self.assertEqual(code, 0, out)

        # GC took nothing that an acknowledged image needs.
        self.start_server()
        for image in list(state.images.values()):
            await self.pull(state, rng, image)
        self.assertEqual(state.violations, [])

    def run_txoci(self, *args: str) -> tuple[int, str]:
        result = subprocess.run(
            [sys.executable, "-m", "txoci.service.cli", *args, "--data-dir", self.data_dir],
            capture_output=True, text=True, timeout=120,
        )
        return result.returncode, result.stdout + result.stderr
