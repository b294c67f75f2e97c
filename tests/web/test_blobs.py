"""``/v2/<name>/blobs/<digest>``: pulling (GET, HEAD, ranges) and deleting blobs."""

from __future__ import annotations

from tests.support import RegistryTestCase, sha256, sha512
from tests.web.helpers import content_length, one_header

DATA = b"0123456789abcdefghij"  # 20 bytes


class PullBlobTests(RegistryTestCase):
    async def test_get_returns_the_bytes_with_digest_length_and_type(self) -> None:
        digest = await self.push_blob("pull/blob", DATA)
        response, body = await self.request("GET", f"/v2/pull/blob/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, DATA)
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)
        self.assertEqual(content_length(response), len(DATA))
        self.assertEqual(one_header(response, "Content-Type"), "application/octet-stream")

    async def test_head_returns_headers_and_no_body(self) -> None:
        digest = await self.push_blob("pull/blob", DATA)
        response, body = await self.request("HEAD", f"/v2/pull/blob/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"")
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)
        self.assertEqual(content_length(response), len(DATA))
        self.assertEqual(one_header(response, "Content-Type"), "application/octet-stream")

    async def test_get_blob_larger_than_one_read_is_whole(self) -> None:
        data = bytes(range(256)) * 12289  # a little over 3 MiB, several reads
        digest = await self.push_blob("pull/big", data)
        response, body = await self.request("GET", f"/v2/pull/big/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(sha256(body), digest)

    async def test_empty_blob_pulls_as_empty_body(self) -> None:
        digest = await self.push_blob("pull/empty", b"")
        response, body = await self.request("GET", f"/v2/pull/empty/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"")
        self.assertEqual(content_length(response), 0)

    async def test_unknown_blob_is_404_blob_unknown(self) -> None:
        await self.push_blob("pull/blob", DATA)
        response, body = await self.request("GET", f"/v2/pull/blob/blobs/{sha256(b'other')}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")

    async def test_head_unknown_blob_is_404_without_body(self) -> None:
        response, body = await self.request("HEAD", f"/v2/pull/blob/blobs/{sha256(b'other')}")
        self.assertEqual(response.code, 404)
        self.assertEqual(body, b"")

    async def test_blob_of_another_repository_is_404_blob_unknown(self) -> None:
        digest = await self.push_blob("scope/one", DATA)
        response, body = await self.request("GET", f"/v2/scope/two/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")
        response, body = await self.request("HEAD", f"/v2/scope/two/blobs/{digest}")
        self.assertEqual(response.code, 404)

    async def test_sha512_blob_pulls_by_its_sha512_digest(self) -> None:
        digest = sha512(DATA)
        response, body = await self.request(
            "POST", f"/v2/pull/sha512/blobs/uploads/?digest={digest}", data=DATA,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(response.code, 201, body)
        response, body = await self.request("GET", f"/v2/pull/sha512/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, DATA)
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)

    async def test_malformed_digest_is_400_digest_invalid(self) -> None:
        for text in ("nodigest", "sha256:xyz", "sha256:" + "A" * 64, "sha256:" + "a" * 63,
                     "md5:d41d8cd98f00b204e9800998ecf8427e", "sha512:" + "a" * 64):
            response, body = await self.request("GET", f"/v2/pull/blob/blobs/{text}")
            self.assertError(response, body, 400, "DIGEST_INVALID")


class RangeTests(RegistryTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.digest = await self.push_blob("range/blob", DATA)
        self.path = f"/v2/range/blob/blobs/{self.digest}"

    async def get_range(self, value: str) -> tuple[object, bytes]:
        return await self.request("GET", self.path, headers={"Range": value})

    async def test_blob_advertises_byte_ranges(self) -> None:
        response, _ = await self.request("GET", self.path)
        self.assertEqual(one_header(response, "Accept-Ranges"), "bytes")

    async def test_single_range_is_206_with_content_range(self) -> None:
        response, body = await self.get_range("bytes=2-5")
        self.assertEqual(response.code, 206)  # type: ignore[attr-defined]
        self.assertEqual(body, DATA[2:6])
        self.assertEqual(one_header(response, "Content-Range"), f"bytes 2-5/{len(DATA)}")
        self.assertEqual(content_length(response), 4)

    async def test_open_ended_range_runs_to_the_end(self) -> None:
        response, body = await self.get_range("bytes=15-")
        self.assertEqual(response.code, 206)  # type: ignore[attr-defined]
        self.assertEqual(body, DATA[15:])
        self.assertEqual(one_header(response, "Content-Range"), "bytes 15-19/20")

    async def test_range_past_the_end_is_truncated(self) -> None:
        response, body = await self.get_range("bytes=18-1000")
        self.assertEqual(response.code, 206)  # type: ignore[attr-defined]
        self.assertEqual(body, DATA[18:])
        self.assertEqual(one_header(response, "Content-Range"), "bytes 18-19/20")

    async def test_suffix_range_returns_the_last_bytes(self) -> None:
        response, body = await self.get_range("bytes=-4")
        self.assertEqual(response.code, 206)  # type: ignore[attr-defined]
        self.assertEqual(body, DATA[-4:])
        self.assertEqual(one_header(response, "Content-Range"), "bytes 16-19/20")

    async def test_suffix_longer_than_blob_returns_it_all_as_206(self) -> None:
        response, body = await self.get_range("bytes=-100")
        self.assertEqual(response.code, 206)  # type: ignore[attr-defined]
        self.assertEqual(body, DATA)
        self.assertEqual(one_header(response, "Content-Range"), "bytes 0-19/20")

    async def test_range_starting_past_the_end_is_416_with_size(self) -> None:
        for value in ("bytes=20-", "bytes=100-200", "bytes=-0"):
            response, body = await self.get_range(value)
            self.assertEqual(response.code, 416, value)  # type: ignore[attr-defined]
            self.assertEqual(one_header(response, "Content-Range"), f"bytes */{len(DATA)}", value)

    async def test_any_range_of_an_empty_blob_is_416(self) -> None:
        digest = await self.push_blob("range/empty", b"")
        path = f"/v2/range/empty/blobs/{digest}"
        response, _ = await self.request("GET", path, headers={"Range": "bytes=0-"})
        self.assertEqual(response.code, 416)
        self.assertEqual(one_header(response, "Content-Range"), "bytes */0")

    async def test_multiple_ranges_are_ignored_with_200(self) -> None:
        response, body = await self.get_range("bytes=0-1,4-5")
        self.assertEqual(response.code, 200)  # type: ignore[attr-defined]
        self.assertEqual(body, DATA)
        self.assertIsNone(one_header(response, "Content-Range"))

    async def test_other_units_are_ignored_with_200(self) -> None:
        response, body = await self.get_range("items=0-1")
        self.assertEqual(response.code, 200)  # type: ignore[attr-defined]
        self.assertEqual(body, DATA)

    async def test_backwards_range_is_416(self) -> None:
        response, body = await self.get_range("bytes=5-2")
        self.assertEqual(response.code, 416)  # type: ignore[attr-defined]
        self.assertEqual(one_header(response, "Content-Range"), f"bytes */{len(DATA)}")

    async def test_ranges_reassemble_the_blob(self) -> None:
        parts = []
        for start in range(0, len(DATA), 7):
            response, body = await self.get_range(f"bytes={start}-{start + 6}")
            self.assertEqual(response.code, 206)  # type: ignore[attr-defined]
            parts.append(body)
        self.assertEqual(b"".join(parts), DATA)


class DeleteBlobTests(RegistryTestCase):
    async def test_delete_is_202_then_get_is_404(self) -> None:
        digest = await self.push_blob("delete/blob", DATA)
        response, body = await self.request("DELETE", f"/v2/delete/blob/blobs/{digest}")
        self.assertEqual(response.code, 202, body)
        response, body = await self.request("GET", f"/v2/delete/blob/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")
        response, _ = await self.request("HEAD", f"/v2/delete/blob/blobs/{digest}")
        self.assertEqual(response.code, 404)

    async def test_delete_twice_is_404_the_second_time(self) -> None:
        digest = await self.push_blob("delete/blob", DATA)
        response, _ = await self.request("DELETE", f"/v2/delete/blob/blobs/{digest}")
        self.assertEqual(response.code, 202)
        response, body = await self.request("DELETE", f"/v2/delete/blob/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")

    async def test_delete_unknown_blob_is_404(self) -> None:
        response, body = await self.request("DELETE", f"/v2/delete/blob/blobs/{sha256(b'never')}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")

    async def test_delete_in_one_repository_leaves_the_other(self) -> None:
        digest = await self.push_blob("delete/one", DATA)
        await self.push_blob("delete/two", DATA)
        response, _ = await self.request("DELETE", f"/v2/delete/one/blobs/{digest}")
        self.assertEqual(response.code, 202)
        response, body = await self.request("GET", f"/v2/delete/two/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, DATA)

    async def test_delete_blob_of_another_repository_is_404(self) -> None:
        digest = await self.push_blob("delete/one", DATA)
        response, body = await self.request("DELETE", f"/v2/delete/two/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")
        response, _ = await self.request("GET", f"/v2/delete/one/blobs/{digest}")
        self.assertEqual(response.code, 200)

    async def test_delete_with_malformed_digest_is_400(self) -> None:
        response, body = await self.request("DELETE", "/v2/delete/blob/blobs/sha256:nothex")
        self.assertError(response, body, 400, "DIGEST_INVALID")

    async def test_deleted_blob_can_be_pushed_again(self) -> None:
        digest = await self.push_blob("delete/blob", DATA)
        await self.request("DELETE", f"/v2/delete/blob/blobs/{digest}")
        await self.push_blob("delete/blob", DATA)
        response, body = await self.request("GET", f"/v2/delete/blob/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, DATA)
