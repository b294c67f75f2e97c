"""``/v2/<name>/blobs/uploads/``: every way of pushing a blob, mounting, cancelling."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from tests.support import RegistryTestCase, sha256, sha512
from tests.web.helpers import UnknownLengthBody, one_header, raw_request

BLOB = b"the quick brown fox jumps over the lazy dog"  # 43 bytes
OCTET = {"Content-Type": "application/octet-stream"}


def path_of(location: str) -> str:
    """A Location as a path (the spec allows absolute and relative ones)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(location: str, query: str) -> str:
    return location + ("&" if "?" in location else "?") + query


class UploadTestCase(RegistryTestCase):
    async def start(self, repository: str, query: str = "") -> tuple[Any, str]:
        """POST a new upload session; return the response and its location."""
        # With no body the client sends ``Content-Length: 0``, as the spec asks.
        response, body = await self.request("POST", f"/v2/{repository}/blobs/uploads/{query}")
        self.assertEqual(response.code, 202, body)
        return response, path_of(one_header(response, "Location") or "")

    async def patch(self, location: str, data: Any, content_range: str | None = None) -> tuple[Any, bytes]:
        headers = dict(OCTET)
        if content_range is not None:
            headers["Content-Range"] = content_range
        return await self.request("PATCH", location, data=data, headers=headers)

    async def put(
        self, location: str, digest: str, data: bytes | None = None, content_range: str | None = None
    ) -> tuple[Any, bytes]:
        headers = dict(OCTET)
        if content_range is not None:
            headers["Content-Range"] = content_range
        return await self.request("PUT", with_query(location, f"digest={digest}"), data=data, headers=headers)

    async def assertPullable(self, repository: str, digest: str, data: bytes) -> None:
        response, body = await self.request("GET", f"/v2/{repository}/blobs/{digest}")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(body, data)
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)

    async def assertNotPullable(self, repository: str, digest: str) -> None:
        response, body = await self.request("GET", f"/v2/{repository}/blobs/{digest}")
        self.assertError(response, body, 404, "BLOB_UNKNOWN")

    def assertCreated(self, response: Any, body: bytes, repository: str, digest: str) -> None:
        self.assertEqual(response.code, 201, body)
        self.assertEqual(path_of(one_header(response, "Location") or ""), f"/v2/{repository}/blobs/{digest}")
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)


class StartUploadTests(UploadTestCase):
    async def test_post_is_202_with_location_uuid_range_and_chunk_minimum(self) -> None:
        response, location = await self.start("up/start")
        match = re.match(r"^/v2/up/start/blobs/uploads/([^/?]+)", location)
        self.assertIsNotNone(match, location)
        assert match is not None
        self.assertEqual(one_header(response, "Docker-Upload-UUID"), match.group(1))
        self.assertEqual(one_header(response, "Range"), "0-0")
        self.assertGreater(int(one_header(response, "OCI-Chunk-Min-Length") or "0"), 0)

    async def test_each_post_opens_a_distinct_session(self) -> None:
        _, first = await self.start("up/start")
        _, second = await self.start("up/start")
        self.assertNotEqual(first, second)

    async def test_post_with_invalid_name_is_400_name_invalid(self) -> None:
        response, body = await self.request("POST", "/v2/Up/Start/blobs/uploads/")
        self.assertError(response, body, 400, "NAME_INVALID")


