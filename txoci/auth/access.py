"""
Access control as the registry applies it, independent of HTTP.

:class:`AccessControl` is built from :class:`~txoci.auth.config.AuthSettings` and answers the
three questions the web layer asks:

- **who is calling?**  :meth:`AccessControl.login` checks a user name and password through the
  ``twisted.cred`` portal (bcrypt in a thread, rate-limited per client address and user name);
  :meth:`AccessControl.verify_bearer` checks a bearer JWT from the built-in or an external issuer.
  Both give a :class:`Caller`.
- **may they?**  :meth:`AccessControl.authorize` decides one action on one (normalised)
  repository and says *how* a refusal should be answered: a caller without credentials, or with
  a token that merely lacks the scope, is challenged (401); a known caller the policy refuses is
  denied (403).
- **which token do they get?**  :meth:`AccessControl.issue_token` and
  :meth:`AccessControl.refresh` for the built-in token endpoint (auth-token.md, auth-oauth.md).

Callers with a bearer token from the built-in issuer are checked against the token *and* the
policy (so ``create`` without ``update`` holds for ``push`` tokens, and a tightened policy takes
effect at once); an external issuer's ``access`` claims are authoritative.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.cred import credentials, error
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txoci.auth.config import AuthSettings
from txoci.auth.cred import ANONYMOUS_USER, IRegistryUser, RegistryUser, make_portal
from txoci.auth.policy import Action, Decision
from txoci.auth.ratelimit import FailedLoginLimiter
from txoci.auth.scope import check_access, grant, parse_scopes, token_actions_for
from txoci.auth.tokens import IssuedToken, TokenError, TokenIssuer, TokenVerifier, VerifiedToken

__all__ = [
    "ANONYMOUS_CALLER",
    "AccessControl",
    "Caller",
    "LoginFailed",
    "Outcome",
    "RateLimited",
    "Verdict",
]

log = Logger()

#: Seconds a successful password check is remembered, so that clients sending Basic credentials
#: on every request do not pay for bcrypt each time.  Each use re-checks (``stat``) the htpasswd
#: file and that the user's entry is unchanged, so a removed user or a changed password takes
#: effect at once.  Entries are keyed by an HMAC under a per-process secret, never the password.
LOGIN_CACHE_SECONDS = 30.0
MAX_CACHED_LOGINS = 10_000


class LoginFailed(Exception):
    """Credentials were refused.  ``reason`` is ``password`` or a :class:`TokenError` reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RateLimited(Exception):
    """Too many failed logins from this address or for this user; retry after ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after} seconds")
        self.retry_after = retry_after


@attrs.frozen
class Caller:
    """Who a request acts for, and the bearer token it presented, if any."""

    user: RegistryUser
    token: VerifiedToken | None = attrs.field(default=None, repr=False)
    #: The token came from an external issuer, whose ``access`` claims are authoritative.
    external: bool = False

    @property
    def anonymous(self) -> bool:
        return bool(self.user.anonymous)

    @property
    def name(self) -> str | None:
        """The user name for logs, None when anonymous."""
        return None if self.anonymous else str(self.user.name)


ANONYMOUS_CALLER = Caller(ANONYMOUS_USER)


class Outcome(enum.Enum):
    """How a request is answered after :meth:`AccessControl.authorize`."""

    ALLOWED = "allowed"
    #: 401 with a challenge: no credentials, or an anonymous token.
    UNAUTHENTICATED = "unauthenticated"
    #: 401 with ``error="insufficient_scope"``: the policy allows it, the token does not carry it.
    INSUFFICIENT_SCOPE = "insufficient_scope"
    #: 403 DENIED: a known caller the policy refuses.
    DENIED = "denied"


@attrs.frozen
class Verdict:
    outcome: Outcome
    decision: Decision

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED


def _unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, only to choose which issuer's keys verify it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, IndexError, UnicodeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


class AccessControl:
    """Authentication and authorization for one registry (see the module docstring).

    :param on_failure: called with a short reason (``password``, ``rate_limited``, a token
        failure reason...) for every refused login, for metrics.
    :param run_in_thread: where bcrypt runs (``deferToThread`` by default).
    """

    def __init__(
        self,
        settings: AuthSettings,
        clock: IReactorTime,
        *,
        on_failure: Callable[[str], None] | None = None,
        run_in_thread: Callable[..., defer.Deferred[Any]] = threads.deferToThread,
    ) -> None:
        self.settings = settings
        self.policy = settings.policy
        self.clock = clock
        self._on_failure = on_failure or (lambda reason: None)
        self._run_in_thread = run_in_thread
        self.portal = make_portal(settings.htpasswd, allow_anonymous=False, run_in_thread=run_in_thread)
        self.limiter = FailedLoginLimiter(clock, per_address=settings.per_address, per_user=settings.per_user)
        #: HMAC(random secret, user NUL password) -> (expiry, the htpasswd hash it was checked against)
        self._verified: dict[bytes, tuple[float, bytes]] = {}
        self._cache_secret = secrets.token_bytes(32)
        self.issuer: TokenIssuer | None = None
        #: iss -> (verifier, external)
        self._verifiers: dict[str, tuple[TokenVerifier, bool]] = {}
        token = settings.token
        if token is not None:
            if token.signing_key is not None:
                self.issuer = TokenIssuer(
                    token.signing_key, token.issuer, clock, ttl=token.ttl, refresh_ttl=token.refresh_ttl
                )
                self._verifiers[token.issuer] = (
                    self.issuer.verifier(leeway=token.leeway, audience=token.service), False
                )
            for external in token.trusted:
                verifier = TokenVerifier(
                    external.keys, {external.issuer}, token.service, clock,
                    algorithms=external.algorithms, leeway=token.leeway,
                )
                self._verifiers[external.issuer] = (verifier, True)

    @property
    def mode(self) -> str:
        return self.settings.mode

    def _failed(self, reason: str, address: str = "-", username: str | None = None) -> None:
        # For operators and tools such as fail2ban: who and from where, never the secret.
        log.warn("refused login: {reason} (user {user}, client {client})",
                 reason=reason, user=username or "-", client=address)
        self._on_failure(reason)

    # -- who is calling ------------------------------------------------------------------------

    def _check_rate(self, address: str, username: str | None) -> None:
        verdict = self.limiter.check(address, username)
        if not verdict.allowed:
            self._failed("rate_limited", address, username)
            raise RateLimited(verdict.retry_after)

    async def login(self, address: str, username: str, password: bytes) -> Caller:
        """Check a user name and password; raises :class:`LoginFailed` or :class:`RateLimited`."""
        self._check_rate(address, username)
        if self.settings.htpasswd is None:
            self.limiter.record_failure(address, username)
            self._failed("password", address, username)
            raise LoginFailed("password", "invalid user name or password")
        cache_key = hmac.new(self._cache_secret, username.encode("utf-8") + b"\0" + password,
                             hashlib.sha256).digest()
        cached = self._verified.get(cache_key)
        htpasswd = self.settings.htpasswd
        if cached is not None:
            # A stat (and a reload if the file changed), off the reactor thread like bcrypt.
            await self._run_in_thread(htpasswd.refresh)
            expires, hashed = cached
            if expires > self.clock.seconds() and hashed == htpasswd.loaded_hash(username):
                _, avatar, _ = self.portal.realm.requestAvatar(username.encode("utf-8"), None, IRegistryUser)
                assert isinstance(avatar, RegistryUser)
                return Caller(avatar)
            self._verified.pop(cache_key, None)
        try:
            _, avatar, _ = await self.portal.login(
                credentials.UsernamePassword(username.encode("utf-8"), password), None, IRegistryUser
            )
        except error.UnauthorizedLogin:
            self.limiter.record_failure(address, username)
            self._failed("password", address, username)
            raise LoginFailed("password", "invalid user name or password") from None
        assert isinstance(avatar, RegistryUser)
        verified_hash = htpasswd.loaded_hash(username)
        if verified_hash is not None:
            if len(self._verified) >= MAX_CACHED_LOGINS:
                self._verified.pop(next(iter(self._verified)))
            self._verified[cache_key] = (self.clock.seconds() + LOGIN_CACHE_SECONDS, verified_hash)
        return Caller(avatar)

    def verify_bearer(self, address: str, token: str) -> Caller:
        """Check a bearer token; raises :class:`LoginFailed` (with the check that failed) or
        :class:`RateLimited` once an address has sent too many bad ones."""
        self._check_rate(address, None)
        try:
            chosen = self._verifiers.get(_unverified_issuer(token) or "")
            if chosen is None:
                raise TokenError("issuer", "the token was not issued by a trusted issuer")
            verifier, external = chosen
            verified = verifier.verify(token)
        except TokenError as exc:
            self.limiter.record_failure(address, None)
            self._failed(f"token_{exc.reason}", address)
            raise LoginFailed(exc.reason, exc.message) from None
        user = ANONYMOUS_USER if verified.anonymous else RegistryUser(verified.subject)
        return Caller(user, verified, external)

    # -- may they ------------------------------------------------------------------------------

    def decide(self, caller: Caller, repository: str, action: Action) -> Decision:
        """The decision alone (see :meth:`authorize` for how a refusal is answered)."""
        if caller.token is None:
            return self.policy.decide(caller.user, repository, action)
        if caller.external:
            return check_access(caller.token.access, repository, action)
        return check_access(caller.token.access, repository, action, policy=self.policy, user=caller.user)

    def authorize(self, caller: Caller, repository: str, action: Action) -> Verdict:
        """Whether ``caller`` may take ``action`` on ``repository``, and how to refuse if not."""
        decision = self.decide(caller, repository, action)
        if decision.allowed:
            return Verdict(Outcome.ALLOWED, decision)
        if caller.anonymous:
            return Verdict(Outcome.UNAUTHENTICATED, decision)
        if caller.token is not None and not caller.external:
            if self.policy.decide(caller.user, repository, action).allowed:
                return Verdict(Outcome.INSUFFICIENT_SCOPE, decision)
        return Verdict(Outcome.DENIED, decision)

    def may(self, caller: Caller, repository: str, action: Action) -> bool:
        return self.decide(caller, repository, action).allowed

    def readable_by_identity(self, caller: Caller, repository: str) -> bool:
        """Whether the caller *could* read ``repository``, whatever their token holds: the policy
        for password and built-in-token callers, the token's claims for an external issuer's.
        Used where a client cannot know which scope to ask for (a mount without ``from``)."""
        if caller.external and caller.token is not None:
            return check_access(caller.token.access, repository, Action.READ).allowed
        return self.policy.decide(caller.user, repository, Action.READ).allowed

    def may_list_catalog(self, caller: Caller) -> bool:
        """In token mode callers need ``registry:catalog:*`` in their token; in Basic mode anyone
        may list, and sees only what they may read."""
        if caller.token is None:
            return self.mode == "basic"
        return "*" in token_actions_for(caller.token.access, "registry", "catalog")

    def catalog_visible(self, caller: Caller, repository: str) -> bool:
        """Whether ``repository`` appears in ``caller``'s ``_catalog``: they may read it."""
        return self.policy.decide(caller.user, repository, Action.READ).allowed

    def may_read_metrics(self, caller: Caller) -> bool:
        """``/metrics``: per ``auth.metrics`` -- admins (with ``read``), any user, or anyone."""
        rule = self.settings.metrics
        if rule == "anonymous":
            return True
        if caller.anonymous:
            return False
        if rule == "authenticated":
            return True
        subject = self.policy.subject(caller.user)
        return Action.READ in self.policy.admin.actions and self.policy.admin.applies_to(subject)

    # -- the built-in token endpoint -------------------------------------------------------------

    def issue_token(self, caller: Caller, scopes: Iterable[str]) -> IssuedToken:
        """An access token for the requested scopes intersected with policy (raises ``ScopeError``)."""
        assert self.issuer is not None and self.settings.token is not None
        granted = grant(parse_scopes(scopes), self.policy, caller.user)
        name = "" if caller.anonymous else str(caller.user.name)
        return self.issuer.issue(name, self.settings.token.service, granted)

    def refresh_token_for(self, caller: Caller) -> str:
        assert self.issuer is not None and self.settings.token is not None
        return self.issuer.issue_refresh(str(caller.user.name), self.settings.token.service)

    async def refresh(self, address: str, refresh_token: str) -> Caller:
        """The caller a refresh token stands for; the user must still be in the htpasswd file."""
        assert self.issuer is not None and self.settings.token is not None
        self._check_rate(address, None)
        verifier, _ = self._verifiers[self.settings.token.issuer]
        try:
            verified = verifier.verify_refresh(refresh_token)
        except TokenError as exc:
            self.limiter.record_failure(address, None)
            self._failed(f"refresh_token_{exc.reason}", address)
            raise LoginFailed(exc.reason, exc.message) from None
        htpasswd = self.settings.htpasswd
        known = htpasswd is not None and await self._run_in_thread(htpasswd.__contains__, verified.subject)
        if not known:
            self.limiter.record_failure(address, verified.subject)
            self._failed("refresh_unknown_user", address, verified.subject)
            raise LoginFailed("claims", "the refresh token's user no longer exists")
        return Caller(RegistryUser(verified.subject))
