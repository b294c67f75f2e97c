"""
The ``[auth]`` table of ``txoci.toml``: parsed and checked into :class:`AuthSettings`.

Every problem is an :class:`AuthConfigError` whose message starts with the dotted key
(``auth.token.key: ...``), so a bad file fails start-up saying where.  Nothing falls back to an
open registry: once an ``[auth]`` table is present, it must describe a working setup.

Schema (docs/configuration.md has the full reference)::

    [auth]
    mode = "basic"                    # or "token": which challenge /v2 answers with
    realm = "txoci"                   # Basic realm (mode = "basic")
    htpasswd = "users.htpasswd"       # bcrypt users; paths are relative to the config file
    metrics = "admin"                 # who may GET /metrics: admin, authenticated or anonymous

    [auth.token]                      # mode = "token"
    service = "registry.example.com"  # the audience (aud) and the challenge's service
    realm = "https://registry.example.com/token"  # optional with the built-in issuer
    issuer = "txoci"                  # the built-in issuer's iss; needs key
    key = "token-signing.pem"         # EC P-256 or RSA >= 2048 private key (PEM)
    ttl = 300                         # seconds an access token lives
    refresh-ttl = 604800              # seconds a refresh token lives
    leeway = 30                       # clock skew allowed when verifying

    [[auth.token.trusted]]            # external issuers whose tokens are accepted
    issuer = "https://auth.example.com"
    keys = "issuer.jwks"              # PEM public key, certificate bundle or JWKS
    algorithms = ["RS256"]            # optional allow-list

    [auth.rate-limit]
    address-burst = 20
    address-interval = 15.0
    user-burst = 10
    user-interval = 30.0

    [auth.access]                     # the policy: see txoci.auth.policy
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from txoci.auth.htpasswd import HtpasswdError, HtpasswdFile
from txoci.auth.policy import Policy, PolicyError, check_table
from txoci.auth.ratelimit import BucketPolicy
from txoci.auth.tokens import (
    DEFAULT_ALGORITHMS,
    DEFAULT_LEEWAY,
    DEFAULT_REFRESH_TTL,
    DEFAULT_TTL,
    MIN_TTL,
    SigningKey,
    TrustedKey,
    load_trusted_keys,
)

__all__ = ["AuthConfigError", "AuthSettings", "ExternalIssuer", "TokenSettings", "METRICS_ACCESS"]

MODES = ("basic", "token")
#: Who may read ``/metrics`` when authentication is on.
METRICS_ACCESS = ("admin", "authenticated", "anonymous")


class AuthConfigError(ValueError):
    """The ``[auth]`` table is invalid; the message names the key and the problem."""


def _table(value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    return check_table(value, allowed, key, AuthConfigError)


def _string(table: Mapping[str, Any], name: str, key: str, default: str | None = None) -> str:
    value = table.get(name, default)
    if value is None:
        raise AuthConfigError(f"{key}.{name}: required")
    if not isinstance(value, str) or not value:
        raise AuthConfigError(f"{key}.{name}: expected a non-empty string")
    return value


def _number(table: Mapping[str, Any], name: str, key: str, default: float, *, integer: bool) -> Any:
    value = table.get(name, default)
    wrong_type = not isinstance(value, int | float) or (integer and not isinstance(value, int))
    if isinstance(value, bool) or wrong_type:
        raise AuthConfigError(f"{key}.{name}: expected {'an integer' if integer else 'a number'}")
    if value <= 0:
        raise AuthConfigError(f"{key}.{name}: must be positive")
    return value


def _quotable(value: str, key: str) -> str:
    """``value``, if it can go inside a quoted ``WWW-Authenticate`` parameter as it is."""
    if any(c in value for c in '"\\') or not value.isprintable():
        raise AuthConfigError(f"{key}: must not contain quotes, backslashes or control characters")
    return value


def _path(value: str, base_dir: str) -> str:
    return value if os.path.isabs(value) else os.path.join(base_dir, value)


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise AuthConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None


@attrs.frozen
class ExternalIssuer:
    """An external token issuer: its ``iss``, its keys and the algorithms it may use."""

    issuer: str
    keys: tuple[TrustedKey, ...]
    algorithms: frozenset[str]


@attrs.frozen
class TokenSettings:
    """``[auth.token]``: the built-in issuer (when ``signing_key`` is set) and trusted issuers."""

    service: str
    realm: str | None
    issuer: str
    signing_key: SigningKey | None = attrs.field(repr=False)
    ttl: int = DEFAULT_TTL
    refresh_ttl: int = DEFAULT_REFRESH_TTL
    leeway: int = DEFAULT_LEEWAY
    trusted: tuple[ExternalIssuer, ...] = ()

    @classmethod
    def from_dict(cls, value: Any, base_dir: str, key: str = "auth.token") -> TokenSettings:
        table = _table(
            value, key, ("service", "realm", "issuer", "key", "ttl", "refresh-ttl", "leeway", "trusted")
        )
        service = _quotable(_string(table, "service", key), f"{key}.service")
        realm = _quotable(_string(table, "realm", key), f"{key}.realm") if "realm" in table else None
        if realm is not None and not realm.startswith(("https://", "http://")):
            raise AuthConfigError(f"{key}.realm: must be an absolute http(s) URL of the token endpoint")
        issuer = _string(table, "issuer", key, "txoci")
        signing_key = None
        if "key" in table:
            path = _path(_string(table, "key", key), base_dir)
            try:
                signing_key = SigningKey.from_pem(_read(path, f"{key}.key"))
            except (ValueError, TypeError) as exc:
                raise AuthConfigError(f"{key}.key: {path}: {exc}") from None
        ttl = _number(table, "ttl", key, DEFAULT_TTL, integer=True)
        if ttl < MIN_TTL:
            raise AuthConfigError(f"{key}.ttl: must be at least {MIN_TTL} seconds")
        refresh_ttl = _number(table, "refresh-ttl", key, DEFAULT_REFRESH_TTL, integer=True)
        leeway = table.get("leeway", DEFAULT_LEEWAY)
        if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= 300:
            raise AuthConfigError(f"{key}.leeway: expected an integer from 0 to 300 (seconds)")
        raw_trusted = table.get("trusted", [])
        if not isinstance(raw_trusted, list):
            raise AuthConfigError(f"{key}.trusted: expected an array of tables ([[auth.token.trusted]])")
        trusted = tuple(
            _external(entry, base_dir, f"{key}.trusted[{index}]") for index, entry in enumerate(raw_trusted)
        )
        if signing_key is None and not trusted:
            raise AuthConfigError(
                f"{key}: token mode needs 'key' (the built-in issuer) "
                f"or at least one [[{key}.trusted]] issuer"
            )
        if signing_key is None and realm is None:
            raise AuthConfigError(
                f"{key}.realm: required without the built-in issuer (the external token URL)"
            )
        if signing_key is not None and any(t.issuer == issuer for t in trusted):
            raise AuthConfigError(f"{key}.trusted: issuer {issuer!r} is the built-in issuer's name")
        return cls(service, realm, issuer, signing_key, ttl, refresh_ttl, leeway, trusted)


def _external(value: Any, base_dir: str, key: str) -> ExternalIssuer:
    table = _table(value, key, ("issuer", "keys", "algorithms"))
    issuer = _string(table, "issuer", key)
    path = _path(_string(table, "keys", key), base_dir)
    _read(path, f"{key}.keys")
    try:
        keys = tuple(load_trusted_keys(path))
    except (ValueError, TypeError) as exc:
        raise AuthConfigError(f"{key}.keys: {exc}") from None
    algorithms = table.get("algorithms", sorted(DEFAULT_ALGORITHMS))
    if not isinstance(algorithms, list) or not algorithms or not all(isinstance(a, str) for a in algorithms):
        raise AuthConfigError(f"{key}.algorithms: expected a non-empty list of algorithm names")
    bad = sorted(set(algorithms) - DEFAULT_ALGORITHMS)
    if bad:
        raise AuthConfigError(
            f"{key}.algorithms: {bad[0]!r} is not allowed (only {', '.join(sorted(DEFAULT_ALGORITHMS))}; "
            "never none or HMAC)"
        )
    return ExternalIssuer(issuer, keys, frozenset(algorithms))


@attrs.frozen
class AuthSettings:
    """The whole ``[auth]`` table, checked.  ``htpasswd`` is opened (and validated) here."""

    mode: str
    realm: str
    htpasswd: HtpasswdFile | None = attrs.field(repr=False)
    policy: Policy
    token: TokenSettings | None
    per_address: BucketPolicy = BucketPolicy(burst=20, interval=15.0)
    per_user: BucketPolicy = BucketPolicy(burst=10, interval=30.0)
    metrics: str = "admin"

    @property
    def issues_tokens(self) -> bool:
        """Whether the built-in token endpoint (``/token``) is served."""
        return self.token is not None and self.token.signing_key is not None

    @classmethod
    def from_dict(cls, value: Any, base_dir: str = ".", key: str = "auth") -> AuthSettings:
        """Check ``[auth]``; relative paths are taken from ``base_dir`` (the config file's directory)."""
        table = _table(value, key, ("mode", "realm", "htpasswd", "metrics", "token", "rate-limit", "access"))
        mode = _string(table, "mode", key)
        if mode not in MODES:
            raise AuthConfigError(f"{key}.mode: expected one of {', '.join(MODES)}, not {mode!r}")
        realm = _quotable(_string(table, "realm", key, "txoci"), f"{key}.realm")
        htpasswd = None
        if "htpasswd" in table:
            path = _path(_string(table, "htpasswd", key), base_dir)
            try:
                htpasswd = HtpasswdFile(path)
            except HtpasswdError as exc:
                raise AuthConfigError(f"{key}.htpasswd: {exc}") from None
        metrics = table.get("metrics", "admin")
        if metrics not in METRICS_ACCESS:
            raise AuthConfigError(f"{key}.metrics: expected one of {', '.join(METRICS_ACCESS)}")
        token = None
        if mode == "token":
            if "token" not in table:
                raise AuthConfigError(f"{key}.token: required when mode is 'token'")
            token = TokenSettings.from_dict(table["token"], base_dir, f"{key}.token")
        elif "token" in table:
            raise AuthConfigError(f"{key}.token: only used when mode is 'token'")
        if mode == "basic" and htpasswd is None:
            raise AuthConfigError(f"{key}.htpasswd: required when mode is 'basic'")
        if token is not None and token.signing_key is not None and htpasswd is None:
            raise AuthConfigError(f"{key}.htpasswd: the built-in token issuer needs users to log in")
        limits = _table(table.get("rate-limit", {}), f"{key}.rate-limit",
                        ("address-burst", "address-interval", "user-burst", "user-interval"))
        where = f"{key}.rate-limit"
        per_address = BucketPolicy(
            burst=_number(limits, "address-burst", where, 20, integer=True),
            interval=float(_number(limits, "address-interval", where, 15.0, integer=False)),
        )
        per_user = BucketPolicy(
            burst=_number(limits, "user-burst", where, 10, integer=True),
            interval=float(_number(limits, "user-interval", where, 30.0, integer=False)),
        )
        if "access" not in table:
            raise AuthConfigError(f"{key}.access: required (without a policy nobody could do anything)")
        try:
            policy = Policy.from_dict(table["access"])
        except PolicyError as exc:
            message = str(exc)
            prefix = f"{key}." if message.startswith("access") else f"{key}.access."
            raise AuthConfigError(prefix + message) from None
        return cls(mode, realm, htpasswd, policy, token, per_address, per_user, metrics)
