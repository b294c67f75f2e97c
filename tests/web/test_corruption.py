"""
A blob whose bytes no longer match its digest is never served: the full GET
that finds out is aborted before its last chunk, and later requests get
``404 BLOB_UNKNOWN`` until the content is pushed again.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any

import treq
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

from tests.support import RegistryTestCase, sha256
from tests.web.helpers import one_header
from txoci.storage.filesystem import READ_SIZE

#: A little over 3 MiB: several reads, so most of the body is sent before the check.
BIG = bytes(range(256)) * 12289


def blob_file(data_dir: str, digest: str) -> str:
    algorithm, encoded = digest.split(":")
    return os.path.join(data_dir, "blobs", algorithm, encoded[:2], encoded)


def flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


class CorruptBlobTests(RegistryTestCase):
    async def collect(self, path: str, **kwargs: Any) -> tuple[Any, bytearray, Exception | None]:
        """
        GET ``path``; return the response (None if none arrived), the body
        bytes received and how the exchange ended.
        """
        try:
            response = await treq.request("GET", self.url(path), persistent=False, **kwargs)
        except ResponseNeverReceived as error:
            return None, bytearray(), error
        received = bytearray()
        try:
            await treq.collect(response, received.extend)
        except Exception as error:
            return response, received, error
        return response, received, None

    async def test_full_get_is_aborted_before_the_last_chunk(self) -> None:
        digest = await self.push_blob("bad/big", BIG)
        flip_byte(blob_file(self.data_dir, digest), len(BIG) // 2)
        response, received, error = await self.collect(f"/v2/bad/big/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertIsInstance(error, ResponseFailed)
        self.assertLess(len(received), len(BIG))
        # At most everything before the last chunk, which was withheld.
        self.assertLessEqual(len(received), len(BIG) - len(BIG) % READ_SIZE)
        self.flushLoggedErrors()

    async def test_later_requests_are_refused_and_the_file_is_quarantined(self) -> None:
        digest = await self.push_blob("bad/small", b"small blob")
        path = blob_file(self.data_dir, digest)
        flip_byte(path, 0)
        response, received, error = await self.collect(f"/v2/bad/small/blobs/{digest}")
        # The only chunk was the last one, withheld: not even the headers
        # (sent with the first body bytes) left, and the connection was cut.
        self.assertIsNone(response)
        self.assertIsInstance(error, ResponseNeverReceived)
        for method in ("GET", "HEAD"):
            response, body = await self.request(method, f"/v2/bad/small/blobs/{digest}")
            self.assertEqual(response.code, 404)
            if method == "GET":
                self.assertError(response, body, 404, "BLOB_UNKNOWN")
        self.assertFalse(os.path.exists(path))
        moved = glob.glob(os.path.join(self.data_dir, "quarantine", "blobs", "sha256", "*", "*"))
        self.assertEqual(len(moved), 1)
        self.assertTrue(os.path.basename(moved[0]).startswith(digest.split(":")[1] + "."))
        # Range requests are refused too, and a mount cannot pick the blob up.
        response, body = await self.request(
            "GET", f"/v2/bad/small/blobs/{digest}", headers={"Range": "bytes=0-1"}
        )
        self.assertError(response, body, 404, "BLOB_UNKNOWN")
        response, body = await self.request("POST", f"/v2/other/blobs/uploads/?mount={digest}")
        self.assertEqual(response.code, 202)
        self.flushLoggedErrors()

    async def test_the_mark_survives_a_restart_and_a_push_heals_it(self) -> None:
        data = b"precious bytes"
        digest = await self.push_blob("bad/heal", data)
        flip_byte(blob_file(self.data_dir, digest), 3)
        await self.collect(f"/v2/bad/heal/blobs/{digest}")
        await self.restart_server()
        response, body = await self.request("GET", f"/v2/bad/heal/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")
        self.assertEqual(await self.push_blob("bad/heal", data), digest)
        response, body = await self.request("GET", f"/v2/bad/heal/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, data)
        self.flushLoggedErrors()

    async def test_a_truncated_file_is_refused_before_any_header(self) -> None:
        digest = await self.push_blob("bad/short", BIG)
        os.truncate(blob_file(self.data_dir, digest), 1000)
        response, body = await self.request("GET", f"/v2/bad/short/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")
        response, body = await self.request("HEAD", f"/v2/bad/short/blobs/{digest}")
        self.assertEqual(response.code, 404)
        self.flushLoggedErrors()

    async def test_a_range_get_is_not_verified(self) -> None:
        # Ranges are checked by ``txoci check`` and by the mark a full GET leaves.
        digest = await self.push_blob("bad/range", b"0123456789")
        flip_byte(blob_file(self.data_dir, digest), 9)
        response, body = await self.request(
            "GET", f"/v2/bad/range/blobs/{digest}", headers={"Range": "bytes=0-3"}
        )
        self.assertEqual(response.code, 206)
        self.assertEqual(body, b"0123")
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)

    async def test_a_whole_blob_is_still_served(self) -> None:
        digest = await self.push_blob("good/big", BIG)
        response, body = await self.request("GET", f"/v2/good/big/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(sha256(body), digest)

    async def txoci_check(self) -> tuple[int, dict[str, Any]]:
        """``txoci check --json`` as a separate process, beside the running registry."""
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "txoci.service.cli", "check", "--data-dir", self.data_dir, "--json"],
            env=dict(os.environ),
        )
        return code, json.loads(out)

    async def test_txoci_check_reports_the_flipped_blob_before_and_after_a_get(self) -> None:
        digest = await self.push_blob("bad/checked", BIG)
        flip_byte(blob_file(self.data_dir, digest), 12345)
        code, report = await self.txoci_check()
        self.assertEqual(code, 1)
        self.assertEqual([(p["kind"], p["subject"]) for p in report["problems"]], [("corrupt", digest)])
        # The GET that finds out fails, and check then reports the mark it left.
        response, received, error = await self.collect(f"/v2/bad/checked/blobs/{digest}")
        self.assertIsInstance(error, ResponseFailed)
        code, report = await self.txoci_check()
        self.assertEqual(code, 1)
        self.assertEqual([(p["kind"], p["subject"]) for p in report["problems"]],
                         [("marked-corrupt", digest)])
        self.flushLoggedErrors()
