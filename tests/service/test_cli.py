"""
``txoci check`` and ``txoci du``, in-process and as a subprocess, against a
data dir that a registry is serving at the same time.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import sys
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest

from tests.support import RegistryTestCase, sha256
from tests.web.test_corruption import blob_file, flip_byte
from txoci.service import cli
from txoci.storage import check as checking

LAYER = b"layer bytes " * 1000
SHARED = b"shared layer " * 500


class CLITestCase(RegistryTestCase):
    def setUp(self) -> Any:
        # No test should wait seconds for a re-check.
        self.patch(checking, "UPLOAD_RECHECK_DELAY", 0.01)
        return super().setUp()

    async def txoci(self, *args: str) -> tuple[int, str, str]:
        """Run ``txoci ARGS`` in-process, on a thread (it blocks, as a CLI does)."""
        out, err = io.StringIO(), io.StringIO()
        code = await deferToThread(cli.main, list(args), out, err)
        return code, out.getvalue(), err.getvalue()

    async def check(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, out, err = await self.txoci("check", "--data-dir", self.data_dir, "--json", *args)
        return code, json.loads(out)

    def kinds(self, report: dict[str, Any]) -> list[str]:
        return [problem["kind"] for problem in report["problems"]]


class CheckTests(CLITestCase):
    async def test_a_healthy_registry_is_clean(self) -> None:
        await self.push_image("app/one", "v1", [LAYER, SHARED])
        code, out, err = await self.txoci("check", "--data-dir", self.data_dir)
        self.assertEqual(code, 0, out)
        self.assertIn("checked 3 blobs", out)
        self.assertIn("no problems found", out)

    async def test_a_corrupt_blob_is_reported_then_quarantined_by_repair(self) -> None:
        await self.push_image("app/one", "v1", [LAYER])
        digest = sha256(LAYER)
        path = blob_file(self.data_dir, digest)
        flip_byte(path, 10)
        code, report = await self.check()
        self.assertEqual(code, 1)
        self.assertEqual(self.kinds(report), ["corrupt"])
        self.assertEqual(report["problems"][0]["subject"], digest)
        self.assertIsNone(report["problems"][0]["repaired"])
        self.assertTrue(os.path.exists(path), "check without --repair changes nothing")

        code, report = await self.check("--repair")
        self.assertEqual(code, 1)
        self.assertIn("moved to quarantine/blobs/sha256/", report["problems"][0]["repaired"])
        self.assertFalse(os.path.exists(path))
        # The running registry no longer serves it, and says so.
        response, body = await self.request("GET", f"/v2/app/one/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")
        # Until it is pushed again, check keeps reporting it.
        code, report = await self.check()
        self.assertEqual((code, self.kinds(report)), (1, ["marked-corrupt"]))
        await self.push_blob("app/one", LAYER)
        code, report = await self.check()
        self.assertEqual((code, report["problems"]), (0, []))

    async def test_a_missing_blob_file(self) -> None:
        digest = await self.push_blob("app/one", LAYER)
        os.unlink(blob_file(self.data_dir, digest))
        code, report = await self.check("--repair")
        self.assertEqual((code, self.kinds(report)), (1, ["missing"]))
        response, body = await self.request("HEAD", f"/v2/app/one/blobs/{digest}")
        self.assertEqual(response.code, 404)

    async def test_orphaned_and_stray_files_are_quarantined(self) -> None:
        await self.push_blob("app/one", LAYER)
        orphan = blob_file(self.data_dir, sha256(b"nobody recorded me"))
        os.makedirs(os.path.dirname(orphan))
        with open(orphan, "wb") as f:
            f.write(b"nobody recorded me")
        stray = os.path.join(self.data_dir, "blobs", "sha256", "junk.txt")
        upload = os.path.join(self.data_dir, "uploads", "no-such-session")
        for path in (stray, upload):
            with open(path, "wb") as f:
                f.write(b"x")
        # Within the grace period they might belong to a push in flight.
        code, report = await self.check()
        self.assertEqual((code, report["skipped_recent"]), (0, 3))

        code, report = await self.check("--grace", "0")
        self.assertEqual(code, 1)
        self.assertEqual(sorted(self.kinds(report)), ["orphan-blob", "orphan-upload", "stray-file"])
        code, report = await self.check("--grace", "0", "--repair")
        self.assertEqual(code, 1)
        for problem in report["problems"]:
            self.assertTrue(problem["repaired"].startswith("moved to quarantine/"), problem)
        for path in (orphan, stray, upload):
            self.assertFalse(os.path.exists(path))
        self.assertTrue(os.path.isdir(os.path.join(self.data_dir, "quarantine", "uploads")))
        code, report = await self.check("--grace", "0")
        self.assertEqual((code, report["problems"]), (0, []))

    async def test_an_orphan_committed_while_being_quarantined_is_put_back(self) -> None:
        # A push of the same content found the orphan in place (and kept it)
        # just before --repair moved it: once its row shows up, it goes back.
        data = b"pushed while repairing"
        orphan = blob_file(self.data_dir, sha256(data))
        os.makedirs(os.path.dirname(orphan))
        with open(orphan, "wb") as f:
            f.write(data)
        database = os.path.join(self.data_dir, "metadata.sqlite3")

        class Clock:
            time = staticmethod(time.time)

            @staticmethod
            def sleep(seconds: float) -> None:
                connection = sqlite3.connect(database)
                with connection:
                    connection.execute("INSERT INTO blobs (digest, size) VALUES (?, ?)",
                                       (sha256(data), len(data)))
                    connection.execute("INSERT INTO repositories (name) VALUES ('app/one')")
                    connection.execute("INSERT INTO repository_blobs (repository_id, digest) "
                                       "SELECT id, ? FROM repositories", (sha256(data),))
                connection.close()

        self.patch(checking, "time", Clock)
        code, report = await self.check("--grace", "0", "--repair")
        self.assertEqual(self.kinds(report), ["orphan-blob"])
        self.assertEqual(report["problems"][0]["repaired"], "committed meanwhile: left in place")
        self.assertTrue(os.path.exists(orphan))
        response, body = await self.request("GET", f"/v2/app/one/blobs/{sha256(data)}")
        self.assertEqual((response.code, body), (200, data))

    async def test_the_console_script(self) -> None:
        script = shutil.which("txoci")
        if script is None:
            raise SkipTest("the txoci console script is not installed (pip install -e .)")
        out, err, code = await getProcessOutputAndValue(
            script, ["check", "--data-dir", self.data_dir], env=dict(os.environ), reactor=reactor
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"no problems found", out)

    async def test_a_manifest_referencing_a_deleted_blob_dangles(self) -> None:
        digest, _ = await self.push_image("app/one", "v1", [LAYER])
        response, _ = await self.request("DELETE", f"/v2/app/one/blobs/{sha256(LAYER)}")
        self.assertEqual(response.code, 202)
        code, report = await self.check()
        self.assertEqual((code, self.kinds(report)), (1, ["dangling-reference"]))
        self.assertEqual(report["problems"][0]["subject"], f"app/one@{digest}")

    async def test_a_corrupt_manifest_row(self) -> None:
        await self.push_image("app/one", "v1", [LAYER])
        database = sqlite3.connect(os.path.join(self.data_dir, "metadata.sqlite3"))
        with database:
            database.execute("UPDATE manifests SET content = CAST('{}' AS BLOB)")
        database.close()
        code, report = await self.check()
        self.assertEqual((code, self.kinds(report)), (1, ["corrupt-manifest"]))

    async def test_no_data_dir(self) -> None:
        code, out, err = await self.txoci("check", "--data-dir", self.data_dir + "-nope")
        self.assertEqual((code, out), (2, ""))
        self.assertIn("is not a directory", err)

    async def test_a_subprocess_beside_the_running_registry(self) -> None:
        await self.push_image("app/one", "v1", [LAYER])
        flip_byte(blob_file(self.data_dir, sha256(LAYER)), 0)
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "txoci.service.cli", "check", "--data-dir", self.data_dir],
            env=dict(os.environ), reactor=reactor,
        )
        self.assertEqual(code, 1, err)
        self.assertIn(f"corrupt: {sha256(LAYER)}: its content has digest".encode(), out)
        # The registry kept serving all along.
        response, body = await self.request("GET", "/v2/app/one/tags/list")
        self.assertEqual(response.code, 200)


class UsageTests(CLITestCase):
    async def test_shared_blobs_count_once_per_repository_and_once_in_total(self) -> None:
        _, one = await self.push_image("app/one", "v1", [LAYER, SHARED])
        _, two = await self.push_image("app/two", "v1", [SHARED])
        config = len(json.dumps({"architecture": "amd64", "os": "linux"}).encode())
        code, out, err = await self.txoci("du", "--data-dir", self.data_dir, "--json")
        self.assertEqual(code, 0, err)
        result = json.loads(out)
        by_name = {usage["repository"]: usage for usage in result["repositories"]}
        self.assertEqual(by_name["app/one"]["blobs"], 3)
        self.assertEqual(by_name["app/one"]["blob_bytes"], config + len(LAYER) + len(SHARED))
        self.assertEqual(by_name["app/one"]["manifest_bytes"], len(one))
        self.assertEqual(by_name["app/two"]["blob_bytes"], config + len(SHARED))
        self.assertEqual(by_name["app/two"]["total"], config + len(SHARED) + len(two))
        # Each blob once: the config and SHARED are in both repositories.
        self.assertEqual(result["total"]["blobs"], 3)
        self.assertEqual(result["total"]["blob_bytes"], config + len(LAYER) + len(SHARED))
        self.assertEqual(result["unreferenced_blobs"], 0)

    async def test_uploads_in_progress_and_unreferenced_blobs(self) -> None:
        digest = await self.push_blob("app/one", LAYER)
        response, _ = await self.request("POST", "/v2/fresh/blobs/uploads/")
        location = response.headers.getRawHeaders("Location")[0]
        response, _ = await self.request("PATCH", location, data=b"12345",
                                         headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(response.code, 202)
        response, _ = await self.request("DELETE", f"/v2/app/one/blobs/{digest}")
        self.assertEqual(response.code, 202)
        code, out, err = await self.txoci("du", "--data-dir", self.data_dir, "--json")
        result = json.loads(out)
        by_name = {usage["repository"]: usage for usage in result["repositories"]}
        self.assertEqual((by_name["fresh"]["uploads"], by_name["fresh"]["upload_bytes"]), (1, 5))
        self.assertEqual(result["unreferenced_blobs"], 1)
        self.assertEqual(result["unreferenced_blob_bytes"], len(LAYER))

    async def test_text_output_as_a_subprocess(self) -> None:
        await self.push_image("app/one", "v1", [LAYER])
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "txoci.service.cli", "du", "--data-dir", self.data_dir],
            env=dict(os.environ), reactor=reactor,
        )
        self.assertEqual(code, 0, err)
        lines = out.decode().splitlines()
        self.assertTrue(lines[0].startswith("REPOSITORY"))
        self.assertTrue(lines[1].startswith("app/one"))
        self.assertTrue(lines[2].startswith("(all, each blob once)"))
        self.assertIn("reclaimable by GC", lines[3])
