"""
``twistd oci --workers N``: several processes serve one registry, and every
client sees one consistent registry whichever worker answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.registry.test_operations import BytesSource, Collector
from tests.support import TwistdServer, image_manifest, sha256
from txoci import Settings, open_registry
from txoci.registry.digest import Digest
from txoci.service.plugin import Options, makeService
from txoci.service.workers import WorkerPool

WORKER_STARTED = re.compile(rb"txoci worker (\d+) started \(pid (\d+)\)")


def worker_pids(server: TwistdServer) -> dict[int, int]:
    """The newest pid of each worker, from the parent's log."""
    with open(server.log_path, "rb") as log:
        return {int(index): int(pid) for index, pid in WORKER_STARTED.findall(log.read())}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.05)


class WorkerPoolTests(TestCase):
    """Through real processes: ``twistd -n oci --workers 2``."""

    timeout = 120

    def setUp(self) -> None:
        self.server = TwistdServer(os.path.abspath(self.mktemp()), "--workers", "2")
        self.addCleanup(self.server.stop)
        wait_for(lambda: len(worker_pids(self.server)) == 2)

    def url(self, path: str) -> str:
        return f"http://{self.server.address}{path}"

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[Any, bytes]:
        # A new connection each time, so the kernel spreads requests over the workers.
        response = await treq.request(method, self.url(path), persistent=False, **kwargs)
        return response, await response.content()

    async def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        response, body = await self.request(
            "POST", f"/v2/{repository}/blobs/uploads/?digest={digest}", data=data
        )
        self.assertEqual(response.code, 201, body)
        return digest

    async def test_every_pull_sees_the_push_before_it(self) -> None:
        await self.push_blob("workers/tags", b"{}")
        for round_ in range(12):
            manifest = image_manifest(b"{}", [], annotations={"round": str(round_)})
            response, body = await self.request(
                "PUT", "/v2/workers/tags/manifests/latest", data=manifest,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
            self.assertEqual(response.code, 201, body)
            # Whichever worker answers, and whatever it had cached, it serves this round.
            for _ in range(3):
                response, body = await self.request("GET", "/v2/workers/tags/manifests/latest")
                self.assertEqual((response.code, body), (200, manifest))

    async def test_a_chunked_upload_may_move_between_workers(self) -> None:
        data = hashlib.shake_256(b"chunks").digest(10 * 65536)
        response, _ = await self.request("POST", "/v2/workers/chunks/blobs/uploads/")
        self.assertEqual(response.code, 202)
        location = response.headers.getRawHeaders("location")[0]
        for start in range(0, len(data), 65536):
            chunk = data[start:start + 65536]
            response, body = await self.request(
                "PATCH", location, data=chunk,
                headers={"Content-Range": f"{start}-{start + len(chunk) - 1}",
                         "Content-Type": "application/octet-stream"},
            )
            self.assertEqual(response.code, 202, body)
            self.assertEqual(response.headers.getRawHeaders("range"), [f"0-{start + len(chunk) - 1}"])
            location = response.headers.getRawHeaders("location")[0]
        digest = sha256(data)
        separator = "&" if "?" in location else "?"
        response, body = await self.request("PUT", f"{location}{separator}digest={digest}")
        self.assertEqual(response.code, 201, body)
        for _ in range(3):
            response, body = await self.request("GET", f"/v2/workers/chunks/blobs/{digest}")
            self.assertEqual(sha256(body), digest)

    async def test_metrics_count_the_requests_of_every_worker(self) -> None:
        for _ in range(20):
            response, _ = await self.request("GET", "/v2/")
            self.assertEqual(response.code, 200)
        for _ in range(3):  # whichever worker answers the scrape
            response, body = await self.request("GET", "/metrics")
            self.assertEqual(response.code, 200)
            counted = {
                (sample.labels["route"], sample.labels["status"]): sample.value
                for family in text_string_to_metric_families(body.decode())
                for sample in family.samples
                if sample.name == "txoci_http_requests_total" and sample.labels["method"] == "GET"
            }
            self.assertEqual(counted[("/v2/", "200")], 20)

    def test_a_worker_that_dies_is_replaced(self) -> None:
        before = worker_pids(self.server)
        os.kill(before[0], signal.SIGKILL)
        wait_for(lambda: worker_pids(self.server).get(0) not in (None, before[0]))
        replacement = worker_pids(self.server)[0]
        self.assertTrue(alive(replacement))
        self.assertTrue(alive(before[1]))

    def test_sigterm_stops_every_worker(self) -> None:
        pids = worker_pids(self.server).values()
        self.server.stop()
        # twistd ends by re-raising the signal it stopped for.
        self.assertEqual(self.server.process.returncode, -signal.SIGTERM)
        wait_for(lambda: not any(alive(pid) for pid in pids))

    def test_workers_stop_when_the_parent_is_killed(self) -> None:
        pids = worker_pids(self.server).values()
        self.server.kill()
        wait_for(lambda: not any(alive(pid) for pid in pids))


class WorkerSettingsTests(TestCase):
    timeout = 60

    async def test_every_worker_gets_the_command_line_settings(self) -> None:
        server = TwistdServer(os.path.abspath(self.mktemp()), "--workers", "2", "--disable-deletes")
        self.addCleanup(server.stop)
        wait_for(lambda: len(worker_pids(server)) == 2)
        for _ in range(8):
            response = await treq.request(
                "DELETE", f"http://{server.address}/v2/any/repo/manifests/latest", persistent=False
            )
            body = json.loads(await response.content())
            self.assertEqual((response.code, body["errors"][0]["code"]), (405, "UNSUPPORTED"))


class SharedDataDirTests(TestCase):
    """Two registries on one data dir, as two workers have: an upload can move between them."""

    async def test_upload_alternating_between_two_processes(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        registries = []
        for _ in range(2):
            opened = await open_registry(Settings(data_dir=data_dir), reactor)
            self.addCleanup(lambda opened=opened: Deferred.fromCoroutine(opened.close()))
            registries.append(opened.registry)
        first, second = registries
        status = await first.start_upload("shared/upload")
        chunks = [os.urandom(1000) for _ in range(6)]
        offset = 0
        for index, chunk in enumerate(chunks):
            registry = registries[index % 2]
            status = await registry.append_upload(
                "shared/upload", status.upload_id, BytesSource(chunk), (offset, offset + len(chunk) - 1)
            )
            offset += len(chunk)
            self.assertEqual(status.offset, offset)
        data = b"".join(chunks)
        await first.finish_upload("shared/upload", status.upload_id, Digest.of(data), None, None)
        info, reader = await second.open_blob("shared/upload", Digest.of(data))
        collector = Collector()
        await reader.produce(collector, 0, info.size)
        self.assertEqual(b"".join(collector.chunks), data)


class OptionsTests(TestCase):
    def test_workers_make_a_worker_pool(self) -> None:
        options = Options()
        options.parseOptions(["--workers", "3", "--data-dir", self.mktemp()])
        service = makeService(options)
        self.assertIsInstance(service, WorkerPool)
        self.assertEqual(service.workers, 3)  # type: ignore[attr-defined]

    def test_tls_endpoints_cannot_be_shared(self) -> None:
        from twisted.python.usage import UsageError

        options = Options()
        options.parseOptions(["--workers", "2", "--listen", "ssl:5443:privateKey=k.pem:certKey=c.pem"])
        error = self.assertRaises(UsageError, makeService, options)
        self.assertIn("TLS", str(error))

    def test_workers_must_be_positive(self) -> None:
        from twisted.python.usage import UsageError

        self.assertRaises(UsageError, Options().parseOptions, ["--workers", "0"])
