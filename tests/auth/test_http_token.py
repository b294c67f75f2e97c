"""
Token mode through a real port: the built-in issuer's ``/token`` (GET with Basic or anonymous,
POST password and refresh-token grants), Bearer challenges, an external issuer, and the token
attacks of issue 5, each asserting the exact status and that nothing was written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from twisted.internet import reactor

from tests.auth.fixtures import ISSUER, SERVICE, auth_table, basic, bearer, password
from tests.auth.test_http_basic import AuthRegistryTestCase
from tests.support import sha256
from txoci.auth.config import AuthSettings
from txoci.auth.htpasswd import remove_user
from txoci.auth.tokens import SigningKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, unverified (the tests only read what was issued)."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


FORM = {"Content-Type": ["application/x-www-form-urlencoded"]}


class TokenRegistryTestCase(AuthRegistryTestCase):
    mode = "token"

    async def token(self, user: str | None, *scopes: str) -> str:
        query = urlencode([("service", SERVICE), *[("scope", s) for s in scopes]])
        headers = basic(user) if user else {}
        response, body = await self.request("GET", f"/token?{query}", headers=headers)
        self.assertEqual(response.code, 200, body)
        return str(json.loads(body)["token"])

    def as_user(self, user: str | None) -> dict[str, list[str]]:
        # Every helper acts with a token holding everything the user may have on these names.
        return {} if user is None else self._tokens[user]

    async def send(self, user: str | None, method: str, path: str, **kwargs: Any) -> tuple[Any, bytes]:
        if user is not None and user not in getattr(self, "_tokens", {}):
            await self.login(user)
        return await super().send(user, method, path, **kwargs)

    async def login(self, user: str) -> None:
        names = ["app", "public/base", "public/a", "public/b", "team/app", "team/secret", "zzz", "other"]
        scopes = [f"repository:{name}:pull,push,delete" for name in names] + ["registry:catalog:*"]
        self._tokens = getattr(self, "_tokens", {})
        self._tokens[user] = bearer(await self.token(user, *scopes))

    def challenge(self, scope: str | None = None, error: str | None = None) -> str:
        parts = [f'realm="{self.base}/token"', f'service="{SERVICE}"']
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    @property
    def signing_key(self) -> SigningKey:
        assert self.settings.token is not None and self.settings.token.signing_key is not None
        return self.settings.token.signing_key

    def forge(self, key: Any = None, algorithm: str | None = None, **overrides: Any) -> str:
        """A token signed with the registry's key (or ``key``), with claims overridden."""
        now = int(reactor.seconds())  # type: ignore[attr-defined]
        payload: dict[str, Any] = {
            "iss": ISSUER, "sub": "carol", "aud": SERVICE, "exp": now + 300, "nbf": now, "iat": now,
            "jti": "x", "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}],
        }
        payload.update(overrides)
        signing = self.signing_key
        return jwt.encode(payload, key or signing.private_key, algorithm=algorithm or signing.algorithm,
                          headers={"kid": signing.kid})

    async def assertTokenRefused(self, token: str) -> None:
        response, body = await self.request(
            "POST", f"/v2/team/app/blobs/uploads/?digest={sha256(b'x')}", data=b"x", headers=bearer(token),
        )
        self.assertError(response, body, 401, "UNAUTHORIZED")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"),
                         [self.challenge("repository:team/app:pull,push", "invalid_token")])
        await self.assertNothingWritten()


