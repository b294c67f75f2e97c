"""
The suite's data sets, each pushed, listed, read, queried for referrers and
deleted, in the order ``GenerateData`` builds them.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SkipTest

from tests.conformance.base import ConformanceCase
from tests.conformance.testdata import (
    AMD64,
    ARM64,
    MT_EXAMPLE_CONF1,
    MT_EXAMPLE_CONF2,
    MT_OCI_EMPTY_JSON,
    MT_OCI_IMAGE,
    MT_OCI_LAYER_ND,
    MT_OCI_LAYER_ND_GZ,
    MT_OCTET_STREAM,
    TestData,
    descriptor,
    digest_of,
)

#: The options of an artifact: ``genWithArtifactType``, empty JSON config, one layer.
ARTIFACT: dict[str, Any] = {
    "artifact_type": MT_EXAMPLE_CONF1,
    "config_media_type": MT_OCI_EMPTY_JSON,
    "config_bytes": b"{}",
    "layer_count": 1,
    "layer_media_type": MT_EXAMPLE_CONF1,
}
HELLO = {"org.opencontainers.conformance": "hello conformance test"}


class DataSetTests(ConformanceCase):
    """
    Mirrors ``GenerateData`` and the per-data-set loop of ``TestAll`` in
    ``run.go`` (``TestPush``, ``TestList``, ``TestHead``, ``TestPull``,
    ``TestReferrers``, ``TestDelete``), with the generators of
    ``testdata.go``.  Blobs are pushed with POST+PUT, manifests by digest
    (children first) then by tag, as a body of unknown length; every PUT of
    a manifest with a subject must answer ``OCI-Subject``; every pull checks
    body, Content-Type, Content-Length and Docker-Content-Digest; referrers
    are listed plain and filtered by each artifactType.
    """

    def test_image(self) -> None:
        """An image of two gzipped tar layers, tagged ``image``."""
        td = TestData("Image")
        td.gen_manifest_full(tag="image")
        self.run_data_set(td)

    def test_image_uncompressed(self) -> None:
        """An image of two plain tar layers."""
        td = TestData("Image Uncompressed")
        td.gen_manifest_full(tag="image-uncompressed", compress=False)
        self.run_data_set(td)

    def test_large_manifest(self) -> None:
        """A manifest of almost 4 MB: 390 annotations of 10000 characters."""
        td = TestData("Image with Large Manifest")
        annotations = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
        td.gen_manifest_full(tag="large-manifest", annotations=annotations)
        self.run_data_set(td)

    def test_index(self) -> None:
        """An index of a linux/amd64 and a linux/arm64 image."""
        td = TestData("Index")
        td.gen_index_full(tag="index", platforms=[AMD64, ARM64])
        self.run_data_set(td)

    def test_nested_index(self) -> None:
        """An index of two indexes (entries without platform), tagged ``index-of-index``."""
        td = TestData("Nested Index")
        first = td.gen_index_full(platforms=[AMD64, ARM64])
        second = td.gen_index_full(platforms=[AMD64, ARM64])
        td.gen_index([None, None], [first, second], tag="index-of-index")
        self.run_data_set(td)

    def test_empty_index(self) -> None:
        """An index with an empty ``manifests`` list."""
        td = TestData("Empty Index")
        td.gen_index_full(tag="index", platforms=[])
        self.run_data_set(td)

    def test_artifact(self) -> None:
        """An artifact: artifactType, empty JSON config, one layer of that type."""
        td = TestData("Artifact")
        td.gen_manifest_full(tag="artifact", **ARTIFACT)
        self.run_data_set(td)

    def test_artifact_index(self) -> None:
        """An index of two artifacts, itself with an artifactType."""
        td = TestData("Artifact Index")
        td.gen_index_full(tag="artifact-index", platforms=[AMD64, ARM64], **ARTIFACT)
        self.run_data_set(td)

    def test_artifact_without_layers(self) -> None:
        """An artifact whose only layer is the empty JSON descriptor."""
        td = TestData("Artifact without Layers")
        td.gen_manifest_full(
            tag="artifact-without-layers",
            **{**ARTIFACT, "layer_bytes": b"{}", "layer_media_type": MT_OCI_EMPTY_JSON},
        )
        self.run_data_set(td)

    def test_artifacts_with_subject(self) -> None:
        """
        An image and three referrers: an image with a subject, and two
        tagged artifacts of different artifactType (layers of the first
        type and of application/octet-stream).
        """
        td = TestData("Artifacts with Subject")
        subject = td.desc[td.gen_manifest_full(tag="image")]
        td.gen_manifest_full(subject=subject)
        td.gen_manifest_full(
            **ARTIFACT, annotations=HELLO, annotation_uniq=True, subject=subject, tag="tagged-artifact1"
        )
        td.gen_manifest_full(
            **{**ARTIFACT, "artifact_type": MT_EXAMPLE_CONF2, "layer_media_type": MT_OCTET_STREAM},
            annotations=HELLO, annotation_uniq=True, subject=subject, tag="tagged-artifact2",
        )
        self.run_data_set(td)

    def test_index_with_subject(self) -> None:
        """An index, and an artifact index (and its artifacts) whose subject it is."""
        td = TestData("Index with Subject")
        subject = td.desc[td.gen_index_full(tag="index")]
        td.gen_index_full(
            **ARTIFACT, annotations=HELLO, annotation_uniq=True, subject=subject, tag="tagged-artifact"
        )
        self.run_data_set(td)

    def test_missing_subject(self) -> None:
        """An artifact whose subject was never pushed: accepted, and listed as its referrer."""
        td = TestData("Missing Subject")
        subject = descriptor(MT_OCI_IMAGE, digest_of(b"missing content"), 123)
        td.gen_manifest_full(
            **ARTIFACT, annotations=HELLO, annotation_uniq=True, subject=subject, tag="tagged-artifact"
        )
        self.run_data_set(td)

    def test_data_field(self) -> None:
        """Descriptors carrying their content in ``data``."""
        td = TestData("Data Field")
        td.gen_manifest_full(tag="data-field", set_data=True)
        self.run_data_set(td)

    def test_non_distributable_layers(self) -> None:
        """Two non-distributable layers with ``urls`` (never pushed) and a normal one."""
        td = TestData("Non-distributable Layers")
        config_layers = [digest_of(os.urandom(256))]
        dig = digest_of(os.urandom(256))
        layers = [descriptor(MT_OCI_LAYER_ND_GZ, dig, 123456,
                             urls=["https://store.example.com/blobs/sha256/" + dig.split(":")[1]])]
        dig = digest_of(os.urandom(256))
        config_layers.append(dig)
        layers.append(descriptor(MT_OCI_LAYER_ND, dig, 12345,
                                 urls=["https://store.example.com/blobs/sha256/" + dig.split(":")[1]]))
        compressed, uncompressed = td.gen_layer(1)
        config_layers.append(uncompressed)
        layers.append(td.desc[compressed])
        config = td.gen_config(AMD64, config_layers)
        td.gen_manifest(td.desc[config], layers, tag="non-distributable-image")
        self.run_data_set(td)

    def test_custom_fields(self) -> None:
        """An index, its images and configs, each with a field unknown to the spec."""
        td = TestData("Custom Fields")
        td.gen_index_full(tag="custom-fields", platforms=[AMD64, ARM64], extra_field=True)
        self.run_data_set(td)

    def test_no_layers(self) -> None:
        """An image manifest with an empty layer list."""
        td = TestData("No Layers")
        td.gen_manifest_full(tag="no-layers", layer_count=0)
        self.run_data_set(td)

    def test_sparse(self) -> None:
        """``Data.Sparse`` is off by default in every version."""
        raise SkipTest("data Sparse Manifests is disabled in the configuration (OCI_VERSION 1.1)")

    def test_sha512(self) -> None:
        """An index, images, configs and layers all addressed by sha512, pushed by digest only."""
        td = TestData("Digest Algorithm sha512")
        td.gen_index_full(algo="sha512")
        self.run_data_set(td)

    def test_tag_param(self) -> None:
        """``PUT ?tag=`` (tag-param-sha256 and tag-param-sha512) is tested from 1.1+dev on."""
        raise SkipTest("api Manifest put with tag params is disabled in the configuration (OCI_VERSION 1.1)")

    def test_bad_digest_image(self) -> None:
        """
        An image whose manifest gets two trailing spaces after its digest was
        taken: its blobs push, the manifest PUT by digest is 400; it is not
        pulled, and its delete finds nothing.
        """
        td = TestData("Bad Digest Image")
        dig = td.gen_manifest_full()
        td.skip_pull.add(dig)
        td.expect_bad_digest.add(dig)
        td.manifests[dig] += b"  "
        self.run_data_set(td)
