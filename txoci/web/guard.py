"""
The HTTP side of access control: one place maps each route to the action it needs, reads the
credentials, and answers 401 (with the right ``WWW-Authenticate`` challenge), 403 ``DENIED`` or
429.

:class:`Guard.admit` runs before every API handler (``txoci.web.app``).  It identifies the caller
(Basic credentials in ``basic`` mode, a bearer token in ``token`` mode, or nobody), checks the
action :data:`ROUTE_ACTIONS` gives the route on the route's repository, and leaves a
:class:`RequestAccess` on the request for the few handlers whose decision depends on what they
find: a manifest PUT that would *move* a tag needs ``update`` (decided in the registry's
transaction), a mount needs ``read`` on its source (else it quietly becomes a normal upload), a
mount without ``from`` links only blobs the caller can read somewhere, and ``_catalog`` lists only
readable repositories.

Without an ``[auth]`` configuration there is no guard: every handler sees :data:`OPEN_ACCESS`,
and the registry behaves exactly as it did before authentication existed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from txoci.auth.access import ANONYMOUS_CALLER, AccessControl, Caller, LoginFailed, Outcome, RateLimited
from txoci.auth.policy import Action
from txoci.registry.errors import Denied, RegistryError, TooManyRequests, Unauthorized
from txoci.registry.names import validate_name
from txoci.web.accesslog import annotate
from txoci.web.errors import render_error, render_unexpected

__all__ = ["OPEN_ACCESS", "ROUTE_ACTIONS", "Guard", "GuardedResource", "RequestAccess", "access_of"]

#: What each API route (by handler name) needs on its repository.  ``None``: the route has no
#: repository (``/v2/`` needs only a known caller; ``_catalog`` is filtered per repository).
#: Moving an existing tag additionally needs ``update``: see ``put_manifest``.
ROUTE_ACTIONS: Mapping[str, Action | None] = {
    "version_check": None,
    "catalog": None,
    "get_blob": Action.READ,
    "get_manifest": Action.READ,
    "list_tags": Action.READ,
    "referrers": Action.READ,
    "start_upload": Action.CREATE,
    "upload_progress": Action.CREATE,
    "append_chunk": Action.CREATE,
    "finish_upload": Action.CREATE,
    "cancel_upload": Action.CREATE,
    "put_manifest": Action.CREATE,
    "delete_blob": Action.DELETE,
    "delete_manifest": Action.DELETE,
}

#: The token actions a Bearer challenge asks for, per policy action (what docker asks for).
_CHALLENGE_ACTIONS = {
    Action.READ: "pull",
    Action.CREATE: "pull,push",
    Action.UPDATE: "pull,push",
    Action.DELETE: "delete",
}

_ACCESS = "_txoci_access"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")


class RequestAccess:
    """What a handler may ask about the caller: everything is allowed (no authentication)."""

    #: Whether decisions can refuse anything (False: the registry's unrestricted behaviour).
    restricted = False

    def may(self, repository: str, action: Action) -> bool:
        return True

    def catalog_visible(self, repository: str) -> bool:
        return True

    def readable_by_identity(self, repository: str) -> bool:
        """Whether the caller could read ``repository`` (a mount without ``from`` links blobs
        only from such repositories)."""
        return True


OPEN_ACCESS = RequestAccess()


class _CallerAccess(RequestAccess):
    restricted = True

    def __init__(self, control: AccessControl, caller: Caller) -> None:
        self._control = control
        self.caller = caller

    def may(self, repository: str, action: Action) -> bool:
        return self._control.may(self.caller, repository, action)

    def catalog_visible(self, repository: str) -> bool:
        return self._control.catalog_visible(self.caller, repository)

    def readable_by_identity(self, repository: str) -> bool:
        return self._control.readable_by_identity(self.caller, repository)


def access_of(request: IRequest) -> RequestAccess:
    """The caller's access for this request (:data:`OPEN_ACCESS` without authentication)."""
    access = getattr(request, _ACCESS, None)
    return access if isinstance(access, RequestAccess) else OPEN_ACCESS


def client_address(request: IRequest) -> str:
    host = getattr(request.getClientAddress(), "host", None)
    return str(host) if host else "-"


def authorization(request: IRequest) -> tuple[str, str] | None:
    """``(scheme, rest)`` of the Authorization header, scheme lower-cased; None without one."""
    value = request.getHeader(b"authorization")
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    scheme, _, rest = text.strip().partition(" ")
    return scheme.lower(), rest.strip()


#: ``Basic`` with an empty user name and password: what containers/image (skopeo, podman) sends
#: without credentials after a Basic challenge.  It means "anonymous", not a failed login.
EMPTY_BASIC = ("", b"")


def basic_credentials(rest: str) -> tuple[str, bytes] | None:
    """``(user, password)`` of a Basic ``Authorization`` value; :data:`EMPTY_BASIC` for ``:``;
    None when malformed."""
    try:
        decoded = base64.b64decode(rest.encode("ascii"), validate=True)
        user, sep, password = decoded.partition(b":")
        if sep and not user and not password:
            return EMPTY_BASIC
        return (user.decode("utf-8"), password) if sep and user else None
    except (binascii.Error, UnicodeError, ValueError):
        return None