class MonolithicUploadTests(UploadTestCase):
    async def test_single_post_with_digest_is_201_and_pullable(self) -> None:
        digest = sha256(BLOB)
        response, body = await self.request(
            "POST", f"/v2/up/mono/blobs/uploads/?digest={digest}", data=BLOB, headers=OCTET
        )
        self.assertCreated(response, body, "up/mono", digest)
        await self.assertPullable("up/mono", digest, BLOB)

    async def test_single_post_location_is_the_pullable_blob(self) -> None:
        digest = sha256(BLOB)
        response, _ = await self.request(
            "POST", f"/v2/up/mono/blobs/uploads/?digest={digest}", data=BLOB, headers=OCTET
        )
        response, body = await self.request("GET", path_of(one_header(response, "Location") or ""))
        self.assertEqual(body, BLOB)

    async def test_single_post_with_wrong_digest_is_400_and_not_pullable(self) -> None:
        claimed = sha256(b"something else")
        response, body = await self.request(
            "POST", f"/v2/up/mono/blobs/uploads/?digest={claimed}", data=BLOB, headers=OCTET
        )
        self.assertError(response, body, 400, "DIGEST_INVALID")
        await self.assertNotPullable("up/mono", claimed)
        await self.assertNotPullable("up/mono", sha256(BLOB))

    async def test_post_then_put_with_whole_body_is_201(self) -> None:
        _, location = await self.start("up/mono")
        digest = sha256(BLOB)
        response, body = await self.put(location, digest, BLOB)
        self.assertCreated(response, body, "up/mono", digest)
        await self.assertPullable("up/mono", digest, BLOB)

    async def test_post_then_empty_put_makes_the_empty_blob(self) -> None:
        _, location = await self.start("up/mono")
        digest = sha256(b"")
        response, body = await self.put(location, digest)
        self.assertCreated(response, body, "up/mono", digest)
        await self.assertPullable("up/mono", digest, b"")

    async def test_put_with_wrong_digest_is_400_and_not_pullable(self) -> None:
        _, location = await self.start("up/mono")
        claimed = sha256(b"not the content")
        response, body = await self.put(location, claimed, BLOB)
        self.assertError(response, body, 400, "DIGEST_INVALID")
        await self.assertNotPullable("up/mono", claimed)
        await self.assertNotPullable("up/mono", sha256(BLOB))

    async def test_put_without_digest_is_400(self) -> None:
        _, location = await self.start("up/mono")
        response, body = await self.request("PUT", location, data=BLOB, headers=OCTET)
        self.assertEqual(response.code, 400, body)

    async def test_completed_upload_is_gone(self) -> None:
        _, location = await self.start("up/mono")
        response, _ = await self.put(location, sha256(BLOB), BLOB)
        self.assertEqual(response.code, 201)
        response, body = await self.request("GET", location)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")
        response, body = await self.patch(location, b"more")
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")


class StreamedUploadTests(UploadTestCase):
    async def test_patch_without_content_range_with_length_then_empty_put(self) -> None:
        _, location = await self.start("up/stream")
        response, body = await self.patch(location, BLOB)
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), f"0-{len(BLOB) - 1}")
        location = path_of(one_header(response, "Location") or "")
        response, body = await self.put(location, sha256(BLOB))
        self.assertCreated(response, body, "up/stream", sha256(BLOB))
        await self.assertPullable("up/stream", sha256(BLOB), BLOB)

    async def test_patch_with_chunked_transfer_encoding_then_empty_put(self) -> None:
        _, location = await self.start("up/stream")
        parts = [BLOB[:10], BLOB[10:11], BLOB[11:30], BLOB[30:]]
        response, body = await self.patch(location, UnknownLengthBody(parts))
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), f"0-{len(BLOB) - 1}")
        response, body = await self.put(location, sha256(BLOB))
        self.assertCreated(response, body, "up/stream", sha256(BLOB))
        await self.assertPullable("up/stream", sha256(BLOB), BLOB)

    async def test_patch_with_raw_chunked_encoding(self) -> None:
        _, location = await self.start("up/stream")
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (BLOB[:20], BLOB[20:])) + b"0\r\n\r\n"
        response = await raw_request(
            self.port.getHost().port, "PATCH", location,
            {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}, chunked,
        )
        self.assertEqual(response.code, 202, response.body)
        self.assertEqual(response.header("Range"), f"0-{len(BLOB) - 1}")
        response2, body = await self.put(location, sha256(BLOB))
        self.assertCreated(response2, body, "up/stream", sha256(BLOB))

    async def test_large_streamed_patch_is_stored_whole(self) -> None:
        data = bytes(range(256)) * (6 * 4096 + 3)  # about 6 MiB
        _, location = await self.start("up/stream")
        response, body = await self.patch(location, data)
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), f"0-{len(data) - 1}")
        response, body = await self.put(location, sha256(data))
        self.assertEqual(response.code, 201, body)
        await self.assertPullable("up/stream", sha256(data), data)

    async def test_several_patches_without_content_range_append(self) -> None:
        _, location = await self.start("up/stream")
        for end, part in ((10, BLOB[:10]), (25, BLOB[10:25]), (len(BLOB), BLOB[25:])):
            response, body = await self.patch(location, part)
            self.assertEqual(response.code, 202, body)
            self.assertEqual(one_header(response, "Range"), f"0-{end - 1}")
        response, body = await self.put(location, sha256(BLOB))
        self.assertEqual(response.code, 201, body)
        await self.assertPullable("up/stream", sha256(BLOB), BLOB)


