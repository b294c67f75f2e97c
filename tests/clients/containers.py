"""
Shared pieces of the podman and buildah tests: a private containers
configuration per test, and the registry's own answers over http.client.

Both tools run as root with the ``vfs`` storage driver (no kernel overlay,
no fuse) in a temporary directory.  Every configuration file they read is
private to the test (``CONTAINERS_CONF``, ``CONTAINERS_STORAGE_CONF``,
``CONTAINERS_REGISTRIES_CONF``, ``REGISTRY_AUTH_FILE`` and a ``HOME`` whose
``.config/containers/policy.json`` accepts anything); ``/etc/containers``
and the user's own files are never written.  Neither tool has a daemon.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import shutil
import ssl
import subprocess
from typing import Any

from tests.clients.base import ServerTestCase, require_binary
from tests.clients.images import layer_files
from tests.support import sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
ALL_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])








def uncompressed_digest(blob: bytes) -> str:
    """The digest of a layer's tar (its ``diff_id``)."""
    return sha256(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)


class Served:
    """One answer of the registry."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class ContainersTestCase(ServerTestCase):
    """A ``twistd oci`` and a private podman/buildah configuration for each test."""

    #: The client binary this test case drives (``podman`` or ``buildah``).
    tool = "podman"
    #: Mark the test registry ``insecure = true`` (plain HTTP) in registries.conf.
    insecure_registry = True

    def setUp(self) -> None:
        self.binary = require_binary(self.tool)
        super().setUp()
        self.root = os.path.abspath(self.mktemp())
        self.addCleanup(shutil.rmtree, self.root, True)
        self.env = self.write_configuration(self.root)

    def write_configuration(self, root: str) -> dict[str, str]:
        """Write the private configuration under ``root``; return the environment using it."""
        home = os.path.join(root, "home")
        tmp = os.path.join(root, "tmp")
        for directory in [home, tmp, os.path.join(home, ".config", "containers")]:
            os.makedirs(directory, exist_ok=True)
        files = {
            "storage.conf": (
                '[storage]\ndriver = "vfs"\n'
                f'graphroot = "{root}/storage"\nrunroot = "{root}/run"\n'
            ),
            "registries.conf": (
                "unqualified-search-registries = []\n\n"
                f'[[registry]]\nlocation = "{self.address}"\n'
                f"insecure = {'true' if self.insecure_registry else 'false'}\n"
            ),
            # No network is ever set up; keep its state out of /etc and /run too.
            "containers.conf": (
                f'[engine]\ntmp_dir = "{root}/engine"\nevents_logger = "none"\n'
                f'image_copy_tmp_dir = "{tmp}"\n\n'
                f'[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "{root}/networks"\n'
            ),
            "auth.json": '{"auths": {}}\n',
            "home/.config/containers/policy.json": '{"default": [{"type": "insecureAcceptAnything"}]}\n',
        }
        for name, text in files.items():
            with open(os.path.join(root, name), "w") as f:
                f.write(text)
        env = dict(os.environ)
        env.update(
            CONTAINERS_CONF=os.path.join(root, "containers.conf"),
            CONTAINERS_STORAGE_CONF=os.path.join(root, "storage.conf"),
            CONTAINERS_REGISTRIES_CONF=os.path.join(root, "registries.conf"),
            REGISTRY_AUTH_FILE=os.path.join(root, "auth.json"),
            HOME=home,
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            TMPDIR=tmp,
        )
        for name in ["XDG_RUNTIME_DIR", "XDG_DATA_HOME", "DOCKER_CONFIG"]:
            env.pop(name, None)
        return env

    def run_tool(self, *args: str, check: bool = True, binary: str | None = None) -> str:
        """Run the client (or ``binary``) with the private configuration; return its stdout."""
        command = [binary or self.binary, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=self.env)
        if check and result.returncode != 0:
            self.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")
        return result.stdout

    def digest_file(self, name: str) -> str:
        """A path for ``--digestfile``."""
        return os.path.join(self.root, f"{name}.digest")

    def read_digest(self, path: str) -> str:
        """
        What the client wrote to ``--digestfile``.  buildah's ``manifest push``
        exits 0 when given ``--digestfile`` even if the push failed, leaving the
        file empty: an empty file is a failure.
        """
        with open(path) as f:
            digest = f.read().strip()
        self.assertRegex(digest, r"^sha256:[0-9a-f]{64}$", f"no digest in {path}: the push failed")
        return digest

    # The registry's side, over plain http.client.

    def ssl_context(self) -> ssl.SSLContext | None:
        """The context that verifies an HTTPS server (TLS tests override it)."""
        return None

    def fetch(self, path: str, accept: str = ALL_MANIFESTS) -> Served:
        if self.server.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.server.port, timeout=10, context=self.ssl_context(),
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            connection.request("GET", path, headers={"Accept": accept})
            response = connection.getresponse()
            return Served(response.status, response.headers, response.read())
        finally:
            connection.close()

    def served_manifest(self, repository: str, reference: str) -> Served:
        """A manifest as served; its digest header and bytes agree."""
        served = self.fetch(f"/v2/{repository}/manifests/{reference}")
        self.assertEqual(served.status, 200, served.body)
        self.assertEqual(served.headers["Docker-Content-Digest"], sha256(served.body))
        return served

    def served_blob(self, repository: str, digest: str) -> bytes:
        served = self.fetch(f"/v2/{repository}/blobs/{digest}", accept="*/*")
        self.assertEqual(served.status, 200, served.body)
        self.assertEqual(sha256(served.body), digest)
        return served.body

    def assert_served_image(
        self, repository: str, digest: str, media_type: str, image_id: str, files: dict[str, bytes]
    ) -> dict[str, Any]:
        """
        The manifest ``digest`` is served with ``media_type``; its config is
        the image ``image_id`` and its one layer holds exactly ``files``.
        """
        served = self.served_manifest(repository, digest)
        self.assertEqual(sha256(served.body), digest)
        self.assertEqual(served.headers["Content-Type"], media_type)
        manifest = served.json()
        # ``mediaType`` is optional in an OCI manifest, and podman leaves it out.
        self.assertEqual(manifest.get("mediaType", media_type), media_type)
        config_blob = self.served_blob(repository, manifest["config"]["digest"])
        self.assertEqual(manifest["config"]["digest"], "sha256:" + image_id.removeprefix("sha256:"))
        self.assertEqual(len(config_blob), manifest["config"]["size"])
        config = json.loads(config_blob)
        layers = [self.served_blob(repository, layer["digest"]) for layer in manifest["layers"]]
        self.assertEqual([len(b) for b in layers], [layer["size"] for layer in manifest["layers"]])
        self.assertEqual([uncompressed_digest(b) for b in layers], config["rootfs"]["diff_ids"])
        self.assertEqual(len(layers), 1)
        self.assertEqual(layer_files(layers[0]), files)
        return manifest
