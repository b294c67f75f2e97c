"""The ``[auth]`` table: every mistake stops start-up with the key and the problem."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.auth.fixtures import auth_table
from txoci.auth.config import AuthConfigError, AuthSettings
from txoci.auth.tokens import SigningKey


class AuthTableTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def table(self, mode: str = "token", **changes: Any) -> dict[str, Any]:
        table = auth_table(self.directory, mode)
        for dotted, value in changes.items():
            *path, last = dotted.split("__")
            target = table
            for part in path:
                target = target[part]
            if value is None:
                del target[last]
            else:
                target[last] = value
        return table

    def refused(self, table: dict[str, Any]) -> str:
        return str(self.assertRaises(AuthConfigError, AuthSettings.from_dict, table, self.directory))

    def test_valid_tables_load(self) -> None:
        basic = AuthSettings.from_dict(self.table("basic"), self.directory)
        self.assertEqual((basic.mode, basic.token, basic.issues_tokens), ("basic", None, False))
        token = AuthSettings.from_dict(self.table("token"), self.directory)
        self.assertTrue(token.issues_tokens)

    def test_mode_and_unknown_keys(self) -> None:
        self.assertIn("auth.mode: expected one of basic, token", self.refused(self.table(mode="open")))
        self.assertIn("auth.colour: unknown key", self.refused(self.table(colour="blue")))
        self.assertIn("auth.token.lifetime: unknown key", self.refused(self.table(token__lifetime=3)))

    def test_the_policy_is_required_and_checked(self) -> None:
        self.assertIn("auth.access: required", self.refused(self.table(access=None)))
        refused = self.refused(self.table(access={"adminPolicy": {"user": ["a"]}}))
        self.assertIn("auth.access.adminPolicy.user: unknown key", refused)

    def test_basic_needs_htpasswd_and_no_token_table(self) -> None:
        self.assertIn("auth.htpasswd: required", self.refused(self.table("basic", htpasswd=None)))
        table = self.table("basic")
        table["token"] = {"service": "x"}
        self.assertIn("auth.token: only used when mode is 'token'", self.refused(table))

    def test_token_mode_needs_an_issuer(self) -> None:
        self.assertIn("auth.token: token mode needs 'key'", self.refused(self.table(token__key=None)))
        self.assertIn("auth.token.service: required", self.refused(self.table(token__service=None)))

    def test_bad_key_files(self) -> None:
        path = os.path.join(self.directory, "public.pem")
        with open(path, "wb") as handle:
            handle.write(SigningKey.generate().public_pem())
        self.assertIn("auth.token.key:", self.refused(self.table(token__key=path)))
        self.assertIn("auth.token.key: cannot read", self.refused(self.table(token__key="missing.pem")))

    def test_quotes_never_reach_a_challenge(self) -> None:
        self.assertIn("auth.realm: must not contain quotes", self.refused(self.table(realm='a"b')))
        self.assertIn("auth.token.service: must not contain quotes",
                      self.refused(self.table(token__service='a",x="')))

    def test_numbers(self) -> None:
        self.assertIn("auth.token.ttl: must be at least 60", self.refused(self.table(token__ttl=30)))
        self.assertIn("auth.token.leeway:", self.refused(self.table(token__leeway=3600)))
        self.assertIn("auth.rate-limit.user-burst: expected an integer",
                      self.refused(self.table(**{"rate-limit": {"user-burst": "many"}})))
        self.assertIn("auth.metrics: expected one of", self.refused(self.table(metrics="everyone")))

    def test_external_issuers(self) -> None:
        jwks = os.path.join(self.directory, "issuer.jwks")
        private = SigningKey.generate("ES256")
        document = private.jwks()
        with open(jwks, "w") as handle:
            json.dump(document, handle)
        trusted = [{"issuer": "https://auth.example", "keys": jwks}]
        settings = AuthSettings.from_dict(self.table(token__trusted=trusted), self.directory)
        assert settings.token is not None
        self.assertEqual(settings.token.trusted[0].issuer, "https://auth.example")

        hmac_allowed = [{"issuer": "https://auth.example", "keys": jwks, "algorithms": ["HS256"]}]
        self.assertIn("auth.token.trusted[0].algorithms: 'HS256' is not allowed",
                      self.refused(self.table(token__trusted=hmac_allowed)))
        document["keys"][0]["d"] = "secret"
        with open(jwks, "w") as handle:
            json.dump(document, handle)
        self.assertIn("holds a private key", self.refused(self.table(token__trusted=trusted)))
        with open(jwks, "w") as handle:
            json.dump(private.jwks(), handle)
        self.assertIn("auth.token.realm: required without the built-in issuer",
                      self.refused(self.table(token__key=None, token__trusted=trusted)))
