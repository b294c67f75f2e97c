"""``/v2/<name>/manifests/<reference>``: pushing, pulling, negotiating and deleting manifests."""

from __future__ import annotations

import json
from typing import Any

from tests.support import RegistryTestCase, sha256
from tests.web.helpers import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_DESCRIPTOR,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    content_length,
    descriptor,
    encode,
    header_values,
    oci_index,
    oci_manifest,
    one_header,
)

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes"
LINUX_AMD64 = {"architecture": "amd64", "os": "linux"}


class ManifestTestCase(RegistryTestCase):
    async def put_manifest(
        self, repository: str, reference: str, body: bytes, content_type: str | None = OCI_MANIFEST,
        query: str = "",
    ) -> tuple[Any, bytes]:
        headers = {} if content_type is None else {"Content-Type": content_type}
        return await self.request(
            "PUT", f"/v2/{repository}/manifests/{reference}{query}", data=body, headers=headers
        )

    async def image_manifest(self, repository: str, layer: bytes = LAYER, **extra: Any) -> bytes:
        """Push a config and a layer to ``repository``; return an OCI manifest using them."""
        await self.push_blob(repository, CONFIG)
        await self.push_blob(repository, layer)
        return oci_manifest(descriptor(OCI_CONFIG, CONFIG), [descriptor(OCI_LAYER, layer)], **extra)

    async def docker_manifest(self, repository: str, layer: bytes = LAYER) -> bytes:
        await self.push_blob(repository, CONFIG)
        await self.push_blob(repository, layer)
        return encode({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, CONFIG),
            "layers": [descriptor(DOCKER_LAYER, layer)],
        })

    async def get(self, repository: str, reference: str, accept: Any = None) -> tuple[Any, bytes]:
        headers = {} if accept is None else {"Accept": accept}
        return await self.request("GET", f"/v2/{repository}/manifests/{reference}", headers=headers)

    def assertCreated(self, response: Any, body: bytes, repository: str, digest: str) -> None:
        self.assertEqual(response.code, 201, body)
        self.assertEqual(one_header(response, "Docker-Content-Digest"), digest)
        location = one_header(response, "Location") or ""
        self.assertTrue(location.endswith(f"/v2/{repository}/manifests/{digest}"), location)


