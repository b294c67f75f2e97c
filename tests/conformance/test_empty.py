"""The first requests of the suite, on a registry that holds nothing yet."""

from __future__ import annotations

import hashlib

from tests.conformance.base import REPO1, ConformanceCase
from tests.conformance.testdata import random_text


class PingAndEmptyRegistryTests(ConformanceCase):
    """
    Mirrors ``TestPing`` and ``TestEmpty`` (``TestEmptyTagList``,
    ``TestEmptyReferrers``) in ``run.go``, with ``PingReq``, ``TagList`` and
    ``ReferrersList`` of ``api.go``; this class has a registry of its own,
    so ``repo1`` does not exist yet, as when the suite starts.
    """

    def test_ping(self) -> None:
        """``GET /v2/`` gets an HTTP answer (the suite checks nothing more)."""
        response = self.api_ping()
        self.assertIsInstance(response.status, int)

    def test_empty_tag_list(self) -> None:
        """The tag list of a repository never pushed to: 200 with JSON, or 404."""
        self.api_tag_list(REPO1)

    def test_empty_referrers(self) -> None:
        """Referrers of a random subject: 200, an empty OCI index with its Content-Type."""
        subject = "sha256:" + hashlib.sha256(random_text().encode()).hexdigest()
        self.api_referrers_list(REPO1, subject)
