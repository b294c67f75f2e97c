"""A registry with deletes disabled refuses every content delete with 405 and keeps the content."""

from __future__ import annotations

from tests.support import RegistryTestCase, sha256


class DeletesDisabledTests(RegistryTestCase):
    deletes_enabled = False

    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.layer = b"kept layer"
        self.digest, self.body = await self.push_image("keep/repo", "v1", [self.layer])

    async def assertUnsupported(self, path: str) -> None:
        response, body = await self.request("DELETE", path)
        self.assertError(response, body, 405, "UNSUPPORTED")

    async def test_delete_manifest_by_tag_is_405_and_the_tag_stays(self) -> None:
        await self.assertUnsupported("/v2/keep/repo/manifests/v1")
        response, body = await self.request("GET", "/v2/keep/repo/manifests/v1")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.body)

    async def test_delete_manifest_by_digest_is_405_and_it_stays(self) -> None:
        await self.assertUnsupported(f"/v2/keep/repo/manifests/{self.digest}")
        response, body = await self.request("GET", f"/v2/keep/repo/manifests/{self.digest}")
        self.assertEqual(response.code, 200)

    async def test_delete_blob_is_405_and_it_stays(self) -> None:
        await self.assertUnsupported(f"/v2/keep/repo/blobs/{sha256(self.layer)}")
        response, body = await self.request("GET", f"/v2/keep/repo/blobs/{sha256(self.layer)}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.layer)

    async def test_delete_of_unknown_content_is_also_405(self) -> None:
        await self.assertUnsupported("/v2/keep/repo/manifests/nope")
        await self.assertUnsupported(f"/v2/keep/repo/manifests/{sha256(b'none')}")
        await self.assertUnsupported(f"/v2/keep/repo/blobs/{sha256(b'none')}")
        await self.assertUnsupported(f"/v2/keep/nowhere/manifests/{self.digest}")

    async def test_cancelling_an_upload_still_works(self) -> None:
        # Cancelling an upload is part of pushing, not content management:
        # clients send it when they abort, so it is not refused.
        response, _ = await self.request("POST", "/v2/keep/repo/blobs/uploads/")
        location = response.headers.getRawHeaders("Location")[0]
        response, body = await self.request("DELETE", location)
        self.assertEqual(response.code, 204, body)

    async def test_pushing_and_pulling_still_work(self) -> None:
        digest, body = await self.push_image("keep/other", "v1", [b"new layer"])
        response, pulled = await self.request("GET", "/v2/keep/other/manifests/v1")
        self.assertEqual(pulled, body)
