"""
An upload survives a crash: half a blob is PATCHed, the server is killed
with SIGKILL, and a new server on the same data directory finishes it.
"""

from __future__ import annotations

import os
from urllib.parse import urljoin

from tests.clients.base import ServerTestCase, require_module
from tests.support import sha256


class RestartTests(ServerTestCase):
    def setUp(self) -> None:
        self.requests = require_module("requests")
        super().setUp()

    def test_upload_resumes_after_sigkill(self) -> None:
        requests = self.requests
        data = os.urandom(3 * 1024 * 1024 + 123)
        half = len(data) // 2
        digest = sha256(data)

        started = requests.post(f"{self.base}/v2/restart/blob/blobs/uploads/", timeout=10)
        self.assertEqual(started.status_code, 202, started.text)
        location = started.headers["Location"]
        upload_path = urljoin(f"{self.base}/", location).removeprefix(self.base)

        first = requests.patch(
            self.base + upload_path, data=data[:half], timeout=30,
            headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{half - 1}"},
        )
        self.assertEqual(first.status_code, 202, first.text)
        self.assertEqual(first.headers["Range"], f"0-{half - 1}")

        self.server.kill()
        self.server = self.start_server()

        progress = requests.get(self.base + upload_path, timeout=10)
        self.assertEqual(progress.status_code, 204, progress.text)
        self.assertEqual(progress.headers["Range"], f"0-{half - 1}")
        self.assertEqual(progress.headers["Docker-Upload-UUID"], upload_path.rsplit("/", 1)[1])
        resume = urljoin(f"{self.base}/", progress.headers["Location"])

        rest = requests.patch(
            resume, data=data[half:], timeout=30,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Range": f"{half}-{len(data) - 1}"},
        )
        self.assertEqual(rest.status_code, 202, rest.text)
        self.assertEqual(rest.headers["Range"], f"0-{len(data) - 1}")
        resume = urljoin(f"{self.base}/", rest.headers["Location"])

        finished = requests.put(resume, params={"digest": digest}, timeout=30)
        self.assertEqual(finished.status_code, 201, finished.text)
        self.assertEqual(finished.headers["Docker-Content-Digest"], digest)

        blob = requests.get(urljoin(f"{self.base}/", finished.headers["Location"]), timeout=30)
        self.assertEqual(blob.status_code, 200)
        self.assertEqual(len(blob.content), len(data))
        self.assertEqual(blob.content, data)
        self.assertEqual(blob.headers["Docker-Content-Digest"], digest)
        # The session is gone once committed.
        gone = requests.get(self.base + upload_path, timeout=10)
        self.assertEqual(gone.status_code, 404)

    def test_restart_keeps_manifests_and_tags(self) -> None:
        requests = self.requests
        layer = os.urandom(4096)
        config = b'{"architecture":"amd64","os":"linux"}'
        for blob in (layer, config):
            pushed = requests.post(
                f"{self.base}/v2/restart/image/blobs/uploads/", params={"digest": sha256(blob)},
                data=blob, headers={"Content-Type": "application/octet-stream"}, timeout=10,
            )
            self.assertEqual(pushed.status_code, 201, pushed.text)
        manifest = (
            b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},'
            b'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}'
            % (sha256(config).encode(), len(config), sha256(layer).encode(), len(layer))
        )
        put = requests.put(
            f"{self.base}/v2/restart/image/manifests/v1", data=manifest, timeout=10,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        self.assertEqual(put.status_code, 201, put.text)

        self.server.kill()
        self.server = self.start_server()

        got = requests.get(f"{self.base}/v2/restart/image/manifests/v1", timeout=10)
        self.assertEqual(got.status_code, 200)
        self.assertEqual(got.content, manifest)
        self.assertEqual(got.headers["Docker-Content-Digest"], sha256(manifest))
        self.assertEqual(requests.get(f"{self.base}/v2/restart/image/blobs/{sha256(layer)}").content, layer)
        tags = requests.get(f"{self.base}/v2/restart/image/tags/list", timeout=10).json()
        self.assertEqual(tags, {"name": "restart/image", "tags": ["v1"]})
