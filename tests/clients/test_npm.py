"""
npm registry clients against a real ``twistd oci``, each driven by a small
Node script in tests/clients/npm/ (installed by .ci/install-npm-clients.sh):

* ``@sigstore/oci`` attaches an artifact to an image, as npm provenance does,
  and must take the referrers-API path rather than the tag-schema fallback;
* ``@snyk/docker-registry-v2-client`` pulls manifests and blobs, pages
  through tags and the catalog, and negotiates manifest types by Accept.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from twisted.trial.unittest import SkipTest

from tests.clients.base import ServerTestCase, require_binary
from tests.support import sha256

NPM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "npm")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"

PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "proxy"})
#: urllib without the environment's proxies: only loopback traffic.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))




def compact(document: Any) -> bytes:
    """JSON as ``JSON.stringify`` writes it."""
    return json.dumps(document, separators=(",", ":")).encode()


def require_npm_package(name: str) -> None:
    """Skip unless ``name`` is installed under tests/clients/npm/node_modules."""
    if not os.path.exists(os.path.join(NPM_DIR, "node_modules", name, "package.json")):
        raise SkipTest(f"npm package {name!r} is not installed; run .ci/install-npm-clients.sh (CI does)")


class NodeClientTestCase(ServerTestCase):
    """A ``twistd oci`` plus the means to push over HTTP and to run a Node script."""

    packages: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.node = require_binary("node")
        for package in self.packages:
            require_npm_package(package)
        super().setUp()

    def run_script(self, script: str, *args: str, stdin: str | None = None) -> Any:
        """Run ``node tests/clients/npm/<script> args...``; return its JSON output."""
        done = subprocess.run(
            [self.node, os.path.join(NPM_DIR, script), *args],
            cwd=NPM_DIR, input=stdin, capture_output=True, text=True, timeout=60,
            # Only loopback traffic: no proxy may pick the requests up.
            env={k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES},
        )
        if done.returncode != 0:
            self.fail(f"{script} exited {done.returncode}:\n{done.stderr}\nserver log: "
                      f"{self.server.log_path}")
        return json.loads(done.stdout)

    def http(
        self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, bytes]:
        """One request to the server: (status, headers, body)."""
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with DIRECT.open(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get_json(self, path: str) -> Any:
        status, _, body = self.http("GET", path)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        status, _, body = self.http("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data,
                                    {"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 201, body)
        return digest

    def push_manifest(self, repo: str, reference: str | None, body: bytes, media_type: str) -> str:
        digest = sha256(body)
        status, _, answer = self.http("PUT", f"/v2/{repo}/manifests/{reference or digest}", body,
                                      {"Content-Type": media_type})
        self.assertEqual(status, 201, answer)
        return digest

    def push_image(
        self, repo: str, tag: str | None, layers: list[bytes], docker: bool = False
    ) -> tuple[str, bytes, dict[str, Any]]:
        """Config, layers and a manifest (OCI, or Docker schema 2); (digest, bytes, document)."""
        config = compact({"architecture": "amd64", "os": "linux", "config": {"Env": ["A=b"]}})
        document = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                       "digest": self.push_blob(repo, config), "size": len(config)},
            "layers": [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                        "digest": self.push_blob(repo, layer), "size": len(layer)} for layer in layers],
        }
        body = compact(document)
        return self.push_manifest(repo, tag, body, document["mediaType"]), body, document


class SigstoreOCITests(NodeClientTestCase):
    """``@sigstore/oci``: attachArtifactToImage over plain http (its rule for 127.0.0.1)."""

    packages = ("@sigstore/oci",)

    def attach(
        self, repo: str, subject: str, media_type: str, artifact: bytes, tag: str | None = None
    ) -> Any:
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(artifact)
        args = [self.address, repo, subject, media_type, path, *([tag] if tag else [])]
        return self.run_script("sigstore-attach.js", *args)

    def test_attach_uses_the_referrers_api(self) -> None:
        repo = "npm/sigstore"
        image, image_bytes, _ = self.push_image(repo, "v1", [os.urandom(2000)])
        bundle = compact({"mediaType": BUNDLE, "verificationMaterial": {},
                          "dsseEnvelope": {"payload": "eA=="}})

        output = self.attach(repo, image, BUNDLE, bundle, tag="v1")
        descriptor = output["descriptor"]
        # OCI-Subject came back on the manifest PUT ...
        self.assertEqual(descriptor["subjectDigest"], image)
        self.assertEqual(descriptor["mediaType"], OCI_MANIFEST)
        # ... and getImageDigest resolves the tag to the pushed digest.
        self.assertEqual(output["resolved"], image)

        # The referrers-API path: no sha256-<hex> index was tagged as a fallback.
        self.assertEqual(self.get_json(f"/v2/{repo}/tags/list")["tags"], ["v1"])
        status, _, _ = self.http("GET", f"/v2/{repo}/manifests/{image.replace(':', '-')}")
        self.assertEqual(status, 404)

        referrers = self.get_json(f"/v2/{repo}/referrers/{image}")
        self.assertEqual(referrers["mediaType"], OCI_INDEX)
        [entry] = referrers["manifests"]
        self.assertEqual(entry["digest"], descriptor["digest"])
        self.assertEqual(entry["size"], descriptor["size"])
        self.assertEqual(entry["mediaType"], OCI_MANIFEST)
        self.assertEqual(entry["artifactType"], BUNDLE)
        self.assertEqual(entry["annotations"]["org.example.test"], "txoci")
        self.assertIn("org.opencontainers.image.created", entry["annotations"])

        # The artifact manifest: the bytes the library sent, pointing at the image.
        status, headers, manifest_bytes = self.http("GET", f"/v2/{repo}/manifests/{descriptor['digest']}",
                                                    headers={"Accept": OCI_MANIFEST})
        self.assertEqual(status, 200)
        self.assertEqual(sha256(manifest_bytes), descriptor["digest"])
        self.assertEqual(len(manifest_bytes), descriptor["size"])
        self.assertEqual(headers["Docker-Content-Digest"], descriptor["digest"])
        manifest = json.loads(manifest_bytes)
        self.assertEqual(manifest["artifactType"], BUNDLE)
        self.assertEqual(manifest["subject"],
                         {"mediaType": OCI_MANIFEST, "digest": image, "size": len(image_bytes)})
        self.assertEqual(manifest["config"], {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2})
        [layer] = manifest["layers"]
        self.assertEqual(layer, {"mediaType": BUNDLE, "digest": sha256(bundle), "size": len(bundle)})
        status, _, blob = self.http("GET", f"/v2/{repo}/blobs/{layer['digest']}")
        self.assertEqual((status, blob), (200, bundle))
        status, _, blob = self.http("GET", f"/v2/{repo}/blobs/{sha256(b'{}')}")
        self.assertEqual((status, blob), (200, b"{}"))

    def test_two_artifacts_on_a_docker_image(self) -> None:
        """A second attach lists both; artifactType filters; a Docker schema 2 subject works too."""
        repo = "npm/sigstore-docker"
        image, image_bytes, _ = self.push_image(repo, "latest", [b"layer"], docker=True)
        first = self.attach(repo, image, BUNDLE, b'{"first": true}')["descriptor"]
        sbom_type = "application/spdx+json"
        second = self.attach(repo, image, sbom_type, b'{"spdxVersion": "SPDX-2.3"}')["descriptor"]
        self.assertEqual((first["subjectDigest"], second["subjectDigest"]), (image, image))
        self.assertEqual(self.get_json(f"/v2/{repo}/tags/list")["tags"], ["latest"])

        listed = self.get_json(f"/v2/{repo}/referrers/{image}")["manifests"]
        self.assertEqual(sorted((e["digest"], e["artifactType"]) for e in listed),
                         sorted([(first["digest"], BUNDLE), (second["digest"], sbom_type)]))
        # quote(): "+" in a query string is a space.
        filtered = f"/v2/{repo}/referrers/{image}?artifactType={quote(sbom_type)}"
        status, headers, body = self.http("GET", filtered)
        self.assertEqual(status, 200)
        self.assertEqual(headers["OCI-Filters-Applied"], "artifactType")
        self.assertEqual([e["digest"] for e in json.loads(body)["manifests"]], [second["digest"]])

        manifest = self.get_json(f"/v2/{repo}/manifests/{first['digest']}")
        self.assertEqual(manifest["subject"],
                         {"mediaType": DOCKER_MANIFEST, "digest": image, "size": len(image_bytes)})


class SnykRegistryClientTests(NodeClientTestCase):
    """``@snyk/docker-registry-v2-client`` with ``protocol: "http:"``."""

    packages = ("@snyk/docker-registry-v2-client",)

    def calls(self, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        results = self.run_script("snyk-pull.js", self.address, stdin=json.dumps(list(calls)))
        self.assertEqual(len(results), len(calls))
        return list(results)

    def result(self, outcome: dict[str, Any]) -> Any:
        self.assertNotIn("error", outcome)
        return outcome["result"]

    def test_pull_docker_image(self) -> None:
        repo = "npm/snyk/pull"
        layers = [os.urandom(70_000), os.urandom(5), b""]
        digest, body, document = self.push_image(repo, "1.0", layers, docker=True)
        config_digest = document["config"]["digest"]
        output = os.path.abspath(self.mktemp())

        support, by_tag, by_digest, config, size, *pulled = self.calls(
            {"call": "checkSupport"},
            {"call": "getManifest", "repo": repo, "reference": "1.0"},
            {"call": "getManifest", "repo": repo, "reference": digest},
            {"call": "getImageConfig", "repo": repo, "digest": config_digest},
            {"call": "getImageSize", "repo": repo, "reference": "1.0"},
            *[{"call": "getLayer", "repo": repo, "digest": sha256(layer)} for layer in layers],
            {"call": "downloadLayer", "repo": repo, "digest": sha256(layers[0]), "output": output},
        )
        self.assertEqual(self.result(support), {"statusCode": 200, "apiVersion": "registry/2.0"})
        for outcome in (by_tag, by_digest):
            manifest = self.result(outcome)
            self.assertEqual(manifest["manifestContentType"], DOCKER_MANIFEST)
            # The library hashes JSON.stringify of the parsed body for a tag (it looks up
            # Docker-Content-Digest in the wrong case), so the pushed bytes are compact JSON.
            self.assertEqual(manifest["manifestDigest"], digest)
            for key in ("schemaVersion", "mediaType", "config", "layers"):
                self.assertEqual(manifest[key], document[key])
        self.assertEqual(by_digest["requests"], [f"GET /v2/{repo}/manifests/{digest}"])
        config_bytes = self.http("GET", f"/v2/{repo}/blobs/{config_digest}")[2]
        self.assertEqual(self.result(config), json.loads(config_bytes))
        self.assertEqual(self.result(size), sum(len(layer) for layer in layers))
        for layer, outcome in zip(layers, pulled[:-1], strict=True):
            data = base64.b64decode(self.result(outcome)["base64"])
            self.assertEqual((sha256(data), data), (sha256(layer), layer))
        self.assertEqual(self.result(pulled[-1])["output"], output)
        with open(output, "rb") as f:
            self.assertEqual(f.read(), layers[0])
        # What the library hashed is what was pushed.
        self.assertEqual(self.http("GET", f"/v2/{repo}/manifests/1.0")[2], body)

    def test_default_accept_refuses_oci_but_serves_docker(self) -> None:
        """
        getManifest's default Accept lists the two Docker types only: an OCI
        manifest or index is a 404 (as from Distribution), a Docker schema 2
        manifest is served, and a Docker list resolves to linux/amd64.
        """
        repo = "npm/snyk/negotiate"
        oci, oci_body, oci_document = self.push_image(repo, "oci", [b"oci layer"])
        docker, docker_body, docker_document = self.push_image(repo, "docker", [b"docker layer"], docker=True)
        index = compact({"schemaVersion": 2, "mediaType": OCI_INDEX,
                         "manifests": [{"mediaType": OCI_MANIFEST, "digest": oci, "size": len(oci_body),
                                        "platform": {"os": "linux", "architecture": "amd64"}}]})
        self.push_manifest(repo, "oci-index", index, OCI_INDEX)
        docker_list = compact({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": docker, "size": len(docker_body),
             "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": DOCKER_MANIFEST, "digest": docker, "size": len(docker_body),
             "platform": {"os": "linux", "architecture": "amd64"}},
        ]})
        list_digest = self.push_manifest(repo, "multi", docker_list, DOCKER_LIST)

        by_tag, by_digest, index_refused, served, via_list, asked = self.calls(
            {"call": "getManifest", "repo": repo, "reference": "oci"},
            {"call": "getManifest", "repo": repo, "reference": oci},
            {"call": "getManifest", "repo": repo, "reference": "oci-index"},
            {"call": "getManifest", "repo": repo, "reference": "docker"},
            {"call": "getManifest", "repo": repo, "reference": "multi"},
            {"call": "getManifest", "repo": repo, "reference": "oci", "acceptManifest": OCI_MANIFEST},
        )
        for refused in (by_tag, by_digest, index_refused):
            self.assertEqual(refused["error"]["statusCode"], 404, refused)
        self.assertIn("Accept", by_tag["error"]["message"])

        docker_manifest = self.result(served)
        self.assertEqual(docker_manifest["manifestContentType"], DOCKER_MANIFEST)
        self.assertEqual(docker_manifest["layers"], docker_document["layers"])

        chosen = self.result(via_list)
        self.assertEqual(chosen["indexDigest"], list_digest)
        self.assertEqual(chosen["manifestDigest"], docker)
        self.assertEqual(chosen["config"], docker_document["config"])
        self.assertEqual(via_list["requests"], [f"GET /v2/{repo}/manifests/multi",
                                                f"GET /v2/{repo}/manifests/{docker}"])

        # Asking for the OCI type by name gets it.
        oci_manifest = self.result(asked)
        self.assertEqual(oci_manifest["manifestContentType"], OCI_MANIFEST)
        self.assertEqual(oci_manifest["layers"], oci_document["layers"])

    def test_paginated_tags_and_catalog(self) -> None:
        repo = "npm/snyk/tags"
        digest, body, _ = self.push_image(repo, "t00", [b"tagged"], docker=True)
        tags = [f"t{i:02d}" for i in range(11)]
        for tag in reversed(tags[1:]):
            self.push_manifest(repo, tag, body, DOCKER_MANIFEST)
        repos = sorted([repo, *(f"npm/snyk/r{i}" for i in range(4))])
        for other in repos:
            if other != repo:
                self.push_image(other, "only", [b"x"], docker=True)

        by_last, by_last_exact, by_link, capped, catalog, catalog_one = self.calls(
            {"call": "getTagsPaginated", "repo": repo, "pageSize": 4},
            {"call": "getTagsPaginated", "repo": repo, "pageSize": 11},
            {"call": "getTags", "repo": repo, "pageSize": 4},
            {"call": "getTags", "repo": repo, "pageSize": 4, "maxPages": 2},
            {"call": "getRepos", "pageSize": 2},
            {"call": "getRepos", "pageSize": 1},
        )
        path = f"/v2/{repo}/tags/list"
        # n + last: pages of 4, 4 and 3; the short page ends it.
        self.assertEqual(self.result(by_last), tags)
        self.assertEqual(by_last["requests"],
                         [f"GET {path}?n=4", f"GET {path}?n=4&last=t03", f"GET {path}?n=4&last=t07"])
        # A full last page: one more request, which must answer an empty list.
        self.assertEqual(self.result(by_last_exact), tags)
        self.assertEqual(by_last_exact["requests"], [f"GET {path}?n=11", f"GET {path}?n=11&last=t10"])
        self.assertEqual(self.get_json(f"{path}?n=11&last=t10")["tags"], [])
        # The Link header: the same three pages.
        self.assertEqual(self.result(by_link), tags)
        self.assertEqual(len(by_link["requests"]), 3)
        self.assertEqual(by_link["requests"][1], f"GET {path}?n=4&last=t03")
        self.assertEqual(self.result(capped), tags[:8])

        self.assertEqual(self.result(catalog), repos)
        self.assertEqual(len(catalog["requests"]), 3)
        self.assertEqual(self.result(catalog_one), repos)
        self.assertEqual(len(catalog_one["requests"]), len(repos))
        self.assertEqual(digest, sha256(body))
