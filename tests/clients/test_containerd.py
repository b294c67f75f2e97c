"""
containerd's ``ctr`` against a real ``twistd oci``: import an OCI archive
the test builds, push it, pull it into a fresh namespace and compare every
blob; cross-repository mounts (containerd sends ``from=`` unencoded), the
HEAD that containerd sends before every manifest PUT, and HTTPS with a
``hosts.toml``.

The containerd is private (see :mod:`tests.clients.daemons`), started once
for this class.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import os
import re
import subprocess
import tarfile
import time
from typing import Any

import requests

from tests.clients.base import ServerTestCase, require_module
from tests.clients.daemons import PrivateContainerd, SharedDaemonTestCase
from tests.clients.test_skopeo import OCI_INDEX, OCI_MANIFEST, Layout, blob_files, sha256
from tests.support import TwistdServer, free_port

ACCESS_LINE = re.compile(r'"([A-Z]+) (\S+)" (\d{3}) [^\n]*? agent="([^"]*)"')


def access_log(server: TwistdServer, agent: str = "") -> list[tuple[str, str, int]]:
    """The requests the server has logged: (method, path with query, status), by user agent prefix."""
    with open(server.log_path, errors="replace") as f:
        return [(m[1], m[2], int(m[3])) for m in ACCESS_LINE.finditer(f.read()) if m[4].startswith(agent)]


def fetched(server: TwistdServer, repository: str) -> set[str]:
    """The digests containerd has downloaded (GET 200) from ``repository``, manifests and blobs."""
    prefixes = (f"/v2/{repository}/blobs/sha256:", f"/v2/{repository}/manifests/sha256:")
    return {path.rsplit(":", 1)[1] for method, path, status in access_log(server, "containerd/")
            if method == "GET" and status == 200 and path.startswith(prefixes)}


def layout_tar(layout: Layout, path: str) -> str:
    """The layout as an OCI archive, for ``ctr images import``."""
    with tarfile.open(path, "w") as tar:
        for name in ["oci-layout", "index.json", "blobs"]:
            tar.add(os.path.join(layout.path, name), name)
    return path


def tar_blobs(path: str) -> dict[str, bytes]:
    """The ``blobs/sha256/*`` files of an OCI archive, by hex digest."""
    out = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("blobs/sha256/"):
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name.rsplit("/", 1)[1]] = extracted.read()
    return out


def self_signed(directory: str) -> tuple[str, str]:
    """A key and a self-signed certificate for 127.0.0.1 (the certificate is its own CA)."""
    require_module("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "txoci test registry")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    key_path, cert_path = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class SharedContainerdTestCase(SharedDaemonTestCase):
    """
    Tests with a private containerd shared by their class, a work directory,
    an OCI layout in it, and a containerd namespace of their own; mix in
    before the test case that serves the registry.
    """

    @classmethod
    def start_shared(cls, directory: str) -> tuple[Any, Any]:
        containerd = PrivateContainerd(directory)
        return containerd, containerd.stop

    def setUp(self) -> None:
        self.containerd: PrivateContainerd = self.shared()
        super().setUp()
        self.work = os.path.abspath(self.mktemp())
        self.layout = Layout(os.path.join(self.work, "layout"))
        # Namespaces are per test, so no test sees another's images or content.
        self.namespace = self.id().rsplit(".", 1)[1]

    def run_ctr(self, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [self.containerd.ctr_binary, "-a", self.containerd.socket, "-n", namespace, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env=self.containerd.ctr_env())


class ContainerdTests(SharedContainerdTestCase, ServerTestCase):
    def ctr(self, namespace: str, *args: str) -> str:
        result = self.run_ctr(namespace, *args)
        if result.returncode != 0:
            self.fail(f"ctr {' '.join(args)} exited {result.returncode}:\n{result.stderr}\n{result.stdout}")
        return result.stdout

    def import_layout(self, namespace: str) -> str:
        """``ctr images import`` the layout as an archive; return the image name it got."""
        archive = layout_tar(self.layout, os.path.join(self.work, f"import-{len(os.listdir(self.work))}.tar"))
        before = set(self.ctr(namespace, "images", "ls", "-q").split())
        self.ctr(namespace, "images", "import", "--all-platforms", archive)
        added = set(self.ctr(namespace, "images", "ls", "-q").split()) - before
        self.assertEqual(len(added), 1, added)
        return added.pop()

    def image_digest(self, namespace: str, reference: str) -> str:
        for line in self.ctr(namespace, "images", "ls").splitlines()[1:]:
            fields = line.split()
            if fields[0] == reference:
                return fields[2]
        self.fail(f"{reference} is not in namespace {namespace}")

    def served(self, repository: str, reference: str) -> requests.Response:
        response = requests.get(
            f"{self.base}/v2/{repository}/manifests/{reference}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}, timeout=10,
        )
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers["Docker-Content-Digest"], sha256(response.content))
        return response

    def test_index_push_and_pull_all_platforms(self) -> None:
        descriptor, index = self.layout.multi_platform()
        self.layout.tag(descriptor, "multi")
        imported = self.import_layout(self.namespace)
        self.assertEqual(self.image_digest(self.namespace, imported), descriptor["digest"])

        target = f"{self.address}/ctr/multi:v1"
        self.ctr(self.namespace, "images", "tag", imported, target)
        self.ctr(self.namespace, "images", "push", "--plain-http", target)

        # The registry has the index and both images byte for byte.
        response = self.served("ctr/multi", "v1")
        self.assertEqual(response.content, index)
        self.assertEqual(response.headers["Content-Type"], OCI_INDEX)
        local = blob_files(self.layout.path)
        for child in json.loads(index)["manifests"]:
            self.assertEqual(self.served("ctr/multi", child["digest"]).content, local[child["digest"][7:]])
            manifest = json.loads(local[child["digest"][7:]])
            for blob in [manifest["config"], *manifest["layers"]]:
                got = requests.get(f"{self.base}/v2/ctr/multi/blobs/{blob['digest']}", timeout=10)
                self.assertEqual(got.content, local[blob["digest"][7:]])

        # Pulled into a namespace that has nothing: every blob comes back.
        fresh = self.namespace + "-pull"
        self.ctr(fresh, "images", "pull", "--plain-http", "--all-platforms", target)
        self.assertEqual(self.image_digest(fresh, target), descriptor["digest"])
        self.assertEqual(fetched(self.server, "ctr/multi"), set(local))
        for name, data in local.items():
            self.assertEqual(self.content_get(fresh, f"sha256:{name}"), data)

        # Pushed from there to another repository: containerd knows where the
        # blobs came from and mounts them, with ``from=ctr/multi`` unencoded.
        copy = f"{self.address}/ctr/copy:v1"
        self.ctr(fresh, "images", "tag", target, copy)
        self.ctr(fresh, "images", "push", "--plain-http", copy)
        self.assertEqual(self.served("ctr/copy", "v1").content, index)
        layers = set()
        for child in json.loads(index)["manifests"]:
            manifest = json.loads(local[child["digest"][7:]])
            layers |= {blob["digest"][7:] for blob in [manifest["config"], *manifest["layers"]]}
        log = access_log(self.server)
        mounted = {path.split("mount=sha256:")[1][:64] for method, path, status in log
                   if method == "POST" and path.startswith("/v2/ctr/copy/blobs/uploads/?")
                   and "from=ctr/multi" in path and status == 201}
        self.assertEqual(mounted, layers)
        self.assertEqual([entry for entry in log if entry[0] in ("PATCH", "PUT")
                          and entry[1].startswith("/v2/ctr/copy/blobs/")], [])

    def content_get(self, namespace: str, digest: str) -> bytes:
        command = [self.containerd.ctr_binary, "-a", self.containerd.socket, "-n", namespace,
                   "content", "get", digest]
        result = subprocess.run(command, capture_output=True, timeout=60, env=self.containerd.ctr_env())
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_manifest_head_before_put_and_export(self) -> None:
        first, first_manifest = self.layout.image("amd64", {"etc/motd": b"first\n"})
        self.layout.tag(first, "v1")
        first_image = self.import_layout(self.namespace)
        target = f"{self.address}/ctr/single:v1"
        self.ctr(self.namespace, "images", "tag", first_image, target)
        self.ctr(self.namespace, "images", "push", "--plain-http", target)
        self.assertEqual(self.served("ctr/single", "v1").content, first_manifest)

        def tag_requests() -> list[tuple[str, int]]:
            return [(method, status) for method, path, status in access_log(self.server)
                    if path == "/v2/ctr/single/manifests/v1" and method in ("HEAD", "PUT")]

        # containerd HEADs the tag first: absent, then PUT.
        self.assertEqual(tag_requests(), [("HEAD", 404), ("PUT", 201)])

        # Pushed again: the HEAD answers 200 with the same Docker-Content-Digest, so no PUT.
        self.ctr(self.namespace, "images", "push", "--plain-http", target)
        self.assertEqual(tag_requests(), [("HEAD", 404), ("PUT", 201), ("HEAD", 200)])

        # Another image under the same tag: the HEAD's digest differs, so it is PUT.
        second, second_manifest = self.layout.image("amd64", {"etc/motd": b"second\n"})
        self.layout.index["manifests"] = []
        self.layout.tag(second, "v2")
        second_image = self.import_layout(self.namespace)
        self.ctr(self.namespace, "images", "rm", target)
        self.ctr(self.namespace, "images", "tag", second_image, target)
        self.ctr(self.namespace, "images", "push", "--plain-http", target)
        self.assertEqual(tag_requests(),
                         [("HEAD", 404), ("PUT", 201), ("HEAD", 200), ("HEAD", 200), ("PUT", 201)])
        self.assertEqual(self.served("ctr/single", "v1").content, second_manifest)
        # The first image is still there by digest.
        self.assertEqual(self.served("ctr/single", first["digest"]).content, first_manifest)

        # Pulled into a fresh namespace and exported: the same manifest, config and layer.
        fresh = self.namespace + "-pull"
        self.ctr(fresh, "images", "pull", "--plain-http", target)
        self.assertEqual(self.image_digest(fresh, target), second["digest"])
        manifest = json.loads(second_manifest)
        wanted = [second, manifest["config"], *manifest["layers"]]
        self.assertEqual(fetched(self.server, "ctr/single"), {d["digest"][7:] for d in wanted})
        exported = os.path.join(self.work, "export.tar")
        self.ctr(fresh, "images", "export", exported, target)
        blobs = tar_blobs(exported)
        local = blob_files(self.layout.path)
        for descriptor in wanted:
            name = descriptor["digest"][7:]
            self.assertEqual(blobs[name], local[name])
        with tarfile.open(exported) as tar:
            member = tar.extractfile("index.json")
            assert member is not None
            exported_index = json.load(io.TextIOWrapper(member))
        self.assertEqual([m["digest"] for m in exported_index["manifests"]], [second["digest"]])

    def test_loopback_without_plain_http_falls_back_at_once(self) -> None:
        # For localhost and 127.0.0.1 containerd tries HTTPS first, then HTTP; txoci
        # answers the TLS ClientHello with 400 at once, so there is no handshake timeout.
        descriptor, manifest = self.layout.image("amd64", {"fallback.txt": b"no --plain-http\n"})
        self.layout.tag(descriptor, "v1")
        imported = self.import_layout(self.namespace)
        target = f"{self.address}/ctr/fallback:v1"
        self.ctr(self.namespace, "images", "tag", imported, target)
        started = time.monotonic()
        self.ctr(self.namespace, "images", "push", target)
        fresh = self.namespace + "-pull"
        self.ctr(fresh, "images", "pull", target)
        self.assertLess(time.monotonic() - started, 8)
        self.assertEqual(self.served("ctr/fallback", "v1").content, manifest)
        self.assertEqual(self.image_digest(fresh, target), descriptor["digest"])
        self.assertEqual(fetched(self.server, "ctr/fallback"), set(blob_files(self.layout.path)))

    def test_push_and_pull_over_tls_with_hosts_toml(self) -> None:
        key, cert = self_signed(os.path.join(self.work, "tls"))
        port = free_port()
        tls_server = TwistdServer(
            os.path.abspath(self.mktemp()),
            "--listen", f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1",
        )
        self.addCleanup(tls_server.stop)
        host = f"127.0.0.1:{port}"
        hosts_dir = os.path.join(self.work, "certs.d")
        os.makedirs(os.path.join(hosts_dir, host))
        with open(os.path.join(hosts_dir, host, "hosts.toml"), "w") as f:
            f.write(f'server = "https://{host}"\n\n[host."https://{host}"]\n'
                    f'  capabilities = ["pull", "resolve", "push"]\n  ca = "{cert}"\n')

        descriptor, manifest = self.layout.image("amd64", {"hello.txt": b"over TLS\n"})
        self.layout.tag(descriptor, "v1")
        imported = self.import_layout(self.namespace)
        target = f"{host}/ctr/tls:v1"
        self.ctr(self.namespace, "images", "tag", imported, target)
        self.ctr(self.namespace, "images", "push", "--hosts-dir", hosts_dir, target)

        response = requests.get(f"https://{host}/v2/ctr/tls/manifests/v1", verify=cert, timeout=10,
                                headers={"Accept": OCI_MANIFEST})
        self.assertEqual(response.content, manifest)
        self.assertEqual(response.headers["Docker-Content-Digest"], descriptor["digest"])

        fresh = self.namespace + "-pull"
        self.ctr(fresh, "images", "pull", "--hosts-dir", hosts_dir, target)
        self.assertEqual(self.image_digest(fresh, target), descriptor["digest"])
        self.assertEqual(fetched(tls_server, "ctr/tls"), set(blob_files(self.layout.path)))
        for name, data in blob_files(self.layout.path).items():
            self.assertEqual(self.content_get(fresh, f"sha256:{name}"), data)
