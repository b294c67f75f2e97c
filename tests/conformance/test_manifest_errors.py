"""Manifests that are not there, and a digest that cannot be one."""

from __future__ import annotations

import os

from tests.conformance.base import REPO1, ConformanceCase
from tests.conformance.testdata import TestData, digest_of, random_text


class ManifestErrorTests(ConformanceCase):
    """
    Mirrors ``TestManifestErrors`` in ``run.go`` ("missing-manifest" by
    digest and by tag, "invalid-digest-format"), with ``ManifestGetReq``,
    ``ManifestPut`` and ``TestDelete`` of ``api.go``/``run.go``.
    """

    def test_missing_manifest_by_digest(self) -> None:
        """GET of the digest of 1024 random bytes: 404."""
        response = self.api_manifest_get(REPO1, digest_of(os.urandom(1024)))
        self.expect_status(response, 404, what="GET of a missing manifest by digest")

    def test_missing_manifest_by_tag(self) -> None:
        """GET of tag ``missing-<20 random characters>``: 404."""
        response = self.api_manifest_get(REPO1, f"missing-{random_text().lower()[:20]}")
        self.expect_status(response, 404, what="GET of a missing manifest by tag")

    def test_invalid_digest_format(self) -> None:
        """
        An image of one layer: its blobs are pushed, the manifest PUT to
        ``sha256:baddigeststring`` is 400, a GET of it 404 or 400; then the
        usual cleanup (the manifest delete finds nothing, blobs go).
        """
        td = TestData("Invalid Manifest Digest")
        manifest = td.gen_manifest_full(layer_count=1)
        for digest in td.blobs:
            with self.step(f"push blob {digest}"):
                self.push_blob_any(REPO1, digest, td)
        with self.step("manifest-put sha256:baddigeststring"):
            self.api_manifest_put(REPO1, "sha256:baddigeststring", manifest, td, expect_bad_digest=True)
        with self.step("manifest-get sha256:baddigeststring"):
            response = self.api_manifest_get(REPO1, "sha256:baddigeststring")
            self.expect_status(response, 404, 400, what="GET of sha256:baddigeststring")
        self.run_delete(td, REPO1)
        self.finish()
