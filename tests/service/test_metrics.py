"""``/metrics``: Prometheus text, parsed with prometheus_client's own parser."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.support import RegistryTestCase, TwistdServer
from txoci import Settings, open_registry
from txoci.service.metrics import RegistryMetrics
from txoci.storage.interfaces import StorageStats


def parse(text: str) -> dict[str, Any]:
    """{metric family name: family}."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], sample_name: str, **labels: str) -> float:
    family_name = sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    for family in families.values():
        if not family_name.startswith(family.name):
            continue
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise KeyError((sample_name, labels))


class MetricsEndpointTests(RegistryTestCase):
    async def scrape(self) -> dict[str, Any]:
        response, body = await self.request("GET", "/metrics")
        self.assertEqual(response.code, 200, body)
        self.assertTrue(response.headers.getRawHeaders("Content-Type")[0].startswith("text/plain"))
        self.text = body.decode("utf-8")
        return parse(self.text)

    async def test_requests_bytes_and_stored_content(self) -> None:
        layer = b"L" * 4096
        _, manifest = await self.push_image("secret-team/app", "v1", [layer])
        await self.request("GET", "/v2/secret-team/app/manifests/v1")
        await self.request("POST", "/v2/secret-team/app/blobs/uploads/")
        families = await self.scrape()

        blob_route = "/v2/{name}/blobs/uploads/"
        self.assertEqual(value(families, "txoci_http_requests_total", route=blob_route,
                               method="POST", status="201"), 2.0)
        self.assertEqual(value(families, "txoci_http_requests_total", route=blob_route,
                               method="POST", status="202"), 1.0)
        self.assertEqual(value(families, "txoci_http_requests_total",
                               route="/v2/{name}/manifests/{reference}", method="GET", status="200"), 1.0)
        self.assertEqual(value(families, "txoci_http_request_duration_seconds_count",
                               route="/v2/{name}/manifests/{reference}", method="GET"), 1.0)
        self.assertEqual(families["txoci_http_request_duration_seconds"].type, "histogram")
        self.assertGreaterEqual(value(families, "txoci_http_received_bytes_total",
                                      route=blob_route, method="POST"), len(layer))
        self.assertEqual(value(families, "txoci_http_sent_bytes_total",
                               route="/v2/{name}/manifests/{reference}", method="GET"), len(manifest))
        # Stored content: a config and a layer, one manifest, one session open.
        self.assertEqual(value(families, "txoci_blobs"), 2.0)
        self.assertGreater(value(families, "txoci_blobs_bytes"), len(layer))
        self.assertEqual(value(families, "txoci_manifests"), 1.0)
        self.assertEqual(value(families, "txoci_manifests_bytes"), len(manifest))
        self.assertEqual(value(families, "txoci_uploads_in_progress"), 1.0)
        self.assertEqual(value(families, "txoci_tags"), 1.0)
        # Route templates only: a repository name never becomes a label value.
        self.assertNotIn("secret-team", self.text)

    async def test_unmatched_paths_share_one_route_label(self) -> None:
        for path in ("/a", "/b/c", "/v2/x/unknown"):
            await self.request("GET", path)
        families = await self.scrape()
        self.assertEqual(value(families, "txoci_http_requests_total", route="(unmatched)",
                               method="GET", status="404"), 3.0)

    async def test_unknown_methods_share_one_method_label(self) -> None:
        for method in ("BREW", "WHEN", "PROPFIND"):
            await self.request(method, "/v2/")
        families = await self.scrape()
        self.assertEqual(value(families, "txoci_http_requests_total", route="(unmatched)",
                               method="OTHER", status="405"), 3.0)
        self.assertNotIn("BREW", self.text)

    async def test_two_registries_in_one_process_count_apart(self) -> None:
        other = await open_registry(Settings(data_dir=os.path.abspath(self.mktemp())), reactor)
        self.addCleanup(other.close)
        await self.push_blob("one/repo", b"only here")
        await other.metrics.refresh()
        mine = parse((await self.opened.metrics.exposition()).decode())
        theirs = parse((await other.metrics.exposition()).decode())
        self.assertEqual(value(mine, "txoci_blobs"), 1.0)
        self.assertEqual(value(theirs, "txoci_blobs"), 0.0)
        self.assertRaises(KeyError, value, theirs, "txoci_http_requests_total", method="POST")


class _CountingStore:
    def __init__(self) -> None:
        self.reads = 0

    def read(self, work: Any, *args: Any) -> Any:
        self.reads += 1
        from twisted.internet.defer import succeed

        return succeed(StorageStats(1, 2, 3, 4, 5, 6, 7, self.reads))


class StatsCacheTests(TestCase):
    async def test_stored_content_queries_are_cached(self) -> None:
        store, clock = _CountingStore(), Clock()
        metrics = RegistryMetrics(store, clock, cache_seconds=5.0)  # type: ignore[arg-type]
        first = parse((await metrics.exposition()).decode())
        await metrics.exposition()
        self.assertEqual(store.reads, 1)
        clock.advance(5.0)
        second = parse((await metrics.exposition()).decode())
        self.assertEqual(store.reads, 2)
        self.assertEqual(value(first, "txoci_uploads_in_progress_bytes"), 1.0)
        self.assertEqual(value(second, "txoci_uploads_in_progress_bytes"), 2.0)
        self.assertEqual(value(second, "txoci_blobs"), 2.0)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class MetricsListenTests(TestCase):
    async def test_metrics_listen_moves_metrics_to_their_own_endpoint(self) -> None:
        from tests.support import free_port

        port = free_port()
        server = TwistdServer(os.path.abspath(self.mktemp()),
                              "--metrics-listen", f"tcp:{port}:interface=127.0.0.1")
        self.addCleanup(server.stop)
        main, side = f"http://{server.address}", f"http://127.0.0.1:{port}"
        self.assertEqual(await deferToThread(_get, main + "/metrics"), 404)
        self.assertEqual(await deferToThread(_get, main + "/readyz"), 200)
        self.assertEqual(await deferToThread(_get, side + "/metrics"), 200)
        self.assertEqual(await deferToThread(_get, side + "/livez"), 200)
        self.assertEqual(await deferToThread(_get, side + "/v2/"), 404)
