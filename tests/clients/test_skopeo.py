"""
skopeo against a real ``twistd oci``: push OCI layouts, pull them back
byte for byte, convert to Docker schema 2, list tags, inspect and delete.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from typing import Any

import requests

from tests.clients.base import ServerTestCase, require_binary
from tests.clients.images import make_tar
from tests.support import sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"




def canonical(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class Layout:
    """An OCI image layout written by hand, for skopeo to read."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"))
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        self._write_index()

    def _write_index(self) -> None:
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(self.index, f)

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
            f.write(data)
        return digest

    def descriptor(self, media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": self.blob(data), "size": len(data), **extra}

    def image(self, arch: str, files: dict[str, bytes]) -> tuple[dict[str, Any], bytes]:
        """Write a layer, a config and a manifest; return (descriptor, manifest bytes)."""
        tar_bytes = make_tar(files)
        layer = gzip.compress(tar_bytes, mtime=0)
        config = canonical({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar_bytes)]},
        })
        manifest = canonical({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.descriptor(OCI_CONFIG, config),
            "layers": [self.descriptor(OCI_LAYER_GZIP, layer)],
        })
        platform = {"architecture": arch, "os": "linux"}
        return self.descriptor(OCI_MANIFEST, manifest, platform=platform), manifest

    def tag(self, descriptor: dict[str, Any], tag: str) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        entry["annotations"] = {REF_NAME: tag}
        self.index["manifests"].append(entry)
        self._write_index()

    def multi_platform(self) -> tuple[dict[str, Any], bytes]:
        """An image index of a linux/amd64 and a linux/arm64 image."""
        amd64, _ = self.image("amd64", {"hello.txt": b"hello from amd64\n", "bin/tool": os.urandom(3000)})
        arm64, _ = self.image("arm64", {"hello.txt": b"hello from arm64\n", "bin/tool": os.urandom(3000)})
        index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd64, arm64]})
        return self.descriptor(OCI_INDEX, index), index


def blob_files(layout: str) -> dict[str, bytes]:
    """Every file under ``blobs/sha256`` of a layout, by name."""
    directory = os.path.join(layout, "blobs", "sha256")
    out = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = f.read()
    return out


