"""
Basic mode through a real port: challenges, policy decisions per route, and the attacks of
issue 5, each asserting the exact status and that nothing was written.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.logger import globalLogPublisher

from tests.auth.fixtures import auth_settings, basic, password
from tests.support import RegistryTestCase, sha256
from txoci.auth.config import AuthSettings
from txoci.auth.htpasswd import add_user, remove_user

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class AuthRegistryTestCase(RegistryTestCase):
    """A registry serving the acceptance policy, plus helpers that act as a given user."""

    mode = "basic"
    token_options: dict[str, Any] = {}

    def auth_settings(self) -> AuthSettings:
        if not hasattr(self, "settings"):
            self.settings = auth_settings(os.path.abspath(self.mktemp()), self.mode, **self.token_options)
        return self.settings

    def as_user(self, user: str | None) -> dict[str, list[str]]:
        return {} if user is None else basic(user)

    async def send(self, user: str | None, method: str, path: str, **kwargs: Any) -> tuple[Any, bytes]:
        headers = {**kwargs.pop("headers", {}), **self.as_user(user)}
        return await self.request(method, path, headers=headers, **kwargs)

    async def push_blob_as(self, user: str | None, repository: str, data: bytes) -> tuple[Any, bytes]:
        return await self.send(
            user, "POST", f"/v2/{repository}/blobs/uploads/?digest={sha256(data)}", data=data,
            headers={"Content-Type": ["application/octet-stream"]},
        )

    async def push_image_as(
        self, user: str | None, repository: str, tag: str, layer: bytes
    ) -> tuple[str, bytes]:
        """Push a config, one layer and a manifest under ``tag``; return (digest, manifest)."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "layer": sha256(layer)}).encode()
        for blob in (config, layer):
            response, body = await self.push_blob_as(user, repository, blob)
            self.assertEqual(response.code, 201, body)
        manifest = self.manifest(config, layer)
        response, body = await self.put_manifest_as(user, repository, tag, manifest)
        self.assertEqual(response.code, 201, body)
        return sha256(manifest), manifest

    def manifest(self, config: bytes, layer: bytes) -> bytes:
        return json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256(layer), "size": len(layer)}],
        }).encode()

    async def put_manifest_as(self, user: str | None, repository: str, reference: str,
                              manifest: bytes) -> tuple[Any, bytes]:
        return await self.send(user, "PUT", f"/v2/{repository}/manifests/{reference}", data=manifest,
                               headers={"Content-Type": [OCI_MANIFEST]})

    async def repositories(self) -> list[str]:
        """Every repository, as the admin sees the catalog."""
        response, body = await self.send("admin", "GET", "/v2/_catalog")
        self.assertEqual(response.code, 200, body)
        return list(json.loads(body)["repositories"])

    async def assertNothingWritten(self) -> None:
        """No repository holds anything and no upload session is open."""
        self.assertEqual(await self.repositories(), [])
        stats = await self.opened.registry.metadata.read(lambda tx: tx.storage_stats())
        self.assertEqual((stats.blobs, stats.manifests, stats.uploads), (0, 0, 0))

    async def tag_target(self, repository: str, tag: str) -> str:
        response, body = await self.send("admin", "HEAD", f"/v2/{repository}/manifests/{tag}",
                                         headers={"Accept": [OCI_MANIFEST]})
        self.assertEqual(response.code, 200, body)
        return str(response.headers.getRawHeaders("docker-content-digest")[0])

    def assertChallenge(self, response: Any, body: bytes, expected: str) -> None:
        self.assertError(response, body, 401, "UNAUTHORIZED")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"), [expected])

    def assertDenied(self, response: Any, body: bytes, action: str, repository: str) -> None:
        self.assertError(response, body, 403, "DENIED")
        message = json.loads(body)["errors"][0]["message"]
        self.assertIn(f"{action} on repository {repository}", message)


BASIC_CHALLENGE = 'Basic realm="txoci-test",charset="UTF-8"'


