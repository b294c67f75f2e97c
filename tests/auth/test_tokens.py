"""Token issuing and verification, and every token attack the verifier can see (issue 5)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.auth.test_policy import CONFIG
from txoci.auth.policy import Policy, Subject
from txoci.auth.scope import check_access, grant, parse_scope
from txoci.auth.tokens import (
    DEFAULT_LEEWAY,
    SigningKey,
    TokenError,
    TokenIssuer,
    TokenVerifier,
    TrustedKey,
    jwk_thumbprint,
    libtrust_key_id,
    load_jwks,
    load_public_keys_pem,
    load_trusted_keys,
)

NOW = 1_800_000_000
SERVICE = "registry.example.com"
ISSUER = "txoci-token-issuer"

#: Generated once: RSA generation is slow.
EC_KEY = SigningKey.generate("ES256")
OTHER_EC_KEY = SigningKey.generate("ES256")
RSA_KEY = SigningKey.of(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": NOW + 300,
        "nbf": NOW,
        "iat": NOW,
        "jti": "j1",
        "access": [{"type": "repository", "name": "team/a", "actions": ["pull", "push"]}],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any], **headers: Any) -> str:
    header = {"typ": "JWT", "kid": key.kid}
    header.update(headers)
    return jwt.encode(payload, key.private_key, algorithm=key.algorithm, headers=header)


def sign_raw(key: SigningKey, payload: dict[str, Any]) -> str:
    """Sign claims PyJWT's encoder would refuse to write (such as a non-string iss)."""
    body = json.dumps(payload).encode()
    return jwt.api_jws.encode(body, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


class Fixture(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.issuer = TokenIssuer(EC_KEY, ISSUER, self.clock)
        self.verifier = self.issuer.verifier(audience=SERVICE)

    def refused(self, token: str, reason: str, verifier: TokenVerifier | None = None) -> TokenError:
        with self.assertRaises(TokenError) as caught:
            (verifier or self.verifier).verify(token)
        self.assertEqual(caught.exception.reason, reason, caught.exception.message)
        if len(token) > 8:
            self.assertNotIn(token, str(caught.exception))
        return caught.exception


class IssueTests(Fixture):
    def test_claims_and_header(self) -> None:
        access = parse_scope("repository:team/a:pull,push")
        issued = self.issuer.issue("alice", SERVICE, access)
        header = jwt.get_unverified_header(issued.token)
        self.assertEqual(header, {"alg": "ES256", "typ": "JWT", "kid": EC_KEY.kid})
        body = jwt.decode(issued.token, options={"verify_signature": False})
        self.assertEqual(set(body), {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"})
        self.assertEqual((body["iss"], body["sub"], body["aud"]), (ISSUER, "alice", SERVICE))
        self.assertEqual((body["iat"], body["nbf"], body["exp"]), (NOW, NOW, NOW + 300))
        self.assertEqual(
            body["access"], [{"type": "repository", "name": "team/a", "actions": ["pull", "push"]}]
        )
        self.assertEqual(issued.expires_in, 300)
        self.assertEqual(issued.issued_at, "2027-01-15T08:00:00Z")
        response = issued.response()
        self.assertEqual(response["token"], response["access_token"])

    def test_jti_is_unique(self) -> None:
        tokens = [self.issuer.issue("a", SERVICE, []).token for _ in range(20)]
        jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
        self.assertEqual(len(jtis), 20)

    def test_anonymous_subject_is_empty(self) -> None:
        verified = self.verifier.verify(self.issuer.issue("", SERVICE, []).token)
        self.assertTrue(verified.anonymous)
        self.assertRaises(ValueError, self.issuer.issue_refresh, "", SERVICE)

    def test_rs256(self) -> None:
        issuer = TokenIssuer(RSA_KEY, ISSUER, self.clock)
        token = issuer.issue("bob", SERVICE, parse_scope("repository:x:pull")).token
        self.assertEqual(jwt.get_unverified_header(token)["alg"], "RS256")
        self.assertEqual(issuer.verifier(audience=SERVICE).verify(token).subject, "bob")
        self.refused(token, "key")  # the EC verifier does not trust the RSA key

    def test_configuration_limits(self) -> None:
        self.assertRaises(ValueError, TokenIssuer, EC_KEY, ISSUER, self.clock, ttl=59)
        self.assertRaises(ValueError, TokenIssuer, EC_KEY, "", self.clock)
        self.assertRaises(ValueError, SigningKey.of, ec.generate_private_key(ec.SECP384R1()))
        self.assertRaises(
            ValueError, SigningKey.of, rsa.generate_private_key(public_exponent=65537, key_size=1024)
        )
        self.assertRaises(ValueError, SigningKey.generate, "HS256")
        round_trip = SigningKey.from_pem(EC_KEY.private_pem())
        self.assertEqual(round_trip.kid, EC_KEY.kid)

    def test_libtrust_kid_matches_the_spec_example(self) -> None:
        """auth-jwt.md's example key has kid PYYO:TEWU:...; we compute the same id."""
        key = ECAlgorithm.from_jwk(
            {
                "kty": "EC",
                "crv": "P-256",
                "x": "m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q",
                "y": "dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc",
            }
        )
        assert isinstance(key, ec.EllipticCurvePublicKey)
        self.assertEqual(libtrust_key_id(key), "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6")

    def test_rfc7638_thumbprint(self) -> None:
        """RFC 7638 section 3.1's example RSA key and thumbprint."""
        n = (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRX"
            "jBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaS"
            "qzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksIN"
            "HaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        )
        key = jwt.algorithms.RSAAlgorithm.from_jwk({"kty": "RSA", "n": n, "e": "AQAB"})
        assert isinstance(key, rsa.RSAPublicKey)
        self.assertEqual(jwk_thumbprint(key), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")


class VerifyTests(Fixture):
    def test_valid_token(self) -> None:
        verified = self.verifier.verify(sign(EC_KEY, claims()))
        self.assertEqual(verified.subject, "alice")
        self.assertEqual(verified.expires_at, NOW + 300)
        self.assertEqual([str(s) for s in verified.access], ["repository:team/a:pull,push"])

    def test_expired(self) -> None:
        token = self.issuer.issue("alice", SERVICE, []).token
        self.clock.advance(300 + DEFAULT_LEEWAY)
        self.assertEqual(self.verifier.verify(token).subject, "alice", "within the clock-skew allowance")
        self.clock.advance(1)
        self.refused(token, "expired")

    def test_not_yet_valid(self) -> None:
        token = sign(EC_KEY, claims(nbf=NOW + 60, iat=NOW))
        self.refused(token, "not_yet_valid")
        self.clock.advance(60 - DEFAULT_LEEWAY)
        self.verifier.verify(token)

    def test_issued_in_the_future(self) -> None:
        self.refused(sign(EC_KEY, claims(iat=NOW + 3600, nbf=None)), "not_yet_valid")

    def test_exp_is_required_and_numeric(self) -> None:
        self.refused(sign(EC_KEY, claims(exp=None)), "claims")
        self.refused(sign(EC_KEY, claims(exp="soon")), "claims")
        self.refused(sign(EC_KEY, claims(exp=True)), "claims")

    def test_tampered_payload(self) -> None:
        token = sign(EC_KEY, claims())
        header, _, signature = token.split(".")
        greedy = claims(access=[{"type": "repository", "name": "team/a", "actions": ["*"]}])
        self.refused(f"{header}.{b64json(greedy)}.{signature}", "signature")

    def test_tampered_signature_and_header(self) -> None:
        token = sign(EC_KEY, claims())
        header, payload, signature = token.split(".")
        flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        self.refused(f"{header}.{payload}.{flipped}", "signature")
        self.refused(f"{header}.{payload}.", "signature")
        other_header = b64json({"typ": "JWT", "alg": "ES256", "kid": EC_KEY.kid, "x": 1})
        self.refused(f"{other_header}.{payload}.{signature}", "signature")

    def test_alg_none(self) -> None:
        for alg in ("none", "None", "NONE"):
            token = f"{b64json({'typ': 'JWT', 'alg': alg})}.{b64json(claims())}."
            self.refused(token, "algorithm")
            token = f"{b64json({'typ': 'JWT', 'alg': alg, 'kid': EC_KEY.kid})}.{b64json(claims())}."
            self.refused(token, "algorithm")

    def test_hs256_signed_with_the_public_key(self) -> None:
        """The classic key-confusion attack: HMAC keyed with the verifier's public key PEM."""
        for key in (EC_KEY, RSA_KEY):
            for alg, digest in (
                ("HS256", hashlib.sha256),
                ("HS384", hashlib.sha384),
                ("HS512", hashlib.sha512),
            ):
                signing_input = f"{b64json({'typ': 'JWT', 'alg': alg, 'kid': key.kid})}.{b64json(claims())}"
                mac = hmac.new(key.public_pem(), signing_input.encode(), digest).digest()
                token = f"{signing_input}.{b64(mac)}"
                verifier = TokenVerifier([key.trusted_key()], {ISSUER}, SERVICE, self.clock)
                self.refused(token, "algorithm", verifier)

    def test_algorithm_must_fit_the_key(self) -> None:
        # An RS256 header naming the EC key never reaches signature verification.
        signing_input = f"{b64json({'typ': 'JWT', 'alg': 'RS256', 'kid': EC_KEY.kid})}.{b64json(claims())}"
        self.refused(f"{signing_input}.{b64(b'x' * 256)}", "key")
        # ES384 is allowed in general but not for a P-256 key.
        self.refused(f"{b64json({'alg': 'ES384', 'kid': EC_KEY.kid})}.{b64json(claims())}.AAAA", "key")

    def test_wrong_audience(self) -> None:
        self.refused(sign(EC_KEY, claims(aud="other-registry")), "audience")
        self.refused(sign(EC_KEY, claims(aud=None)), "audience")
        self.refused(sign(EC_KEY, claims(aud=[SERVICE + "x"])), "audience")
        self.verifier.verify(sign(EC_KEY, claims(aud=["other", SERVICE])))

    def test_wrong_issuer(self) -> None:
        self.refused(sign(EC_KEY, claims(iss="evil")), "issuer")
        self.refused(sign(EC_KEY, claims(iss=None)), "issuer")
        self.refused(sign_raw(EC_KEY, claims(iss=[ISSUER])), "issuer")

    def test_signed_by_an_untrusted_key(self) -> None:
        self.refused(sign(OTHER_EC_KEY, claims()), "key")
        # Even claiming the trusted kid does not help.
        self.refused(sign(OTHER_EC_KEY, claims(), kid=EC_KEY.kid), "signature")
        # Without a kid every fitting trusted key is tried, and none verifies.
        token = jwt.encode(claims(), OTHER_EC_KEY.private_key, algorithm="ES256")
        self.refused(token, "signature")

    def test_no_kid_uses_the_trusted_keys(self) -> None:
        token = jwt.encode(claims(), EC_KEY.private_key, algorithm="ES256")
        self.assertEqual(self.verifier.verify(token).subject, "alice")

    def test_malformed(self) -> None:
        for token in ["", "abc", "a.b", "a.b.c.d", "!!!.###.$$$", "x" * 20000, f"{b64(b'[1]')}.e30.AA"]:
            self.refused(token, "malformed")
        self.refused(sign(EC_KEY, claims(), crit=["exp"]), "malformed")
        self.refused(f"{b64json({'alg': 'ES256', 'kid': 5})}.{b64json(claims())}.AAAA", "malformed")

    def test_bad_access_claim(self) -> None:
        self.refused(sign(EC_KEY, claims(access="repository:team/a:*")), "claims")
        self.refused(sign_raw(EC_KEY, claims(sub=5)), "claims")

    def test_token_for_repository_a_used_on_b(self) -> None:
        verified = self.verifier.verify(sign(EC_KEY, claims()))
        self.assertTrue(check_access(verified.access, "team/a", "create").allowed)
        self.assertFalse(check_access(verified.access, "team/b", "read").allowed)
        self.assertFalse(check_access(verified.access, "team/a", "delete").allowed)

    def test_more_scope_than_allowed_never_reaches_the_token(self) -> None:
        policy = Policy.from_dict(CONFIG)
        access = grant(
            parse_scope("repository:app:pull,push,delete repository:team/a:pull"), policy, Subject("reader")
        )
        verified = self.verifier.verify(self.issuer.issue("reader", SERVICE, access).token)
        self.assertEqual([str(s) for s in verified.access], ["repository:app:pull"])
        self.assertFalse(check_access(verified.access, "app", "create").allowed)
        self.assertFalse(check_access(verified.access, "team/a", "read").allowed)

    def test_refresh_tokens_are_separate(self) -> None:
        refresh = self.issuer.issue_refresh("alice", SERVICE)
        self.refused(refresh, "claims")
        verified = self.verifier.verify_refresh(refresh)
        self.assertEqual((verified.subject, verified.access), ("alice", ()))
        access_token = self.issuer.issue("alice", SERVICE, []).token
        with self.assertRaises(TokenError):
            self.verifier.verify_refresh(access_token)
        self.clock.advance(7 * 24 * 3600 + DEFAULT_LEEWAY + 1)
        with self.assertRaises(TokenError) as caught:
            self.verifier.verify_refresh(refresh)
        self.assertEqual(caught.exception.reason, "expired")

    def test_verifier_configuration_refuses_none_and_hmac(self) -> None:
        keys = [EC_KEY.trusted_key()]
        for algorithms in (["none"], ["HS256"], ["ES256", "HS512"], ["RS1"]):
            self.assertRaises(
                ValueError, TokenVerifier, keys, {ISSUER}, SERVICE, self.clock, algorithms=algorithms
            )
        self.assertRaises(ValueError, TokenVerifier, [], {ISSUER}, SERVICE, self.clock)
        self.assertRaises(ValueError, TokenVerifier, keys, set(), SERVICE, self.clock)
        self.assertRaises(ValueError, TokenVerifier, keys, {""}, SERVICE, self.clock)
        self.assertRaises(ValueError, TokenVerifier, keys, {ISSUER}, "", self.clock)
        self.assertRaises(ValueError, TokenVerifier, keys, {ISSUER}, SERVICE, self.clock, leeway=3600)

    def test_allow_list_narrower_than_key(self) -> None:
        rsa_trusted = TrustedKey.of(RSA_KEY.private_key.public_key())
        verifier = TokenVerifier([rsa_trusted], {ISSUER}, SERVICE, self.clock, algorithms=["PS256"])
        self.refused(sign(RSA_KEY, claims()), "algorithm", verifier)


def self_signed(key: SigningKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token issuer")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key.private_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class ExternalIssuerTests(Fixture):
    def external(self, keys: list[TrustedKey]) -> TokenVerifier:
        return TokenVerifier(keys, {"auth.example.com"}, SERVICE, self.clock)

    def test_pem_public_key(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as handle:
            handle.write(RSA_KEY.public_pem())
        verifier = self.external(load_trusted_keys(path))
        token = sign(RSA_KEY, claims(iss="auth.example.com"))
        self.assertEqual(verifier.verify(token).issuer, "auth.example.com")
        self.refused(sign(RSA_KEY, claims()), "issuer", verifier)

    def test_certificate_bundle_with_libtrust_kids(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as handle:
            handle.write(self_signed(EC_KEY) + b"\n" + self_signed(RSA_KEY))
        keys = load_trusted_keys(path)
        self.assertEqual(len(keys), 2)
        verifier = self.external(keys)
        for key in (EC_KEY, RSA_KEY):
            self.assertEqual(verifier.verify(sign(key, claims(iss="auth.example.com"))).subject, "alice")
        self.refused(sign(OTHER_EC_KEY, claims(iss="auth.example.com")), "key", verifier)

    def test_jwks_with_its_own_kids_and_thumbprints(self) -> None:
        jwks = EC_KEY.jwks()
        jwks["keys"][0]["kid"] = "custom-kid"
        jwks["keys"].append(dict(RSA_KEY.jwks()["keys"][0], kid="rsa-1"))
        path = self.mktemp()
        with open(path, "w") as handle:
            json.dump(jwks, handle)
        verifier = self.external(load_trusted_keys(path))
        payload = claims(iss="auth.example.com")
        self.assertEqual(verifier.verify(sign(EC_KEY, payload, kid="custom-kid")).subject, "alice")
        thumb = jwk_thumbprint(EC_KEY.private_key.public_key())  # type: ignore[arg-type]
        verifier.verify(sign(EC_KEY, payload, kid=thumb))
        verifier.verify(sign(RSA_KEY, payload, kid="rsa-1"))
        self.refused(sign(EC_KEY, payload, kid="rsa-1"), "key", verifier)

    def test_jwks_refuses_symmetric_private_and_mismatched_keys(self) -> None:
        self.assertRaises(ValueError, load_jwks, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})
        private = json.loads(ECAlgorithm.to_jwk(EC_KEY.private_key))
        self.assertRaises(ValueError, load_jwks, {"keys": [private]})
        bad_alg = dict(EC_KEY.jwks()["keys"][0], alg="HS256")
        self.assertRaises(ValueError, load_jwks, {"keys": [bad_alg]})
        self.assertRaises(ValueError, load_jwks, b"not json")
        self.assertRaises(ValueError, load_jwks, {"keys": []})
        self.assertRaises(ValueError, load_jwks, {"nokeys": 1})

    def test_pem_refuses_private_keys_and_empty_files(self) -> None:
        self.assertRaises(ValueError, load_public_keys_pem, EC_KEY.private_pem())
        self.assertRaises(ValueError, load_public_keys_pem, b"")
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        pem = small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.assertRaises(ValueError, load_public_keys_pem, pem)