class PushManifestTests(ManifestTestCase):
    async def test_put_by_tag_is_201_and_pulls_by_tag_and_digest(self) -> None:
        body = await self.image_manifest("man/push")
        response, answer = await self.put_manifest("man/push", "v1", body)
        self.assertCreated(response, answer, "man/push", sha256(body))
        for reference in ("v1", sha256(body)):
            response, pulled = await self.get("man/push", reference)
            self.assertEqual(response.code, 200, reference)
            self.assertEqual(pulled, body)

    async def test_put_by_digest_is_201(self) -> None:
        body = await self.image_manifest("man/push")
        response, answer = await self.put_manifest("man/push", sha256(body), body)
        self.assertCreated(response, answer, "man/push", sha256(body))
        response, pulled = await self.get("man/push", sha256(body))
        self.assertEqual(response.code, 200)
        self.assertEqual(pulled, body)

    async def test_location_is_a_pullable_manifest_url(self) -> None:
        body = await self.image_manifest("man/push")
        response, _ = await self.put_manifest("man/push", "v1", body)
        location = one_header(response, "Location") or ""
        response, pulled = await self.request("GET", location[location.index("/v2/"):])
        self.assertEqual(pulled, body)

    async def test_oci_index_is_accepted(self) -> None:
        amd = await self.image_manifest("man/index", b"amd64 layer")
        arm = await self.image_manifest("man/index", b"arm64 layer")
        for child in (amd, arm):
            response, _ = await self.put_manifest("man/index", sha256(child), child)
            self.assertEqual(response.code, 201)
        index = oci_index([
            descriptor(OCI_MANIFEST, amd, platform=LINUX_AMD64),
            descriptor(OCI_MANIFEST, arm, platform={"architecture": "arm64", "os": "linux"}),
        ])
        response, answer = await self.put_manifest("man/index", "multi", index, OCI_INDEX)
        self.assertCreated(response, answer, "man/index", sha256(index))
        response, pulled = await self.get("man/index", "multi")
        self.assertEqual(pulled, index)
        self.assertEqual(one_header(response, "Content-Type"), OCI_INDEX)

    async def test_docker_schema2_manifest_is_accepted(self) -> None:
        body = await self.docker_manifest("man/docker")
        response, answer = await self.put_manifest("man/docker", "v2", body, DOCKER_MANIFEST)
        self.assertCreated(response, answer, "man/docker", sha256(body))
        response, pulled = await self.get("man/docker", "v2")
        self.assertEqual(pulled, body)
        self.assertEqual(one_header(response, "Content-Type"), DOCKER_MANIFEST)

    async def test_docker_manifest_list_is_accepted(self) -> None:
        child = await self.docker_manifest("man/docker")
        await self.put_manifest("man/docker", sha256(child), child, DOCKER_MANIFEST)
        listing = encode({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [descriptor(DOCKER_MANIFEST, child, platform=LINUX_AMD64)],
        })
        response, answer = await self.put_manifest("man/docker", "list", listing, DOCKER_LIST)
        self.assertCreated(response, answer, "man/docker", sha256(listing))
        response, pulled = await self.get("man/docker", "list")
        self.assertEqual(pulled, listing)
        self.assertEqual(one_header(response, "Content-Type"), DOCKER_LIST)

    async def test_manifest_without_media_type_field_takes_the_content_type(self) -> None:
        await self.push_blob("man/push", CONFIG)
        body = encode({"schemaVersion": 2, "config": descriptor(OCI_CONFIG, CONFIG), "layers": []})
        response, answer = await self.put_manifest("man/push", "v1", body, OCI_MANIFEST)
        self.assertEqual(response.code, 201, answer)
        response, _ = await self.get("man/push", "v1")
        self.assertEqual(one_header(response, "Content-Type"), OCI_MANIFEST)

    async def test_content_type_parameters_are_ignored(self) -> None:
        body = await self.image_manifest("man/push")
        response, answer = await self.put_manifest("man/push", "v1", body, OCI_MANIFEST + "; charset=utf-8")
        self.assertEqual(response.code, 201, answer)
        response, _ = await self.get("man/push", "v1")
        self.assertEqual(one_header(response, "Content-Type"), OCI_MANIFEST)

    async def test_body_is_stored_byte_for_byte(self) -> None:
        await self.push_blob("man/bytes", CONFIG)
        config = descriptor(OCI_CONFIG, CONFIG)
        body = (
            b'{\n\t"schemaVersion" :   2,\r\n  "mediaType":"' + OCI_MANIFEST.encode() + b'",'
            b'"config":' + json.dumps(config, indent=7).encode() + b',   "layers" : [ ],'
            b'"annotations":{"z":"\\u00e9t\\u00e9","a":"\xc3\xa9"}   }\n\n'
        )
        response, answer = await self.put_manifest("man/bytes", "odd", body)
        self.assertCreated(response, answer, "man/bytes", sha256(body))
        response, pulled = await self.get("man/bytes", "odd")
        self.assertEqual(pulled, body)
        self.assertEqual(one_header(response, "Docker-Content-Digest"), sha256(body))

    async def test_pushing_again_moves_the_tag(self) -> None:
        first = await self.image_manifest("man/move", b"first")
        second = await self.image_manifest("man/move", b"second")
        await self.put_manifest("man/move", "latest", first)
        await self.put_manifest("man/move", "latest", second)
        response, pulled = await self.get("man/move", "latest")
        self.assertEqual(pulled, second)
        response, pulled = await self.get("man/move", sha256(first))
        self.assertEqual(response.code, 200)
        self.assertEqual(pulled, first)

    async def test_a_pull_right_after_a_tag_move_sees_the_new_manifest(self) -> None:
        # Each GET primes the lookup cache; each push must invalidate it.
        bodies = [await self.image_manifest("man/hot", b"v%d" % index) for index in range(3)]
        for body in bodies:
            await self.put_manifest("man/hot", "latest", body)
            for _ in range(2):
                response, pulled = await self.get("man/hot", "latest")
                self.assertEqual(pulled, body)
        await self.request("DELETE", "/v2/man/hot/manifests/latest")
        response, answer = await self.get("man/hot", "latest")
        self.assertError(response, answer, 404, "MANIFEST_UNKNOWN")

    async def test_pushing_the_same_manifest_twice_is_idempotent(self) -> None:
        body = await self.image_manifest("man/again")
        for _ in range(2):
            response, answer = await self.put_manifest("man/again", "v1", body)
            self.assertCreated(response, answer, "man/again", sha256(body))

    async def test_manifest_of_4_mib_is_accepted(self) -> None:
        await self.push_blob("man/big", CONFIG)
        skeleton = oci_manifest(descriptor(OCI_CONFIG, CONFIG), [], annotations={"pad": ""})
        padding = 4 * 1024 * 1024 - len(skeleton)
        body = oci_manifest(descriptor(OCI_CONFIG, CONFIG), [], annotations={"pad": "x" * padding})
        self.assertEqual(len(body), 4 * 1024 * 1024)
        response, answer = await self.put_manifest("man/big", "big", body)
        self.assertEqual(response.code, 201, answer)
        response, pulled = await self.get("man/big", "big")
        self.assertEqual(sha256(pulled), sha256(body))

    async def test_manifest_over_4_mib_is_413_size_invalid(self) -> None:
        await self.push_blob("man/big", CONFIG)
        body = oci_manifest(descriptor(OCI_CONFIG, CONFIG), [], annotations={"pad": "x" * (4 * 1024 * 1024)})
        response, answer = await self.put_manifest("man/big", "big", body)
        self.assertError(response, answer, 413, "SIZE_INVALID")
        response, _ = await self.get("man/big", "big")
        self.assertEqual(response.code, 404)