class BasicChallengeTests(AuthRegistryTestCase):
    async def test_base_without_credentials_is_challenged(self) -> None:
        response, body = await self.send(None, "GET", "/v2/")
        self.assertChallenge(response, body, BASIC_CHALLENGE)

    async def test_base_with_credentials_answers_200(self) -> None:
        response, body = await self.send("reader", "GET", "/v2/")
        self.assertEqual((response.code, body), (200, b"{}"))

    async def test_wrong_password_is_challenged_and_writes_nothing(self) -> None:
        response, body = await self.request(
            "POST", f"/v2/team/app/blobs/uploads/?digest={sha256(b'x')}", data=b"x",
            headers=basic("carol", "not-" + password("carol")),
        )
        self.assertChallenge(response, body, BASIC_CHALLENGE)
        self.assertNotIn(b"not-carol", body)
        await self.assertNothingWritten()

    async def test_unknown_user_is_challenged(self) -> None:
        response, body = await self.request("GET", "/v2/", headers=basic("nobody"))
        self.assertChallenge(response, body, BASIC_CHALLENGE)

    async def test_malformed_basic_credentials_are_challenged(self) -> None:
        response, body = await self.request("GET", "/v2/", headers={"Authorization": ["Basic %%%"]})
        self.assertChallenge(response, body, BASIC_CHALLENGE)

    async def test_bearer_header_in_basic_mode_is_anonymous(self) -> None:
        response, body = await self.request("GET", "/v2/", headers={"Authorization": ["Bearer abc"]})
        self.assertChallenge(response, body, BASIC_CHALLENGE)

    async def test_health_endpoints_stay_open(self) -> None:
        for path in ("/livez", "/readyz"):
            response, body = await self.request("GET", path)
            self.assertEqual(response.code, 200, (path, body))

    async def test_no_token_endpoint_in_basic_mode(self) -> None:
        response, body = await self.request("GET", "/token")
        self.assertEqual(response.code, 404, body)


class BasicPolicyTests(AuthRegistryTestCase):
    async def test_admin_pushes_and_reader_pulls(self) -> None:
        digest, manifest = await self.push_image_as("admin", "app", "v1", b"layer")
        response, body = await self.send("reader", "GET", "/v2/app/manifests/v1")
        self.assertEqual((response.code, body), (200, manifest))
        response, body = await self.send("reader", "GET", f"/v2/app/blobs/{sha256(b'layer')}")
        self.assertEqual((response.code, body), (200, b"layer"))
        response, body = await self.send("reader", "GET", "/v2/app/tags/list")
        self.assertEqual(json.loads(body)["tags"], ["v1"])

    async def test_read_only_user_cannot_push(self) -> None:
        response, body = await self.push_blob_as("reader", "app", b"data")
        self.assertDenied(response, body, "create", "app")
        await self.assertNothingWritten()

    async def test_read_only_user_cannot_start_an_upload_session(self) -> None:
        response, body = await self.send("reader", "POST", "/v2/app/blobs/uploads/")
        self.assertDenied(response, body, "create", "app")
        await self.assertNothingWritten()

    async def test_longer_rule_replaces_broader_one(self) -> None:
        await self.push_image_as("carol", "team/app", "v1", b"layer")
        response, body = await self.send("reader", "GET", "/v2/team/app/manifests/v1")
        self.assertDenied(response, body, "read", "team/app")

    async def test_team_member_pushes_under_team_only(self) -> None:
        await self.push_image_as("dave", "team/app", "v1", b"layer")
        response, body = await self.push_blob_as("dave", "other", b"data")
        self.assertDenied(response, body, "create", "other")
        self.assertEqual(await self.repositories(), ["team/app"])

    async def test_anonymous_reads_public(self) -> None:
        digest, manifest = await self.push_image_as("admin", "public/base", "latest", b"layer")
        response, body = await self.send(None, "GET", "/v2/public/base/manifests/latest")
        self.assertEqual((response.code, body), (200, manifest))

    async def test_anonymous_is_challenged_outside_public(self) -> None:
        await self.push_image_as("admin", "app", "v1", b"layer")
        response, body = await self.send(None, "GET", "/v2/app/manifests/v1")
        self.assertChallenge(response, body, BASIC_CHALLENGE)

    async def test_anonymous_cannot_push_to_public(self) -> None:
        response, body = await self.push_blob_as(None, "public/base", b"data")
        self.assertChallenge(response, body, BASIC_CHALLENGE)
        await self.assertNothingWritten()

    async def test_create_without_update_cannot_move_a_tag(self) -> None:
        first, _ = await self.push_image_as("ci", "app", "v1", b"one")
        config = b'{"other": true}'
        for blob in (config, b"two"):
            response, body = await self.push_blob_as("ci", "app", blob)
            self.assertEqual(response.code, 201, body)
        moved = self.manifest(config, b"two")
        response, body = await self.put_manifest_as("ci", "app", "v1", moved)
        self.assertDenied(response, body, "update", "app")
        self.assertEqual(await self.tag_target("app", "v1"), first)
        response, body = await self.send("admin", "GET", f"/v2/app/manifests/{sha256(moved)}")
        self.assertEqual(response.code, 404, body)

    async def test_create_without_update_cannot_move_a_tag_with_the_tag_parameter(self) -> None:
        first, manifest = await self.push_image_as("ci", "app", "v1", b"one")
        config = b'{"other": true}'
        for blob in (config, b"two"):
            await self.push_blob_as("ci", "app", blob)
        moved = self.manifest(config, b"two")
        response, body = await self.put_manifest_as("ci", "app", f"{sha256(moved)}?tag=v1", moved)
        self.assertDenied(response, body, "update", "app")
        self.assertEqual(await self.tag_target("app", "v1"), first)

    async def test_create_without_update_may_add_new_tags_and_repush_the_same(self) -> None:
        digest, manifest = await self.push_image_as("ci", "app", "v1", b"one")
        response, body = await self.put_manifest_as("ci", "app", "v1", manifest)
        self.assertEqual(response.code, 201, body)
        response, body = await self.put_manifest_as("ci", "app", "v2", manifest)
        self.assertEqual(response.code, 201, body)

    async def test_update_lets_a_team_member_move_a_tag(self) -> None:
        await self.push_image_as("carol", "team/app", "v1", b"one")
        moved, _ = await self.push_image_as("carol", "team/app", "v1", b"two")
        self.assertEqual(await self.tag_target("team/app", "v1"), moved)

    async def test_delete_needs_delete(self) -> None:
        digest, _ = await self.push_image_as("ci", "app", "v1", b"one")
        response, body = await self.send("ci", "DELETE", f"/v2/app/manifests/{digest}")
        self.assertDenied(response, body, "delete", "app")
        response, body = await self.send("ci", "DELETE", f"/v2/app/blobs/{sha256(b'one')}")
        self.assertDenied(response, body, "delete", "app")
        self.assertEqual(await self.tag_target("app", "v1"), digest)
        response, body = await self.send("admin", "DELETE", f"/v2/app/manifests/{digest}")
        self.assertEqual(response.code, 202, body)


