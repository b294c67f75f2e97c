"""The base endpoint and a first push/pull through a real port."""

from tests.support import RegistryTestCase


class BaseEndpointTests(RegistryTestCase):
    async def test_v2_answers_200_with_api_version(self) -> None:
        response, body = await self.request("GET", "/v2/")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("Docker-Distribution-API-Version"), ["registry/2.0"]
        )

    async def test_pushed_image_pulls_back_byte_for_byte(self) -> None:
        digest, manifest = await self.push_image("smoke/image", "v1", [b"layer one", b"layer two"])
        response, body = await self.request("GET", "/v2/smoke/image/manifests/v1")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, manifest)
        self.assertEqual(response.headers.getRawHeaders("Docker-Content-Digest"), [digest])
