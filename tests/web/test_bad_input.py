"""
Hostile and malformed input: bad names, references, ranges, headers, JSON.

Whatever arrives, the registry answers below 500, and every error it
answers itself is the spec's JSON envelope.  (A request twisted.web cannot
even parse as HTTP is refused by twisted.web before txoci sees it; those
only have to stay below 500.)  Requests go over a raw socket so that no
client library normalises the path first.
"""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import quote

from tests.support import RegistryTestCase, sha256
from tests.web.helpers import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    RawResponse,
    build_request,
    descriptor,
    oci_manifest,
    parse_response,
    raw_exchange,
    raw_request,
)

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


class BadInputTestCase(RegistryTestCase):
    async def raw(
        self, method: str, path: bytes | str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> RawResponse:
        return await raw_request(self.port.getHost().port, method, path, headers, body)

    def assertJsonError(self, response: RawResponse, what: object = None) -> list[str]:
        """A 4xx with the spec's envelope; return its codes."""
        self.assertTrue(400 <= response.code < 500, (what, response.code, response.body))
        self.assertEqual(response.header("Content-Type"), "application/json", (what, response.headers))
        document = json.loads(response.body)
        codes = [error["code"] for error in document["errors"]]
        self.assertTrue(codes, what)
        for code in codes:
            self.assertRegex(code, r"^[A-Z_]+$")
        return codes

    def assertSane(self, response: RawResponse, what: object = None) -> None:
        """Below 500, and an error answered by txoci is JSON."""
        self.assertLess(response.code, 500, (what, response.body))
        if response.code >= 400 and response.body:
            self.assertJsonError(response, what)

    async def assertBelow500OrDropped(self, request: bytes, what: object) -> None:
        """
        For a request twisted.web cannot parse: it answers 400 and closes, and
        as the unread rest of the request is discarded the client may see the
        connection reset before the answer.  Either way, never a 5xx.
        """
        raw = await raw_exchange(self.port.getHost().port, request)
        if raw:
            self.assertLess(parse_response(raw).code, 500, what)

    async def assertNameInvalid(self, name: str) -> None:
        for method, template in (
            ("GET", "/v2/{}/tags/list"),
            ("GET", "/v2/{}/manifests/latest"),
            ("GET", "/v2/{}/blobs/" + DIGEST),
            ("POST", "/v2/{}/blobs/uploads/"),
            ("GET", "/v2/{}/referrers/" + DIGEST),
        ):
            path = template.format(name)
            response = await self.raw(method, path)
            codes = self.assertJsonError(response, path)
            self.assertIn(response.code, (400, 404), path)
            if response.code == 400:
                self.assertIn("NAME_INVALID", codes, path)


class BadNameTests(BadInputTestCase):
    async def test_uppercase_name_is_name_invalid(self) -> None:
        response = await self.raw("GET", "/v2/Library/Ubuntu/tags/list")
        self.assertEqual(response.code, 400)
        self.assertIn("NAME_INVALID", self.assertJsonError(response))
        await self.assertNameInvalid("Upper")

    async def test_dot_dot_component_is_refused(self) -> None:
        await self.assertNameInvalid("a/../b")
        await self.assertNameInvalid("..")

    async def test_percent_encoded_dot_dot_is_refused(self) -> None:
        await self.assertNameInvalid("a/%2e%2e/b")
        await self.assertNameInvalid("a/%2E%2E")

    async def test_dot_dot_cannot_escape_the_api(self) -> None:
        for path in ("/v2/../../etc/passwd", "/v2/%2e%2e/%2e%2e/etc/passwd", "/v2/a/blobs/../../../x"):
            self.assertJsonError(await self.raw("GET", path), path)

    async def test_empty_component_is_refused(self) -> None:
        await self.assertNameInvalid("a//b")
        await self.assertNameInvalid("a/")

    async def test_separators_at_the_edges_are_refused(self) -> None:
        for name in ("-a", "a-", "_a", "a_", ".a", "a.", "a___b", "a..b", "a/-b"):
            await self.assertNameInvalid(name)

    async def test_control_characters_are_refused(self) -> None:
        for name in ("a%0A", "a%0Ab", "a%00", "a%20b", "a%09"):
            await self.assertNameInvalid(name)

    async def test_non_ascii_name_is_refused(self) -> None:
        await self.assertNameInvalid("caf%C3%A9")

    async def test_non_utf8_path_is_json_400(self) -> None:
        for path in ("/v2/%ff/tags/list", "/v2/a/manifests/%fe%ff", "/v2/a/blobs/uploads/%c3"):
            response = await self.raw("GET", path)
            self.assertEqual(response.code, 400, path)
            self.assertJsonError(response, path)

    async def test_very_long_name_is_name_invalid(self) -> None:
        for name in ("a" * 256, "/".join(["abc"] * 100), "a" * 5000):
            response = await self.raw("GET", f"/v2/{name}/tags/list")
            self.assertEqual(response.code, 400)
            self.assertIn("NAME_INVALID", self.assertJsonError(response))

    async def test_name_of_255_characters_is_accepted(self) -> None:
        name = "/".join(["a" * 50] * 5) + "b"
        self.assertEqual(len(name), 255)
        digest = await self.push_blob(name, b"data")
        response, body = await self.request("GET", f"/v2/{name}/blobs/{digest}")
        self.assertEqual(response.code, 200)

    async def test_name_invalid_on_push_creates_nothing(self) -> None:
        response = await self.raw(
            "POST", f"/v2/Bad/blobs/uploads/?digest={sha256(b'x')}",
            {"Content-Type": "application/octet-stream"}, b"x",
        )
        self.assertIn("NAME_INVALID", self.assertJsonError(response))
        _, body = await self.request("GET", "/v2/_catalog")
        self.assertEqual(json.loads(body)["repositories"] or [], [])


class BadReferenceTests(BadInputTestCase):
    async def test_tag_with_trailing_newline_is_refused(self) -> None:
        digest, manifest = await self.push_image("bad/ref", None, [b"layer"])
        response = await self.raw(
            "PUT", "/v2/bad/ref/manifests/v1%0A", {"Content-Type": OCI_MANIFEST}, manifest
        )
        self.assertEqual(response.code, 400, response.body)
        self.assertJsonError(response)
        _, body = await self.request("GET", "/v2/bad/ref/tags/list")
        self.assertEqual(json.loads(body)["tags"] or [], [])

    async def test_malformed_digests_are_digest_invalid(self) -> None:
        for text in (
            "sha256:", ":" + HEX, "sha256:" + HEX + "%0A", "sha256%0A:" + HEX, "SHA256:" + HEX,
            "sha256:" + HEX[:-1] + "g", "sha256:" + HEX + HEX, "sha256::" + HEX, "sha256:%00",
            "sha256+x:" + HEX, "sha512:" + HEX,
        ):
            for path in (f"/v2/bad/ref/blobs/{text}", f"/v2/bad/ref/referrers/{text}"):
                response = await self.raw("GET", path)
                self.assertEqual(response.code, 400, path)
                self.assertIn("DIGEST_INVALID", self.assertJsonError(response, path), path)

    async def test_malformed_manifest_references_are_400(self) -> None:
        for reference in ("-tag", ".tag", "a" * 129, "t%20g", "t%0A", "sha256:abc", "%C3%A9"):
            response = await self.raw("GET", f"/v2/bad/ref/manifests/{reference}")
            self.assertEqual(response.code, 400, reference)
            self.assertJsonError(response, reference)

    async def test_malformed_upload_ids_are_404(self) -> None:
        for upload_id in ("..", "%2e%2e", "a%00b", "x" * 1000, "%C3%A9", "a%0A", "a%2Fb"):
            response = await self.raw("GET", f"/v2/bad/ref/blobs/uploads/{upload_id}")
            self.assertIn(response.code, (400, 404), upload_id)
            self.assertJsonError(response, upload_id)
            response = await self.raw("PATCH", f"/v2/bad/ref/blobs/uploads/{upload_id}", body=b"data")
            self.assertIn(response.code, (400, 404), upload_id)
            self.assertJsonError(response, upload_id)

    async def test_bad_query_values_are_400(self) -> None:
        upload = await self.raw("POST", "/v2/bad/ref/blobs/uploads/")
        location = upload.header("Location") or ""
        for method, path in (
            ("POST", "/v2/bad/ref/blobs/uploads/?mount="),
            ("POST", "/v2/bad/ref/blobs/uploads/?mount=nodigest&from=bad/other"),
            ("POST", "/v2/bad/ref/blobs/uploads/?digest=nodigest"),
            ("POST", "/v2/bad/ref/blobs/uploads/?digest-algorithm=%ff"),
            ("PUT", f"{location}?digest="),
            ("PUT", f"{location}?digest=%ff"),
            ("GET", "/v2/_catalog?n=%ff"),
            ("GET", "/v2/_catalog?n=%EF%BC%91"),  # a fullwidth digit one
        ):
            response = await self.raw(method, path)
            self.assertEqual(response.code, 400, path)
            self.assertJsonError(response, path)

    async def test_mount_from_invalid_name_is_not_a_server_error(self) -> None:
        digest = await self.push_blob("bad/source", b"data")
        for source in ("Bad", "a//b", "%ff", ".."):
            response = await self.raw("POST", f"/v2/bad/ref/blobs/uploads/?mount={digest}&from={source}")
            self.assertSane(response, source)


class BadRangeTests(BadInputTestCase):
    async def test_malformed_range_headers_are_ignored_or_416(self) -> None:
        data = b"0123456789"
        digest = await self.push_blob("bad/range", data)
        for value in (
            "", "bytes=", "bytes=-", "bytes=--1", "bytes=1-2-3", "bytes=a-b", "bytes= 1-2", "BYTES=1-2",
            "bytes=99999999999999999999-", "bytes=9999999999999999999-", "bytes=-99999999999999999999",
            "bytes=1-2,", "bytes=,", "bytes=\xff", "\x7f", "bytes=0x1-2", "bytes=+1-2", "bytes=\xd9\xa1-2",
        ):
            response = await self.raw("GET", f"/v2/bad/range/blobs/{digest}", {"Range": value})
            self.assertIn(response.code, (200, 206, 416), repr(value))
            if response.code == 200:
                self.assertEqual(response.body, data, repr(value))
            if response.code == 416:
                self.assertEqual(response.header("Content-Range"), f"bytes */{len(data)}")

    async def test_malformed_content_range_is_refused_and_changes_nothing(self) -> None:
        upload = await self.raw("POST", "/v2/bad/range/blobs/uploads/")
        location = upload.header("Location") or ""
        for value in (
            "garbage", "1-", "-1", "5-2", "bytes=", "0-", "0--1", "\xff", "0-1-2", "bytes=0x0-0x1",
            "99999999999999999999-99999999999999999999", "\xd9\xa0-\xd9\xa1",
        ):
            response = await self.raw(
                "PATCH", location, {"Content-Range": value, "Content-Type": "application/octet-stream"}, b"ab"
            )
            self.assertIn(response.code, (400, 416), repr(value))
            self.assertJsonError(response, repr(value))
            progress = await self.raw("GET", location)
            self.assertEqual(progress.code, 204)
            self.assertEqual(progress.header("Range"), "0-0", repr(value))


class BadHeaderTests(BadInputTestCase):
    async def test_non_utf8_header_values_are_not_server_errors(self) -> None:
        digest, manifest = await self.push_image("bad/headers", "v1", [b"layer"])
        upload = await self.raw("POST", "/v2/bad/headers/blobs/uploads/")
        location = upload.header("Location") or ""
        for method, path, headers, body in (
            ("PUT", "/v2/bad/headers/manifests/v2", {"Content-Type": "\xff\xfe"}, manifest),
            ("GET", "/v2/bad/headers/manifests/v1", {"Accept": "\xff, ;;;,,"}, b""),
            ("GET", f"/v2/bad/headers/blobs/{sha256(b'layer')}", {"Range": "bytes=\xe9"}, b""),
            ("PATCH", location, {"Content-Range": "\xff", "Content-Type": "\xff"}, b"x"),
            ("PUT", f"{location}?digest={sha256(b'')}", {"Content-Range": "\xe9-\xe9"}, b"x"),
            ("GET", "/v2/", {"Host": "\xff\xfe"}, b""),
        ):
            response = await self.raw(method, path, headers, body)
            self.assertSane(response, (method, path, headers))

    async def test_manifest_content_type_that_is_not_utf8_is_manifest_invalid(self) -> None:
        digest, manifest = await self.push_image("bad/headers", None, [b"layer"])
        response = await self.raw("PUT", "/v2/bad/headers/manifests/v1", {"Content-Type": "\xff"}, manifest)
        self.assertEqual(response.code, 400)
        self.assertIn("MANIFEST_INVALID", self.assertJsonError(response))

    async def test_odd_accept_headers_still_negotiate(self) -> None:
        await self.push_image("bad/headers", "v1", [b"layer"])
        for accept in (";", ",,,", "*/*;q=", "application/vnd.oci.image.manifest.v1+json;;q=1",
                       " APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON ", "x" * 5000):
            response = await self.raw("GET", "/v2/bad/headers/manifests/v1", {"Accept": accept})
            self.assertIn(response.code, (200, 404), accept)
            self.assertSane(response, accept)

    async def test_garbage_framing_headers_are_refused_below_500(self) -> None:
        for headers in (
            {"Content-Length": "abc"},
            {"Content-Length": "-1"},
            {"Content-Length": "1, 2"},
            {"Transfer-Encoding": "gzip"},
            {"Transfer-Encoding": "chunked", "Content-Length": "2"},
        ):
            await self.assertBelow500OrDropped(
                build_request("PUT", "/v2/bad/headers/manifests/v1", headers, b"{}"), headers
            )

    async def test_chunked_body_with_bad_chunk_sizes_is_refused_below_500(self) -> None:
        upload = await self.raw("POST", "/v2/bad/headers/blobs/uploads/")
        location = upload.header("Location") or ""
        for body in (b"zz\r\nab\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\nab\r\n0\r\n\r\n", b"-1\r\n\r\n"):
            await self.assertBelow500OrDropped(
                build_request("PATCH", location, {"Transfer-Encoding": "chunked"}, body), body
            )
        progress = await self.raw("GET", location)
        self.assertEqual(progress.code, 204)

    async def test_body_shorter_than_its_content_length_is_not_stored(self) -> None:
        upload = await self.raw("POST", "/v2/bad/headers/blobs/uploads/")
        location = upload.header("Location") or ""
        # The client promises 100 bytes, sends 4 and hangs up.
        request = (
            f"PUT {location}?digest={sha256(b'data')} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\ndata"
        ).encode()
        await raw_exchange(self.port.getHost().port, request, timeout=0.5)
        response, body = await self.request("GET", f"/v2/bad/headers/blobs/{sha256(b'data')}")
        self.assertEqual(response.code, 404, body)


def _invalid_manifests() -> list[tuple[str, Any]]:
    config = descriptor(OCI_CONFIG, b"{}")
    layer = descriptor(OCI_LAYER, b"layer")

    def manifest(**fields: Any) -> dict[str, Any]:
        return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer], **fields}

    return [
        ("null", None),
        ("a number", 7),
        ("an array", [manifest()]),
        ("no schemaVersion", {k: v for k, v in manifest().items() if k != "schemaVersion"}),
        ("schemaVersion string", manifest(schemaVersion="2")),
        ("schemaVersion true", manifest(schemaVersion=True)),
        ("schemaVersion 3", manifest(schemaVersion=3)),
        ("mediaType number", manifest(mediaType=5)),
        ("config missing", {k: v for k, v in manifest().items() if k != "config"}),
        ("config a string", manifest(config="sha256:" + HEX)),
        ("config null", manifest(config=None)),
        ("layers an object", manifest(layers={"0": layer})),
        ("layer a string", manifest(layers=["sha256:" + HEX])),
        ("layer without digest", manifest(layers=[{"mediaType": OCI_LAYER, "size": 1}])),
        ("digest a number", manifest(layers=[{**layer, "digest": 12}])),
        ("digest malformed", manifest(layers=[{**layer, "digest": "sha256:xyz"}])),
        ("digest unsupported", manifest(layers=[{**layer, "digest": "md5:" + "0" * 32}])),
        ("size negative", manifest(layers=[{**layer, "size": -1}])),
        ("size boolean", manifest(layers=[{**layer, "size": True}])),
        ("size float", manifest(layers=[{**layer, "size": 1.5}])),
        ("size string", manifest(layers=[{**layer, "size": "5"}])),
        ("mediaType of layer missing", manifest(layers=[{"digest": layer["digest"], "size": 5}])),
        ("annotations a list", manifest(annotations=["a"])),
        ("annotation value a number", manifest(annotations={"a": 1})),
        ("artifactType a number", manifest(artifactType=1)),
        ("subject a string", manifest(subject="sha256:" + HEX)),
        ("subject with bad digest", manifest(subject={"mediaType": OCI_MANIFEST, "digest": "x", "size": 1})),
        ("index manifests an object", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}}),
        ("index manifests missing", {"schemaVersion": 2, "mediaType": OCI_INDEX}),
    ]