class Guard:
    """Authenticates and authorizes API requests with an :class:`AccessControl`."""

    def __init__(self, control: AccessControl) -> None:
        self.control = control

    # -- challenges -------------------------------------------------------------------------------

    def token_realm(self, request: IRequest) -> str:
        """The token endpoint URL: configured, or this server's ``/token`` as the client reached it."""
        token = self.control.settings.token
        assert token is not None
        if token.realm is not None:
            return token.realm
        raw = request.getHeader(b"host")
        host = raw.decode("latin-1") if isinstance(raw, bytes) else (raw or "")
        if not _HOST.fullmatch(host):
            address = request.getHost()
            host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 80)}"
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host}/token"

    def challenge(self, request: IRequest, scope: str | None = None, error: str | None = None) -> str:
        settings = self.control.settings
        if settings.mode == "basic":
            return f'Basic realm="{settings.realm}",charset="UTF-8"'
        assert settings.token is not None
        parts = [f'realm="{self.token_realm(request)}"', f'service="{settings.token.service}"']
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    def unauthorized(
        self, request: IRequest, message: str, scope: str | None = None, error: str | None = None
    ) -> Unauthorized:
        return Unauthorized(message, headers={"WWW-Authenticate": self.challenge(request, scope, error)})

    # -- who --------------------------------------------------------------------------------------

    async def identify(self, request: IRequest, scope: str | None = None) -> Caller:
        """The caller, from the credentials the mode accepts; raises 401 or 429 for bad ones."""
        found = authorization(request)
        address = client_address(request)
        wanted = "basic" if self.control.mode == "basic" else "bearer"
        if found is None or found[0] != wanted:
            return ANONYMOUS_CALLER
        scheme, rest = found
        try:
            if scheme == "basic":
                pair = basic_credentials(rest)
                if pair is None:
                    raise LoginFailed("malformed", "malformed Basic credentials")
                if pair == EMPTY_BASIC:
                    return ANONYMOUS_CALLER
                return await self.control.login(address, *pair)
            return self.control.verify_bearer(address, rest)
        except RateLimited as limited:
            raise TooManyRequests(str(limited), headers={"Retry-After": str(limited.retry_after)}) from None
        except LoginFailed as failed:
            if scheme == "basic":
                raise self.unauthorized(request, failed.message) from None
            raise self.unauthorized(request, f"invalid bearer token: {failed.message}", scope,
                                    "invalid_token") from None

    # -- may they ---------------------------------------------------------------------------------

    def refuse(self, request: IRequest, repository: str, action: Action, outcome: Outcome) -> Exception:
        scope = f"repository:{repository}:{_CHALLENGE_ACTIONS[action]}"
        if outcome is Outcome.DENIED:
            return Denied(
                f"requested access to the resource is denied: {action} on repository {repository}",
                detail={"action": str(action), "repository": repository},
            )
        error = "insufficient_scope" if outcome is Outcome.INSUFFICIENT_SCOPE else None
        return self.unauthorized(request, f"authentication required to {action} repository {repository}",
                                 scope, error)

    async def admit(self, request: IRequest, endpoint: str, arguments: Mapping[str, Any]) -> None:
        """Let the request through to its handler, or raise the 401/403/429 that refuses it."""
        if endpoint not in ROUTE_ACTIONS:
            raise AssertionError(f"route {endpoint!r} has no access rule")  # fail closed
        action = ROUTE_ACTIONS[endpoint]
        repository = arguments.get("name")
        scope = None
        if endpoint == "catalog":
            scope = "registry:catalog:*"
        elif isinstance(repository, str) and action is not None:
            # The same (decoded) name the handler will use, validated before any rule is matched
            # and before it goes into a challenge header.
            validate_name(repository)
            scope = f"repository:{repository}:{_CHALLENGE_ACTIONS[action]}"
        caller = await self.identify(request, scope)
        annotate(request).user = caller.name
        setattr(request, _ACCESS, _CallerAccess(self.control, caller))
        if endpoint == "version_check":
            if caller.anonymous:
                raise self.unauthorized(request, "authentication required")
            return
        if endpoint == "catalog":
            if not self.control.may_list_catalog(caller):
                raise self.unauthorized(request, "authentication required to list the catalog", scope,
                                        None if caller.anonymous else "insufficient_scope")
            return
        assert isinstance(repository, str) and action is not None
        verdict = self.control.authorize(caller, repository, action)
        if not verdict.allowed:
            raise self.refuse(request, repository, action, verdict.outcome)

    async def admit_metrics(self, request: IRequest) -> None:
        """``/metrics`` under ``auth.metrics``: 401 without credentials, 403 for others."""
        caller = await self.identify(request)
        annotate(request).user = caller.name
        if self.control.may_read_metrics(caller):
            return
        if caller.anonymous:
            raise self.unauthorized(request, "authentication required to read metrics")
        raise Denied("requested access to the resource is denied: read on /metrics")


def _answer_refusal(request: IRequest, failure: Failure) -> None:
    if getattr(request, "_disconnected", False):
        return
    if failure.check(RegistryError):
        error = failure.value
        assert isinstance(error, RegistryError)
        body = render_error(request, error)
    else:
        body = render_unexpected(request, failure)
    request.write(body)
    request.finish()


class GuardedResource(Resource):
    """A leaf resource (``/metrics``) rendered only after ``admit(request)`` lets the request in."""

    isLeaf = True

    def __init__(self, inner: IResource, admit: Callable[[IRequest], Coroutine[Any, Any, None]],
                 route: str) -> None:
        super().__init__()
        self._inner = inner
        self._admit = admit
        self._route = route

    def render(self, request: IRequest) -> Any:
        annotate(request).route = self._route

        def admitted(_: None) -> None:
            result = self._inner.render(request)
            if result is not NOT_DONE_YET:
                request.write(result)
                request.finish()

        Deferred.fromCoroutine(self._admit(request)).addCallbacks(
            admitted, lambda failure: _answer_refusal(request, failure)
        )
        return NOT_DONE_YET
