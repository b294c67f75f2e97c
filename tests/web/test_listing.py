"""Content discovery: ``tags/list``, ``_catalog`` and ``referrers``."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import RegistryTestCase, sha256
from tests.web.helpers import (
    EMPTY_DESCRIPTOR,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    oci_index,
    oci_manifest,
    one_header,
)

_LINK = re.compile(r'^<([^>]+)>;\s*rel="next"$')


def next_path(response: Any) -> str | None:
    """The target of a ``Link: <...>; rel="next"`` header, as a path."""
    value = one_header(response, "Link")
    if value is None:
        return None
    match = _LINK.match(value.strip())
    assert match is not None, value
    target = match.group(1)
    return target[target.index("/v2/"):]


class ListingTestCase(RegistryTestCase):
    async def tag_all(self, repository: str, tags: list[str]) -> str:
        """Push one image to ``repository`` under every tag in ``tags``."""
        digest, body = await self.push_image(repository, None, [b"layer"])
        for tag in tags:
            response, answer = await self.request(
                "PUT", f"/v2/{repository}/manifests/{tag}", data=body,
                headers={"Content-Type": OCI_MANIFEST},
            )
            self.assertEqual(response.code, 201, answer)
        return digest

    async def get_json(self, path: str) -> tuple[Any, Any]:
        response, body = await self.request("GET", path)
        self.assertEqual(response.code, 200, body)
        return response, json.loads(body)


class TagListTests(ListingTestCase):
    TAGS = ["v1", "latest", "V2", "1.0", "_x", "a-b", "a.b", "a_b", "Z", "zz", "10", "9"]

    async def test_tags_are_listed_asciibetically(self) -> None:
        await self.tag_all("list/tags", self.TAGS)
        response, document = await self.get_json("/v2/list/tags/tags/list")
        self.assertEqual(document, {"name": "list/tags", "tags": sorted(self.TAGS)})
        self.assertEqual(one_header(response, "Content-Type"), "application/json")
        self.assertIsNone(one_header(response, "Link"))

    async def test_n_limits_the_page_and_link_leads_to_the_rest(self) -> None:
        await self.tag_all("list/tags", self.TAGS)
        path: str | None = "/v2/list/tags/tags/list?n=5"
        pages = []
        while path is not None:
            response, document = await self.get_json(path)
            pages.append(document["tags"])
            path = next_path(response)
        self.assertEqual([len(p) for p in pages], [5, 5, 2])
        self.assertEqual(sum(pages, []), sorted(self.TAGS))

    async def test_link_names_n_and_last(self) -> None:
        await self.tag_all("list/tags", self.TAGS)
        response, document = await self.get_json("/v2/list/tags/tags/list?n=3")
        link = next_path(response) or ""
        self.assertTrue(link.startswith("/v2/list/tags/tags/list?"), link)
        self.assertIn("n=3", link)
        self.assertIn(f"last={document['tags'][-1]}", link)

    async def test_exact_last_page_has_no_link_or_an_empty_next_page(self) -> None:
        await self.tag_all("list/tags", ["a", "b", "c", "d"])
        response, document = await self.get_json("/v2/list/tags/tags/list?n=4")
        self.assertEqual(document["tags"], ["a", "b", "c", "d"])
        path = next_path(response)
        if path is not None:
            _, following = await self.get_json(path)
            self.assertEqual(following["tags"], [])

    async def test_n_larger_than_the_list_returns_everything_without_link(self) -> None:
        await self.tag_all("list/tags", ["a", "b"])
        response, document = await self.get_json("/v2/list/tags/tags/list?n=100")
        self.assertEqual(document["tags"], ["a", "b"])
        self.assertIsNone(one_header(response, "Link"))

    async def test_last_starts_after_the_given_tag(self) -> None:
        await self.tag_all("list/tags", self.TAGS)
        expected = sorted(self.TAGS)
        response, document = await self.get_json(f"/v2/list/tags/tags/list?last={expected[3]}")
        self.assertEqual(document["tags"], expected[4:])
        response, document = await self.get_json(f"/v2/list/tags/tags/list?n=2&last={expected[3]}")
        self.assertEqual(document["tags"], expected[4:6])

    async def test_last_need_not_be_an_existing_tag(self) -> None:
        await self.tag_all("list/tags", ["a", "c", "e"])
        _, document = await self.get_json("/v2/list/tags/tags/list?last=b")
        self.assertEqual(document["tags"], ["c", "e"])

    async def test_n_zero_is_an_empty_list_without_link(self) -> None:
        await self.tag_all("list/tags", self.TAGS)
        response, document = await self.get_json("/v2/list/tags/tags/list?n=0")
        self.assertEqual(document["tags"], [])
        self.assertIsNone(one_header(response, "Link"))

    async def test_repository_without_tags_lists_none(self) -> None:
        await self.push_image("list/untagged", None, [b"layer"])
        _, document = await self.get_json("/v2/list/untagged/tags/list")
        self.assertEqual(document["name"], "list/untagged")
        self.assertEqual(document["tags"] or [], [])

    async def test_unknown_repository_is_404_name_unknown(self) -> None:
        response, body = await self.request("GET", "/v2/list/nowhere/tags/list")
        self.assertError(response, body, 404, "NAME_UNKNOWN")

    async def test_bad_n_is_400(self) -> None:
        await self.tag_all("list/tags", ["a"])
        for n in ("-1", "abc", "1.5", "1e3", "99999999999999999999"):
            response, body = await self.request("GET", f"/v2/list/tags/tags/list?n={n}")
            self.assertEqual(response.code, 400, n)
            self.assertTrue(json.loads(body)["errors"], n)

    async def test_head_on_tag_list_has_no_body(self) -> None:
        await self.tag_all("list/tags", ["a"])
        response, body = await self.request("HEAD", "/v2/list/tags/tags/list")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"")


class CatalogTests(ListingTestCase):
    REPOSITORIES = ["zeta", "alpha/one", "alpha", "alpha-two", "beta/x/y", "alpha/one/deep"]

    async def push_repositories(self) -> None:
        for repository in self.REPOSITORIES:
            await self.push_image(repository, "v1", [b"layer"])

    async def test_catalog_lists_repositories_in_order(self) -> None:
        await self.push_repositories()
        response, document = await self.get_json("/v2/_catalog")
        self.assertEqual(document, {"repositories": sorted(self.REPOSITORIES)})
        self.assertIsNone(one_header(response, "Link"))

    async def test_empty_registry_has_an_empty_catalog(self) -> None:
        _, document = await self.get_json("/v2/_catalog")
        self.assertEqual(document["repositories"] or [], [])

    async def test_catalog_pages_follow_link(self) -> None:
        await self.push_repositories()
        path: str | None = "/v2/_catalog?n=4"
        pages = []
        while path is not None:
            response, document = await self.get_json(path)
            pages.append(document["repositories"])
            path = next_path(response)
        self.assertEqual([len(p) for p in pages], [4, 2])
        self.assertEqual(sum(pages, []), sorted(self.REPOSITORIES))

    async def test_catalog_last_and_n(self) -> None:
        await self.push_repositories()
        expected = sorted(self.REPOSITORIES)
        _, document = await self.get_json(f"/v2/_catalog?n=2&last={expected[1]}")
        self.assertEqual(document["repositories"], expected[2:4])

    async def test_catalog_n_zero_is_empty_without_link(self) -> None:
        await self.push_repositories()
        response, document = await self.get_json("/v2/_catalog?n=0")
        self.assertEqual(document["repositories"], [])
        self.assertIsNone(one_header(response, "Link"))

    async def test_catalog_bad_n_is_400(self) -> None:
        response, body = await self.request("GET", "/v2/_catalog?n=-5")
        self.assertEqual(response.code, 400, body)
        self.assertTrue(json.loads(body)["errors"])


class ReferrersTests(ListingTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.subject_digest, self.subject = await self.push_image("ref/repo", "v1", [b"image layer"])
        self.subject_descriptor = descriptor(OCI_MANIFEST, self.subject)

    async def push_referrer(self, repository: str = "ref/repo", **fields: Any) -> tuple[str, bytes]:
        fields.setdefault("subject", self.subject_descriptor)
        body = oci_manifest(EMPTY_DESCRIPTOR, [EMPTY_DESCRIPTOR], **fields)
        digest = sha256(body)
        response, answer = await self.request(
            "PUT", f"/v2/{repository}/manifests/{digest}", data=body, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(response.code, 201, answer)
        return digest, body

    async def referrers(self, query: str = "", digest: str | None = None) -> tuple[Any, Any]:
        subject = digest or self.subject_digest
        response, body = await self.request("GET", f"/v2/ref/repo/referrers/{subject}{query}")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(one_header(response, "Content-Type"), OCI_INDEX)
        document = json.loads(body)
        self.assertEqual(document["schemaVersion"], 2)
        self.assertEqual(document["mediaType"], OCI_INDEX)
        return response, document

    async def test_referrer_is_listed_with_artifact_type_and_annotations(self) -> None:
        annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "x": "y"}
        digest, body = await self.push_referrer(
            artifactType="application/vnd.example.sbom.v1", annotations=annotations
        )
        _, document = await self.referrers()
        self.assertEqual(document["manifests"], [{
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(body),
            "artifactType": "application/vnd.example.sbom.v1",
            "annotations": annotations,
        }])

    async def test_artifact_type_defaults_to_the_config_media_type(self) -> None:
        config = b'{"signature": true}'
        await self.push_blob("ref/repo", config)
        body = oci_manifest(
            descriptor("application/vnd.example.signature.config.v1+json", config), [],
            subject=self.subject_descriptor,
        )
        response, answer = await self.request(
            "PUT", f"/v2/ref/repo/manifests/{sha256(body)}", data=body, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(response.code, 201, answer)
        _, document = await self.referrers()
        [entry] = document["manifests"]
        self.assertEqual(entry["artifactType"], "application/vnd.example.signature.config.v1+json")

    async def test_index_referrer_without_artifact_type_omits_it(self) -> None:
        index = oci_index([], subject=self.subject_descriptor, annotations={"kind": "index"})
        response, answer = await self.request(
            "PUT", f"/v2/ref/repo/manifests/{sha256(index)}", data=index, headers={"Content-Type": OCI_INDEX}
        )
        self.assertEqual(response.code, 201, answer)
        self.assertEqual(one_header(response, "OCI-Subject"), self.subject_digest)
        _, document = await self.referrers()
        [entry] = document["manifests"]
        self.assertEqual(entry["mediaType"], OCI_INDEX)
        self.assertEqual(entry["digest"], sha256(index))
        self.assertNotIn("artifactType", entry)
        self.assertEqual(entry["annotations"], {"kind": "index"})

    async def test_artifact_type_filter_sets_oci_filters_applied(self) -> None:
        sbom, _ = await self.push_referrer(artifactType="application/vnd.example.sbom.v1")
        await self.push_referrer(artifactType="application/vnd.example.signature.v1")
        response, document = await self.referrers("?artifactType=application/vnd.example.sbom.v1")
        self.assertEqual([d["digest"] for d in document["manifests"]], [sbom])
        self.assertEqual(one_header(response, "OCI-Filters-Applied"), "artifactType")

    async def test_unfiltered_listing_has_every_referrer_and_no_filter_header(self) -> None:
        first, _ = await self.push_referrer(artifactType="application/vnd.example.sbom.v1")
        second, _ = await self.push_referrer(artifactType="application/vnd.example.signature.v1")
        response, document = await self.referrers()
        self.assertEqual(sorted(d["digest"] for d in document["manifests"]), sorted([first, second]))
        self.assertIsNone(one_header(response, "OCI-Filters-Applied"))

    async def test_filter_matching_nothing_is_an_empty_index(self) -> None:
        await self.push_referrer(artifactType="application/vnd.example.sbom.v1")
        response, document = await self.referrers("?artifactType=application/vnd.example.none")
        self.assertEqual(document["manifests"], [])
        self.assertEqual(one_header(response, "OCI-Filters-Applied"), "artifactType")

    async def test_unknown_subject_is_200_with_an_empty_index(self) -> None:
        _, document = await self.referrers(digest=sha256(b"no such subject"))
        self.assertEqual(document["manifests"], [])

    async def test_referrer_pushed_before_its_subject_is_listed(self) -> None:
        later = descriptor(OCI_MANIFEST, b"pushed later")
        digest, _ = await self.push_referrer(subject=later, artifactType="application/vnd.example.early")
        _, document = await self.referrers(digest=later["digest"])
        self.assertEqual([d["digest"] for d in document["manifests"]], [digest])

    async def test_malformed_digest_is_400(self) -> None:
        for text in ("sha256:nothex", "latest", "md5:d41d8cd98f00b204e9800998ecf8427e"):
            response, body = await self.request("GET", f"/v2/ref/repo/referrers/{text}")
            self.assertEqual(response.code, 400, text)
            self.assertTrue(json.loads(body)["errors"])

    async def test_deleting_a_referrer_removes_it_from_the_list(self) -> None:
        keep, _ = await self.push_referrer(artifactType="application/vnd.example.keep")
        gone, _ = await self.push_referrer(artifactType="application/vnd.example.gone")
        response, _ = await self.request("DELETE", f"/v2/ref/repo/manifests/{gone}")
        self.assertEqual(response.code, 202)
        _, document = await self.referrers()
        self.assertEqual([d["digest"] for d in document["manifests"]], [keep])

    async def test_referrers_are_scoped_to_the_repository(self) -> None:
        await self.push_referrer(repository="ref/other", artifactType="application/vnd.example.elsewhere")
        _, document = await self.referrers()
        self.assertEqual(document["manifests"], [])

    async def test_manifest_without_subject_is_not_a_referrer(self) -> None:
        await self.push_image("ref/repo", "v2", [b"another"])
        _, document = await self.referrers()
        self.assertEqual(document["manifests"], [])

    async def test_image_with_subject_reports_its_config_media_type(self) -> None:
        digest, _ = await self.push_image("ref/repo", None, [b"x"], subject=self.subject_descriptor)
        _, document = await self.referrers()
        [entry] = document["manifests"]
        self.assertEqual(entry["digest"], digest)
        self.assertEqual(entry["artifactType"], OCI_CONFIG)
