"""
The Docker engine against a real ``twistd oci``: ``docker build`` (the
classic builder, ``FROM scratch``) and ``docker load`` of an archive the
test writes, ``docker push`` (schema 2, chunked PATCH uploads, a
cross-repository mount), ``docker rmi`` and ``docker pull``, and a pull
of a two-platform OCI index.

The registry, a private containerd and a private dockerd using it (see
:mod:`tests.clients.daemons`) are started once for the class: dockerd
needs the registry's port for ``--insecure-registry``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from typing import Any

import requests

from tests.clients.daemons import DockerdForRegistry, SharedDaemonTestCase
from tests.clients.images import layer_files, make_tar
from tests.clients.test_containerd import access_log
from tests.clients.test_skopeo import OCI_INDEX, Layout, canonical, sha256
from tests.support import TwistdServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

PUSHED = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: (\d+)$", re.MULTILINE)






class DockerEngineTests(SharedDaemonTestCase):
    @classmethod
    def start_shared(cls, directory: str) -> tuple[Any, Any]:
        shared = DockerdForRegistry(directory, TwistdServer(os.path.join(directory, "registry")))
        return shared, shared.stop

    def setUp(self) -> None:
        shared: DockerdForRegistry = self.shared()
        self.server = shared.server
        self.dockerd = shared.dockerd
        self.address = self.server.address
        self.base = f"http://{self.address}"
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)

    def docker(self, *args: str, cwd: str | None = None) -> str:
        result = subprocess.run([self.dockerd.docker, *args], capture_output=True, text=True, timeout=120,
                                env=self.dockerd.env(), cwd=cwd)
        if result.returncode != 0:
            self.fail(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        return result.stdout

    def inspect(self, image: str) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(self.docker("image", "inspect", image))
        return inspected[0]

    def push(self, image: str) -> tuple[str, str]:
        """``docker push``; return (its output, the digest it reports)."""
        out = self.docker("push", image)
        found = PUSHED.search(out)
        assert found is not None, out
        self.assertEqual(found[1], image.rsplit(":", 1)[1])
        return out, found[2]

    def served(self, repository: str, reference: str, method: str = "GET") -> requests.Response:
        response = requests.request(
            method, f"{self.base}/v2/{repository}/manifests/{reference}",
            headers={"Accept": DOCKER_MANIFEST}, timeout=10,
        )
        self.assertEqual(response.status_code, 200, response.text)
        return response

    def blob(self, repository: str, digest: str) -> bytes:
        response = requests.get(f"{self.base}/v2/{repository}/blobs/{digest}", timeout=10)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(sha256(response.content), digest)
        return response.content

    def assert_pushed(self, repository: str, tag: str, digest: str, image_id: str) -> dict[str, Any]:
        """The registry serves ``digest`` for the tag: a schema 2 manifest of ``image_id``."""
        head = self.served(repository, tag, "HEAD")
        self.assertEqual(head.headers["Docker-Content-Digest"], digest)
        response = self.served(repository, tag)
        self.assertEqual(sha256(response.content), digest)
        self.assertEqual(response.headers["Content-Type"], DOCKER_MANIFEST)
        manifest: dict[str, Any] = response.json()
        self.assertEqual(manifest["mediaType"], DOCKER_MANIFEST)
        self.assertEqual(manifest["config"]["mediaType"], DOCKER_CONFIG)
        self.assertEqual(manifest["config"]["digest"], image_id)
        config = json.loads(self.blob(repository, image_id))
        self.assertEqual([layer["mediaType"] for layer in manifest["layers"]],
                         [DOCKER_LAYER_GZIP] * len(config["rootfs"]["diff_ids"]))
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            data = self.blob(repository, layer["digest"])
            self.assertEqual(len(data), layer["size"])
            self.assertEqual(sha256(gzip.decompress(data)), diff_id)
        return manifest

    def assert_pulled(self, image: str, repository: str, digest: str, image_id: str) -> None:
        """After ``docker rmi``, ``docker pull`` downloads the same image again."""
        self.docker("rmi", image)
        self.assertEqual(self.docker("images", "-q", image).strip(), "")
        before = len(access_log(self.server))
        out = self.docker("pull", image)
        self.assertIn(f"Digest: {digest}", out)
        manifest = self.served(repository, digest).json()
        downloaded = {path for method, path, status in access_log(self.server)[before:]
                      if method == "GET" and status == 200}
        blobs = [manifest["config"], *manifest["layers"]]
        self.assertLessEqual({f"/v2/{repository}/blobs/{blob['digest']}" for blob in blobs}, downloaded)
        pulled = self.inspect(image)
        self.assertEqual(pulled["Id"], image_id)
        self.assertIn(f"{self.address}/{repository}@{digest}", pulled["RepoDigests"])

    def test_build_push_rmi_pull(self) -> None:
        payload = os.urandom(300_000)
        context = os.path.join(self.work, "context")
        os.makedirs(context)
        with open(os.path.join(context, "payload.bin"), "wb") as f:
            f.write(payload)
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY payload.bin /payload.bin\nCMD [\"/payload.bin\"]\n")
        image = f"{self.address}/docker/built:v1"
        self.docker("build", "-q", "-t", image, ".", cwd=context)
        image_id = self.inspect(image)["Id"]

        out, digest = self.push(image)
        manifest = self.assert_pushed("docker/built", "v1", digest, image_id)
        # dockerd streams each blob in a PATCH, then closes the upload with PUT ?digest=.
        uploads = [(method, status) for method, path, status in access_log(self.server)
                   if path.startswith("/v2/docker/built/blobs/uploads/") and method in ("PATCH", "PUT")]
        self.assertEqual(uploads, [("PATCH", 202), ("PUT", 201)] * 2)
        self.assertEqual(len(manifest["layers"]), 1)
        self.assertEqual(layer_files(self.blob("docker/built", manifest["layers"][0]["digest"])),
                         {"payload.bin": payload})

        # The same image in another repository: the layer is mounted, not sent again.
        copy = f"{self.address}/docker/built-copy:v1"
        self.docker("tag", image, copy)
        out, copy_digest = self.push(copy)
        self.assertIn("Mounted from docker/built", out)
        self.assertEqual(copy_digest, digest)
        self.assert_pushed("docker/built-copy", "v1", digest, image_id)

        self.docker("rmi", copy)
        self.assert_pulled(image, "docker/built", digest, image_id)

    def test_load_push_rmi_pull(self) -> None:
        layers = [make_tar({"etc/motd": b"loaded by docker load\n"}),
                  make_tar({"data/blob.bin": os.urandom(200_000)})]
        config = canonical({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
            "history": [{"created_by": "hand"}, {"created_by": "hand"}],
        })
        image_id = sha256(config)
        image = f"{self.address}/docker/loaded:v1"
        archive = os.path.join(self.work, "image.tar")
        with tarfile.open(archive, "w") as tar:
            def add(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

            add(f"{image_id[7:]}.json", config)
            names = []
            for layer in layers:
                names.append(f"{hashlib.sha256(layer).hexdigest()}/layer.tar")
                add(names[-1], layer)
            add("manifest.json", json.dumps([
                {"Config": f"{image_id[7:]}.json", "RepoTags": [image], "Layers": names},
            ]).encode())
        out = self.docker("load", "-i", archive)
        self.assertIn(f"Loaded image: {image}", out)
        self.assertEqual(self.inspect(image)["Id"], image_id)

        _, digest = self.push(image)
        manifest = self.assert_pushed("docker/loaded", "v1", digest, image_id)
        # The config travels unchanged; the layers are the archive's tars, gzipped.
        self.assertEqual(self.blob("docker/loaded", image_id), config)
        self.assertEqual([gzip.decompress(self.blob("docker/loaded", layer["digest"]))
                          for layer in manifest["layers"]], layers)
        self.assert_pulled(image, "docker/loaded", digest, image_id)

    def test_pull_platform_from_oci_index(self) -> None:
        # A two-platform OCI index, pushed by HTTP: docker picks linux/amd64.
        layout = Layout(tempfile.mkdtemp(dir=self.work))
        descriptor, index = layout.multi_platform()
        blobs = os.path.join(layout.path, "blobs", "sha256")
        children = {}
        for child in json.loads(index)["manifests"]:
            with open(os.path.join(blobs, child["digest"][7:]), "rb") as f:
                children[child["platform"]["architecture"]] = (child["digest"], f.read())
        for _, manifest in children.values():
            document = json.loads(manifest)
            for blob in [document["config"], *document["layers"]]:
                with open(os.path.join(blobs, blob["digest"][7:]), "rb") as f:
                    posted = requests.post(
                        f"{self.base}/v2/docker/oci-index/blobs/uploads/?digest={blob['digest']}",
                        data=f.read(), headers={"Content-Type": "application/octet-stream"}, timeout=10,
                    )
                self.assertEqual(posted.status_code, 201, posted.text)
        for digest, manifest in children.values():
            put = requests.put(f"{self.base}/v2/docker/oci-index/manifests/{digest}", data=manifest,
                               headers={"Content-Type": json.loads(manifest)["mediaType"]}, timeout=10)
            self.assertEqual(put.status_code, 201, put.text)
        put = requests.put(f"{self.base}/v2/docker/oci-index/manifests/multi", data=index,
                           headers={"Content-Type": OCI_INDEX}, timeout=10)
        self.assertEqual(put.status_code, 201, put.text)

        image = f"{self.address}/docker/oci-index:multi"
        out = self.docker("pull", image)
        self.assertIn(f"Digest: {descriptor['digest']}", out)
        pulled = self.inspect(image)
        amd64 = json.loads(children["amd64"][1])
        self.assertEqual(pulled["Id"], amd64["config"]["digest"])
        self.assertEqual(pulled["Architecture"], "amd64")
        self.assertIn(f"{self.address}/docker/oci-index@{descriptor['digest']}", pulled["RepoDigests"])
        shutil.rmtree(layout.path)