class BadManifestTests(BadInputTestCase):
    async def test_structurally_invalid_manifests_are_manifest_invalid(self) -> None:
        for what, document in _invalid_manifests():
            body = json.dumps(document).encode()
            response = await self.raw(
                "PUT", "/v2/bad/manifest/manifests/v1", {"Content-Type": OCI_MANIFEST}, body
            )
            self.assertEqual(response.code, 400, (what, response.body))
            self.assertIn("MANIFEST_INVALID", self.assertJsonError(response, what), what)

    async def test_undecodable_bodies_are_manifest_invalid(self) -> None:
        for what, body in (
            ("deep nesting", b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"),
            ("invalid utf-8", b'{"schemaVersion": 2, "mediaType": "\xff"}'),
            ("utf-16", '{"schemaVersion": 2}'.encode("utf-16")),
            ("NaN size", b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:'
                         + HEX.encode() + b'", "size": NaN}, "layers": []}'),
            ("huge exponent", b'{"schemaVersion": 2e999}'),
            ("trailing garbage", b'{"schemaVersion": 2} {}'),
            ("lone surrogate", b'{"schemaVersion": 2, "annotations": {"a": "\\ud800"}}'),
            ("only whitespace", b"   \n\t "),
            ("NUL bytes", b"\x00" * 64),
        ):
            response = await self.raw(
                "PUT", "/v2/bad/manifest/manifests/v1", {"Content-Type": OCI_MANIFEST}, body
            )
            self.assertEqual(response.code, 400, what)
            self.assertIn("MANIFEST_INVALID", self.assertJsonError(response, what), what)

    async def test_huge_integer_size_is_not_a_server_error(self) -> None:
        await self.push_blob("bad/manifest", b"{}")
        layer = {"mediaType": OCI_LAYER, "digest": sha256(b"x"), "size": 0}
        body = oci_manifest(descriptor(OCI_CONFIG, b"{}"), [layer])
        body = body.replace(b'"size": 0', b'"size": ' + b"9" * 5000)
        response = await self.raw(
            "PUT", "/v2/bad/manifest/manifests/v1", {"Content-Type": OCI_MANIFEST}, body
        )
        self.assertSane(response)
        self.assertGreaterEqual(response.code, 400)


class FuzzTests(BadInputTestCase):
    """Random segments thrown at every endpoint and method: never a 500."""

    ALPHABET = "aA0._-/:%~+@!$&'()*,;=é\x00\n\r\t \x7f\xff" + "abcdef0123456789"
    TEMPLATES = (
        "/v2/{}", "/v2/{}/tags/list", "/v2/{}/manifests/{}", "/v2/{}/blobs/{}", "/v2/{}/blobs/uploads/",
        "/v2/{}/blobs/uploads/{}", "/v2/{}/referrers/{}", "/v2/_catalog?n={}&last={}",
        "/v2/{}/tags/list?n={}&last={}", "/v2/{}/blobs/uploads/?mount={}&from={}",
        "/v2/{}/blobs/uploads/?digest={}", "/v2/{}/blobs/uploads/?digest-algorithm={}",
        "/v2/{}/referrers/{}?artifactType={}", "/v2/{}/manifests/{}?tag={}&tag={}",
    )
    METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS")

    def segment(self, rng: random.Random) -> str:
        choice = rng.random()
        if choice < 0.2:
            length = rng.choice([63, 64, 65])
            return "sha256:" + "".join(rng.choice("0123456789abcdef") for _ in range(length))
        text = "".join(rng.choice(self.ALPHABET) for _ in range(rng.randint(0, 40)))
        if choice < 0.6:
            text = "a/" + text
        return quote(text, safe="/:%" if choice < 0.8 else "")

    async def test_random_requests_never_get_a_server_error(self) -> None:
        rng = random.Random(20240601)
        await self.push_image("fuzz/repo", "v1", [b"layer"])
        for _ in range(300):
            template = rng.choice(self.TEMPLATES)
            path = template.format(*(self.segment(rng) for _ in range(template.count("{}"))))
            method = rng.choice(self.METHODS)
            body = rng.choice([b"", b"{}", b"\xff" * 10, b'{"schemaVersion": 2}'])
            headers = rng.choice([
                {}, {"Content-Type": OCI_MANIFEST}, {"Range": "bytes=0-1"}, {"Content-Range": "0-9"},
                {"Accept": "*/*"},
            ])
            response = await self.raw(method, path, headers, body)
            self.assertSane(response, (method, path, headers, body))
