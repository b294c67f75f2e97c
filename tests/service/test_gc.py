"""
Garbage collection inside the service, through a real port: what it
reclaims, what it keeps, the re-check at deletion time, the schedule, the
metrics, and read-only mode.
"""

from __future__ import annotations

import json
import os
from typing import Any

import attrs
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from tests.support import RegistryTestCase, sha256
from tests.web.test_corruption import blob_file
from txoci import Settings
from txoci.service import plugin
from txoci.storage import filesystem, gc

LAYER = b"a layer " * 4000
SHARED = b"a shared layer " * 3000
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class GCTestCase(RegistryTestCase):
    #: The settings' GC policy for these tests: no grace, so one run decides.
    grace = 0.0
    retention: float | None = None
    read_only = False

    def registry_settings(self) -> Settings:
        return attrs.evolve(
            super().registry_settings(), gc_grace=self.grace, manifest_retention=self.retention,
            read_only=self.read_only,
        )

    async def collect(self, dry_run: bool = False) -> gc.Report:
        # Let the wall clock move past the rows just written (grace 0 means "older than now").
        await task.deferLater(reactor, 0.02, lambda: None)
        return await self.opened.gc.run(dry_run)

    def subjects(self, report: gc.Report, kind: str) -> list[str]:
        return sorted(item.subject for item in report.items if item.kind == kind)

    async def delete(self, path: str) -> None:
        response, body = await self.request("DELETE", path)
        self.assertEqual(response.code, 202, body)

    async def assertBlob(self, repository: str, data: bytes) -> None:
        response, body = await self.request("GET", f"/v2/{repository}/blobs/{sha256(data)}")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(sha256(body), sha256(data))