class ChunkedUploadTests(UploadTestCase):
    async def test_chunks_with_content_range_in_order_then_put(self) -> None:
        _, location = await self.start("up/chunk")
        for start, end in ((0, 9), (10, 29), (30, len(BLOB) - 1)):
            response, body = await self.patch(location, BLOB[start:end + 1], f"{start}-{end}")
            self.assertEqual(response.code, 202, body)
            self.assertEqual(one_header(response, "Range"), f"0-{end}")
            location = path_of(one_header(response, "Location") or "")
        response, body = await self.put(location, sha256(BLOB))
        self.assertCreated(response, body, "up/chunk", sha256(BLOB))
        await self.assertPullable("up/chunk", sha256(BLOB), BLOB)

    async def test_content_range_with_bytes_equals_prefix_is_accepted(self) -> None:
        _, location = await self.start("up/chunk")
        response, body = await self.patch(location, BLOB[:10], "bytes=0-9")
        self.assertEqual(response.code, 202, body)
        response, body = await self.patch(location, BLOB[10:], f"bytes=10-{len(BLOB) - 1}")
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), f"0-{len(BLOB) - 1}")
        response, body = await self.put(location, sha256(BLOB))
        self.assertEqual(response.code, 201, body)
        await self.assertPullable("up/chunk", sha256(BLOB), BLOB)

    async def test_content_range_in_rfc9110_form_is_accepted(self) -> None:
        _, location = await self.start("up/chunk")
        response, body = await self.patch(location, BLOB[:10], f"bytes 0-9/{len(BLOB)}")
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), "0-9")

    async def test_chunk_skipping_ahead_is_416_with_current_range(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB[:10], "0-9")
        response, body = await self.patch(location, BLOB[20:30], "20-29")
        self.assertEqual(response.code, 416, body)
        self.assertEqual(one_header(response, "Range"), "0-9")

    async def test_repeated_chunk_is_416_with_current_range(self) -> None:
        _, location = await self.start("up/chunk")
        response, _ = await self.patch(location, BLOB[:10], "0-9")
        self.assertEqual(response.code, 202)
        response, body = await self.patch(location, BLOB[:10], "0-9")
        self.assertEqual(response.code, 416, body)
        self.assertEqual(one_header(response, "Range"), "0-9")

    async def test_first_chunk_not_starting_at_zero_is_416(self) -> None:
        _, location = await self.start("up/chunk")
        response, body = await self.patch(location, BLOB[5:10], "5-9")
        self.assertEqual(response.code, 416, body)
        self.assertEqual(one_header(response, "Range"), "0-0")

    async def test_upload_continues_after_a_416(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB[:10], "0-9")
        response, _ = await self.patch(location, BLOB[30:], f"30-{len(BLOB) - 1}")
        self.assertEqual(response.code, 416)
        response, body = await self.patch(location, BLOB[10:], f"10-{len(BLOB) - 1}")
        self.assertEqual(response.code, 202, body)
        response, body = await self.put(location, sha256(BLOB))
        self.assertEqual(response.code, 201, body)
        await self.assertPullable("up/chunk", sha256(BLOB), BLOB)

    async def test_content_range_disagreeing_with_length_is_refused_and_changes_nothing(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB[:10], "0-9")
        response, body = await self.patch(location, BLOB[10:20], "10-29")
        self.assertIn(response.code, (400, 416), body)
        response, _ = await self.request("GET", location)
        self.assertEqual(one_header(response, "Range"), "0-9")

    async def test_get_upload_is_204_with_range_and_location(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB[:10], "0-9")
        response, body = await self.request("GET", location)
        self.assertEqual(response.code, 204)
        self.assertEqual(body, b"")
        self.assertEqual(one_header(response, "Range"), "0-9")
        self.assertEqual(path_of(one_header(response, "Location") or ""), location)
        self.assertEqual(one_header(response, "Docker-Upload-UUID"), location.rsplit("/", 1)[1])

    async def test_get_fresh_upload_reports_empty_range(self) -> None:
        _, location = await self.start("up/chunk")
        response, _ = await self.request("GET", location)
        self.assertEqual(response.code, 204)
        self.assertEqual(one_header(response, "Range"), "0-0")

    async def test_final_chunk_on_put_with_content_range(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB[:10], "0-9")
        response, body = await self.put(location, sha256(BLOB), BLOB[10:], f"10-{len(BLOB) - 1}")
        self.assertCreated(response, body, "up/chunk", sha256(BLOB))
        await self.assertPullable("up/chunk", sha256(BLOB), BLOB)

    async def test_final_chunk_on_put_out_of_order_is_416(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB[:10], "0-9")
        response, body = await self.put(location, sha256(BLOB), BLOB[20:], f"20-{len(BLOB) - 1}")
        self.assertEqual(response.code, 416, body)
        self.assertEqual(one_header(response, "Range"), "0-9")
        await self.assertNotPullable("up/chunk", sha256(BLOB))

    async def test_final_chunk_on_put_without_content_range_appends(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB[:10], "0-9")
        response, body = await self.put(location, sha256(BLOB), BLOB[10:])
        self.assertEqual(response.code, 201, body)
        await self.assertPullable("up/chunk", sha256(BLOB), BLOB)

    async def test_chunked_upload_with_wrong_digest_is_400_and_not_pullable(self) -> None:
        _, location = await self.start("up/chunk")
        await self.patch(location, BLOB, f"0-{len(BLOB) - 1}")
        wrong = sha256(BLOB + b"!")
        response, body = await self.put(location, wrong)
        self.assertError(response, body, 400, "DIGEST_INVALID")
        await self.assertNotPullable("up/chunk", wrong)
        await self.assertNotPullable("up/chunk", sha256(BLOB))