class TokenEndpointTests(TokenRegistryTestCase):
    async def test_challenge_names_realm_service_and_scope(self) -> None:
        response, body = await self.request("GET", "/v2/app/manifests/v1")
        self.assertError(response, body, 401, "UNAUTHORIZED")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"),
                         [self.challenge("repository:app:pull")])
        response, body = await self.request("PUT", "/v2/app/manifests/v1", data=b"{}")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"),
                         [self.challenge("repository:app:pull,push")])
        response, body = await self.request("GET", "/v2/")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"), [self.challenge()])

    async def test_token_claims(self) -> None:
        token = await self.token("carol", "repository:team/app:pull,push")
        claims = claims_of(token)
        self.assertEqual((claims["iss"], claims["sub"], claims["aud"]), (ISSUER, "carol", SERVICE))
        self.assertEqual(claims["access"],
                         [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
        self.assertEqual(jwt.get_unverified_header(token)["alg"], "ES256")

    async def test_anonymous_token_holds_only_public_reads(self) -> None:
        token = await self.token(None, "repository:public/base:pull,push", "repository:app:pull")
        self.assertEqual(claims_of(token)["sub"], "")
        self.assertEqual(claims_of(token)["access"],
                         [{"type": "repository", "name": "public/base", "actions": ["pull"]}])

    async def test_requesting_more_scope_than_allowed_grants_the_intersection(self) -> None:
        token = await self.token("reader", "repository:app:pull,push,delete", "repository:team/app:pull")
        self.assertEqual(claims_of(token)["access"],
                         [{"type": "repository", "name": "app", "actions": ["pull"]}])
        response, body = await self.request(
            "POST", f"/v2/app/blobs/uploads/?digest={sha256(b'x')}", data=b"x", headers=bearer(token),
        )
        self.assertDenied(response, body, "create", "app")
        await self.assertNothingWritten()

    async def test_several_scope_parameters_are_merged(self) -> None:
        token = await self.token(
            "ci", "repository:app:push", "repository:app:pull", "repository:public/a:pull"
        )
        self.assertEqual(claims_of(token)["access"], [
            {"type": "repository", "name": "app", "actions": ["push", "pull"]},
            {"type": "repository", "name": "public/a", "actions": ["pull"]},
        ])

    async def test_wrong_password_at_the_token_endpoint(self) -> None:
        response, body = await self.request(
            "GET", f"/token?service={SERVICE}", headers=basic("carol", "nope")
        )
        self.assertEqual(response.code, 401, body)
        self.assertEqual(json.loads(body)["error"], "invalid_grant")
        self.assertNotIn(b"nope", body)

    async def test_unknown_service_is_refused(self) -> None:
        response, body = await self.request("GET", "/token?service=elsewhere", headers=basic("carol"))
        self.assertEqual(response.code, 400, body)

    async def test_malformed_scope_is_refused(self) -> None:
        response, body = await self.request("GET", "/token?scope=repository:NOPE", headers=basic("carol"))
        self.assertEqual((response.code, json.loads(body)["error"]), (400, "invalid_scope"))

    async def test_password_grant_and_refresh_grant(self) -> None:
        form = urlencode({"grant_type": "password", "username": "carol", "password": password("carol"),
                          "service": SERVICE, "client_id": "test", "access_type": "offline",
                          "scope": "repository:team/app:pull,push repository:app:pull"})
        response, body = await self.request(
            "POST", "/token", data=form.encode(), headers=FORM,
        )
        self.assertEqual(response.code, 200, body)
        answer = json.loads(body)
        self.assertEqual(answer["scope"], "repository:team/app:pull,push")
        refresh = answer["refresh_token"]
        form = urlencode({"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE,
                          "client_id": "test", "scope": "repository:team/other:pull"})
        response, body = await self.request(
            "POST", "/token", data=form.encode(), headers=FORM,
        )
        self.assertEqual(response.code, 200, body)
        answer = json.loads(body)
        self.assertEqual(claims_of(answer["access_token"])["sub"], "carol")
        self.assertEqual(answer["scope"], "repository:team/other:pull")
        response, body = await self.request("GET", "/v2/", headers=bearer(refresh))
        self.assertEqual(response.code, 401, body)

    async def test_refresh_grant_of_a_removed_user_is_refused(self) -> None:
        form = urlencode({"grant_type": "password", "username": "dave", "password": password("dave"),
                          "service": SERVICE, "client_id": "test", "access_type": "offline"})
        response, body = await self.request("POST", "/token", data=form.encode())
        refresh = json.loads(body)["refresh_token"]
        assert self.settings.htpasswd is not None
        remove_user(self.settings.htpasswd.path, "dave")
        form = urlencode({"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE})
        response, body = await self.request("POST", "/token", data=form.encode())
        self.assertEqual((response.code, json.loads(body)["error"]), (400, "invalid_grant"))

    async def test_wrong_password_grant_and_unknown_grant_type(self) -> None:
        form = urlencode({"grant_type": "password", "username": "carol", "password": "nope"})
        response, body = await self.request("POST", "/token", data=form.encode())
        self.assertEqual((response.code, json.loads(body)["error"]), (401, "invalid_grant"))
        response, body = await self.request("POST", "/token", data=b"grant_type=client_credentials")
        self.assertEqual((response.code, json.loads(body)["error"]), (400, "unsupported_grant_type"))


class TokenPolicyTests(TokenRegistryTestCase):
    async def test_team_member_pushes_and_reader_pulls_public(self) -> None:
        await self.push_image_as("carol", "team/app", "v1", b"layer")
        await self.push_image_as("admin", "public/base", "v1", b"base")
        anonymous = await self.token(None, "repository:public/base:pull")
        response, body = await self.request("GET", "/v2/public/base/blobs/" + sha256(b"base"),
                                            headers=bearer(anonymous))
        self.assertEqual((response.code, body), (200, b"base"))

    async def test_token_for_one_repository_used_on_another(self) -> None:
        token = await self.token("carol", "repository:team/app:pull,push")
        response, body = await self.request(
            "POST", f"/v2/team/other/blobs/uploads/?digest={sha256(b'x')}", data=b"x", headers=bearer(token),
        )
        self.assertError(response, body, 401, "UNAUTHORIZED")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"),
                         [self.challenge("repository:team/other:pull,push", "insufficient_scope")])
        await self.assertNothingWritten()

    async def test_anonymous_token_outside_public_is_challenged(self) -> None:
        token = await self.token(None, "repository:app:pull")
        response, body = await self.request("GET", "/v2/app/tags/list", headers=bearer(token))
        self.assertError(response, body, 401, "UNAUTHORIZED")

    async def test_push_token_of_a_create_only_user_cannot_move_a_tag(self) -> None:
        first, _ = await self.push_image_as("ci", "app", "v1", b"one")
        config = b'{"other": true}'
        for blob in (config, b"two"):
            response, body = await self.push_blob_as("ci", "app", blob)
            self.assertEqual(response.code, 201, body)
        response, body = await self.put_manifest_as("ci", "app", "v1", self.manifest(config, b"two"))
        self.assertDenied(response, body, "update", "app")
        self.assertEqual(await self.tag_target("app", "v1"), first)

    async def test_mount_needs_pull_on_the_source_in_the_token(self) -> None:
        await self.push_image_as("admin", "public/base", "v1", b"base layer")
        digest = sha256(b"base layer")
        only_target = await self.token("ci", "repository:app:pull,push")
        response, body = await self.request(
            "POST", f"/v2/app/blobs/uploads/?mount={digest}&from=public/base", headers=bearer(only_target),
        )
        self.assertEqual(response.code, 202, body)
        both = await self.token("ci", "repository:app:pull,push", "repository:public/base:pull")
        response, body = await self.request(
            "POST", f"/v2/app/blobs/uploads/?mount={digest}&from=public/base", headers=bearer(both),
        )
        self.assertEqual(response.code, 201, body)

    async def test_mount_from_a_repository_the_caller_cannot_read(self) -> None:
        await self.push_image_as("carol", "team/secret", "v1", b"secret layer")
        digest = sha256(b"secret layer")
        token = await self.token("ci", "repository:app:pull,push", "repository:team/secret:pull")
        self.assertEqual(len(claims_of(token)["access"]), 1)
        response, body = await self.request(
            "POST", f"/v2/app/blobs/uploads/?mount={digest}&from=team/secret", headers=bearer(token),
        )
        self.assertEqual(response.code, 202, body)
        response, body = await self.send("admin", "HEAD", f"/v2/app/blobs/{digest}")
        self.assertEqual(response.code, 404, body)

    async def test_mount_without_from_follows_the_policy_not_the_tokens_scopes(self) -> None:
        await self.push_image_as("admin", "public/base", "v1", b"base layer")
        await self.push_image_as("carol", "team/secret", "v1", b"secret layer")
        token = await self.token("ci", "repository:app:pull,push")
        response, body = await self.request(
            "POST", f"/v2/app/blobs/uploads/?mount={sha256(b'secret layer')}", headers=bearer(token),
        )
        self.assertEqual(response.code, 202, body)
        response, body = await self.request(
            "POST", f"/v2/app/blobs/uploads/?mount={sha256(b'base layer')}", headers=bearer(token),
        )
        self.assertEqual(response.code, 201, body)

    async def test_catalog_needs_the_catalog_scope_and_is_filtered(self) -> None:
        for repository in ("app", "public/a", "team/secret"):
            await self.push_image_as("admin", repository, "v1", repository.encode())
        response, body = await self.request("GET", "/v2/_catalog")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"),
                         [self.challenge("registry:catalog:*")])
        token = await self.token(None, "registry:catalog:*")
        response, body = await self.request("GET", "/v2/_catalog", headers=bearer(token))
        self.assertEqual((response.code, json.loads(body)["repositories"]), (200, ["public/a"]))


class TokenAttackTests(TokenRegistryTestCase):
    async def test_expired(self) -> None:
        now = int(reactor.seconds())  # type: ignore[attr-defined]
        await self.assertTokenRefused(self.forge(exp=now - 120, nbf=now - 600, iat=now - 600))

    async def test_not_yet_valid(self) -> None:
        now = int(reactor.seconds())  # type: ignore[attr-defined]
        await self.assertTokenRefused(self.forge(nbf=now + 600, iat=now + 600, exp=now + 900))

    async def test_tampered(self) -> None:
        token = await self.token("reader", "repository:team/app:pull,push")
        header, payload, signature = token.split(".")
        claims = claims_of(token)
        claims["access"] = [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
        forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
        await self.assertTokenRefused(forged)

    async def test_signed_alg_none(self) -> None:
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims_of(self.forge())).encode())
        await self.assertTokenRefused(f"{header}.{payload}.")

    async def test_signed_hs256_with_the_public_key(self) -> None:
        public_pem = self.signing_key.public_pem()
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.signing_key.kid}).encode())
        payload = _b64(json.dumps(claims_of(self.forge())).encode())
        signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        await self.assertTokenRefused(f"{header}.{payload}.{_b64(signature)}")

    async def test_wrong_audience(self) -> None:
        await self.assertTokenRefused(self.forge(aud="another-registry"))

    async def test_wrong_issuer(self) -> None:
        await self.assertTokenRefused(self.forge(iss="someone-else"))

    async def test_signed_by_another_key(self) -> None:
        other = SigningKey.generate("ES256")
        await self.assertTokenRefused(self.forge(key=other.private_key))


