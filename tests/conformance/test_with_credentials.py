"""
The suite's flows with authentication on: every conformance class again, against a registry
serving the acceptance policy of ``tests.auth.fixtures``, as a user the policy lets do
everything -- with Basic credentials, and through the token flow (challenge, ``GET /token``,
bearer token) as the suite does with ``OCI_USERNAME``/``OCI_PASSWORD``.
"""

from __future__ import annotations

# Modules, not classes: a class imported here would run a second time, unauthenticated.
from tests.conformance import test_blobs, test_data, test_empty, test_manifest_errors


class BasicAuthPingAndEmptyRegistryTests(test_empty.PingAndEmptyRegistryTests):
    auth_mode = "basic"


class BasicAuthBlobAPIsSha256Tests(test_blobs.BlobAPIsSha256Tests):
    auth_mode = "basic"


class BasicAuthBlobAPIsSha512Tests(test_blobs.BlobAPIsSha512Tests):
    auth_mode = "basic"


class BasicAuthDataSetTests(test_data.DataSetTests):
    auth_mode = "basic"


class BasicAuthManifestErrorTests(test_manifest_errors.ManifestErrorTests):
    auth_mode = "basic"


class TokenAuthPingAndEmptyRegistryTests(test_empty.PingAndEmptyRegistryTests):
    auth_mode = "token"


class TokenAuthBlobAPIsSha256Tests(test_blobs.BlobAPIsSha256Tests):
    auth_mode = "token"


class TokenAuthBlobAPIsSha512Tests(test_blobs.BlobAPIsSha512Tests):
    auth_mode = "token"


class TokenAuthDataSetTests(test_data.DataSetTests):
    auth_mode = "token"


class TokenAuthManifestErrorTests(test_manifest_errors.ManifestErrorTests):
    auth_mode = "token"