class GlobBypassTests(AuthRegistryTestCase):
    """Names that try to escape a rule: refused before any pattern is matched, nothing written."""

    async def test_names_that_try_to_leave_the_team_tree(self) -> None:
        for name, status in [
            ("team/../app", 400),
            ("team/%2E%2E/app", 400),
            ("team%2F..%2Fapp", 400),
            ("TEAM/app", 400),
            ("team//app", 400),
            ("team/./app", 400),
            ("team/app/", 400),
        ]:
            response, body = await self.push_blob_as("carol", name, b"data")
            self.assertEqual(response.code, status, (name, body))
        await self.assertNothingWritten()

    async def test_names_that_try_to_enter_the_team_tree(self) -> None:
        await self.push_image_as("carol", "team/app", "v1", b"secret")
        for name, status in [
            ("app/../team/app", 400), ("Team/app", 400), ("team%2Fapp", 403), ("./team/app", 400),
            ("team/app/.", 400), ("team/%61pp", 403), ("%74eam/app", 403),
        ]:
            response, body = await self.send("reader", "GET", f"/v2/{name}/manifests/v1")
            self.assertEqual(response.code, status, (name, body))
            self.assertNotIn(b"secret", body)


MOUNT_INTO_APP = "/v2/app/blobs/uploads/?mount="


