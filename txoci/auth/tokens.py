"""
Issuing and verifying registry bearer tokens (auth-jwt.md, auth-token.md, auth-oauth.md).

:class:`TokenIssuer` makes short-lived JWTs signed with ES256 (an EC P-256 key) or RS256 (an RSA
key of at least 2048 bits).  The header has ``typ: JWT``, ``alg`` and ``kid``; the claims are
``iss``, ``sub`` (``""`` for an anonymous caller), ``aud`` (the ``service``), ``exp``, ``nbf``,
``iat``, ``jti`` and ``access`` -- exactly auth-jwt.md's claim set.  ``exp`` is at least 60 seconds
after ``iat`` (auth-token.md: never hand out a token with less than 60 seconds to live).

Key ids: the ``kid`` we write is Docker's libtrust form -- the SHA-256 of the DER
SubjectPublicKeyInfo, truncated to 240 bits, base32-encoded and split into twelve
colon-separated groups of four (``PYYO:TEWU:...``; the form in auth-jwt.md's example).
Distribution's token verifier looks keys from its ``rootcertbundle`` up by exactly this id, so
txoci's tokens verify there too.  When verifying, a key is found by its libtrust id, its RFC 7638
JWK thumbprint, or the ``kid`` a JWKS file gives it.

:class:`TokenVerifier` accepts bearer tokens from the built-in issuer or an external one.  It
checks, and refuses with a :class:`TokenError` whose ``reason`` names the check:

- the algorithm against an allow-list of asymmetric algorithms (``none`` and HMAC can never be
  configured) that also fits the key type, so an HS256 token "signed" with the public key, or an
  RS256 header over an EC key, never reaches signature verification;
- the signature, with the key named by ``kid`` (or, without ``kid``, each configured key whose
  type fits the algorithm);
- ``iss`` against the trusted issuers and ``aud`` against our service name;
- ``exp`` (required), ``nbf`` and ``iat`` against :meth:`IReactorTime.seconds` with a small
  clock-skew allowance (``leeway``, 30 seconds by default);
- the shape of the ``access`` claim (:func:`txoci.auth.scope.parse_access_claim`).

Refresh tokens (the OAuth2 ``refresh_token`` grant, auth-oauth.md) are JWTs from the same issuer
with ``"txoci_use": "refresh"`` and no ``access``; the verifier refuses them as bearer tokens and
:meth:`TokenVerifier.verify_refresh` refuses anything else.

Errors never include the token; messages are safe to log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from twisted.internet.interfaces import IReactorTime

from txoci.auth.scope import ResourceScope, ScopeError, access_claim, parse_access_claim

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_LEEWAY",
    "DEFAULT_TTL",
    "IssuedToken",
    "SigningKey",
    "TokenError",
    "TokenIssuer",
    "TokenVerifier",
    "TrustedKey",
    "VerifiedToken",
    "jwk_thumbprint",
    "libtrust_key_id",
    "load_jwks",
    "load_public_keys_pem",
    "load_trusted_keys",
]

#: Asymmetric algorithms a verifier accepts unless configured otherwise.
DEFAULT_ALGORITHMS: frozenset[str] = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
_FORBIDDEN_ALGORITHMS = {"none", "HS256", "HS384", "HS512"}
DEFAULT_TTL = 300
MIN_TTL = 60
DEFAULT_REFRESH_TTL = 7 * 24 * 3600
DEFAULT_LEEWAY = 30
#: Longest bearer token we even try to decode.
MAX_TOKEN_LENGTH = 16384
_REFRESH_USE = "refresh"
_USE_CLAIM = "txoci_use"

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})


class TokenError(Exception):
    """A token was refused.  ``reason`` is one of: ``malformed``, ``algorithm``, ``key``,
    ``signature``, ``issuer``, ``audience``, ``expired``, ``not_yet_valid``, ``claims``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def libtrust_key_id(key: PublicKey | PrivateKey) -> str:
    """Docker's libtrust key id: base32(SHA-256(DER SPKI)[:30]) in 12 colon-separated groups of 4."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


def _jwk(key: PublicKey) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    return dict(RSAAlgorithm.to_jwk(key, as_dict=True))


def jwk_thumbprint(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of ``key``."""
    jwk = _jwk(key)
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _algorithms_for(key: PublicKey) -> frozenset[str]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({name}) if name else frozenset()
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS if key.key_size >= 2048 else frozenset()
    return frozenset()