class BlobCollectionTests(GCTestCase):
    async def test_a_deleted_blob_is_reclaimed_with_its_file(self) -> None:
        digest = await self.push_blob("gc/one", LAYER)
        await self.delete(f"/v2/gc/one/blobs/{digest}")
        report = await self.collect()
        self.assertEqual(self.subjects(report, gc.BLOB), [digest])
        self.assertEqual(report.size(gc.BLOB), len(LAYER))
        self.assertFalse(os.path.exists(blob_file(self.data_dir, digest)))
        self.assertEqual(os.listdir(os.path.join(self.data_dir, gc.TRASH)), [])

    async def test_a_blob_linked_in_another_repository_is_kept(self) -> None:
        digest = await self.push_blob("gc/one", LAYER)
        await self.push_blob("gc/two", LAYER)
        await self.delete(f"/v2/gc/one/blobs/{digest}")
        report = await self.collect()
        self.assertEqual(report.items, [])
        await self.assertBlob("gc/two", LAYER)

    async def test_an_uploaded_blob_waiting_for_its_manifest_keeps_its_link(self) -> None:
        await self.push_blob("gc/wait", LAYER)
        report = await self.collect()
        self.assertEqual(report.items, [])
        await self.push_image("gc/wait", "v1", [LAYER])

    async def test_the_layers_of_a_deleted_image_go_over_two_runs(self) -> None:
        digest, _ = await self.push_image("gc/app", "v1", [LAYER, SHARED])
        await self.push_image("gc/other", "v1", [SHARED])
        await self.delete(f"/v2/gc/app/manifests/{digest}")
        first = await self.collect()
        # Config and both layers lose their links in gc/app (the config is
        # shared with gc/other, being the same bytes); only LAYER's bytes go.
        self.assertEqual(len(self.subjects(first, gc.LINK)), 3)
        self.assertEqual(self.subjects(first, gc.BLOB), [])
        second = await self.collect()
        self.assertEqual(self.subjects(second, gc.BLOB), [sha256(LAYER)])
        self.assertFalse(os.path.exists(blob_file(self.data_dir, sha256(LAYER))))
        response, body = await self.request("GET", "/v2/gc/other/manifests/v1")
        self.assertEqual(response.code, 200)
        await self.assertBlob("gc/other", SHARED)
        # A new image with the same layer is whole again.
        await self.push_image("gc/app", "v2", [LAYER])
        await self.assertBlob("gc/app", LAYER)

    async def test_a_dry_run_reports_bytes_and_reasons_and_changes_nothing(self) -> None:
        digest = await self.push_blob("gc/dry", LAYER)
        await self.delete(f"/v2/gc/dry/blobs/{digest}")
        report = await self.collect(dry_run=True)
        self.assertTrue(report.dry_run)
        [item] = report.items
        self.assertEqual((item.kind, item.subject, item.size), (gc.BLOB, digest, len(LAYER)))
        self.assertIn("no repository links it", item.reason)
        self.assertTrue(os.path.exists(blob_file(self.data_dir, digest)))
        self.assertEqual(self.subjects(await self.collect(), gc.BLOB), [digest])

    async def test_a_blob_removed_while_its_upload_commits_is_placed_again(self) -> None:
        # The exact race: a push of content that GC is removing at that
        # moment.  GC runs (as `txoci gc` would) after the push placed the
        # file and before its metadata transaction records the blob.
        digest = await self.push_blob("gc/racy", LAYER)
        await self.delete(f"/v2/gc/racy/blobs/{digest}")
        store = self.opened.registry.blobs
        assert isinstance(store, filesystem.FilesystemBlobStore)
        original = store._commit_file
        reports: list[gc.Report] = []

        def commit_then_collect(*args: Any) -> Any:
            result = original(*args)
            reports.append(gc.collect(self.data_dir, gc.Policy(grace=0.0)))
            return result

        self.patch(store, "_commit_file", commit_then_collect)
        await task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(await self.push_blob("gc/again", LAYER), digest)
        self.assertEqual(self.subjects(reports[0], gc.BLOB), [digest], "GC removed the file mid-push")
        await self.assertBlob("gc/again", LAYER)
        self.assertEqual(os.listdir(os.path.join(self.data_dir, "uploads")), [])

    async def test_an_interrupted_run_is_finished_by_the_next(self) -> None:
        # A run that crashed between moving a file aside and committing leaves
        # the file in gc-trash/ while the row stays: the next run puts it back.
        digest = await self.push_blob("gc/trash", LAYER)
        path = blob_file(self.data_dir, digest)
        trash = os.path.join(self.data_dir, gc.TRASH)
        os.makedirs(trash, exist_ok=True)
        os.rename(path, os.path.join(trash, f"{digest.replace(':', '-')}.1"))
        report = await self.collect()
        self.assertEqual(report.recovered, 1)
        self.assertEqual(os.listdir(trash), [])
        await self.assertBlob("gc/trash", LAYER)

    async def test_a_mount_never_links_a_blob_an_interrupted_run_moved_aside(self) -> None:
        digest = await self.push_blob("gc/mount", LAYER)
        await self.delete(f"/v2/gc/mount/blobs/{digest}")
        trash = os.path.join(self.data_dir, gc.TRASH)
        os.makedirs(trash, exist_ok=True)
        os.rename(blob_file(self.data_dir, digest), os.path.join(trash, f"{digest.replace(':', '-')}.1"))
        response, body = await self.request("POST", f"/v2/gc/elsewhere/blobs/uploads/?mount={digest}")
        self.assertEqual(response.code, 202, "mounted a blob whose file is not in place")
        await self.request("DELETE", response.headers.getRawHeaders("Location")[0])
        report = await self.collect()
        self.assertEqual(report.recovered, 1)

    async def test_an_orphaned_blob_file_is_reclaimed(self) -> None:
        # What a crash between placing a blob and recording it leaves behind.
        data = b"never recorded"
        digest = sha256(data)
        path = blob_file(self.data_dir, digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        report = await self.collect()
        self.assertEqual([item.kind for item in report.items], [gc.ORPHAN_BLOB_FILE])
        self.assertFalse(os.path.exists(path))


class ManifestRetentionTests(GCTestCase):
    retention = 0.0

    async def put_manifest(self, repository: str, reference: str, document: dict[str, Any],
                           media_type: str = MANIFEST) -> str:
        body = json.dumps(document).encode()
        response, answer = await self.request(
            "PUT", f"/v2/{repository}/manifests/{reference}", data=body,
            headers={"Content-Type": media_type},
        )
        self.assertEqual(response.code, 201, answer)
        return sha256(body)

    async def test_untagged_manifests_go_and_tagged_ones_stay(self) -> None:
        untagged, _ = await self.push_image("keep/app", None, [LAYER])
        tagged, _ = await self.push_image("keep/app", "v1", [SHARED])
        report = await self.collect()
        self.assertEqual(self.subjects(report, gc.MANIFEST), [f"keep/app@{untagged}"])
        response, _ = await self.request("GET", f"/v2/keep/app/manifests/{untagged}")
        self.assertEqual(response.code, 404)
        response, _ = await self.request("GET", f"/v2/keep/app/manifests/{tagged}")
        self.assertEqual(response.code, 200)

    async def test_a_retagged_manifest_goes_and_an_index_keeps_its_children(self) -> None:
        child, child_body = await self.push_image("keep/multi", None, [LAYER])
        index = await self.put_manifest("keep/multi", "latest", {
            "schemaVersion": 2, "mediaType": INDEX,
            "manifests": [{"mediaType": MANIFEST, "digest": child, "size": len(child_body)}],
        }, INDEX)
        old, _ = await self.push_image("keep/multi", "old", [SHARED])
        await self.push_image("keep/multi", "old", [b"new bytes"])
        report = await self.collect()
        self.assertEqual(self.subjects(report, gc.MANIFEST), [f"keep/multi@{old}"])
        for digest in (child, index):
            response, _ = await self.request("GET", f"/v2/keep/multi/manifests/{digest}")
            self.assertEqual(response.code, 200)

    async def test_a_referrer_lives_as_long_as_its_subject(self) -> None:
        subject, subject_body = await self.push_image("keep/signed", "v1", [LAYER])
        signature, _ = await self.push_image("keep/signed", None, [b"signature"], subject={
            "mediaType": MANIFEST, "digest": subject, "size": len(subject_body),
        })
        report = await self.collect()
        self.assertEqual(report.items, [], "an untagged referrer of a present subject stays")
        await self.delete(f"/v2/keep/signed/manifests/{subject}")
        report = await self.collect()
        self.assertEqual(self.subjects(report, gc.MANIFEST), [f"keep/signed@{signature}"])
        self.assertIn("subject", report.items[0].reason)


class ManifestsKeptByDefaultTests(GCTestCase):
    async def test_without_a_retention_untagged_manifests_stay(self) -> None:
        digest, _ = await self.push_image("keep/forever", None, [LAYER])
        report = await self.collect()
        self.assertEqual(report.items, [])
        response, _ = await self.request("GET", f"/v2/keep/forever/manifests/{digest}")
        self.assertEqual(response.code, 200)


class UploadPurgeTests(GCTestCase):
    def registry_settings(self) -> Settings:
        return attrs.evolve(super().registry_settings(), upload_max_age=0.0)

    async def start_upload(self, repository: str) -> str:
        response, body = await self.request("POST", f"/v2/{repository}/blobs/uploads/")
        self.assertEqual(response.code, 202, body)
        return str(response.headers.getRawHeaders("Location")[0])

    async def test_an_abandoned_upload_is_purged_with_its_file(self) -> None:
        location = await self.start_upload("up/abandoned")
        upload_id = location.rstrip("/").rsplit("/", 1)[1]
        report = await self.collect()
        self.assertEqual(self.subjects(report, gc.UPLOAD), [upload_id])
        self.assertEqual(os.listdir(os.path.join(self.data_dir, "uploads")), [])
        response, body = await self.request("GET", location)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")

    async def test_an_upload_with_an_open_writer_is_kept_and_finishes(self) -> None:
        location = await self.start_upload("up/busy")
        response, body = await self.request(
            "PATCH", location, data=LAYER, headers={"Content-Type": "application/octet-stream"}
        )
        self.assertEqual(response.code, 202, body)
        report = await self.collect()
        self.assertEqual(self.subjects(report, gc.UPLOAD), [])
        separator = "&" if "?" in location else "?"
        response, body = await self.request("PUT", f"{location}{separator}digest={sha256(LAYER)}")
        self.assertEqual(response.code, 201, body)
        await self.assertBlob("up/busy", LAYER)

    async def test_an_orphaned_upload_file_is_removed(self) -> None:
        path = os.path.join(self.data_dir, "uploads", "orphan-upload")
        with open(path, "wb") as f:
            f.write(b"left by a crash")
        report = await self.collect()
        self.assertEqual([item.kind for item in report.items], [gc.ORPHAN_UPLOAD_FILE])
        self.assertFalse(os.path.exists(path))


class ScheduleTests(GCTestCase):
    async def test_runs_every_interval_on_the_reactor_clock(self) -> None:
        collector = self.opened.gc
        clock = task.Clock()
        self.patch(collector, "_clock", clock)
        self.patch(collector, "interval", 600.0)
        collector.start()
        digest = await self.push_blob("sched/one", LAYER)
        await self.delete(f"/v2/sched/one/blobs/{digest}")
        await task.deferLater(reactor, 0.02, lambda: None)
        self.assertIsNone(collector.last)
        clock.advance(600)
        while collector.last is None:
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.subjects(collector.last, gc.BLOB), [digest])
        # The next run is scheduled once this one finished.
        while not clock.getDelayedCalls():
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(clock.getDelayedCalls()[0].getTime(), 1200.0)

    async def test_runs_are_counted_in_the_metrics(self) -> None:
        digest = await self.push_blob("metrics/one", LAYER)
        await self.delete(f"/v2/metrics/one/blobs/{digest}")
        await self.collect()
        response, body = await self.request("GET", "/metrics")
        text = body.decode()
        self.assertIn('txoci_gc_runs_total{result="ok"} 1.0', text)
        self.assertIn(f'txoci_gc_reclaimed_bytes_total{{kind="blob"}} {float(len(LAYER))}', text)
        self.assertIn('txoci_gc_reclaimed_total{kind="blob"} 1.0', text)