class CancelUploadTests(UploadTestCase):
    async def test_delete_is_204_then_get_is_404_blob_upload_unknown(self) -> None:
        _, location = await self.start("up/cancel")
        await self.patch(location, BLOB[:10], "0-9")
        response, body = await self.request("DELETE", location)
        self.assertEqual(response.code, 204, body)
        response, body = await self.request("GET", location)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")

    async def test_cancelled_upload_refuses_chunks_and_commit(self) -> None:
        _, location = await self.start("up/cancel")
        await self.request("DELETE", location)
        response, body = await self.patch(location, BLOB)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")
        response, body = await self.put(location, sha256(BLOB), BLOB)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")
        await self.assertNotPullable("up/cancel", sha256(BLOB))

    async def test_delete_unknown_upload_is_404(self) -> None:
        response, body = await self.request("DELETE", "/v2/up/cancel/blobs/uploads/no-such-upload")
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")


class UploadScopingTests(UploadTestCase):
    async def test_upload_id_of_another_repository_is_404(self) -> None:
        _, location = await self.start("scope/mine")
        upload_id = location.split("?")[0].rsplit("/", 1)[1]
        other = f"/v2/scope/theirs/blobs/uploads/{upload_id}"
        response, body = await self.request("GET", other)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")
        response, body = await self.patch(other, BLOB)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")
        response, body = await self.put(other, sha256(BLOB), BLOB)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")
        response, body = await self.request("DELETE", other)
        self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")
        # The session itself is untouched.
        response, body = await self.request("GET", location)
        self.assertEqual(response.code, 204, body)

    async def test_unknown_upload_id_is_404(self) -> None:
        for upload_id in ("0c6f2f1e-0000-4000-8000-000000000000", "not-an-upload", "x" * 200):
            response, body = await self.request("GET", f"/v2/scope/mine/blobs/uploads/{upload_id}")
            self.assertError(response, body, 404, "BLOB_UPLOAD_UNKNOWN")