@attrs.frozen
class TrustedKey:
    """A public key tokens may be signed with, the ids it answers to and the algorithms it fits."""

    public_key: PublicKey
    kids: frozenset[str]
    algorithms: frozenset[str]

    @classmethod
    def of(cls, key: PublicKey, kid: str | None = None) -> TrustedKey:
        algorithms = _algorithms_for(key)
        if not algorithms:
            raise ValueError("only RSA keys of 2048 bits or more and EC P-256/P-384/P-521 keys are supported")
        kids = {libtrust_key_id(key), jwk_thumbprint(key)}
        if kid:
            kids.add(kid)
        return cls(key, frozenset(kids), algorithms)


def _as_public(key: Any, where: str) -> PublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError(f"{where}: only RSA and EC public keys are supported")
    return key


def load_public_keys_pem(data: bytes, source: str = "PEM data") -> list[TrustedKey]:
    """Trusted keys from PEM text holding ``PUBLIC KEY`` and/or ``CERTIFICATE`` blocks (a bundle)."""
    keys: list[TrustedKey] = []
    blocks = data.split(b"-----BEGIN ")[1:]
    for index, block in enumerate(blocks, start=1):
        pem = b"-----BEGIN " + block
        where = f"{source}, PEM block {index}"
        try:
            if pem.startswith(b"-----BEGIN CERTIFICATE-----"):
                public = _as_public(x509.load_pem_x509_certificate(pem).public_key(), where)
            elif pem.startswith((b"-----BEGIN PUBLIC KEY-----", b"-----BEGIN RSA PUBLIC KEY")):
                public = _as_public(serialization.load_pem_public_key(pem), where)
            else:
                raise ValueError(f"{where}: expected a certificate or public key (never a private key)")
        except ValueError as exc:
            raise ValueError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
        keys.append(TrustedKey.of(public))
    if not keys:
        raise ValueError(f"{source}: no public key or certificate found")
    return keys


