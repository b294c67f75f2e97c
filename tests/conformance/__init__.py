"""
A Python re-statement of the OCI distribution-spec conformance suite.

The official suite (github.com/opencontainers/distribution-spec/conformance,
the ``package main`` runner of ``run.go``, ``api.go`` and ``testdata.go``)
is Go and cannot be built here.  These tests make the same requests, in the
same order, with the same test data shapes, and assert the same statuses,
headers and bodies, against a real ``twistd -n oci`` process, with the
settings ``OCI_VERSION=1.1 OCI_TEST_PULL=1 OCI_TEST_PUSH=1
OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1``.

Where the suite records an outcome as "unsupported" (a skip, not a
failure), these tests skip with the same reason.
"""