class DigestAlgorithmTests(UploadTestCase):
    async def test_sha512_digest_on_put_of_a_default_upload(self) -> None:
        _, location = await self.start("up/sha512")
        response, body = await self.put(location, sha512(BLOB), BLOB)
        self.assertCreated(response, body, "up/sha512", sha512(BLOB))
        await self.assertPullable("up/sha512", sha512(BLOB), BLOB)

    async def test_digest_algorithm_sha512_on_post(self) -> None:
        _, location = await self.start("up/sha512", "?digest-algorithm=sha512")
        response, body = await self.patch(location, BLOB)
        self.assertEqual(response.code, 202, body)
        response, body = await self.put(location, sha512(BLOB))
        self.assertCreated(response, body, "up/sha512", sha512(BLOB))
        await self.assertPullable("up/sha512", sha512(BLOB), BLOB)

    async def test_sha512_upload_with_wrong_digest_is_400(self) -> None:
        _, location = await self.start("up/sha512", "?digest-algorithm=sha512")
        response, body = await self.put(location, sha512(b"other"), BLOB)
        self.assertError(response, body, 400, "DIGEST_INVALID")

    async def test_unsupported_digest_algorithm_on_post_is_400(self) -> None:
        for algorithm in ("md5", "sha1", "blake3", "SHA256"):
            response, body = await self.request(
                "POST", f"/v2/up/algo/blobs/uploads/?digest-algorithm={algorithm}"
            )
            self.assertError(response, body, 400, "DIGEST_INVALID")

    async def test_unsupported_algorithm_in_put_digest_is_400(self) -> None:
        _, location = await self.start("up/algo")
        response, body = await self.put(location, "md5:9e107d9d372bb6826bd81d3542a419d6", BLOB)
        self.assertError(response, body, 400, "DIGEST_INVALID")

    async def test_unsupported_algorithm_in_single_post_is_400(self) -> None:
        response, body = await self.request(
            "POST", "/v2/up/algo/blobs/uploads/?digest=sha1:2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
            data=BLOB, headers=OCTET,
        )
        self.assertError(response, body, 400, "DIGEST_INVALID")

    async def test_malformed_digest_on_put_is_400(self) -> None:
        _, location = await self.start("up/algo")
        response, body = await self.put(location, "sha256:nothex", BLOB)
        self.assertError(response, body, 400, "DIGEST_INVALID")


