"""
The docker CLI without an engine against a real ``twistd oci``:
``docker manifest create``, ``annotate``, ``push`` and ``inspect`` with
``--insecure``, on images pushed over HTTP by the test.

The CLI talks to the registry itself.  With ``--insecure`` it tries HTTPS
first and falls back to HTTP only when the server answers the TLS
ClientHello with an HTTP status line, which txoci does at once (400): the
commands must finish well inside Go's 10 second TLS handshake timeout.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
import time
from typing import Any

import requests

from tests.clients.base import ServerTestCase, require_binary
from tests.clients.test_containerd import access_log
from tests.clients.test_skopeo import canonical, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: Each command's limit: far below the 10 s a TLS handshake timeout would cost.
COMMAND_SECONDS = 5.0


class DockerManifestTests(ServerTestCase):
    def setUp(self) -> None:
        self.docker_binary = require_binary("docker")
        super().setUp()
        self.config_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.config_dir)
        self.env = dict(os.environ)
        # A private client config (manifest lists are kept under it) and no engine at all.
        self.env.update(DOCKER_CONFIG=self.config_dir, DOCKER_HOST=f"unix://{self.config_dir}/no-engine.sock")
        for name in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"]:
            self.env.pop(name, None)

    def docker(self, *args: str) -> str:
        started = time.monotonic()
        result = subprocess.run([self.docker_binary, *args], capture_output=True, text=True, timeout=60,
                                env=self.env)
        if result.returncode != 0:
            self.fail(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        self.assertLess(time.monotonic() - started, COMMAND_SECONDS, f"docker {' '.join(args)} was slow")
        return result.stdout

    def push_blob(self, repository: str, data: bytes) -> dict[str, Any]:
        digest = sha256(data)
        response = requests.post(f"{self.base}/v2/{repository}/blobs/uploads/?digest={digest}", data=data,
                                 headers={"Content-Type": "application/octet-stream"}, timeout=10)
        self.assertEqual(response.status_code, 201, response.text)
        return {"digest": digest, "size": len(data)}

    def push_image(self, repository: str, architecture: str) -> tuple[str, bytes]:
        """A Docker schema 2 image of one layer, tagged ``v1``; return (digest, manifest)."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            content = f"built for {architecture}\n".encode()
            info = tarfile.TarInfo("arch.txt")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        config = canonical({
            "architecture": architecture, "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(raw.getvalue())]},
        })
        manifest = canonical({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, **self.push_blob(repository, config)},
            "layers": [{"mediaType": DOCKER_LAYER_GZIP, **self.push_blob(repository, layer)}],
        })
        response = requests.put(f"{self.base}/v2/{repository}/manifests/v1", data=manifest,
                                headers={"Content-Type": DOCKER_MANIFEST}, timeout=10)
        self.assertEqual(response.status_code, 201, response.text)
        return sha256(manifest), manifest

    def test_manifest_create_annotate_push_inspect(self) -> None:
        amd64_digest, amd64 = self.push_image("cli/amd64", "amd64")
        arm64_digest, arm64 = self.push_image("cli/arm64", "arm64")
        target = f"{self.address}/cli/list:v1"

        self.docker("manifest", "create", "--insecure", target,
                    f"{self.address}/cli/amd64:v1", f"{self.address}/cli/arm64:v1")
        self.docker("manifest", "annotate", target, f"{self.address}/cli/arm64:v1",
                    "--os", "linux", "--arch", "arm64", "--variant", "v8")
        local = json.loads(self.docker("manifest", "inspect", target))
        self.assertEqual([m["digest"] for m in local["manifests"]], [amd64_digest, arm64_digest])

        pushed = self.docker("manifest", "push", "--insecure", "--purge", target).split()[-1]

        # What the CLI reports is what the registry serves, under the tag and by digest.
        response = requests.get(f"{self.base}/v2/cli/list/manifests/v1",
                                headers={"Accept": DOCKER_LIST}, timeout=10)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers["Content-Type"], DOCKER_LIST)
        self.assertEqual(response.headers["Docker-Content-Digest"], pushed)
        self.assertEqual(sha256(response.content), pushed)
        listed = response.json()
        self.assertEqual(listed["mediaType"], DOCKER_LIST)
        self.assertEqual(
            [(m["mediaType"], m["digest"], m["size"], m["platform"]) for m in listed["manifests"]],
            [(DOCKER_MANIFEST, amd64_digest, len(amd64), {"architecture": "amd64", "os": "linux"}),
             (DOCKER_MANIFEST, arm64_digest, len(arm64),
              {"architecture": "arm64", "os": "linux", "variant": "v8"})],
        )

        # The images were copied into cli/list: blobs mounted from their repositories.
        for digest, manifest in [(amd64_digest, amd64), (arm64_digest, arm64)]:
            got = requests.get(f"{self.base}/v2/cli/list/manifests/{digest}",
                               headers={"Accept": DOCKER_MANIFEST}, timeout=10)
            self.assertEqual(got.content, manifest)
            document = json.loads(manifest)
            for blob in [document["config"], *document["layers"]]:
                self.assertEqual(
                    requests.head(f"{self.base}/v2/cli/list/blobs/{blob['digest']}", timeout=10).status_code,
                    200,
                )
        mounts = [path for method, path, status in access_log(self.server)
                  if method == "POST" and path.startswith("/v2/cli/list/blobs/uploads/?") and status == 201]
        self.assertEqual(len(mounts), 4, mounts)
        self.assertTrue(all("mount=sha256" in path and "from=cli%2F" in path for path in mounts), mounts)

        # Inspected from the registry, by tag and by digest.
        for reference in [target, f"{self.address}/cli/list@{pushed}"]:
            inspected = json.loads(self.docker("manifest", "inspect", "--insecure", reference))
            self.assertEqual(inspected, listed)
        single = json.loads(self.docker("manifest", "inspect", "--insecure", f"{self.address}/cli/arm64:v1"))
        self.assertEqual(single, json.loads(arm64))
