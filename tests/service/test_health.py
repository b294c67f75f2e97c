"""``/livez`` and ``/readyz``, and the readiness checks behind them."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.support import RegistryTestCase
from txoci.service.health import PROBE_NAME, HealthChecker


class HealthEndpointTests(RegistryTestCase):
    async def test_livez_answers_200_json(self) -> None:
        response, body = await self.request("GET", "/livez")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body), {"status": "alive"})
        self.assertEqual(response.headers.getRawHeaders("Content-Type"), ["application/json"])
        self.assertEqual(response.headers.getRawHeaders("Cache-Control"), ["no-store"])

    async def test_readyz_answers_200_with_every_check_ok(self) -> None:
        response, body = await self.request("GET", "/readyz")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(
            json.loads(body), {"status": "ready", "checks": {"metadata": "ok", "data_dir": "ok"}}
        )

    async def test_readyz_leaves_no_probe_file_behind(self) -> None:
        await self.request("GET", "/readyz")
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, PROBE_NAME)))

    async def test_head_has_no_body(self) -> None:
        for path in ("/livez", "/readyz"):
            response, body = await self.request("HEAD", path)
            self.assertEqual((response.code, body), (200, b""), path)

    async def test_other_methods_get_405(self) -> None:
        for path in ("/livez", "/readyz"):
            response, _ = await self.request("POST", path, data=b"x")
            self.assertEqual(response.code, 405, path)
            self.assertEqual(response.headers.getRawHeaders("Allow"), ["GET, HEAD"])

    async def test_not_under_v2(self) -> None:
        response, body = await self.request("GET", "/v2/livez")
        self.assertNotEqual(response.code, 200, body)

    async def test_a_closed_metadata_store_makes_readyz_503_with_a_reason(self) -> None:
        await self.opened._metadata.close()
        response, body = await self.request("GET", "/readyz")
        self.assertEqual(response.code, 503, body)
        document = json.loads(body)
        self.assertEqual(document["status"], "not ready")
        self.assertIn("closed", document["checks"]["metadata"])
        self.assertEqual(document["checks"]["data_dir"], "ok")
        # The process still serves: liveness is unaffected.
        response, _ = await self.request("GET", "/livez")
        self.assertEqual(response.code, 200)

    async def test_a_missing_data_dir_makes_readyz_503_with_a_reason(self) -> None:
        moved = self.data_dir + "-moved"
        os.rename(self.data_dir, moved)
        self.addCleanup(shutil.rmtree, moved, True)
        response, body = await self.request("GET", "/readyz")
        self.assertEqual(response.code, 503, body)
        reason = json.loads(body)["checks"]["data_dir"]
        self.assertIn("No such file or directory", reason)


class _StuckStore:
    """A metadata store whose transactions never end, or fail."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0
        self.pending: list[Deferred[Any]] = []

    def read(self, work: Any, *args: Any) -> Deferred[Any]:
        self.calls += 1
        if self.error is not None:
            d: Deferred[Any] = Deferred()
            d.errback(self.error)
            return d
        waiting: Deferred[Any] = Deferred()
        self.pending.append(waiting)
        return waiting

    transact = read


class HealthCheckerTests(TestCase):
    def checker(self, store: Any, timeout: float = 0.2) -> HealthChecker:
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        checker = HealthChecker(store, data_dir, reactor, timeout=timeout)
        self.addCleanup(checker.close)
        return checker

    async def test_a_hung_store_times_out_and_later_probes_share_the_check(self) -> None:
        store = _StuckStore()
        checker = self.checker(store)
        first = await checker.readiness()
        self.assertFalse(first.ready)
        self.assertEqual(first.failures, {"metadata": "timed out"})
        second = await checker.readiness()
        self.assertEqual(second.failures, {"metadata": "timed out"})
        # The stuck read was not started again.
        self.assertEqual(store.calls, 1)
        store.pending[0].callback(None)

    async def test_a_failing_store_reports_its_error(self) -> None:
        checker = self.checker(_StuckStore(OSError("disk I/O error")))
        readiness = await checker.readiness()
        self.assertEqual(readiness.failures, {"metadata": "disk I/O error"})
        self.assertEqual(readiness.as_json()["checks"], {"metadata": "disk I/O error", "data_dir": "ok"})