class ReadOnlyTests(GCTestCase):
    read_only = True

    async def test_writes_are_refused_reads_go_on_and_gc_does_not_run(self) -> None:
        response, body = await self.request("POST", "/v2/ro/app/blobs/uploads/")
        self.assertError(response, body, 405, "UNSUPPORTED")
        self.assertIn(b"read-only", body)
        response, body = await self.request("GET", "/v2/_catalog")
        self.assertEqual(response.code, 200)
        await self.assertFailure(Deferred.fromCoroutine(self.collect()), RuntimeError)
        self.flushLoggedErrors(RuntimeError)

    def test_the_twistd_option_sets_read_only_and_gc_settings(self) -> None:
        options = plugin.Options()
        options.parseOptions(["--read-only", "--gc-interval", "0", "--gc-grace", "30",
                              "--manifest-retention", "48", "--upload-max-age", "2"])
        service: Any = plugin.makeService(options)
        settings = service.settings
        self.assertTrue(settings.read_only)
        self.assertIsNone(settings.gc_interval)
        self.assertEqual((settings.gc_grace, settings.manifest_retention, settings.upload_max_age),
                         (30.0, 48 * 3600.0, 2 * 3600.0))
        self.assertTrue(settings.registry_config().read_only)
        defaults = plugin.Options()
        defaults.parseOptions([])
        self.assertIsNone(defaults["manifest-retention"])


