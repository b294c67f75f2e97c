"""The base endpoint, unknown paths and methods: always the spec's JSON envelope."""

from __future__ import annotations

import json

from tests.support import RegistryTestCase
from tests.web.helpers import header_values, one_header, raw_request


class BaseEndpointTests(RegistryTestCase):
    async def test_get_v2_is_200_with_json_and_api_version(self) -> None:
        response, body = await self.request("GET", "/v2/")
        self.assertEqual(response.code, 200)
        self.assertEqual(one_header(response, "Docker-Distribution-API-Version"), "registry/2.0")
        self.assertEqual(one_header(response, "Content-Type"), "application/json")
        self.assertEqual(json.loads(body), {})

    async def test_head_v2_is_200_without_body(self) -> None:
        response, body = await self.request("HEAD", "/v2/")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"")

    async def test_v2_without_slash_reaches_the_base_endpoint(self) -> None:
        response = await raw_request(self.port.getHost().port, "GET", "/v2")
        if response.code == 200:
            self.assertEqual(json.loads(response.body), {})
        else:
            self.assertIn(response.code, (301, 308))
            self.assertEqual(response.header("Location"), "/v2/")

    async def test_v2_without_slash_redirect_is_followed_to_200(self) -> None:
        response, body = await self.request("GET", "/v2")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body), {})


class UnknownPathTests(RegistryTestCase):
    async def test_unknown_path_under_v2_is_json_404(self) -> None:
        response, body = await self.request("GET", "/v2/some/repo/nothing/here")
        self.assertError(response, body, 404, "UNSUPPORTED")
        self.assertEqual(one_header(response, "Content-Type"), "application/json")

    async def test_path_outside_v2_is_json_404(self) -> None:
        for path in ("/", "/v1/", "/index.html", "/v3/_catalog"):
            response, body = await self.request("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(one_header(response, "Content-Type"), "application/json", path)
            self.assertTrue(json.loads(body)["errors"], path)

    async def test_unknown_resource_kind_in_repository_is_json_404(self) -> None:
        response, body = await self.request("GET", "/v2/repo/widgets/sha256:abc")
        self.assertEqual(response.code, 404)
        self.assertTrue(json.loads(body)["errors"])

    async def test_error_responses_carry_the_api_version_header(self) -> None:
        response, _ = await self.request("GET", "/v2/some/repo/nothing/here")
        self.assertEqual(one_header(response, "Docker-Distribution-API-Version"), "registry/2.0")


class MethodNotAllowedTests(RegistryTestCase):
    async def assertMethodNotAllowed(self, method: str, path: str, allowed: set[str]) -> None:
        response, body = await self.request(method, path)
        self.assertError(response, body, 405, "UNSUPPORTED")
        self.assertEqual(one_header(response, "Content-Type"), "application/json")
        # RFC 9110 15.5.6: a 405 names the methods the resource does support.
        self.assertTrue(allowed <= set(header_values(response, "Allow")), response.headers)

    async def test_post_on_base_endpoint_is_405(self) -> None:
        await self.assertMethodNotAllowed("POST", "/v2/", {"GET", "HEAD"})

    async def test_put_on_tag_list_is_405(self) -> None:
        await self.assertMethodNotAllowed("PUT", "/v2/repo/tags/list", {"GET", "HEAD"})

    async def test_post_on_blob_is_405(self) -> None:
        blob = "/v2/repo/blobs/sha256:" + "a" * 64
        await self.assertMethodNotAllowed("POST", blob, {"GET", "HEAD", "DELETE"})

    async def test_patch_on_manifest_is_405(self) -> None:
        await self.assertMethodNotAllowed("PATCH", "/v2/repo/manifests/latest", {"GET", "PUT", "DELETE"})

    async def test_delete_on_catalog_is_405(self) -> None:
        await self.assertMethodNotAllowed("DELETE", "/v2/_catalog", {"GET"})

    async def test_get_on_upload_start_is_405(self) -> None:
        await self.assertMethodNotAllowed("GET", "/v2/repo/blobs/uploads/", {"POST"})
