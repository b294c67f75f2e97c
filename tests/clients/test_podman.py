"""
podman against a real ``twistd oci``: push and pull images as OCI and as
Docker schema 2, push a two-platform manifest list with ``--all``, and list
tags with ``podman search --list-tags``.

Base images come from ``podman import`` of a tar the test writes: no
network.  What podman reports (``--digestfile``, ``podman inspect``) is
checked against what the registry serves.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.clients.containers import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    ContainersTestCase,
)
from tests.clients.images import make_tar


class PodmanTests(ContainersTestCase):
    tool = "podman"

    def import_image(self, name: str, files: dict[str, bytes], arch: str = "amd64") -> str:
        """``podman import`` a root filesystem of ``files``; return the image ID."""
        path = os.path.join(self.root, f"{name.replace('/', '_').replace(':', '_')}.tar")
        with open(path, "wb") as f:
            f.write(make_tar(files))
        out = self.run_tool("import", "--quiet", "--os", "linux", "--arch", arch, path, name)
        return out.strip().removeprefix("sha256:")

    def inspect(self, name: str) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(self.run_tool("image", "inspect", name))
        self.assertEqual(len(inspected), 1)
        return inspected[0]

    def forget_images(self) -> None:
        """Empty local storage, so a pull has to fetch everything."""
        self.run_tool("rmi", "--all", "--force")
        self.assertEqual(json.loads(self.run_tool("images", "--format", "json")), [])

    def push_pull(self, push_format: str, media_type: str, config_type: str) -> None:
        files = {"etc/motd": b"welcome to txoci\n", "data.bin": os.urandom(4000)}
        image_id = self.import_image("localhost/base:1", files)
        target = f"{self.address}/podman/{push_format}:v1"
        digest_file = self.digest_file("push")
        self.run_tool("push", "--quiet", "--format", push_format, "--digestfile", digest_file,
                      "localhost/base:1", target)
        digest = self.read_digest(digest_file)

        tagged = self.served_manifest(f"podman/{push_format}", "v1")
        self.assertEqual(tagged.headers["Docker-Content-Digest"], digest)
        manifest = self.assert_served_image(f"podman/{push_format}", digest, media_type, image_id, files)
        self.assertEqual(manifest["config"]["mediaType"], config_type)

        self.forget_images()
        self.run_tool("pull", "--quiet", target)
        pulled = self.inspect(target)
        self.assertEqual(pulled["Id"], image_id)
        self.assertEqual(pulled["Digest"], digest)
        self.assertIn(f"{self.address}/podman/{push_format}@{digest}", pulled["RepoDigests"])
        self.assertEqual(pulled["Architecture"], "amd64")

        # And by digest.
        self.forget_images()
        self.run_tool("pull", "--quiet", f"{self.address}/podman/{push_format}@{digest}")
        self.assertEqual(self.inspect(f"{self.address}/podman/{push_format}@{digest}")["Id"], image_id)

    def test_push_pull_oci(self) -> None:
        self.push_pull("oci", OCI_MANIFEST, OCI_CONFIG)

    def test_push_pull_docker_schema_2(self) -> None:
        self.push_pull("v2s2", DOCKER_MANIFEST, DOCKER_CONFIG)

    def test_manifest_list_push_all(self) -> None:
        images = {
            arch: (files, self.import_image(f"localhost/multi:{arch}", files, arch))
            for arch, files in [
                ("amd64", {"hello.txt": b"hello from amd64\n", "bin/tool": os.urandom(3000)}),
                ("arm64", {"hello.txt": b"hello from arm64\n", "bin/tool": os.urandom(3000)}),
            ]
        }
        self.run_tool("manifest", "create", "localhost/multi:list")
        for arch in images:
            self.run_tool("manifest", "add", "localhost/multi:list",
                          f"containers-storage:localhost/multi:{arch}")
        local = json.loads(self.run_tool("manifest", "inspect", "localhost/multi:list"))
        self.assertEqual(sorted(m["platform"]["architecture"] for m in local["manifests"]),
                         ["amd64", "arm64"])

        for tag, push_format, index_type, child_type in [
            ("list", "oci", OCI_INDEX, OCI_MANIFEST),
            ("list-v2s2", "v2s2", DOCKER_LIST, DOCKER_MANIFEST),
        ]:
            digest_file = self.digest_file(tag)
            self.run_tool("manifest", "push", "--quiet", "--all", "--format", push_format,
                          "--digestfile", digest_file,
                          "localhost/multi:list", f"docker://{self.address}/podman/multi:{tag}")
            digest = self.read_digest(digest_file)
            served = self.served_manifest("podman/multi", tag)
            self.assertEqual(served.headers["Docker-Content-Digest"], digest)
            self.assertEqual(served.headers["Content-Type"], index_type)
            index = served.json()
            self.assertEqual(index.get("mediaType", index_type), index_type)
            self.assertEqual(len(index["manifests"]), 2)
            for child in index["manifests"]:
                arch = child["platform"]["architecture"]
                self.assertEqual(child["platform"]["os"], "linux")
                self.assertEqual(child["mediaType"], child_type)
                files, image_id = images[arch]
                served_child = self.served_manifest("podman/multi", child["digest"])
                self.assertEqual(len(served_child.body), child["size"])
                self.assert_served_image("podman/multi", child["digest"], child_type, image_id, files)

        # Pull each platform of the OCI index back.
        index = self.served_manifest("podman/multi", "list").json()
        children = {child["platform"]["architecture"]: child["digest"] for child in index["manifests"]}
        list_digest = self.read_digest(self.digest_file("list"))
        self.forget_images()
        for arch, (_, image_id) in images.items():
            self.run_tool("pull", "--quiet", "--arch", arch, f"{self.address}/podman/multi:list")
            pulled = self.inspect(image_id)
            self.assertEqual(pulled["Architecture"], arch)
            # Pulled through the list, podman reports the list's digest and both in RepoDigests.
            self.assertEqual(pulled["Digest"], list_digest)
            expected = [f"{self.address}/podman/multi@{d}" for d in [list_digest, children[arch]]]
            self.assertEqual(sorted(pulled["RepoDigests"]), sorted(expected))

    def test_search_list_tags(self) -> None:
        self.import_image("localhost/tags:1", {"a": b"a"})
        for tag in ["v1", "v2", "latest"]:
            self.run_tool("push", "--quiet", "localhost/tags:1", f"{self.address}/podman/tags:{tag}")
        listed = json.loads(self.run_tool(
            "search", "--list-tags", "--format", "json", f"{self.address}/podman/tags",
        ))
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["Name"], f"{self.address}/podman/tags")
        self.assertEqual(sorted(listed[0]["Tags"]), ["latest", "v1", "v2"])

        served = self.fetch("/v2/podman/tags/tags/list", accept="application/json")
        self.assertEqual(served.status, 200)
        self.assertEqual(sorted(served.json()["tags"]), sorted(listed[0]["Tags"]))

        # ``--limit`` pages through the tag list with ``n``/``last``.
        limited = json.loads(self.run_tool(
            "search", "--list-tags", "--limit", "2", "--format", "json", f"{self.address}/podman/tags",
        ))
        self.assertEqual(len(limited[0]["Tags"]), 2)