def load_jwks(data: bytes | str | Mapping[str, Any], source: str = "JWKS") -> list[TrustedKey]:
    """Trusted keys from a JWK Set (RFC 7517); symmetric (``oct``) keys are refused."""
    try:
        document = json.loads(data) if isinstance(data, bytes | str) else data
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError(f"{source}: expected an object with a 'keys' list")
    keys: list[TrustedKey] = []
    for index, jwk in enumerate(document["keys"]):
        where = f"{source}, key {index}"
        if not isinstance(jwk, Mapping):
            raise ValueError(f"{where}: not an object")
        kty = jwk.get("kty")
        if "d" in jwk:
            raise ValueError(f"{where}: holds a private key; a JWKS for verification must not")
        try:
            if kty == "EC":
                public: Any = ECAlgorithm.from_jwk(dict(jwk))
            elif kty == "RSA":
                public = RSAAlgorithm.from_jwk(dict(jwk))
            else:
                raise ValueError(f"key type {kty!r} is not supported (only EC and RSA; never symmetric keys)")
        except (jwt.InvalidKeyError, ValueError, KeyError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        kid = jwk.get("kid")
        trusted = TrustedKey.of(_as_public(public, where), kid if isinstance(kid, str) else None)
        alg = jwk.get("alg")
        if isinstance(alg, str):
            if alg not in trusted.algorithms:
                raise ValueError(f"{where}: 'alg' {alg!r} does not fit this key or is not allowed")
            trusted = attrs.evolve(trusted, algorithms=frozenset({alg}))
        keys.append(trusted)
    if not keys:
        raise ValueError(f"{source}: no keys")
    return keys


def load_trusted_keys(path: str) -> list[TrustedKey]:
    """Load a PEM public key, a PEM certificate bundle or a JWKS file (JSON), by content."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data.lstrip().startswith(b"{"):
        return load_jwks(data, path)
    return load_public_keys_pem(data, path)


@attrs.frozen
class SigningKey:
    """The built-in issuer's private key, its algorithm and its libtrust ``kid``."""

    private_key: PrivateKey
    algorithm: str
    kid: str

    @classmethod
    def of(cls, key: Any) -> SigningKey:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name != "secp256r1":
                raise ValueError("the token signing key must be EC P-256 (ES256) or RSA >= 2048 bits (RS256)")
            return cls(key, "ES256", libtrust_key_id(key))
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                raise ValueError("an RSA token signing key must have at least 2048 bits")
            return cls(key, "RS256", libtrust_key_id(key))
        raise ValueError("the token signing key must be EC P-256 (ES256) or RSA >= 2048 bits (RS256)")

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> SigningKey:
        """Load an unencrypted (or ``password``-protected) PEM private key."""
        return cls.of(serialization.load_pem_private_key(data, password=password))

    @classmethod
    def generate(cls, algorithm: str = "ES256") -> SigningKey:
        """A fresh key for ``ES256`` or ``RS256``."""
        if algorithm == "ES256":
            return cls.of(ec.generate_private_key(ec.SECP256R1()))
        if algorithm == "RS256":
            return cls.of(rsa.generate_private_key(public_exponent=65537, key_size=3072))
        raise ValueError("the built-in issuer signs with ES256 or RS256")

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def trusted_key(self) -> TrustedKey:
        """This key as a :class:`TrustedKey` limited to its own algorithm, for the verifier."""
        return attrs.evolve(
            TrustedKey.of(self.private_key.public_key(), self.kid), algorithms=frozenset({self.algorithm})
        )

    def jwks(self) -> dict[str, Any]:
        """A JWK Set with the public key, for external registries that trust this issuer."""
        jwk = _jwk(self.private_key.public_key())
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return {"keys": [jwk]}


@attrs.frozen
class IssuedToken:
    """A token and the fields of the token endpoint's response (auth-token.md, auth-oauth.md)."""

    token: str
    expires_in: int
    issued_at: str
    access: tuple[ResourceScope, ...]

    def response(self) -> dict[str, Any]:
        """The JSON body for ``GET /token`` (``token`` and ``access_token`` are the same)."""
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": self.issued_at,
        }


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenIssuer:
    """The built-in token issuer: signs access and refresh tokens with one :class:`SigningKey`."""

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        clock: IReactorTime,
        *,
        ttl: int = DEFAULT_TTL,
        refresh_ttl: int = DEFAULT_REFRESH_TTL,
    ) -> None:
        if not issuer:
            raise ValueError("the token issuer name must not be empty")
        if ttl < MIN_TTL:
            raise ValueError(f"token lifetime must be at least {MIN_TTL} seconds (auth-token.md)")
        self.key = key
        self.issuer = issuer
        self.clock = clock
        self.ttl = ttl
        self.refresh_ttl = refresh_ttl

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims,
            self.key.private_key,
            algorithm=self.key.algorithm,
            headers={"typ": "JWT", "kid": self.key.kid},
        )

    def _base_claims(self, subject: str, audience: str, ttl: int) -> dict[str, Any]:
        now = int(self.clock.seconds())
        return {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + ttl,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(24),
        }

    def issue(self, subject: str, audience: str, access: Sequence[ResourceScope]) -> IssuedToken:
        """An access token for ``subject`` (``""`` when anonymous) holding ``access`` -- which must
        already be the intersection with policy (:func:`txoci.auth.scope.grant`)."""
        claims = self._base_claims(subject, audience, self.ttl)
        claims["access"] = access_claim(access)
        return IssuedToken(self._sign(claims), self.ttl, _rfc3339(claims["iat"]), tuple(access))

    def issue_refresh(self, subject: str, audience: str) -> str:
        """A refresh token for one subject and audience (auth-scope.md, "Refresh Tokens")."""
        if not subject:
            raise ValueError("anonymous callers get no refresh token")
        claims = self._base_claims(subject, audience, self.refresh_ttl)
        claims[_USE_CLAIM] = _REFRESH_USE
        return self._sign(claims)

    def verifier(self, *, leeway: int = DEFAULT_LEEWAY, audience: str) -> TokenVerifier:
        """A verifier trusting exactly this issuer and key."""
        return TokenVerifier([self.key.trusted_key()], {self.issuer}, audience, self.clock, leeway=leeway)


@attrs.frozen
class VerifiedToken:
    """A token that passed every check."""

    subject: str
    issuer: str
    audience: str
    access: tuple[ResourceScope, ...]
    expires_at: int
    jti: str | None
    claims: Mapping[str, Any] = attrs.field(repr=False)

    @property
    def anonymous(self) -> bool:
        return self.subject == ""


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


_NO_CLAIM_CHECKS: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