class RejectedManifestTests(ManifestTestCase):
    async def test_schema1_is_refused_manifest_invalid(self) -> None:
        body = encode({
            "schemaVersion": 1, "name": "man/old", "tag": "v1", "architecture": "amd64",
            "fsLayers": [{"blobSum": sha256(LAYER)}], "history": [{"v1Compatibility": "{}"}],
        })
        for content_type in (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/vnd.docker.distribution.manifest.v1+json",
            "application/json",
        ):
            response, answer = await self.put_manifest("man/old", "v1", body, content_type)
            self.assertError(response, answer, 400, "MANIFEST_INVALID")

    async def test_media_type_disagreeing_with_content_type_is_manifest_invalid(self) -> None:
        body = await self.image_manifest("man/bad")
        response, answer = await self.put_manifest("man/bad", "v1", body, DOCKER_MANIFEST)
        self.assertError(response, answer, 400, "MANIFEST_INVALID")
        response, answer = await self.put_manifest("man/bad", "v1", body, OCI_INDEX)
        self.assertError(response, answer, 400, "MANIFEST_INVALID")

    async def test_invalid_json_is_manifest_invalid(self) -> None:
        for body in (b"{not json", b"", b"[]", b'"string"', b"\xff\xfe{}", b'{"schemaVersion": 2'):
            response, answer = await self.put_manifest("man/bad", "v1", body)
            self.assertError(response, answer, 400, "MANIFEST_INVALID")

    async def test_unknown_media_type_is_manifest_invalid(self) -> None:
        body = await self.image_manifest("man/bad")
        response, answer = await self.put_manifest("man/bad", "v1", body, "text/plain")
        self.assertError(response, answer, 400, "MANIFEST_INVALID")

    async def test_missing_layer_is_manifest_blob_unknown(self) -> None:
        await self.push_blob("man/missing", CONFIG)
        body = oci_manifest(descriptor(OCI_CONFIG, CONFIG), [descriptor(OCI_LAYER, b"never pushed")])
        response, answer = await self.put_manifest("man/missing", "v1", body)
        self.assertError(response, answer, 400, "MANIFEST_BLOB_UNKNOWN")
        response, _ = await self.get("man/missing", "v1")
        self.assertEqual(response.code, 404)

    async def test_missing_config_is_manifest_blob_unknown(self) -> None:
        await self.push_blob("man/missing", LAYER)
        body = oci_manifest(descriptor(OCI_CONFIG, CONFIG), [descriptor(OCI_LAYER, LAYER)])
        response, answer = await self.put_manifest("man/missing", "v1", body)
        self.assertError(response, answer, 400, "MANIFEST_BLOB_UNKNOWN")

    async def test_blob_only_in_another_repository_is_manifest_blob_unknown(self) -> None:
        body = await self.image_manifest("man/other")
        response, answer = await self.put_manifest("man/missing", "v1", body)
        self.assertError(response, answer, 400, "MANIFEST_BLOB_UNKNOWN")

    async def test_index_with_missing_child_is_manifest_blob_unknown(self) -> None:
        child = await self.image_manifest("man/index")  # blobs pushed, manifest not
        index = oci_index([descriptor(OCI_MANIFEST, child)])
        response, answer = await self.put_manifest("man/index", "multi", index, OCI_INDEX)
        self.assertError(response, answer, 400, "MANIFEST_BLOB_UNKNOWN")

    async def test_index_with_child_in_another_repository_is_manifest_blob_unknown(self) -> None:
        child = await self.image_manifest("man/elsewhere")
        await self.put_manifest("man/elsewhere", sha256(child), child)
        index = oci_index([descriptor(OCI_MANIFEST, child)])
        response, answer = await self.put_manifest("man/index", "multi", index, OCI_INDEX)
        self.assertError(response, answer, 400, "MANIFEST_BLOB_UNKNOWN")

    async def test_digest_reference_not_matching_the_body_is_400_digest_invalid(self) -> None:
        body = await self.image_manifest("man/bad")
        response, answer = await self.put_manifest("man/bad", sha256(body + b" "), body)
        self.assertError(response, answer, 400, "DIGEST_INVALID")
        response, _ = await self.get("man/bad", sha256(body))
        self.assertEqual(response.code, 404)

    async def test_invalid_tag_is_400(self) -> None:
        body = await self.image_manifest("man/bad")
        for tag in (".hidden", "-dash", "a" * 129, "sp%20ace", "t@g"):
            response, answer = await self.put_manifest("man/bad", tag, body)
            self.assertEqual(response.code, 400, (tag, answer))
            self.assertTrue(json.loads(answer)["errors"], tag)

    async def test_descriptor_with_bad_digest_is_manifest_invalid(self) -> None:
        await self.push_blob("man/bad", CONFIG)
        config = descriptor(OCI_CONFIG, CONFIG)
        body = oci_manifest(config, [{"mediaType": OCI_LAYER, "digest": "sha256:nope", "size": 1}])
        response, answer = await self.put_manifest("man/bad", "v1", body)
        self.assertError(response, answer, 400, "MANIFEST_INVALID")


