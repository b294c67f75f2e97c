"""
txoci over TLS: ``twistd oci --listen ssl:...`` with a certificate made at
run time by a throwaway CA.  skopeo, podman, buildah and treq push and pull
when they trust the CA, and refuse the server when they do not.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.ssl import Certificate
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, ResponseNeverReceived

from tests.clients.base import ServerTestCase, require_binary, require_module
from tests.clients.certs import Certificates, make_certificates
from tests.clients.containers import OCI_MANIFEST, ContainersTestCase
from tests.clients.images import make_tar
from tests.clients.test_skopeo import Layout, blob_files
from tests.support import TwistdServer, sha256


class TLSServerMixin:
    """Start the test's ``twistd oci`` on an ``ssl:`` endpoint with a fresh CA."""

    certs: Certificates
    data_dir: str

    def start_server(self) -> TwistdServer:
        self.certs = make_certificates(os.path.abspath(self.mktemp()))  # type: ignore[attr-defined]
        server = TwistdServer(self.data_dir, tls=(self.certs.key_path, self.certs.cert_path))
        self.addCleanup(server.stop)  # type: ignore[attr-defined]
        return server

    @property
    def base(self) -> str:
        return f"https://{self.address}"  # type: ignore[attr-defined]

    def ssl_context(self) -> ssl.SSLContext:
        """A Python client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=self.certs.ca_path)


class SkopeoTLSTests(TLSServerMixin, ServerTestCase):
    def setUp(self) -> None:
        self.skopeo = require_binary("skopeo")
        super().setUp()
        self.layout = Layout(os.path.abspath(self.mktemp()))
        # Only the cert dir given on the command line may make skopeo trust the
        # server: no registries.conf entry, no credentials.
        private = os.path.abspath(self.mktemp())
        os.makedirs(private)
        with open(os.path.join(private, "registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")
        with open(os.path.join(private, "auth.json"), "w") as f:
            f.write('{"auths": {}}\n')
        self.env = dict(
            os.environ,
            CONTAINERS_REGISTRIES_CONF=os.path.join(private, "registries.conf"),
            REGISTRY_AUTH_FILE=os.path.join(private, "auth.json"),
        )

    def skopeo_result(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.skopeo, "--insecure-policy", *args],
            capture_output=True, text=True, timeout=60, env=self.env,
        )

    def run_skopeo(self, *args: str) -> str:
        result = self.skopeo_result(*args)
        if result.returncode != 0:
            self.fail(f"skopeo {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result.stdout

    def served(self, path: str) -> tuple[int, Any, bytes]:
        import http.client

        connection = http.client.HTTPSConnection("127.0.0.1", self.server.port, timeout=10,
                                                 context=self.ssl_context())
        try:
            connection.request("GET", path, headers={"Accept": OCI_MANIFEST})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def test_push_pull_with_cert_dir(self) -> None:
        descriptor, manifest = self.layout.image("amd64", {"etc/motd": b"over TLS\n", "x": os.urandom(2000)})
        self.layout.tag(descriptor, "v1")
        target = f"docker://{self.address}/tls/skopeo:v1"
        self.run_skopeo("copy", "--dest-cert-dir", self.certs.cert_dir, "--dest-no-creds",
                        f"oci:{self.layout.path}:v1", target)

        status, headers, body = self.served("/v2/tls/skopeo/manifests/v1")
        self.assertEqual(status, 200)
        self.assertEqual(body, manifest)
        self.assertEqual(headers["Docker-Content-Digest"], descriptor["digest"])

        raw = self.run_skopeo("inspect", "--raw", "--cert-dir", self.certs.cert_dir, "--no-creds", target)
        self.assertEqual(raw.encode(), manifest)

        out = os.path.abspath(self.mktemp())
        self.run_skopeo("copy", "--src-cert-dir", self.certs.cert_dir, "--src-no-creds",
                        target, f"oci:{out}:v1")
        self.assertEqual(blob_files(out), blob_files(self.layout.path))

    def test_untrusted_certificate_is_refused(self) -> None:
        descriptor, _ = self.layout.image("amd64", {"a": b"a"})
        self.layout.tag(descriptor, "v1")
        pushed = self.skopeo_result("copy", "--dest-no-creds", f"oci:{self.layout.path}:v1",
                                    f"docker://{self.address}/tls/refused:v1")
        self.assertNotEqual(pushed.returncode, 0)
        self.assertIn("x509: certificate signed by unknown authority", pushed.stderr)
        inspected = self.skopeo_result("inspect", "--raw", "--no-creds", f"docker://{self.address}/tls/refused:v1")
        self.assertNotEqual(inspected.returncode, 0)
        self.assertIn("x509: certificate signed by unknown authority", inspected.stderr)
        # Nothing reached the registry.
        status, _, body = self.served("/v2/tls/refused/tags/list")
        self.assertEqual(status, 404, body)


class TreqTLSTests(TLSServerMixin, ServerTestCase):
    def setUp(self) -> None:
        require_module("treq")
        super().setUp()

    def client(self, trust_root: bool) -> Any:
        from treq.client import HTTPClient
        from twisted.internet import reactor

        policy = (
            BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(self.certs.ca_pem))
            if trust_root else BrowserLikePolicyForHTTPS()
        )
        pool = HTTPConnectionPool(reactor, persistent=False)
        return HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))

    def test_push_pull_trusting_the_ca(self) -> Deferred[None]:
        return ensureDeferred(self._push_pull())

    async def _push_pull(self) -> None:
        client = self.client(trust_root=True)
        response = await client.get(f"{self.base}/v2/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("Docker-Distribution-Api-Version"), ["registry/2.0"])
        await response.content()

        blobs = [b'{"architecture":"amd64","os":"linux"}', make_tar({"hello": b"hello over TLS\n"})]
        for blob in blobs:
            response = await client.post(
                f"{self.base}/v2/tls/treq/blobs/uploads/?digest={sha256(blob)}", data=blob,
                headers={"Content-Type": "application/octet-stream"},
            )
            self.assertEqual(response.code, 201, await response.content())
            await response.content()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(blobs[0]), "size": len(blobs[0])},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256(blobs[1]), "size": len(blobs[1])}],
        }).encode()
        response = await client.put(f"{self.base}/v2/tls/treq/manifests/v1", data=manifest,
                                    headers={"Content-Type": OCI_MANIFEST})
        self.assertEqual(response.code, 201, await response.content())
        self.assertEqual(response.headers.getRawHeaders("Docker-Content-Digest"), [sha256(manifest)])
        await response.content()

        response = await client.get(f"{self.base}/v2/tls/treq/manifests/v1", headers={"Accept": OCI_MANIFEST})
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), manifest)
        for blob in blobs:
            response = await client.get(f"{self.base}/v2/tls/treq/blobs/{sha256(blob)}")
            self.assertEqual(response.code, 200)
            self.assertEqual(await response.content(), blob)

    def test_untrusted_certificate_is_refused(self) -> Deferred[None]:
        return ensureDeferred(self._refused())

    async def _refused(self) -> None:
        from OpenSSL.SSL import Error as OpenSSLError

        failure = await self.assertFailure(self.client(trust_root=False).get(f"{self.base}/v2/"),
                                           ResponseNeverReceived)
        reasons = failure.reasons
        self.assertTrue(any(reason.check(OpenSSLError) for reason in reasons), reasons)
        self.assertIn("certificate verify failed", str(reasons[0].value))


class ContainersTLSTests(TLSServerMixin, ContainersTestCase):
    """podman and buildah with ``--cert-dir`` (registries.conf does not mark the registry insecure)."""

    tool = "podman"
    insecure_registry = False

    def test_podman_push_pull_with_cert_dir(self) -> None:
        self.run_tool("import", "--quiet", "--arch", "amd64",
                      self.write_tar({"etc/motd": b"podman over TLS\n"}), "localhost/base:1")
        image_id = self.run_tool("image", "inspect", "--format", "{{.Id}}", "localhost/base:1").strip()
        target = f"{self.address}/tls/podman:v1"

        refused = subprocess.run([self.binary, "push", "localhost/base:1", target],
                                 capture_output=True, text=True, timeout=60, env=self.env)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("x509: certificate signed by unknown authority", refused.stderr)

        digest_file = self.digest_file("push")
        self.run_tool("push", "--quiet", "--cert-dir", self.certs.cert_dir, "--digestfile", digest_file,
                      "localhost/base:1", target)
        digest = self.read_digest(digest_file)
        served = self.fetch(f"/v2/tls/podman/manifests/{digest}")
        self.assertEqual(served.status, 200)
        self.assertEqual(sha256(served.body), digest)
        self.assertEqual(served.json()["config"]["digest"], "sha256:" + image_id)

        self.run_tool("rmi", "--all", "--force")
        self.run_tool("pull", "--quiet", "--cert-dir", self.certs.cert_dir, target)
        self.assertEqual(self.run_tool("image", "inspect", "--format", "{{.Digest}}", target).strip(), digest)

    def test_buildah_push_pull_with_cert_dir(self) -> None:
        buildah = require_binary("buildah")
        source = os.path.join(self.root, "motd")
        with open(source, "wb") as f:
            f.write(b"buildah over TLS\n")
        container = self.run_tool("from", "--quiet", "scratch", binary=buildah).strip()
        self.run_tool("copy", "--quiet", container, source, "/etc/motd", binary=buildah)
        self.run_tool("commit", "--quiet", "--rm", container, "localhost/built:1", binary=buildah)
        target = f"docker://{self.address}/tls/buildah:v1"
        digest_file = self.digest_file("push")
        self.run_tool("push", "--quiet", "--cert-dir", self.certs.cert_dir, "--digestfile", digest_file,
                      "localhost/built:1", target, binary=buildah)
        digest = self.read_digest(digest_file)
        served = self.fetch("/v2/tls/buildah/manifests/v1")
        self.assertEqual(served.headers["Docker-Content-Digest"], digest)
        self.run_tool("rmi", "--all", "--force", binary=buildah)
        self.run_tool("pull", "--quiet", "--cert-dir", self.certs.cert_dir, target, binary=buildah)
        inspected = json.loads(self.run_tool("inspect", "--type", "image", target.removeprefix("docker://"),
                                             binary=buildah))
        self.assertEqual(inspected["FromImageDigest"], digest)

    def write_tar(self, files: dict[str, bytes]) -> str:
        path = os.path.join(self.root, "rootfs.tar")
        with open(path, "wb") as f:
            f.write(make_tar(files))
        return path