class SkopeoTests(ServerTestCase):
    def setUp(self) -> None:
        self.skopeo = require_binary("skopeo")
        super().setUp()
        self.layout = Layout(os.path.abspath(self.mktemp()))

    def run_skopeo(self, *args: str) -> str:
        result = subprocess.run(
            [self.skopeo, "--insecure-policy", *args],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode != 0:
            self.fail(f"skopeo {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result.stdout

    def push(self, tag: str, target: str, *extra: str) -> None:
        self.run_skopeo(
            "copy", "--all", "--dest-tls-verify=false", "--dest-no-creds", *extra,
            f"oci:{self.layout.path}:{tag}", f"docker://{self.address}/{target}",
        )

    def pull(self, source: str, tag: str) -> str:
        out = os.path.abspath(self.mktemp())
        self.run_skopeo(
            "copy", "--all", "--src-tls-verify=false", "--src-no-creds",
            f"docker://{self.address}/{source}", f"oci:{out}:{tag}",
        )
        return out

    def registry_manifest(self, repo: str, reference: str) -> requests.Response:
        return requests.get(
            f"{self.base}/v2/{repo}/manifests/{reference}",
            headers={"Accept": ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST])},
            timeout=10,
        )

    def assert_round_trip(self, tag: str, descriptor: dict[str, Any], repo: str) -> None:
        out = self.pull(f"{repo}:{tag}", tag)
        self.assertEqual(blob_files(out), blob_files(self.layout.path))
        with open(os.path.join(out, "index.json")) as f:
            pulled = json.load(f)["manifests"]
        self.assertEqual([(m["digest"], m["size"]) for m in pulled],
                         [(descriptor["digest"], descriptor["size"])])

    def test_single_image_round_trip(self) -> None:
        descriptor, manifest = self.layout.image("amd64", {"etc/motd": b"welcome\n"})
        self.layout.tag(descriptor, "v1")
        self.push("v1", "skopeo/single:v1")

        response = self.registry_manifest("skopeo/single", "v1")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, manifest)
        self.assertEqual(response.headers["Docker-Content-Digest"], descriptor["digest"])
        self.assertEqual(response.headers["Content-Type"], OCI_MANIFEST)
        self.assert_round_trip("v1", descriptor, "skopeo/single")

    def test_multi_platform_index_round_trip(self) -> None:
        descriptor, index = self.layout.multi_platform()
        self.layout.tag(descriptor, "multi")
        self.push("multi", "skopeo/multi:multi")

        response = self.registry_manifest("skopeo/multi", "multi")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, index)
        self.assertEqual(response.headers["Content-Type"], OCI_INDEX)
        for child in json.loads(index)["manifests"]:
            got = self.registry_manifest("skopeo/multi", child["digest"])
            self.assertEqual(got.status_code, 200)
            self.assertEqual(sha256(got.content), child["digest"])
        self.assert_round_trip("multi", descriptor, "skopeo/multi")

    def test_push_converted_to_docker_schema_2(self) -> None:
        descriptor, manifest = self.layout.image("amd64", {"data.bin": os.urandom(5000)})
        self.layout.tag(descriptor, "v1")
        self.run_skopeo(
            "copy", "--format", "v2s2", "--dest-tls-verify=false", "--dest-no-creds",
            f"oci:{self.layout.path}:v1", f"docker://{self.address}/skopeo/converted:v1",
        )
        raw = self.run_skopeo(
            "inspect", "--raw", "--tls-verify=false", "--no-creds",
            f"docker://{self.address}/skopeo/converted:v1",
        ).encode()
        converted = json.loads(raw)
        self.assertEqual(converted["mediaType"], DOCKER_MANIFEST)
        self.assertEqual(converted["config"]["mediaType"], DOCKER_CONFIG)
        self.assertEqual([layer["mediaType"] for layer in converted["layers"]], [DOCKER_LAYER_GZIP])

        response = self.registry_manifest("skopeo/converted", "v1")
        self.assertEqual(response.content, raw)
        self.assertEqual(response.headers["Content-Type"], DOCKER_MANIFEST)
        self.assertEqual(response.headers["Docker-Content-Digest"], sha256(raw))

        # The layer and config bytes travel unchanged.
        original = json.loads(manifest)
        self.assertEqual(converted["layers"][0]["digest"], original["layers"][0]["digest"])
        self.assertEqual(converted["config"]["digest"], original["config"]["digest"])
        local = blob_files(self.layout.path)
        for entry in [converted["config"], *converted["layers"]]:
            blob = requests.get(f"{self.base}/v2/skopeo/converted/blobs/{entry['digest']}", timeout=10)
            self.assertEqual(blob.status_code, 200)
            self.assertEqual(blob.content, local[entry["digest"].split(":")[1]])

    def test_list_tags_inspect_and_delete(self) -> None:
        descriptor, _ = self.layout.image("amd64", {"a": b"a"})
        self.layout.tag(descriptor, "v1")
        other, other_manifest = self.layout.image("amd64", {"b": b"b"})
        self.layout.tag(other, "v2")
        self.push("v1", "skopeo/tags:v1")
        self.push("v2", "skopeo/tags:v2")

        listed = json.loads(self.run_skopeo(
            "list-tags", "--tls-verify=false", "--no-creds", f"docker://{self.address}/skopeo/tags",
        ))
        self.assertEqual(sorted(listed["Tags"]), ["v1", "v2"])

        raw = self.run_skopeo(
            "inspect", "--raw", "--tls-verify=false", "--no-creds",
            f"docker://{self.address}/skopeo/tags:v2",
        ).encode()
        self.assertEqual(raw, other_manifest)
        inspected = json.loads(self.run_skopeo(
            "inspect", "--tls-verify=false", "--no-creds", f"docker://{self.address}/skopeo/tags:v1",
        ))
        self.assertEqual(inspected["Digest"], descriptor["digest"])
        self.assertEqual(inspected["Architecture"], "amd64")

        self.run_skopeo(
            "delete", "--tls-verify=false", "--no-creds", f"docker://{self.address}/skopeo/tags:v1",
        )
        self.assertEqual(self.registry_manifest("skopeo/tags", "v1").status_code, 404)
        self.assertEqual(self.registry_manifest("skopeo/tags", descriptor["digest"]).status_code, 404)
        self.assertEqual(self.registry_manifest("skopeo/tags", "v2").content, other_manifest)
        listed = json.loads(self.run_skopeo(
            "list-tags", "--tls-verify=false", "--no-creds", f"docker://{self.address}/skopeo/tags",
        ))
        self.assertEqual(listed["Tags"], ["v2"])