class MountTests(AuthRegistryTestCase):
    async def test_mount_from_an_unreadable_repository_falls_back_to_an_upload(self) -> None:
        await self.push_image_as("carol", "team/secret", "v1", b"secret layer")
        digest = sha256(b"secret layer")
        response, body = await self.send("ci", "POST", f"{MOUNT_INTO_APP}{digest}&from=team/secret")
        self.assertEqual(response.code, 202, body)
        response, body = await self.send("admin", "HEAD", f"/v2/app/blobs/{digest}")
        self.assertEqual(response.code, 404, body)

    async def test_mount_from_a_readable_repository_links_the_blob(self) -> None:
        await self.push_image_as("admin", "public/base", "v1", b"base layer")
        digest = sha256(b"base layer")
        response, body = await self.send("ci", "POST", f"{MOUNT_INTO_APP}{digest}&from=public/base")
        self.assertEqual(response.code, 201, body)
        response, body = await self.send("ci", "GET", f"/v2/app/blobs/{digest}")
        self.assertEqual((response.code, body), (200, b"base layer"))

    async def test_mount_without_from_links_only_blobs_readable_somewhere(self) -> None:
        await self.push_image_as("carol", "team/secret", "v1", b"secret layer")
        await self.push_image_as("admin", "public/base", "v1", b"base layer")
        secret, public = sha256(b"secret layer"), sha256(b"base layer")
        response, body = await self.send("ci", "POST", f"/v2/app/blobs/uploads/?mount={secret}")
        self.assertEqual(response.code, 202, body)
        response, body = await self.send("admin", "HEAD", f"/v2/app/blobs/{secret}")
        self.assertEqual(response.code, 404, body)
        response, body = await self.send("ci", "POST", f"/v2/app/blobs/uploads/?mount={public}")
        self.assertEqual(response.code, 201, body)

    async def test_mount_into_an_unwritable_repository_is_denied(self) -> None:
        await self.push_image_as("admin", "public/base", "v1", b"base layer")
        digest = sha256(b"base layer")
        response, body = await self.send("reader", "POST", f"{MOUNT_INTO_APP}{digest}&from=public/base")
        self.assertDenied(response, body, "create", "app")
        self.assertEqual(await self.repositories(), ["public/base"])


class CatalogTests(AuthRegistryTestCase):
    async def _populate(self) -> None:
        for repository in ("app", "public/a", "public/b", "team/secret", "zzz"):
            await self.push_image_as("admin", repository, "v1", repository.encode())

    async def test_anonymous_catalog_hides_what_it_cannot_read(self) -> None:
        await self._populate()
        response, body = await self.send(None, "GET", "/v2/_catalog")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(json.loads(body)["repositories"], ["public/a", "public/b"])

    async def test_catalog_shows_each_user_what_they_may_read(self) -> None:
        await self._populate()
        expected = {
            "reader": ["app", "public/a", "public/b", "zzz"],
            "carol": ["public/a", "public/b", "team/secret"],
            "admin": ["app", "public/a", "public/b", "team/secret", "zzz"],
            "mallory": ["public/a", "public/b"],
        }
        for user, repositories in expected.items():
            response, body = await self.send(user, "GET", "/v2/_catalog")
            self.assertEqual(json.loads(body)["repositories"], repositories, user)

    async def test_filtered_catalog_is_still_paginated(self) -> None:
        await self._populate()
        response, body = await self.send("reader", "GET", "/v2/_catalog?n=2")
        self.assertEqual(json.loads(body)["repositories"], ["app", "public/a"])
        link = response.headers.getRawHeaders("link")[0]
        self.assertIn("last=public%2Fa", link.replace("/", "%2F").replace("%2Fv2%2F", "/v2/"))
        response, body = await self.send("reader", "GET", "/v2/_catalog?n=2&last=public/a")
        self.assertEqual(json.loads(body)["repositories"], ["public/b", "zzz"])
        self.assertIsNone(response.headers.getRawHeaders("link"))


