"""
txoci served through a plain twisted.web ``Site`` (as inside a host
application): bodies are collected by twisted.web first, and still every
way of pushing and pulling works.
"""

from __future__ import annotations

import json

from tests.support import RegistryTestCase, sha256
from tests.web.helpers import OCI_MANIFEST, UnknownLengthBody, one_header

DATA = bytes(range(256)) * 40  # 10 KiB
OCTET = {"Content-Type": "application/octet-stream"}


class PlainSiteTests(RegistryTestCase):
    plain_site = True

    async def start(self, repository: str) -> str:
        response, body = await self.request("POST", f"/v2/{repository}/blobs/uploads/")
        self.assertEqual(response.code, 202, body)
        return response.headers.getRawHeaders("Location")[0]

    async def test_chunked_push_with_patch_then_pull(self) -> None:
        location = await self.start("plain/repo")
        response, body = await self.request(
            "PATCH", location, data=DATA[:4096], headers={**OCTET, "Content-Range": "0-4095"}
        )
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), "0-4095")
        response, body = await self.request("PATCH", location, data=DATA[4096:], headers=OCTET)
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), f"0-{len(DATA) - 1}")
        response, body = await self.request("PUT", f"{location}?digest={sha256(DATA)}")
        self.assertEqual(response.code, 201, body)
        response, body = await self.request("GET", f"/v2/plain/repo/blobs/{sha256(DATA)}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, DATA)

    async def test_patch_with_chunked_transfer_encoding(self) -> None:
        location = await self.start("plain/repo")
        response, body = await self.request(
            "PATCH", location, data=UnknownLengthBody([DATA[:100], DATA[100:]]), headers=OCTET
        )
        self.assertEqual(response.code, 202, body)
        response, body = await self.request("PUT", f"{location}?digest={sha256(DATA)}")
        self.assertEqual(response.code, 201, body)

    async def test_out_of_order_chunk_is_416(self) -> None:
        location = await self.start("plain/repo")
        response, body = await self.request(
            "PATCH", location, data=DATA[10:20], headers={**OCTET, "Content-Range": "10-19"}
        )
        self.assertEqual(response.code, 416, body)

    async def test_image_push_and_pull(self) -> None:
        digest, manifest = await self.push_image("plain/image", "v1", [DATA, b"second layer"])
        response, body = await self.request("GET", "/v2/plain/image/manifests/v1")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, manifest)
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)
        layer = json.loads(manifest)["layers"][0]["digest"]
        path = f"/v2/plain/image/blobs/{layer}"
        response, body = await self.request("GET", path, headers={"Range": "bytes=0-9"})
        self.assertEqual(response.code, 206)
        self.assertEqual(body, DATA[:10])

    async def test_oversized_manifest_is_413(self) -> None:
        body = b'{"pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
        response, answer = await self.request(
            "PUT", "/v2/plain/image/manifests/v1", data=body, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertError(response, answer, 413, "SIZE_INVALID")

    async def test_digest_mismatch_is_400(self) -> None:
        response, body = await self.request(
            "POST", f"/v2/plain/repo/blobs/uploads/?digest={sha256(b'other')}", data=DATA, headers=OCTET
        )
        self.assertError(response, body, 400, "DIGEST_INVALID")