class CLICollectionTests(GCTestCase):
    async def txoci(self, *args: str) -> tuple[int, str]:
        import io

        from txoci.service import cli

        out, err = io.StringIO(), io.StringIO()
        code = await deferToThread(cli.main, list(args), out, err)
        return code, out.getvalue() + err.getvalue()

    async def test_dry_run_then_gc_beside_the_running_server(self) -> None:
        digest = await self.push_blob("cli/app", LAYER)
        await self.delete(f"/v2/cli/app/blobs/{digest}")
        await task.deferLater(reactor, 0.02, lambda: None)
        code, out = await self.txoci("gc", "--data-dir", self.data_dir, "--dry-run", "--grace", "0")
        self.assertEqual(code, 0, out)
        self.assertIn(f"would reclaim blob: {digest} (31.2 KiB): no repository links it", out)
        self.assertIn("dry run: would reclaim 31.2 KiB", out)
        self.assertTrue(os.path.exists(blob_file(self.data_dir, digest)))
        code, out = await self.txoci("gc", "--data-dir", self.data_dir, "--grace", "0", "--json")
        self.assertEqual(code, 0, out)
        document = json.loads(out)
        self.assertEqual(document["counts"]["blob"], 1)
        self.assertEqual(document["bytes"], len(LAYER))
        self.assertFalse(os.path.exists(blob_file(self.data_dir, digest)))
        # The server, whose caches knew the blob, pushes and serves it again.
        await self.push_blob("cli/app", LAYER)
        await self.assertBlob("cli/app", LAYER)
        code, out = await self.txoci("check", "--data-dir", self.data_dir, "--grace", "0")
        self.assertEqual(code, 0, out)

    async def test_a_missing_data_dir_is_exit_status_2(self) -> None:
        code, out = await self.txoci("gc", "--data-dir", os.path.join(self.data_dir, "nope"))
        self.assertEqual(code, 2)
        self.assertIn("is not a directory", out)


class WorkerCollectionTests(GCTestCase):
    def test_only_worker_zero_runs_the_periodic_collector(self) -> None:
        from txoci.service.worker import worker_settings

        settings = Settings(data_dir=self.data_dir, gc_interval=600.0)
        intervals = [worker_settings(settings, index).gc_interval for index in range(3)]
        self.assertEqual(intervals, [600.0, None, None])
