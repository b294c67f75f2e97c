"""Manifest parsing: OCI and Docker schema 2 accepted, everything else MANIFEST_INVALID."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txoci.registry import mediatypes as mt
from txoci.registry.digest import Digest
from txoci.registry.errors import ManifestInvalid
from txoci.registry.manifest import parse_descriptor, parse_manifest

quick = settings(max_examples=100, deadline=None)


def d(n: int) -> str:
    return str(Digest.of(b"blob %d" % n))


def descriptor(n: int, media_type: str = "application/vnd.oci.image.layer.v1.tar", **extra: Any) -> dict:
    return {"mediaType": media_type, "digest": d(n), "size": 100 + n, **extra}


EMPTY = {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2}


def oci_manifest(**extra: Any) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(0, "application/vnd.oci.image.config.v1+json"),
        "layers": [descriptor(1), descriptor(2)],
        **extra,
    }


def oci_index(**extra: Any) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [descriptor(10, mt.OCI_MANIFEST), descriptor(11, mt.OCI_MANIFEST)],
        **extra,
    }


def docker_manifest() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": descriptor(0, "application/vnd.docker.container.image.v1+json"),
        "layers": [descriptor(1, "application/vnd.docker.image.rootfs.diff.tar.gzip")],
    }


def docker_list() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [descriptor(10, mt.DOCKER_MANIFEST, platform={"os": "linux", "architecture": "amd64"})],
    }


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
content_types = st.sampled_from(
    [None, "", mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_SCHEMA1,
     mt.JSON, mt.OCTET_STREAM, "text/plain", f"{mt.OCI_MANIFEST}; charset=utf-8", ";", "\x00"]
)
#: Fields of a manifest that a fuzzed document may replace.
fields = st.sampled_from(
    ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "artifactType", "annotations"]
)


def _parse_or_invalid(body: bytes, content_type: str | None) -> None:
    try:
        parsed = parse_manifest(body, content_type)
    except ManifestInvalid:
        return
    assert parsed.size == len(body)
    assert parsed.digest == Digest.of(body)
    assert parsed.media_type in mt.MANIFEST_TYPES


class ManifestPropertyTests(SynchronousTestCase):
    @quick
    @given(st.binary(max_size=200), content_types)
    def test_arbitrary_bytes(self, body: bytes, content_type: str | None) -> None:
        _parse_or_invalid(body, content_type)

    @quick
    @given(json_values, content_types)
    def test_arbitrary_json(self, document: Any, content_type: str | None) -> None:
        _parse_or_invalid(encode(document), content_type)

    @quick
    @given(
        st.sampled_from([oci_manifest, oci_index, docker_manifest, docker_list]),
        st.dictionaries(fields, json_values, max_size=3),
        content_types,
    )
    def test_fuzzed_manifests(self, make: Any, replacements: dict, content_type: str | None) -> None:
        document = make()
        document.update(replacements)
        _parse_or_invalid(encode(document), content_type)

    @quick
    @given(
        st.sampled_from([oci_manifest, oci_index, docker_manifest, docker_list]),
        st.sampled_from(["config", "layers", "manifests", "subject"]),
        st.sampled_from(["mediaType", "digest", "size", "artifactType", "annotations"]),
        json_values,
    )
    def test_fuzzed_descriptors(self, make: Any, field: str, key: str, value: Any) -> None:
        document = make()
        document["subject"] = descriptor(99, mt.OCI_MANIFEST)
        target = document.get(field)
        if isinstance(target, list) and target:
            target[0][key] = value
        elif isinstance(target, dict):
            target[key] = value
        _parse_or_invalid(encode(document), None)

    @quick
    @given(st.lists(st.integers(0, 50), max_size=8))
    def test_required_blobs_are_the_distinct_layers(self, layers: list[int]) -> None:
        document = oci_manifest(layers=[descriptor(n) for n in layers])
        parsed = parse_manifest(encode(document), mt.OCI_MANIFEST)
        expected = list(dict.fromkeys([d(0)] + [d(n) for n in layers]))
        self.assertEqual([str(x) for x in parsed.required_blobs], expected)
        self.assertEqual(parsed.required_manifests, ())


class ManifestExampleTests(SynchronousTestCase):
    def test_oci_manifest(self) -> None:
        body = encode(oci_manifest(annotations={"a": "b"}))
        parsed = parse_manifest(body, mt.OCI_MANIFEST)
        self.assertEqual(parsed.media_type, mt.OCI_MANIFEST)
        self.assertEqual(parsed.digest, Digest.of(body))
        self.assertEqual(parsed.size, len(body))
        self.assertEqual([str(x) for x in parsed.required_blobs], [d(0), d(1), d(2)])
        self.assertEqual(parsed.required_manifests, ())
        self.assertEqual(parsed.references, parsed.required_blobs)
        self.assertIsNone(parsed.subject)
        self.assertEqual(parsed.annotations, {"a": "b"})

    def test_oci_manifest_with_parameters_in_content_type(self) -> None:
        parsed = parse_manifest(encode(oci_manifest()), f"{mt.OCI_MANIFEST.upper()}; charset=utf-8")
        self.assertEqual(parsed.media_type, mt.OCI_MANIFEST)

    def test_oci_index(self) -> None:
        parsed = parse_manifest(encode(oci_index()), mt.OCI_INDEX)
        self.assertEqual(parsed.media_type, mt.OCI_INDEX)
        self.assertEqual(parsed.required_blobs, ())
        self.assertEqual([str(x) for x in parsed.required_manifests], [d(10), d(11)])
        self.assertIsNone(parsed.artifact_type)

    def test_index_artifact_type_is_its_own(self) -> None:
        parsed = parse_manifest(encode(oci_index(artifactType="application/x-index")), mt.OCI_INDEX)
        self.assertEqual(parsed.artifact_type, "application/x-index")

    def test_empty_index(self) -> None:
        parsed = parse_manifest(encode(oci_index(manifests=[])), mt.OCI_INDEX)
        self.assertEqual(parsed.required_manifests, ())

    def test_index_requires_manifests(self) -> None:
        document = oci_index()
        del document["manifests"]
        self.assertRaises(ManifestInvalid, parse_manifest, encode(document), mt.OCI_INDEX)

    def test_docker_manifest(self) -> None:
        parsed = parse_manifest(encode(docker_manifest()), mt.DOCKER_MANIFEST)
        self.assertEqual(parsed.media_type, mt.DOCKER_MANIFEST)
        self.assertEqual([str(x) for x in parsed.required_blobs], [d(0), d(1)])
        self.assertEqual(parsed.artifact_type, "application/vnd.docker.container.image.v1+json")

    def test_docker_manifest_requires_layers(self) -> None:
        document = docker_manifest()
        del document["layers"]
        self.assertRaises(ManifestInvalid, parse_manifest, encode(document), mt.DOCKER_MANIFEST)

    def test_oci_manifest_may_omit_layers(self) -> None:
        document = oci_manifest()
        del document["layers"]
        parsed = parse_manifest(encode(document), mt.OCI_MANIFEST)
        self.assertEqual([str(x) for x in parsed.required_blobs], [d(0)])

    def test_docker_manifest_list(self) -> None:
        parsed = parse_manifest(encode(docker_list()), mt.DOCKER_MANIFEST_LIST)
        self.assertEqual(parsed.media_type, mt.DOCKER_MANIFEST_LIST)
        self.assertEqual([str(x) for x in parsed.required_manifests], [d(10)])

    def test_media_type_from_body_when_content_type_is_generic(self) -> None:
        for content_type in [None, "", mt.JSON, mt.OCTET_STREAM]:
            parsed = parse_manifest(encode(docker_manifest()), content_type)
            self.assertEqual(parsed.media_type, mt.DOCKER_MANIFEST)

    def test_media_type_inferred_when_absent_everywhere(self) -> None:
        manifest = oci_manifest()
        del manifest["mediaType"]
        self.assertEqual(parse_manifest(encode(manifest), None).media_type, mt.OCI_MANIFEST)
        index = oci_index()
        del index["mediaType"]
        self.assertEqual(parse_manifest(encode(index), mt.JSON).media_type, mt.OCI_INDEX)

    def test_media_type_from_content_type_when_body_omits_it(self) -> None:
        manifest = oci_manifest()
        del manifest["mediaType"]
        self.assertEqual(parse_manifest(encode(manifest), mt.OCI_MANIFEST).media_type, mt.OCI_MANIFEST)

    def test_schema1_refused(self) -> None:
        schema1 = {
            "schemaVersion": 1,
            "name": "library/x",
            "tag": "latest",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": d(1)}],
            "history": [],
        }
        for content_type in [mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED, None, mt.JSON]:
            self.assertRaises(ManifestInvalid, parse_manifest, encode(schema1), content_type)
        # A schema 2 body sent with a schema 1 Content-Type is refused too.
        self.assertRaises(ManifestInvalid, parse_manifest, encode(oci_manifest()), mt.DOCKER_SCHEMA1)
        self.assertRaises(
            ManifestInvalid, parse_manifest, encode(oci_manifest(mediaType=mt.DOCKER_SCHEMA1_SIGNED)), None
        )

    def test_media_type_mismatch_refused(self) -> None:
        cases = [
            (oci_manifest(), mt.OCI_INDEX),
            (oci_manifest(), mt.DOCKER_MANIFEST),
            (oci_index(), mt.OCI_MANIFEST),
            (docker_manifest(), mt.OCI_MANIFEST),
            (oci_manifest(), "text/plain"),
            (oci_manifest(mediaType="application/x-unknown"), None),
        ]
        for document, content_type in cases:
            self.assertRaises(ManifestInvalid, parse_manifest, encode(document), content_type)

    def test_unknown_content_type_without_body_type_refused(self) -> None:
        manifest = oci_manifest()
        del manifest["mediaType"]
        self.assertRaises(ManifestInvalid, parse_manifest, encode(manifest), "application/x-unknown")

    def test_schema_version_must_be_2(self) -> None:
        for version in [None, 3, "2", 2.5, True, [2]]:
            document = oci_manifest(schemaVersion=version)
            self.assertRaises(ManifestInvalid, parse_manifest, encode(document), mt.OCI_MANIFEST)
        document = oci_manifest()
        del document["schemaVersion"]
        self.assertRaises(ManifestInvalid, parse_manifest, encode(document), mt.OCI_MANIFEST)

    def test_artifact_type_falls_back_to_config_media_type(self) -> None:
        config = descriptor(0, "application/vnd.example.config+json")
        parsed = parse_manifest(encode(oci_manifest(config=config)), mt.OCI_MANIFEST)
        self.assertEqual(parsed.artifact_type, "application/vnd.example.config+json")
        parsed = parse_manifest(encode(oci_manifest(config=config, artifactType="")), mt.OCI_MANIFEST)
        self.assertEqual(parsed.artifact_type, "application/vnd.example.config+json")

    def test_explicit_artifact_type_wins(self) -> None:
        body = encode(oci_manifest(config=EMPTY, artifactType="application/vnd.example.sbom"))
        self.assertEqual(parse_manifest(body, mt.OCI_MANIFEST).artifact_type, "application/vnd.example.sbom")

    def test_empty_descriptor_not_required(self) -> None:
        parsed = parse_manifest(encode(oci_manifest(config=EMPTY, layers=[EMPTY])), mt.OCI_MANIFEST)
        self.assertEqual(parsed.required_blobs, ())
        self.assertEqual(parsed.artifact_type, mt.OCI_EMPTY)

    def test_empty_digest_with_other_size_is_required(self) -> None:
        odd = dict(EMPTY, size=3)
        parsed = parse_manifest(encode(oci_manifest(config=odd, layers=[])), mt.OCI_MANIFEST)
        self.assertEqual([str(x) for x in parsed.required_blobs], [mt.EMPTY_JSON_DIGEST])

    def test_non_distributable_layers_not_required(self) -> None:
        layers = [descriptor(n, media_type) for n, media_type in enumerate(sorted(mt.NON_DISTRIBUTABLE), 20)]
        layers.append(descriptor(1))
        parsed = parse_manifest(encode(oci_manifest(layers=layers)), mt.OCI_MANIFEST)
        self.assertEqual([str(x) for x in parsed.required_blobs], [d(0), d(1)])

    def test_subject(self) -> None:
        subject = descriptor(50, mt.OCI_MANIFEST)
        parsed = parse_manifest(encode(oci_manifest(subject=subject)), mt.OCI_MANIFEST)
        self.assertEqual(str(parsed.subject), d(50))
        # The subject need not exist, so it is not required.
        self.assertNotIn(Digest.parse(d(50)), parsed.references)
        parsed = parse_manifest(encode(oci_index(subject=subject)), mt.OCI_INDEX)
        self.assertEqual(str(parsed.subject), d(50))

    def test_bad_subject_refused(self) -> None:
        bad = ["sha256:abc", {"digest": d(1)}, {"mediaType": mt.OCI_MANIFEST, "digest": "x", "size": 1}]
        for subject in bad:
            self.assertRaises(
                ManifestInvalid, parse_manifest, encode(oci_manifest(subject=subject)), mt.OCI_MANIFEST
            )

    def test_duplicate_references_listed_once(self) -> None:
        parsed = parse_manifest(encode(oci_manifest(layers=[descriptor(1)] * 3)), mt.OCI_MANIFEST)
        self.assertEqual([str(x) for x in parsed.required_blobs], [d(0), d(1)])

    def test_sha512_digest_of_manifest(self) -> None:
        body = encode(oci_manifest())
        parsed = parse_manifest(body, mt.OCI_MANIFEST, "sha512")
        self.assertEqual(parsed.digest, Digest.of(body, "sha512"))

    def test_invalid_descriptors(self) -> None:
        bad = [
            None,
            [],
            "x",
            {"digest": d(1), "size": 1},
            {"mediaType": 1, "digest": d(1), "size": 1},
            {"mediaType": "a/b", "digest": "sha256:zz", "size": 1},
            {"mediaType": "a/b", "digest": d(1)},
            {"mediaType": "a/b", "digest": d(1), "size": -1},
            {"mediaType": "a/b", "digest": d(1), "size": 1.0},
            {"mediaType": "a/b", "digest": d(1), "size": "1"},
            {"mediaType": "a/b", "digest": d(1), "size": True},
            {"mediaType": "a/b", "digest": d(1), "size": 1, "annotations": {"a": 1}},
            {"mediaType": "a/b", "digest": d(1), "size": 1, "annotations": []},
            {"mediaType": "a/b", "digest": d(1), "size": 1, "artifactType": 5},
        ]
        for value in bad:
            self.assertRaises(ManifestInvalid, parse_descriptor, value, "x")
            self.assertRaises(
                ManifestInvalid, parse_manifest, encode(oci_manifest(layers=[value])), mt.OCI_MANIFEST
            )

    def test_descriptor_as_json_round_trips(self) -> None:
        value = descriptor(3, artifactType="application/x", annotations={"k": "v"})
        self.assertEqual(parse_descriptor(value, "x").as_json(), value)
        plain = descriptor(4)
        self.assertEqual(parse_descriptor(plain, "x").as_json(), plain)

    def test_not_json_or_not_object(self) -> None:
        for body in [b"", b"{", b"\xff\xfe", b"[]", b"null", b"2", b'"x"', b"\x00", b"NaN", b"1" * 5000]:
            self.assertRaises(ManifestInvalid, parse_manifest, body, mt.OCI_MANIFEST)

    def test_bad_annotations_refused(self) -> None:
        for value in [[], "a", {"a": 1}, {"a": None}]:
            body = encode(oci_manifest(annotations=value))
            self.assertRaises(ManifestInvalid, parse_manifest, body, mt.OCI_MANIFEST)

    def test_deeply_nested_json_does_not_crash(self) -> None:
        for depth in [100, 1000, 100_000]:
            for opener, closer in [(b"[", b"]"), (b'{"a":', b"}")]:
                body = opener * depth + b"1" + closer * depth
                self.assertRaises(ManifestInvalid, parse_manifest, body, mt.OCI_MANIFEST)
                # Nested inside a field of an otherwise valid manifest.
                nested = (opener * depth + b"1" + closer * depth).decode()
                text = json.dumps(oci_manifest(annotations={"a": "b"})).replace('{"a": "b"}', nested)
                self.assertRaises(ManifestInvalid, parse_manifest, text.encode(), mt.OCI_MANIFEST)
        # Deep nesting in a place the parser ignores is still a valid manifest.
        document = encode(oci_manifest()).decode()
        body = document[:-1] + ', "extra": ' + "[" * 500 + "]" * 500 + "}"
        self.assertEqual(parse_manifest(body.encode(), mt.OCI_MANIFEST).media_type, mt.OCI_MANIFEST)