class LenientManifestTests(ManifestTestCase):
    async def test_empty_descriptor_config_is_accepted_without_upload(self) -> None:
        body = oci_manifest(EMPTY_DESCRIPTOR, [EMPTY_DESCRIPTOR], artifactType="application/vnd.example+type")
        response, answer = await self.put_manifest("man/artifact", "v1", body)
        self.assertCreated(response, answer, "man/artifact", sha256(body))

    async def test_non_distributable_layer_is_accepted_without_blob(self) -> None:
        await self.push_blob("man/foreign", CONFIG)
        foreign = descriptor(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", b"windows base layer",
            urls=["https://example.com/layer.tar.gz"],
        )
        body = oci_manifest(descriptor(OCI_CONFIG, CONFIG), [foreign])
        response, answer = await self.put_manifest("man/foreign", "v1", body)
        self.assertCreated(response, answer, "man/foreign", sha256(body))

    async def test_subject_not_in_repository_is_accepted_with_oci_subject(self) -> None:
        subject = descriptor(OCI_MANIFEST, b"a manifest not pushed yet")
        body = oci_manifest(EMPTY_DESCRIPTOR, [EMPTY_DESCRIPTOR], subject=subject)
        response, answer = await self.put_manifest("man/refers", sha256(body), body)
        self.assertCreated(response, answer, "man/refers", sha256(body))
        self.assertEqual(one_header(response, "OCI-Subject"), subject["digest"])

    async def test_subject_of_a_pushed_manifest_gives_oci_subject(self) -> None:
        image = await self.image_manifest("man/refers")
        await self.put_manifest("man/refers", "v1", image)
        body = oci_manifest(EMPTY_DESCRIPTOR, [EMPTY_DESCRIPTOR], subject=descriptor(OCI_MANIFEST, image))
        response, answer = await self.put_manifest("man/refers", sha256(body), body)
        self.assertEqual(response.code, 201, answer)
        self.assertEqual(one_header(response, "OCI-Subject"), sha256(image))

    async def test_manifest_without_subject_has_no_oci_subject(self) -> None:
        body = await self.image_manifest("man/refers")
        response, _ = await self.put_manifest("man/refers", "v1", body)
        self.assertIsNone(one_header(response, "OCI-Subject"))


