"""
GC race test: pushers upload blobs and, after a delay longer than GC's grace
period, push manifests that reference them, then pull, delete and push the
same content again, while GC runs continuously, both inside the service and
as a separate collector on its own database connection (what ``txoci gc``
does).  No manifest push may fail with ``MANIFEST_BLOB_UNKNOWN`` and no pull
may fail because of GC.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time

import attrs
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread

from tests.support import RegistryTestCase, image_manifest, sha256
from txoci import Settings
from txoci.storage import gc

#: GC's grace period here, and the pushers' delay between blobs and manifest (longer).
GRACE = 0.3
DELAY = 0.5
PUSHERS = 3
ROUNDS = 8
#: Layers every pusher pushes in every round: deleted and pushed again all the time.
SHARED = [bytes([n]) * (50_000 + n) for n in range(3)]


class GCRaceTests(RegistryTestCase):
    timeout = 120

    def registry_settings(self) -> Settings:
        # The service's own collector, every 50 ms.
        return attrs.evolve(super().registry_settings(), gc_interval=0.05, gc_grace=GRACE)

    async def test_no_push_or_pull_fails_because_of_gc(self) -> None:
        stop = threading.Event()
        reports: list[gc.Report] = []

        def collect_continuously() -> None:
            while not stop.is_set():
                reports.append(gc.collect(self.data_dir, gc.Policy(grace=GRACE)))
                time.sleep(0.01)

        collector = deferToThread(collect_continuously)
        failures: list[str] = []
        try:
            await gatherResults([
                Deferred.fromCoroutine(self.pusher(number, failures)) for number in range(PUSHERS)
            ])
        finally:
            stop.set()
            await collector
        self.assertEqual(failures, [])
        service = self.opened.gc.last
        reclaimed = sum(report.count(gc.BLOB) for report in reports)
        if service is not None:
            reclaimed += service.count(gc.BLOB)
        self.assertGreater(reclaimed, 0, "GC never reclaimed a blob: the test raced nothing")

    async def pusher(self, number: int, failures: list[str]) -> None:
        rng = random.Random(number)
        repository = f"race/p{number}"
        for round_ in range(ROUNDS):
            unique = os.urandom(rng.randrange(1000, 200_000))
            layers = [*SHARED, unique]
            config = json.dumps({"pusher": number, "round": round_}).encode()
            for blob in [config, *layers]:
                await self.push_blob(repository, blob)
            # Meanwhile GC runs, with a grace period shorter than this delay.
            await task.deferLater(reactor, DELAY, lambda: None)
            manifest = image_manifest(config, layers)
            response, body = await self.request(
                "PUT", f"/v2/{repository}/manifests/r{round_}", data=manifest,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
            if response.code != 201:
                failures.append(f"{repository} round {round_}: manifest push {response.code} {body!r}")
                continue
            for blob in [config, *layers]:
                response, body = await self.request("GET", f"/v2/{repository}/blobs/{sha256(blob)}")
                if response.code != 200 or sha256(body) != sha256(blob):
                    failures.append(f"{repository} round {round_}: pull {response.code}")
            # Delete the image, and every other round the shared blobs' links
            # too: their bytes become garbage while the next round pushes them.
            digest = sha256(manifest)
            response, _ = await self.request("DELETE", f"/v2/{repository}/manifests/{digest}")
            self.assertEqual(response.code, 202)
            if round_ % 2:
                for layer in SHARED:
                    await self.request("DELETE", f"/v2/{repository}/blobs/{sha256(layer)}")
            # Long enough, sometimes, for GC to take the shared bytes.
            await task.deferLater(reactor, rng.choice([0.0, GRACE * 2]), lambda: None)
