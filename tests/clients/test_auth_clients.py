"""
Real clients authenticating against ``twistd -n oci --config txoci.toml`` serving the acceptance
policy of :mod:`tests.auth.fixtures` (an admin, the read-only ``reader``, the ``team`` group with
everything on ``team/**``, anonymous read on ``public/**``):

- skopeo with ``--creds`` (Basic mode, and token mode);
- podman ``login`` then push and pull (Basic mode);
- the private Docker engine with ``docker login``, through the token flow;
- containerd's ``ctr`` with ``--user`` (token mode);
- oras-py with Basic credentials.

Each checks that what the policy allows works and what it refuses fails and leaves nothing behind.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import requests

from tests.auth.fixtures import password, write_config
from tests.clients.base import ServerTestCase, require_binary, require_module
from tests.clients.containers import ContainersTestCase
from tests.clients.daemons import DockerdForRegistry, SharedDaemonTestCase
from tests.clients.images import make_tar
from tests.clients.test_containerd import SharedContainerdTestCase, layout_tar
from tests.clients.test_skopeo import Layout, blob_files
from tests.support import TwistdServer


def start_auth_server(data_dir: str, mode: str) -> TwistdServer:
    config = write_config(data_dir + "-auth", mode)
    return TwistdServer(data_dir, "--config", config)


class AuthServerTestCase(ServerTestCase):
    """A ``twistd oci`` serving the acceptance policy in :attr:`mode`."""

    mode = "basic"

    def start_server(self) -> TwistdServer:
        server = start_auth_server(self.data_dir, self.mode)
        self.addCleanup(server.stop)
        return server

    def catalog(self) -> list[str]:
        """Every repository, as the admin sees it (with Basic credentials or a token)."""
        auth = ("admin", password("admin"))
        if self.mode == "basic":
            response = requests.get(f"{self.base}/v2/_catalog", auth=auth, timeout=10)
        else:
            token = requests.get(f"{self.base}/token", params={"scope": "registry:catalog:*"}, auth=auth,
                                 timeout=10).json()["token"]
            response = requests.get(f"{self.base}/v2/_catalog", timeout=10,
                                    headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(response.status_code, 200, response.text)
        return list(response.json()["repositories"])


class SkopeoCredsTests(AuthServerTestCase):
    def setUp(self) -> None:
        self.skopeo = require_binary("skopeo")
        super().setUp()
        self.layout = Layout(os.path.abspath(self.mktemp()))
        descriptor, _ = self.layout.image("amd64", {"etc/motd": b"authenticated\n"})
        self.layout.tag(descriptor, "v1")

    def skopeo_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.skopeo, "--insecure-policy", *args], capture_output=True, text=True,
                              timeout=60)

    def push(self, user: str | None, target: str) -> subprocess.CompletedProcess[str]:
        creds = [f"--dest-creds={user}:{password(user)}"] if user else ["--dest-no-creds"]
        return self.skopeo_run("copy", "--dest-tls-verify=false", *creds,
                               f"oci:{self.layout.path}:v1", f"docker://{self.address}/{target}")

    def pull(self, user: str | None, source: str) -> tuple[subprocess.CompletedProcess[str], str]:
        out = os.path.abspath(self.mktemp())
        creds = [f"--src-creds={user}:{password(user)}"] if user else ["--src-no-creds"]
        result = self.skopeo_run("copy", "--src-tls-verify=false", *creds,
                                 f"docker://{self.address}/{source}", f"oci:{out}:v1")
        return result, out

    def test_the_policy_decides_what_skopeo_may_do(self) -> None:
        pushed = self.push("carol", "team/app:v1")
        self.assertEqual(pushed.returncode, 0, pushed.stderr)
        result, out = self.pull("dave", "team/app:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(blob_files(out), blob_files(self.layout.path))

        refused = self.push("reader", "app:v1")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("denied", refused.stderr.lower())
        result, _ = self.pull("reader", "team/app:v1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("denied", result.stderr.lower())

        wrong = self.skopeo_run("copy", "--dest-tls-verify=false", "--dest-creds=carol:wrong",
                                f"oci:{self.layout.path}:v1", f"docker://{self.address}/team/other:v1")
        self.assertNotEqual(wrong.returncode, 0)
        self.assertEqual(self.catalog(), ["team/app"])

    def test_anonymous_reads_public_only(self) -> None:
        self.assertEqual(self.push("admin", "public/base:v1").returncode, 0)
        self.assertEqual(self.push("admin", "app:v1").returncode, 0)
        result, out = self.pull(None, "public/base:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(blob_files(out), blob_files(self.layout.path))
        result, _ = self.pull(None, "app:v1")
        self.assertNotEqual(result.returncode, 0)
        refused = self.push(None, "public/base:v2")
        self.assertNotEqual(refused.returncode, 0)
        self.assertEqual(self.catalog(), ["app", "public/base"])


class SkopeoCredsTokenModeTests(SkopeoCredsTests):
    mode = "token"


class PodmanLoginTests(ContainersTestCase):
    tool = "podman"

    def start_server(self) -> TwistdServer:
        server = start_auth_server(self.data_dir, "basic")
        self.addCleanup(server.stop)
        return server

    def login(self, user: str) -> None:
        result = subprocess.run(
            [self.binary, "login", "--tls-verify=false", "--username", user, "--password-stdin",
             self.address],
            input=password(user) + "\n", capture_output=True, text=True, timeout=60, env=self.env,
        )
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_login_push_pull_as_the_policy_says(self) -> None:
        path = os.path.join(self.root, "rootfs.tar")
        with open(path, "wb") as f:
            f.write(make_tar({"etc/motd": b"pushed after podman login\n"}))
        self.run_tool("import", "--quiet", "--os", "linux", "--arch", "amd64", path, "localhost/base:1")

        # Not logged in: refused.
        anonymous = subprocess.run([self.binary, "push", "--quiet", "localhost/base:1",
                                    f"{self.address}/team/app:v1"],
                                   capture_output=True, text=True, timeout=60, env=self.env)
        self.assertNotEqual(anonymous.returncode, 0)

        self.login("carol")
        self.run_tool("push", "--quiet", "localhost/base:1", f"{self.address}/team/app:v1")
        outside = subprocess.run(
            [self.binary, "push", "--quiet", "localhost/base:1", f"{self.address}/app:v1"],
            capture_output=True, text=True, timeout=60, env=self.env,
        )
        self.assertNotEqual(outside.returncode, 0)
        self.assertRegex(outside.stderr.lower(), "denied|403")

        self.run_tool("rmi", "--all", "--force")
        self.run_tool("pull", "--quiet", f"{self.address}/team/app:v1")
        self.run_tool("logout", self.address)

        self.login("reader")
        refused = subprocess.run([self.binary, "pull", "--quiet", f"{self.address}/team/app:v1"],
                                 capture_output=True, text=True, timeout=60, env=self.env)
        self.assertNotEqual(refused.returncode, 0)
        response = requests.get(f"{self.base}/v2/_catalog", auth=("admin", password("admin")), timeout=10)
        self.assertEqual(response.json()["repositories"], ["team/app"])


class DockerLoginTokenFlowTests(SharedDaemonTestCase):
    """``docker login`` and push/pull through the built-in token issuer."""

    @classmethod
    def start_shared(cls, directory: str) -> tuple[Any, Any]:
        server = start_auth_server(os.path.join(directory, "registry"), "token")
        shared = DockerdForRegistry(directory, server)
        return shared, shared.stop

    def setUp(self) -> None:
        shared: DockerdForRegistry = self.shared()
        self.server = shared.server
        self.dockerd = shared.dockerd
        self.address = self.server.address
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)

    def docker(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.dockerd.docker, *args], capture_output=True, text=True, timeout=120,
                              env=self.dockerd.env(), input=stdin, cwd=self.work)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.docker(*args, stdin=stdin)
        self.assertEqual(result.returncode, 0, f"docker {' '.join(args)}:\n{result.stderr}{result.stdout}")
        return result.stdout

    def login(self, user: str) -> None:
        out = self.ok("login", "--username", user, "--password-stdin", self.address, stdin=password(user))
        self.assertIn("Login Succeeded", out)

    def test_login_push_pull_through_the_token_flow(self) -> None:
        with open(os.path.join(self.work, "payload.bin"), "wb") as f:
            f.write(os.urandom(100_000))
        with open(os.path.join(self.work, "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY payload.bin /payload.bin\nCMD [\"/payload.bin\"]\n")
        image = f"{self.address}/team/docker:v1"
        self.ok("build", "-q", "-t", image, ".")

        wrong = self.docker("login", "--username", "carol", "--password-stdin", self.address, stdin="wrong")
        self.assertNotEqual(wrong.returncode, 0)

        self.login("carol")
        self.ok("push", image)
        outside = f"{self.address}/other/docker:v1"
        self.ok("tag", image, outside)
        refused = self.docker("push", outside)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("denied", (refused.stderr + refused.stdout).lower())

        self.ok("rmi", image, outside)
        self.ok("pull", image)
        self.ok("logout", self.address)

        self.ok("rmi", image)
        refused = self.docker("pull", image)
        self.assertNotEqual(refused.returncode, 0)

        self.login("admin")
        public = f"{self.address}/public/docker:v1"
        self.ok("pull", image)
        self.ok("tag", image, public)
        self.ok("push", public)
        self.ok("logout", self.address)
        self.ok("rmi", image, public)
        self.ok("pull", public)  # anonymous read on public/**, with an anonymous token

        token = requests.get(f"http://{self.address}/token", params={"scope": "registry:catalog:*"},
                             auth=("admin", password("admin")), timeout=10).json()["token"]
        catalog = requests.get(f"http://{self.address}/v2/_catalog", timeout=10,
                               headers={"Authorization": f"Bearer {token}"}).json()
        self.assertEqual(catalog["repositories"], ["public/docker", "team/docker"])


class ContainerdUserTests(SharedContainerdTestCase, AuthServerTestCase):
    """``ctr images push/pull --user`` against token mode."""

    mode = "token"

    def ctr(self, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run_ctr(namespace, *args)

    def ok(self, namespace: str, *args: str) -> str:
        result = self.ctr(namespace, *args)
        self.assertEqual(result.returncode, 0, f"ctr {' '.join(args)}:\n{result.stderr}{result.stdout}")
        return result.stdout

    def test_push_and_pull_with_user(self) -> None:
        descriptor, _ = self.layout.image("amd64", {"etc/motd": b"ctr --user\n"})
        self.layout.tag(descriptor, "v1")
        archive = layout_tar(self.layout, os.path.join(self.work, "image.tar"))
        self.ok(self.namespace, "images", "import", archive)
        imported = [line.split()[0] for line in self.ok(self.namespace, "images", "ls").splitlines()[1:]][0]
        target = f"{self.address}/team/ctr:v1"
        self.ok(self.namespace, "images", "tag", imported, target)

        refused = self.ctr(self.namespace, "images", "push", "--plain-http", "--user",
                           f"reader:{password('reader')}", target)
        self.assertNotEqual(refused.returncode, 0)
        self.assertEqual(self.catalog(), [])

        self.ok(self.namespace, "images", "push", "--plain-http", "--user", f"carol:{password('carol')}",
                target)
        fresh = self.namespace + "-pull"
        self.ok(fresh, "images", "pull", "--plain-http", "--user", f"dave:{password('dave')}", target)
        refused = self.ctr(fresh + "-reader", "images", "pull", "--plain-http", "--user",
                           f"reader:{password('reader')}", target)
        self.assertNotEqual(refused.returncode, 0)
        self.assertEqual(self.catalog(), ["team/ctr"])


class OrasBasicAuthTests(AuthServerTestCase):
    def setUp(self) -> None:
        self.oras = require_module("oras.client")
        super().setUp()
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.path = os.path.join(self.work, "notes.txt")
        with open(self.path, "wb") as f:
            f.write(b"pushed with basic auth\n")

    def client(self, user: str) -> Any:
        client = self.oras.OrasClient(hostname=self.address, insecure=True, auth_backend="basic")
        client.login(username=user, password=password(user), hostname=self.address)
        return client

    def test_push_and_pull_as_the_policy_says(self) -> None:
        carol = self.client("carol")
        response = carol.push(target=f"{self.address}/team/oras:v1", files=[self.path],
                              disable_path_validation=True)
        self.assertEqual(response.status_code, 201)
        out = os.path.abspath(self.mktemp())
        pulled = carol.pull(target=f"{self.address}/team/oras:v1", outdir=out)
        with open(pulled[0], "rb") as f:
            self.assertEqual(f.read(), b"pushed with basic auth\n")

        reader = self.client("reader")
        try:
            reader.push(target=f"{self.address}/app:v1", files=[self.path], disable_path_validation=True)
        except Exception as refused:  # oras-py raises different types across versions
            self.assertRegex(str(refused).lower(), "denied|403")
        else:
            self.fail("oras pushed where the policy says no")
        self.assertEqual(self.catalog(), ["team/oras"])