class MultiTagTests(ManifestTestCase):
    async def test_tag_parameters_create_every_tag_and_are_echoed_in_oci_tag(self) -> None:
        body = await self.image_manifest("man/tags")
        response, answer = await self.put_manifest("man/tags", sha256(body), body, query="?tag=a&tag=b")
        self.assertCreated(response, answer, "man/tags", sha256(body))
        self.assertEqual(sorted(header_values(response, "OCI-Tag")), ["a", "b"])
        for tag in ("a", "b"):
            response, pulled = await self.get("man/tags", tag)
            self.assertEqual(response.code, 200, tag)
            self.assertEqual(pulled, body)

    async def test_ten_tags_in_one_push(self) -> None:
        body = await self.image_manifest("man/tags")
        tags = [f"t{i}" for i in range(10)]
        query = "?" + "&".join(f"tag={t}" for t in tags)
        response, answer = await self.put_manifest("man/tags", sha256(body), body, query=query)
        self.assertEqual(response.code, 201, answer)
        self.assertEqual(sorted(header_values(response, "OCI-Tag")), sorted(tags))
        response, listed = await self.request("GET", "/v2/man/tags/tags/list")
        self.assertEqual(json.loads(listed)["tags"], sorted(tags))

    async def test_invalid_tag_parameter_refuses_the_push(self) -> None:
        body = await self.image_manifest("man/tags")
        response, answer = await self.put_manifest("man/tags", sha256(body), body, query="?tag=ok&tag=-bad")
        self.assertEqual(response.code, 400, answer)
        response, _ = await self.get("man/tags", "ok")
        self.assertEqual(response.code, 404)