class MetricsAndLogTests(AuthRegistryTestCase):
    async def test_metrics_need_an_admin(self) -> None:
        response, body = await self.send(None, "GET", "/metrics")
        self.assertChallenge(response, body, BASIC_CHALLENGE)
        response, body = await self.send("reader", "GET", "/metrics")
        self.assertError(response, body, 403, "DENIED")
        response, body = await self.send("admin", "GET", "/metrics")
        self.assertEqual(response.code, 200, body)
        self.assertIn(b"txoci_auth_failures", body)

    async def test_failed_logins_are_counted(self) -> None:
        await self.request("GET", "/v2/", headers=basic("reader", "wrong"))
        response, body = await self.send("admin", "GET", "/metrics")
        self.assertIn(b'txoci_auth_failures_total{reason="password"} 1.0', body)

    async def test_access_log_names_the_user_and_never_the_password(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        await self.send("reader", "GET", "/v2/")
        await self.request("GET", "/v2/?password=hunter2", headers=basic("ci", "hunter2"))
        access = [e for e in events if e.get("log_namespace") == "txoci.access"]
        self.assertEqual([e["user"] for e in access], ["reader", None])
        refusals = [e for e in events if e.get("reason") == "password"]
        self.assertEqual([(e["user"], e["client"]) for e in refusals], [("ci", "127.0.0.1")])
        self.assertNotIn("hunter2", repr(events))
        self.assertNotIn(password("reader"), repr(events))


class RateLimitTests(AuthRegistryTestCase):
    def auth_settings(self) -> AuthSettings:
        import attrs

        from txoci.auth.ratelimit import BucketPolicy

        settings = super().auth_settings()
        return attrs.evolve(settings, per_user=BucketPolicy(burst=3, interval=60.0))

    async def test_guessing_one_account_is_limited_even_with_the_right_password(self) -> None:
        for _ in range(3):
            response, body = await self.request("GET", "/v2/", headers=basic("carol", "guess"))
            self.assertEqual(response.code, 401, body)
        response, body = await self.request("GET", "/v2/", headers=basic("carol", "guess"))
        self.assertError(response, body, 429, "TOOMANYREQUESTS")
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["60"])
        response, body = await self.send("carol", "GET", "/v2/")
        self.assertEqual(response.code, 429, body)
        response, body = await self.send("dave", "GET", "/v2/")
        self.assertEqual(response.code, 200, body)


class LoginCacheTests(AuthRegistryTestCase):
    async def test_repeated_basic_logins_run_bcrypt_once(self) -> None:
        assert self.settings.htpasswd is not None
        htpasswd = self.settings.htpasswd
        checks: list[str] = []
        original = htpasswd.verify

        def counting(username: str, secret: str | bytes) -> bool:
            checks.append(username)
            return original(username, secret)

        self.patch(htpasswd, "verify", counting)
        for _ in range(3):
            response, body = await self.send("reader", "GET", "/v2/")
            self.assertEqual(response.code, 200, body)
        self.assertEqual(checks, ["reader"])
        response, body = await self.request("GET", "/v2/", headers=basic("reader", "wrong"))
        self.assertEqual(response.code, 401, body)
        self.assertEqual(checks, ["reader", "reader"])

    async def test_a_removed_user_is_refused_at_once_despite_the_cache(self) -> None:
        assert self.settings.htpasswd is not None
        response, body = await self.send("reader", "GET", "/v2/")
        self.assertEqual(response.code, 200, body)
        remove_user(self.settings.htpasswd.path, "reader")
        response, body = await self.send("reader", "GET", "/v2/")
        self.assertChallenge(response, body, BASIC_CHALLENGE)

    async def test_a_changed_password_is_needed_at_once_despite_the_cache(self) -> None:
        assert self.settings.htpasswd is not None
        response, body = await self.send("reader", "GET", "/v2/")
        self.assertEqual(response.code, 200, body)
        add_user(self.settings.htpasswd.path, "reader", "changed", rounds=4)
        response, body = await self.send("reader", "GET", "/v2/")
        self.assertChallenge(response, body, BASIC_CHALLENGE)
        response, body = await self.request("GET", "/v2/", headers=basic("reader", "changed"))
        self.assertEqual(response.code, 200, body)


class EmptyBasicCredentialsTests(AuthRegistryTestCase):
    async def test_empty_basic_credentials_are_anonymous(self) -> None:
        """containers/image sends ``Basic Og==`` (``:``) when it has no credentials."""
        await self.push_image_as("admin", "public/base", "v1", b"layer")
        empty = {"Authorization": ["Basic Og=="]}
        response, body = await self.request("GET", "/v2/public/base/tags/list", headers=empty)
        self.assertEqual(response.code, 200, body)
        response, body = await self.request("GET", "/v2/app/tags/list", headers=empty)
        self.assertChallenge(response, body, BASIC_CHALLENGE)


class AddressRateLimitTests(AuthRegistryTestCase):
    def auth_settings(self) -> AuthSettings:
        import attrs

        from txoci.auth.ratelimit import BucketPolicy

        return attrs.evolve(super().auth_settings(), per_address=BucketPolicy(burst=3, interval=60.0))

    async def test_guessing_many_accounts_from_one_address_is_limited(self) -> None:
        for user in ("carol", "dave", "reader"):
            response, body = await self.request("GET", "/v2/", headers=basic(user, "guess"))
            self.assertEqual(response.code, 401, body)
        response, body = await self.send("admin", "GET", "/v2/")
        self.assertError(response, body, 429, "TOOMANYREQUESTS")