class ExternalIssuerTests(TokenRegistryTestCase):
    """Tokens from an external issuer (a JWKS file), whose access claims are authoritative."""

    def auth_settings(self) -> AuthSettings:
        if not hasattr(self, "settings"):
            directory = os.path.abspath(self.mktemp())
            table = auth_table(directory, "token")
            self.external = SigningKey.generate("RS256")
            jwks = os.path.join(directory, "external.jwks")
            with open(jwks, "w") as handle:
                json.dump(self.external.jwks(), handle)
            table["token"]["trusted"] = [{"issuer": "https://auth.example", "keys": jwks,
                                          "algorithms": ["RS256"]}]
            self.settings = AuthSettings.from_dict(table, directory)
        return self.settings

    def external_token(self, **overrides: Any) -> str:
        now = int(reactor.seconds())  # type: ignore[attr-defined]
        payload: dict[str, Any] = {
            "iss": "https://auth.example", "sub": "robot", "aud": SERVICE, "exp": now + 300, "nbf": now,
            "access": [{"type": "repository", "name": "robots/app", "actions": ["pull", "push"]}],
        }
        payload.update(overrides)
        return jwt.encode(payload, self.external.private_key, algorithm="RS256",
                          headers={"kid": self.external.kid})

    async def test_external_token_grants_its_access_claims(self) -> None:
        response, body = await self.request(
            "POST", f"/v2/robots/app/blobs/uploads/?digest={sha256(b'x')}", data=b"x",
            headers=bearer(self.external_token()),
        )
        self.assertEqual(response.code, 201, body)
        response, body = await self.request(
            "POST", f"/v2/app/blobs/uploads/?digest={sha256(b'x')}", data=b"x",
            headers=bearer(self.external_token()),
        )
        self.assertDenied(response, body, "create", "app")

    async def test_external_key_cannot_sign_for_the_built_in_issuer(self) -> None:
        await self.assertTokenRefused(self.forge(key=self.external.private_key, algorithm="RS256"))

    async def test_external_token_with_a_confused_algorithm(self) -> None:
        public = self.external.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header = _b64(json.dumps({"alg": "HS256", "kid": self.external.kid}).encode())
        payload = _b64(json.dumps(claims_of(self.external_token())).encode())
        signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        response, body = await self.request(
            "POST", f"/v2/robots/app/blobs/uploads/?digest={sha256(b'x')}", data=b"x",
            headers=bearer(f"{header}.{payload}.{_b64(signature)}"),
        )
        self.assertError(response, body, 401, "UNAUTHORIZED")
        await self.assertNothingWritten()


