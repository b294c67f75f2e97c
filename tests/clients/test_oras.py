"""
oras-py against a real ``twistd oci``: files pushed and pulled back, a
chunked push, and artifacts that refer to a subject.
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests

from tests.clients.base import ServerTestCase, require_module
from tests.support import sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"




class OrasTests(ServerTestCase):
    def setUp(self) -> None:
        self.oras = require_module("oras.client")
        self.oci = require_module("oras.oci")
        super().setUp()
        self.client = self.oras.OrasClient(hostname=self.address, insecure=True)
        self.requests: list[tuple[str, int]] = []

        def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self.requests.append((response.request.method or "", response.status_code))

        self.client.session.hooks["response"].append(record)
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.work, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def raw_manifest(self, repo: str, reference: str) -> requests.Response:
        response = requests.get(
            f"{self.base}/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}, timeout=10
        )
        self.assertEqual(response.status_code, 200, response.text)
        return response

    def blob(self, repo: str, digest: str) -> bytes:
        response = requests.get(f"{self.base}/v2/{repo}/blobs/{digest}", timeout=10)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers["Docker-Content-Digest"], digest)
        return response.content

    def pull(self, target: str) -> dict[str, bytes]:
        out = os.path.abspath(self.mktemp())
        files = self.client.pull(target=target, outdir=out)
        result = {}
        for path in files:
            with open(path, "rb") as f:
                result[os.path.relpath(path, out)] = f.read()
        return result

    def test_push_and_pull_files(self) -> None:
        contents = {"readme.txt": b"hello, registry\n", "data.bin": os.urandom(200_000)}
        paths = [self.write(name, data) for name, data in contents.items()]
        response = self.client.push(
            target=f"{self.address}/oras/files:v1", files=paths, disable_path_validation=True
        )
        self.assertEqual(response.status_code, 201)

        manifest = self.raw_manifest("oras/files", "v1")
        self.assertEqual(response.headers["Docker-Content-Digest"], sha256(manifest.content))
        document = json.loads(manifest.content)
        layers = {layer["annotations"][TITLE]: layer for layer in document["layers"]}
        for name, data in contents.items():
            self.assertEqual(layers[name]["digest"], sha256(data))
            self.assertEqual(layers[name]["size"], len(data))
            self.assertEqual(self.blob("oras/files", sha256(data)), data)
        self.assertEqual(self.pull(f"{self.address}/oras/files:v1"), contents)
        self.assertEqual(self.client.get_tags(f"{self.address}/oras/files"), ["v1"])

    def test_chunked_push(self) -> None:
        data = os.urandom(300_000)
        path = self.write("big.bin", data)
        response = self.client.push(
            target=f"{self.address}/oras/chunked:v1", files=[path], disable_path_validation=True,
            do_chunked=True, chunk_size=64 * 1024,
        )
        self.assertEqual(response.status_code, 201)
        # Five PATCHes of at most 64 KiB (the config goes up whole).
        patches = [status for method, status in self.requests if method == "PATCH"]
        self.assertEqual(patches, [202] * 5)
        self.assertEqual(self.blob("oras/chunked", sha256(data)), data)
        self.assertEqual(self.pull(f"{self.address}/oras/chunked:v1"), {"big.bin": data})

    def test_artifact_with_subject_is_listed_as_referrer(self) -> None:
        repo = "oras/referred"
        image = self.write("image.txt", b"the subject\n")
        self.client.push(target=f"{self.address}/{repo}:v1", files=[image], disable_path_validation=True)
        subject_bytes = self.raw_manifest(repo, "v1").content
        subject_digest = sha256(subject_bytes)
        subject = self.oci.Subject(OCI_MANIFEST, subject_digest, len(subject_bytes))

        # An artifact whose type comes from its config's media type.
        sbom = self.write("sbom.json", b'{"packages": []}')
        sbom_type = "application/vnd.example.sbom.v1+json"
        response = self.client.push(
            target=f"{self.address}/{repo}:sbom", files=[sbom], disable_path_validation=True,
            subject=subject, manifest_config=f"/nonexistent:{sbom_type}",
        )
        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.headers.get("OCI-Subject"), subject_digest)
        sbom_manifest = self.raw_manifest(repo, "sbom").content

        # An artifact with an explicit artifactType and the empty config.
        empty = self.write("empty.json", b"{}")
        empty_descriptor = {"mediaType": EMPTY_JSON, "digest": sha256(b"{}"), "size": 2}
        container = self.client.get_container(f"{self.address}/{repo}:signature")
        self.client.upload_blob(empty, container, empty_descriptor)
        signature = b"not really a signature"
        signature_path = self.write("sig", signature)
        layer = {"mediaType": "application/octet-stream", "digest": sha256(signature), "size": len(signature)}
        self.client.upload_blob(signature_path, container, layer)
        signature_type = "application/vnd.example.signature.v1"
        response = self.client.upload_manifest({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": signature_type,
            "config": empty_descriptor,
            "layers": [layer],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_bytes)},
            "annotations": {"org.example.signer": "tests"},
        }, container)
        self.assertEqual(response.status_code, 201, response.text)
        signature_digest = response.headers["Docker-Content-Digest"]
        signature_manifest = self.raw_manifest(repo, signature_digest).content

        listing = requests.get(f"{self.base}/v2/{repo}/referrers/{subject_digest}", timeout=10)
        self.assertEqual(listing.status_code, 200)
        self.assertEqual(listing.headers["Content-Type"], OCI_INDEX)
        index = listing.json()
        self.assertEqual(index["mediaType"], OCI_INDEX)
        found = {entry["digest"]: entry for entry in index["manifests"]}
        self.assertEqual(found.keys(), {sha256(sbom_manifest), signature_digest})
        self.assertEqual(found[sha256(sbom_manifest)]["artifactType"], sbom_type)
        self.assertEqual(found[sha256(sbom_manifest)]["size"], len(sbom_manifest))
        self.assertEqual(found[signature_digest]["artifactType"], signature_type)
        self.assertEqual(found[signature_digest]["size"], len(signature_manifest))
        self.assertEqual(found[signature_digest]["mediaType"], OCI_MANIFEST)
        self.assertEqual(found[signature_digest]["annotations"], {"org.example.signer": "tests"})

        filtered = requests.get(
            f"{self.base}/v2/{repo}/referrers/{subject_digest}",
            params={"artifactType": signature_type}, timeout=10,
        )
        self.assertEqual(filtered.headers.get("OCI-Filters-Applied"), "artifactType")
        self.assertEqual([m["digest"] for m in filtered.json()["manifests"]], [signature_digest])

        # The artifacts pull back like any other.
        self.assertEqual(self.pull(f"{self.address}/{repo}:sbom"), {"sbom.json": b'{"packages": []}'})