class TokenVerifier:
    """Verifies bearer tokens against trusted keys, issuers and our audience (service name).

    :param keys: the trusted public keys (:func:`load_trusted_keys`, :meth:`SigningKey.trusted_key`).
    :param issuers: the ``iss`` values accepted.
    :param audience: the ``service`` name this registry identifies as.
    :param clock: the reactor's clock (``twisted.internet.task.Clock`` in tests).
    :param algorithms: the allow-list; ``none`` and HMAC algorithms are refused here.
    :param leeway: clock-skew allowance in seconds for ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(
        self,
        keys: Iterable[TrustedKey],
        issuers: Iterable[str],
        audience: str,
        clock: IReactorTime,
        *,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = DEFAULT_LEEWAY,
    ) -> None:
        self.keys = tuple(keys)
        self.issuers = frozenset(issuers)
        self.audience = audience
        self.clock = clock
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        if not self.keys:
            raise ValueError("a token verifier needs at least one trusted key")
        if not self.issuers or "" in self.issuers:
            raise ValueError("a token verifier needs at least one non-empty trusted issuer")
        if not audience:
            raise ValueError("a token verifier needs the service name (audience)")
        bad = sorted(a for a in self.algorithms if a in _FORBIDDEN_ALGORITHMS or a not in DEFAULT_ALGORITHMS)
        if bad:
            allowed = ", ".join(sorted(DEFAULT_ALGORITHMS))
            raise ValueError(f"algorithm {bad[0]!r} may not be allowed (only {allowed})")
        if not 0 <= leeway <= 300:
            raise ValueError("the clock-skew leeway must be between 0 and 300 seconds")

    def _decode(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise TokenError("malformed", "the bearer token is not a JWS compact serialisation")
        try:
            header = _b64json(token.split(".", 1)[0])
        except (ValueError, UnicodeError) as exc:
            raise TokenError("malformed", "the token header is not base64url JSON") from exc
        if not isinstance(header, dict):
            raise TokenError("malformed", "the token header is not a JSON object")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenError("algorithm", f"token algorithm {str(alg)[:20]!r} is not allowed")
        if "crit" in header:
            raise TokenError("malformed", "the token has critical header parameters we do not understand")
        kid = header.get("kid")
        candidates = [k for k in self.keys if alg in k.algorithms]
        if kid is not None:
            if not isinstance(kid, str):
                raise TokenError("malformed", "the token's kid is not a string")
            candidates = [k for k in candidates if kid in k.kids]
        if not candidates:
            raise TokenError("key", "no trusted key matches the token's kid and algorithm")
        for key in candidates:
            try:
                claims = jwt.decode(token, key.public_key, algorithms=[alg], options=_NO_CLAIM_CHECKS)
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                message = f"the token could not be decoded ({type(exc).__name__})"
                raise TokenError("malformed", message) from exc
            if not isinstance(claims, dict):
                raise TokenError("malformed", "the token claims are not a JSON object")
            return claims
        raise TokenError("signature", "the token signature does not verify")

    def _check_time(self, claims: Mapping[str, Any]) -> int:
        now = self.clock.seconds()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise TokenError("claims", "the token has no numeric exp")
        if now > exp + self.leeway:
            raise TokenError("expired", "the token has expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TokenError("claims", f"the token's {name} is not numeric")
            if now + self.leeway < value:
                raise TokenError("not_yet_valid", f"the token is not valid yet ({name} is in the future)")
        return int(exp)

    def _verify(self, token: str) -> VerifiedToken:
        claims = self._decode(token)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in self.issuers:
            raise TokenError("issuer", "the token was not issued by a trusted issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise TokenError("audience", "the token is not meant for this registry (aud)")
        expires_at = self._check_time(claims)
        subject = claims.get("sub", "")
        if not isinstance(subject, str):
            raise TokenError("claims", "the token's sub is not a string")
        jti = claims.get("jti")
        try:
            access = parse_access_claim(claims.get("access"))
        except ScopeError as exc:
            raise TokenError("claims", f"the token's access claim is invalid: {exc}") from None
        return VerifiedToken(
            subject=subject,
            issuer=issuer,
            audience=self.audience,
            access=tuple(access),
            expires_at=expires_at,
            jti=jti if isinstance(jti, str) else None,
            claims=claims,
        )

    def verify(self, token: str) -> VerifiedToken:
        """Verify a bearer (access) token; raises :class:`TokenError`.  Refresh tokens are refused."""
        verified = self._verify(token)
        if verified.claims.get(_USE_CLAIM) == _REFRESH_USE:
            raise TokenError("claims", "a refresh token cannot be used as a bearer token")
        return verified

    def verify_refresh(self, token: str) -> VerifiedToken:
        """Verify a refresh token from the built-in issuer (for ``grant_type=refresh_token``)."""
        verified = self._verify(token)
        if verified.claims.get(_USE_CLAIM) != _REFRESH_USE or not verified.subject:
            raise TokenError("claims", "not a refresh token")
        return verified
