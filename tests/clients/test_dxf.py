"""
python-dxf against a real ``twistd oci``: blobs (whole, streamed, mounted,
deleted), manifests and aliases, and paginated listings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import requests

from tests.clients.base import ServerTestCase, require_module
from tests.support import sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"




class DXFTests(ServerTestCase):
    def setUp(self) -> None:
        self.dxf = require_module("dxf")
        super().setUp()

    def client(self, repo: str) -> Any:
        return self.dxf.DXF(self.address, repo, insecure=True, timeout=30)

    def pull(self, client: Any, digest: str) -> bytes:
        return b"".join(client.pull_blob(digest))

    def assert_status(self, error: Exception, status: int) -> None:
        self.assertIsInstance(error, requests.exceptions.HTTPError)
        assert isinstance(error, requests.exceptions.HTTPError)
        self.assertEqual(error.response.status_code, status)

    def test_push_and_pull_blob_from_file(self) -> None:
        client = self.client("dxf/blobs")
        data = os.urandom(150_000)
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(data)
        progress: list[int] = []
        digest = client.push_blob(path, progress=lambda d, chunk, total: progress.append(len(chunk)))
        self.assertEqual(digest, sha256(data))
        self.assertEqual(sum(progress), len(data))
        self.assertEqual(client.blob_size(digest), len(data))
        chunks, size = client.pull_blob(digest, size=True, chunk_size=4096)
        self.assertEqual(size, len(data))
        self.assertEqual(b"".join(chunks), data)
        # Pushing again finds it by HEAD and uploads nothing.
        self.assertEqual(client.push_blob(path), digest)

    def test_streamed_blob(self) -> None:
        """``data=`` an iterator: a PUT with a chunked transfer encoding."""
        client = self.client("dxf/stream")
        parts = [os.urandom(size) for size in (1, 70_000, 0, 33_333, 250_000)]
        data = b"".join(parts)

        def chunks() -> Iterator[bytes]:
            yield from parts

        digest = client.push_blob(data=chunks(), digest=sha256(data))
        self.assertEqual(digest, sha256(data))
        self.assertEqual(self.pull(client, digest), data)
        self.assertEqual(client.blob_size(digest), len(data))

    def test_streamed_blob_with_wrong_digest_is_refused(self) -> None:
        client = self.client("dxf/stream")
        wrong = sha256(b"something else")
        with self.assertRaises(requests.exceptions.HTTPError) as caught:
            client.push_blob(data=iter([b"some ", b"bytes"]), digest=wrong)
        self.assert_status(caught.exception, 400)
        self.assertIn("DIGEST_INVALID", caught.exception.response.text)
        with self.assertRaises(requests.exceptions.HTTPError) as missing:
            client.blob_size(wrong)
        self.assert_status(missing.exception, 404)

    def test_set_and_get_manifest_and_aliases(self) -> None:
        client = self.client("dxf/manifests")
        first = client.push_blob(data=iter([b"layer one"]), digest=sha256(b"layer one"))
        second = client.push_blob(data=iter([b"layer two"]), digest=sha256(b"layer two"))

        manifest = client.set_alias("v1", first, second)
        document = json.loads(manifest)
        self.assertEqual(document["mediaType"], DOCKER_MANIFEST)
        self.assertEqual(client.get_manifest("v1"), manifest)
        self.assertEqual(client.get_alias("v1"), [first, second])
        self.assertEqual(client.get_alias("v1", sizes=True), [(first, 9), (second, 9)])
        self.assertEqual(client.get_digest("v1"), first)
        digest, response = client.head_manifest_and_response("v1")
        self.assertEqual(digest, sha256(manifest.encode()))
        self.assertEqual(response.headers["Content-Type"], DOCKER_MANIFEST)

        # An OCI manifest set under another tag, by set_manifest.
        oci = json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": first, "size": 9},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": second, "size": 9}],
        })
        client.set_manifest("oci", oci)
        self.assertEqual(client.get_manifest("oci"), oci)
        self.assertEqual(client.get_alias("oci"), [second])

        self.assertEqual(sorted(client.list_aliases()), ["oci", "v1"])
        self.assertEqual(client.del_alias("v1"), [first, second])
        with self.assertRaises(requests.exceptions.HTTPError) as caught:
            client.get_manifest("v1")
        self.assert_status(caught.exception, 404)
        self.assertEqual(client.list_aliases(), ["oci"])
        # The blobs stay: deleting an alias removes only the manifest.
        self.assertEqual(self.pull(client, first), b"layer one")

    def test_mount_and_delete_blob(self) -> None:
        source = self.client("dxf/source")
        target = self.client("dxf/target")
        data = os.urandom(10_000)
        digest = source.push_blob(data=iter([data]), digest=sha256(data))
        with self.assertRaises(requests.exceptions.HTTPError) as caught:
            target.blob_size(digest)
        self.assert_status(caught.exception, 404)

        self.assertEqual(target.mount_blob("dxf/source", digest), digest)
        self.assertEqual(self.pull(target, digest), data)

        target.del_blob(digest)
        with self.assertRaises(requests.exceptions.HTTPError) as caught:
            target.pull_blob(digest)
        self.assert_status(caught.exception, 404)
        # Deleted from the target only.
        self.assertEqual(self.pull(source, digest), data)
        with self.assertRaises(requests.exceptions.HTTPError) as caught:
            target.del_blob(digest)
        self.assert_status(caught.exception, 404)

    def test_paginated_tags_and_repositories(self) -> None:
        repos = [f"dxf/page/r{i:02d}" for i in range(7)]
        clients = {repo: self.client(repo) for repo in repos}
        layer = b"shared layer"
        for client in clients.values():
            client.push_blob(data=iter([layer]), digest=sha256(layer))
        tags = [f"t{i:02d}" for i in range(11)]
        tagged = clients[repos[0]]
        for tag in reversed(tags):
            tagged.set_alias(tag, sha256(layer))
        for repo in repos[1:]:
            clients[repo].set_alias("only", sha256(layer))

        pages: list[str] = []
        with tagged:  # A session of its own, to watch the requests on.
            tagged._sessions[0].hooks["response"].append(lambda r, *a, **k: pages.append(r.url))
            self.assertEqual(tagged.list_aliases(batch_size=3), tags)
        # Four pages of 3, 3, 3, 2; each after the first from the Link header.
        self.assertEqual(len([url for url in pages if "tags/list" in url]), 4)
        self.assertEqual(list(tagged.list_aliases(batch_size=100, iterate=True)), tags)
        self.assertEqual(tagged.list_aliases(batch_size=11), tags)

        base = self.dxf.DXFBase(self.address, insecure=True, timeout=30)
        self.assertEqual(base.list_repos(batch_size=2), repos)
        self.assertEqual(base.list_repos(batch_size=1), repos)
        self.assertEqual(base.list_repos(), repos)

    def test_api_version_check(self) -> None:
        body, response = self.client("dxf/any").api_version_check()
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Docker-Distribution-API-Version"], "registry/2.0")
        self.assertEqual(json.loads(body), {})