class MountTests(UploadTestCase):
    async def test_mount_from_a_repository_holding_the_blob_is_201(self) -> None:
        digest = await self.push_blob("mount/source", BLOB)
        response, body = await self.request(
            "POST", f"/v2/mount/target/blobs/uploads/?mount={digest}&from=mount/source"
        )
        self.assertCreated(response, body, "mount/target", digest)
        await self.assertPullable("mount/target", digest, BLOB)

    async def test_mount_from_a_repository_lacking_the_blob_falls_back_to_202(self) -> None:
        digest = await self.push_blob("mount/holder", BLOB)
        response, body = await self.request(
            "POST", f"/v2/mount/target/blobs/uploads/?mount={digest}&from=mount/empty"
        )
        self.assertEqual(response.code, 202, body)
        location = path_of(one_header(response, "Location") or "")
        self.assertTrue(location.startswith("/v2/mount/target/blobs/uploads/"), location)
        await self.assertNotPullable("mount/target", digest)
        # The fallback is a real session: the client proceeds with the upload.
        response, body = await self.put(location, digest, BLOB)
        self.assertCreated(response, body, "mount/target", digest)

    async def test_percent_encoded_mount_and_from_are_decoded(self) -> None:
        digest = await self.push_blob("mount/source", BLOB)
        encoded = digest.replace(":", "%3A")
        response, body = await self.request(
            "POST", f"/v2/mount/target/blobs/uploads/?mount={encoded}&from=mount%2Fsource"
        )
        self.assertCreated(response, body, "mount/target", digest)

    async def test_mount_without_from_finds_the_blob_anywhere(self) -> None:
        digest = await self.push_blob("mount/elsewhere", BLOB)
        response, body = await self.request("POST", f"/v2/mount/target/blobs/uploads/?mount={digest}")
        self.assertCreated(response, body, "mount/target", digest)
        await self.assertPullable("mount/target", digest, BLOB)

    async def test_mount_without_from_of_unknown_blob_is_202(self) -> None:
        response, body = await self.request(
            "POST", f"/v2/mount/target/blobs/uploads/?mount={sha256(b'nowhere')}"
        )
        self.assertEqual(response.code, 202, body)
        self.assertIsNotNone(one_header(response, "Location"))

    async def test_mount_of_a_deleted_blob_falls_back_to_202(self) -> None:
        digest = await self.push_blob("mount/source", BLOB)
        await self.request("DELETE", f"/v2/mount/source/blobs/{digest}")
        response, body = await self.request(
            "POST", f"/v2/mount/target/blobs/uploads/?mount={digest}&from=mount/source"
        )
        self.assertEqual(response.code, 202, body)

    async def test_mount_with_malformed_digest_is_400(self) -> None:
        response, body = await self.request(
            "POST", "/v2/mount/target/blobs/uploads/?mount=sha256:zzz&from=mount/source"
        )
        self.assertError(response, body, 400, "DIGEST_INVALID")


class ResumeAfterRestartTests(UploadTestCase):
    async def test_upload_survives_a_restart(self) -> None:
        data = bytes(range(256)) * 64  # 16 KiB
        half = len(data) // 2
        _, location = await self.start("up/resume")
        response, body = await self.patch(location, data[:half], f"0-{half - 1}")
        self.assertEqual(response.code, 202, body)

        await self.restart_server()

        response, body = await self.request("GET", location)
        self.assertEqual(response.code, 204, body)
        self.assertEqual(one_header(response, "Range"), f"0-{half - 1}")
        response, body = await self.patch(location, data[half:], f"{half}-{len(data) - 1}")
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), f"0-{len(data) - 1}")
        response, body = await self.put(location, sha256(data))
        self.assertCreated(response, body, "up/resume", sha256(data))
        await self.assertPullable("up/resume", sha256(data), data)

    async def test_streamed_upload_survives_a_restart(self) -> None:
        _, location = await self.start("up/resume")
        await self.patch(location, BLOB[:20])
        await self.restart_server()
        response, body = await self.patch(location, BLOB[20:])
        self.assertEqual(response.code, 202, body)
        self.assertEqual(one_header(response, "Range"), f"0-{len(BLOB) - 1}")
        response, body = await self.put(location, sha256(BLOB))
        self.assertEqual(response.code, 201, body)
        await self.assertPullable("up/resume", sha256(BLOB), BLOB)

    async def test_blob_survives_a_restart(self) -> None:
        digest = await self.push_blob("up/resume", BLOB)
        await self.restart_server()
        await self.assertPullable("up/resume", digest, BLOB)
