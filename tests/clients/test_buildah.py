"""
buildah against a real ``twistd oci``: build an image ``from scratch`` with
``buildah copy``, commit it, push it as OCI and as Docker schema 2, pull it
back, and push a manifest list.  No base image and no network.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.clients.containers import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    ContainersTestCase,
)


class BuildahTests(ContainersTestCase):
    tool = "buildah"

    def build(self, name: str, files: dict[str, bytes], arch: str = "amd64") -> str:
        """``from scratch`` + ``copy`` + ``commit``; return the image ID."""
        source = os.path.join(self.root, "src-" + name.replace("/", "_").replace(":", "_"))
        for path, content in files.items():
            os.makedirs(os.path.dirname(os.path.join(source, path)), exist_ok=True)
            with open(os.path.join(source, path), "wb") as f:
                f.write(content)
        container = self.run_tool("from", "--quiet", "scratch").strip()
        self.run_tool("copy", "--quiet", container, source + "/", "/")
        self.run_tool("config", "--os", "linux", "--arch", arch, "--cmd", "/bin/tool", container)
        image_id = self.run_tool("commit", "--quiet", "--rm", container, name).strip()
        return image_id.removeprefix("sha256:")

    def inspect(self, name: str) -> dict[str, Any]:
        inspected: dict[str, Any] = json.loads(self.run_tool("inspect", "--type", "image", name))
        return inspected

    def forget_images(self) -> None:
        self.run_tool("rmi", "--all", "--force")
        self.assertEqual(self.run_tool("images", "--quiet").split(), [])

    def push_pull(self, push_format: str, media_type: str, config_type: str) -> None:
        files = {"etc/motd": b"built by buildah\n", "bin/tool": os.urandom(5000)}
        image_id = self.build("localhost/scratch:1", files)
        repository = f"buildah/{push_format}"
        target = f"{self.address}/{repository}:v1"
        digest_file = self.digest_file("push")
        self.run_tool("push", "--quiet", "--format", push_format, "--digestfile", digest_file,
                      "localhost/scratch:1", f"docker://{target}")
        digest = self.read_digest(digest_file)

        self.assertEqual(self.served_manifest(repository, "v1").headers["Docker-Content-Digest"], digest)
        manifest = self.assert_served_image(repository, digest, media_type, image_id, files)
        self.assertEqual(manifest["config"]["mediaType"], config_type)
        config = json.loads(self.served_blob(repository, manifest["config"]["digest"]))
        self.assertEqual(config["config"]["Cmd"], ["/bin/tool"])

        self.forget_images()
        self.run_tool("pull", "--quiet", target)
        pulled = self.inspect(target)
        self.assertEqual(pulled["FromImageID"], image_id)
        self.assertEqual(pulled["FromImageDigest"], digest)

        # A new build on top of the pulled image, pushed to a second repository:
        # its first layer is mounted across repositories or uploaded again.
        container = self.run_tool("from", "--quiet", target).strip()
        extra = os.path.join(self.root, "extra.txt")
        with open(extra, "wb") as f:
            f.write(b"second layer\n")
        self.run_tool("copy", "--quiet", container, extra, "/extra.txt")
        self.run_tool("commit", "--quiet", "--rm", container, "localhost/derived:1")
        derived_file = self.digest_file("derived")
        self.run_tool("push", "--quiet", "--format", push_format, "--digestfile", derived_file,
                      "localhost/derived:1", f"docker://{self.address}/buildah/derived:v1")
        derived = self.served_manifest("buildah/derived", self.read_digest(derived_file)).json()
        self.assertEqual(derived["layers"][0]["digest"], manifest["layers"][0]["digest"])
        self.assertEqual(len(derived["layers"]), 2)
        for layer in derived["layers"]:
            self.served_blob("buildah/derived", layer["digest"])

    def test_scratch_commit_push_pull_oci(self) -> None:
        self.push_pull("oci", OCI_MANIFEST, OCI_CONFIG)

    def test_scratch_commit_push_pull_docker(self) -> None:
        self.push_pull("docker", DOCKER_MANIFEST, DOCKER_CONFIG)

    def test_manifest_push_all(self) -> None:
        ids = {
            arch: self.build(f"localhost/multi:{arch}", {"arch.txt": arch.encode()}, arch)
            for arch in ["amd64", "arm64"]
        }
        self.run_tool("manifest", "create", "localhost/multi:list")
        for arch in ids:
            self.run_tool("manifest", "add", "localhost/multi:list",
                          f"containers-storage:localhost/multi:{arch}")
        digest_file = self.digest_file("list")
        # buildah 1.28's ``manifest push`` ignores ``insecure = true`` in
        # registries.conf (``push`` and ``pull`` honour it): say it again.
        self.run_tool("manifest", "push", "--quiet", "--all", "--format", "oci", "--digestfile", digest_file,
                      "--tls-verify=false",
                      "localhost/multi:list", f"docker://{self.address}/buildah/multi:list")
        served = self.served_manifest("buildah/multi", "list")
        self.assertEqual(served.headers["Docker-Content-Digest"], self.read_digest(digest_file))
        self.assertEqual(served.headers["Content-Type"], OCI_INDEX)
        index = served.json()
        self.assertEqual(sorted(m["platform"]["architecture"] for m in index["manifests"]),
                         ["amd64", "arm64"])
        for child in index["manifests"]:
            arch = child["platform"]["architecture"]
            self.assert_served_image("buildah/multi", child["digest"], OCI_MANIFEST, ids[arch],
                                     {"arch.txt": arch.encode()})