class TokenRateLimitAndMetricsTests(TokenRegistryTestCase):
    def auth_settings(self) -> AuthSettings:
        import attrs

        from txoci.auth.ratelimit import BucketPolicy

        return attrs.evolve(super().auth_settings(), per_user=BucketPolicy(burst=2, interval=60.0))

    async def test_password_guessing_at_the_token_endpoint_is_limited(self) -> None:
        for _ in range(2):
            response, body = await self.request("GET", "/token", headers=basic("carol", "guess"))
            self.assertEqual(response.code, 401, body)
        response, body = await self.request("GET", "/token", headers=basic("carol", "guess"))
        self.assertEqual((response.code, json.loads(body)["error"]), (429, "slow_down"))
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["60"])
        response, body = await self.request("GET", "/token", headers=basic("carol"))
        self.assertEqual(response.code, 429, body)

    async def test_metrics_take_an_admins_bearer_token(self) -> None:
        response, body = await self.request("GET", "/metrics")
        self.assertError(response, body, 401, "UNAUTHORIZED")
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"), [self.challenge()])
        reader = await self.token("reader")
        response, body = await self.request("GET", "/metrics", headers=bearer(reader))
        self.assertError(response, body, 403, "DENIED")
        admin = await self.token("admin")
        response, body = await self.request("GET", "/metrics", headers=bearer(admin))
        self.assertEqual(response.code, 200, body)


class ChallengeInjectionTests(TokenRegistryTestCase):
    async def test_a_name_with_quotes_or_line_breaks_never_reaches_the_challenge(self) -> None:
        # A line break matches no route at all; a quote is an invalid name.
        for name, status, code in [("app%22,realm=%22https://evil", 400, "NAME_INVALID"),
                                   ("app%0d%0aSet-Cookie:%20x=1", 404, "UNSUPPORTED")]:
            response, body = await self.request("GET", f"/v2/{name}/tags/list")
            self.assertError(response, body, status, code)
            self.assertIsNone(response.headers.getRawHeaders("www-authenticate"))
            self.assertIsNone(response.headers.getRawHeaders("set-cookie"))