class PullManifestTests(ManifestTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.body = await self.image_manifest("man/pull")
        self.digest = sha256(self.body)
        response, answer = await self.put_manifest("man/pull", "v1", self.body)
        self.assertEqual(response.code, 201, answer)

    async def test_get_has_type_digest_length_and_etag(self) -> None:
        for reference in ("v1", self.digest):
            response, body = await self.get("man/pull", reference)
            self.assertEqual(response.code, 200)
            self.assertEqual(body, self.body)
            self.assertEqual(one_header(response, "Content-Type"), OCI_MANIFEST)
            self.assertEqual(one_header(response, "Docker-Content-Digest"), self.digest)
            self.assertEqual(content_length(response), len(self.body))
            self.assertIn(self.digest, one_header(response, "ETag") or "")

    async def test_head_has_the_same_headers_and_no_body(self) -> None:
        for reference in ("v1", self.digest):
            response, body = await self.request("HEAD", f"/v2/man/pull/manifests/{reference}")
            self.assertEqual(response.code, 200)
            self.assertEqual(body, b"")
            self.assertEqual(one_header(response, "Content-Type"), OCI_MANIFEST)
            self.assertEqual(one_header(response, "Docker-Content-Digest"), self.digest)
            self.assertEqual(one_header(response, "Content-Length"), str(len(self.body)))
            self.assertIn(self.digest, one_header(response, "ETag") or "")

    async def test_unknown_tag_is_404_manifest_unknown(self) -> None:
        response, body = await self.get("man/pull", "nope")
        self.assertError(response, body, 404, "MANIFEST_UNKNOWN")

    async def test_unknown_digest_is_404_manifest_unknown(self) -> None:
        response, body = await self.get("man/pull", sha256(b"nothing"))
        self.assertError(response, body, 404, "MANIFEST_UNKNOWN")

    async def test_head_unknown_is_404_without_body(self) -> None:
        response, body = await self.request("HEAD", "/v2/man/pull/manifests/nope")
        self.assertEqual(response.code, 404)
        self.assertEqual(body, b"")

    async def test_unknown_repository_is_404(self) -> None:
        response, body = await self.get("man/nowhere", "v1")
        self.assertEqual(response.code, 404)
        self.assertTrue(json.loads(body)["errors"])

    async def test_manifest_of_another_repository_is_404(self) -> None:
        await self.push_blob("man/other", CONFIG)
        response, body = await self.get("man/other", self.digest)
        self.assertError(response, body, 404, "MANIFEST_UNKNOWN")

    async def test_invalid_reference_is_400(self) -> None:
        for reference in (".v1", "sha256:short", "a" * 129):
            response, body = await self.get("man/pull", reference)
            self.assertEqual(response.code, 400, reference)
            self.assertTrue(json.loads(body)["errors"])


class ContentNegotiationTests(ManifestTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.body = await self.image_manifest("man/accept")
        response, _ = await self.put_manifest("man/accept", "v1", self.body)
        self.assertEqual(response.code, 201)

    async def test_no_accept_gets_the_oci_manifest(self) -> None:
        response, body = await self.get("man/accept", "v1")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.body)

    async def test_accept_listing_only_docker_types_is_404(self) -> None:
        response, body = await self.get("man/accept", "v1", f"{DOCKER_MANIFEST}, {DOCKER_LIST}")
        self.assertError(response, body, 404, "MANIFEST_UNKNOWN")

    async def test_accept_with_oci_type_in_a_comma_list_in_any_order(self) -> None:
        for accept in (
            f"{DOCKER_MANIFEST}, {DOCKER_LIST}, {OCI_INDEX}, {OCI_MANIFEST}",
            f"{OCI_MANIFEST},{DOCKER_MANIFEST}",
            f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST};q=0.5",
        ):
            response, body = await self.get("man/accept", "v1", accept)
            self.assertEqual(response.code, 200, accept)
            self.assertEqual(body, self.body)
            self.assertEqual(one_header(response, "Content-Type"), OCI_MANIFEST)

    async def test_accept_on_repeated_lines_containing_the_oci_type(self) -> None:
        response, body = await self.get("man/accept", "v1", [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST])
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.body)
        response, body = await self.get("man/accept", "v1", [OCI_INDEX, f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"])
        self.assertEqual(response.code, 200)

    async def test_wildcard_accept_gets_the_manifest(self) -> None:
        for accept in ("*/*", "application/*", f"{DOCKER_MANIFEST}, */*;q=0.1"):
            response, body = await self.get("man/accept", "v1", accept)
            self.assertEqual(response.code, 200, accept)

    async def test_docker_manifest_pulls_with_a_docker_accept(self) -> None:
        body = await self.docker_manifest("man/accept")
        await self.put_manifest("man/accept", "docker", body, DOCKER_MANIFEST)
        response, pulled = await self.get("man/accept", "docker", f"{OCI_MANIFEST}, {DOCKER_MANIFEST}")
        self.assertEqual(response.code, 200)
        self.assertEqual(pulled, body)

    async def test_client_knowing_only_schema2_gets_the_linux_amd64_child_of_a_list(self) -> None:
        child = await self.docker_manifest("man/accept")
        await self.put_manifest("man/accept", sha256(child), child, DOCKER_MANIFEST)
        listing = encode({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [descriptor(DOCKER_MANIFEST, child, platform=LINUX_AMD64)],
        })
        await self.put_manifest("man/accept", "multi", listing, DOCKER_LIST)
        response, pulled = await self.get("man/accept", "multi", DOCKER_MANIFEST)
        self.assertEqual(response.code, 200)
        self.assertEqual(pulled, child)
        self.assertEqual(one_header(response, "Docker-Content-Digest"), sha256(child))
        response, pulled = await self.get("man/accept", "multi", f"{DOCKER_LIST}, {DOCKER_MANIFEST}")
        self.assertEqual(pulled, listing)


class DeleteManifestTests(ManifestTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.body = await self.image_manifest("man/delete")
        self.digest = sha256(self.body)
        response, _ = await self.put_manifest("man/delete", self.digest, self.body, query="?tag=a&tag=b")
        self.assertEqual(response.code, 201)

    async def tags(self) -> list[str]:
        _, body = await self.request("GET", "/v2/man/delete/tags/list")
        return list(json.loads(body)["tags"] or [])

    async def test_delete_by_tag_removes_only_that_tag(self) -> None:
        response, body = await self.request("DELETE", "/v2/man/delete/manifests/a")
        self.assertEqual(response.code, 202, body)
        response, body = await self.get("man/delete", "a")
        self.assertError(response, body, 404, "MANIFEST_UNKNOWN")
        response, body = await self.get("man/delete", "b")
        self.assertEqual(body, self.body)
        response, body = await self.get("man/delete", self.digest)
        self.assertEqual(body, self.body)
        self.assertEqual(await self.tags(), ["b"])

    async def test_delete_by_digest_removes_the_manifest_and_its_tags(self) -> None:
        response, body = await self.request("DELETE", f"/v2/man/delete/manifests/{self.digest}")
        self.assertEqual(response.code, 202, body)
        for reference in (self.digest, "a", "b"):
            response, body = await self.get("man/delete", reference)
            self.assertError(response, body, 404, "MANIFEST_UNKNOWN")
        self.assertEqual(await self.tags(), [])

    async def test_delete_by_digest_keeps_the_blobs(self) -> None:
        await self.request("DELETE", f"/v2/man/delete/manifests/{self.digest}")
        response, body = await self.request("GET", f"/v2/man/delete/blobs/{sha256(LAYER)}")
        self.assertEqual(response.code, 200)

    async def test_deleted_manifest_can_be_pushed_again(self) -> None:
        await self.request("DELETE", f"/v2/man/delete/manifests/{self.digest}")
        response, answer = await self.put_manifest("man/delete", "again", self.body)
        self.assertEqual(response.code, 201, answer)
        response, body = await self.get("man/delete", "again")
        self.assertEqual(body, self.body)

    async def test_delete_unknown_tag_or_digest_is_404(self) -> None:
        for reference in ("nope", sha256(b"nothing")):
            response, body = await self.request("DELETE", f"/v2/man/delete/manifests/{reference}")
            self.assertError(response, body, 404, "MANIFEST_UNKNOWN")

    async def test_delete_twice_is_404_the_second_time(self) -> None:
        await self.request("DELETE", f"/v2/man/delete/manifests/{self.digest}")
        response, body = await self.request("DELETE", f"/v2/man/delete/manifests/{self.digest}")
        self.assertError(response, body, 404, "MANIFEST_UNKNOWN")

    async def test_delete_in_unknown_repository_is_404(self) -> None:
        response, body = await self.request("DELETE", f"/v2/man/nowhere/manifests/{self.digest}")
        self.assertEqual(response.code, 404, body)
        self.assertTrue(json.loads(body)["errors"])

    async def test_delete_with_invalid_reference_is_400(self) -> None:
        response, body = await self.request("DELETE", "/v2/man/delete/manifests/sha256:zzz")
        self.assertEqual(response.code, 400, body)
