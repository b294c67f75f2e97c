"""
``/token``: the built-in token issuer's endpoint (auth-token.md, auth-oauth.md).

- ``GET /token?service=S&scope=...&scope=...[&offline_token=true]`` with Basic credentials, or
  with none for an anonymous token.  Answers ``token``/``access_token``, ``expires_in``,
  ``issued_at`` and, for ``offline_token=true``, a ``refresh_token``.
- ``POST /token`` with a form body: ``grant_type=password`` (``username``, ``password``,
  ``access_type=offline`` for a refresh token) or ``grant_type=refresh_token``
  (``refresh_token``); ``scope`` is a space-separated list.  Answers ``access_token``,
  ``scope`` (what was granted), ``expires_in``, ``issued_at`` and ``refresh_token`` when asked.

The granted access is the requested scopes intersected with the policy; asking for more is not an
error.  Passwords and tokens never appear in a response or a log (the access log redacts
``password``, ``refresh_token`` and friends from query strings, and never logs bodies).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txoci.auth.access import ANONYMOUS_CALLER, Caller, LoginFailed, RateLimited
from txoci.auth.scope import ScopeError
from txoci.registry.errors import RegistryError
from txoci.web.accesslog import annotate
from txoci.web.body import read_body
from txoci.web.errors import render_unexpected
from txoci.web.guard import EMPTY_BASIC, Guard, authorization, basic_credentials, client_address

#: Largest ``POST /token`` form accepted.
MAX_FORM_SIZE = 64 * 1024
_ENVELOPE_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}


class _TokenError(Exception):
    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


def _first(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name)
    return found[0] if found else None


class TokenResource(Resource):
    """The token endpoint, answering with JSON (see the module docstring)."""

    isLeaf = True

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self._guard = guard
        self._control = guard.control
        assert self._control.issuer is not None and self._control.settings.token is not None
        self._service = self._control.settings.token.service

    def render(self, request: IRequest) -> Any:
        annotate(request).route = "/token"
        if request.method not in (b"GET", b"POST"):
            return self._write(request, 405, {"error": "invalid_request",
                                              "error_description": "use GET or POST"},
                               {"Allow": "GET, POST"})
        handling = self._get(request) if request.method == b"GET" else self._post(request)
        Deferred.fromCoroutine(handling).addCallbacks(
            lambda document: self._finish(request, 200, document, {}),
            lambda failure: self._failed(request, failure),
        )
        return NOT_DONE_YET

    # -- answers ------------------------------------------------------------------------------

    def _write(
        self, request: IRequest, status: int, document: dict[str, Any], headers: dict[str, str]
    ) -> bytes:
        body = json.dumps(document).encode("utf-8")
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Pragma", b"no-cache")
        for name, value in headers.items():
            request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body

    def _finish(
        self, request: IRequest, status: int, document: dict[str, Any], headers: dict[str, str]
    ) -> None:
        if getattr(request, "_disconnected", False):
            return
        request.write(self._write(request, status, document, headers))
        request.finish()

    def _failed(self, request: IRequest, failure: Failure) -> None:
        if failure.check(_TokenError):
            error = failure.value
            assert isinstance(error, _TokenError)
            # OAuth2's fields, and the registry's error envelope for clients that read that.
            code = _ENVELOPE_CODES.get(error.status, "UNSUPPORTED")
            document = {
                "error": error.error,
                "error_description": error.description,
                "errors": [{"code": code, "message": error.description}],
            }
            self._finish(request, error.status, document, error.headers)
        elif failure.check(RegistryError):
            registry_error = failure.value
            assert isinstance(registry_error, RegistryError)
            self._finish(request, registry_error.http_status, {"errors": [registry_error.as_json()]},
                         registry_error.headers)
        elif not getattr(request, "_disconnected", False):
            request.write(render_unexpected(request, failure))
            request.finish()

    # -- the grants ---------------------------------------------------------------------------

    def _check_service(self, service: str | None) -> None:
        if service is not None and service != self._service:
            raise _TokenError(400, "invalid_request", f"unknown service {service[:100]!r}")

    def _bad_login(self, message: str) -> _TokenError:
        realm = self._control.settings.realm
        return _TokenError(401, "invalid_grant", message,
                           {"WWW-Authenticate": f'Basic realm="{realm}",charset="UTF-8"'})

    async def _login(self, request: IRequest, username: str, password: bytes) -> Caller:
        try:
            return await self._control.login(client_address(request), username, password)
        except RateLimited as limited:
            raise _TokenError(429, "slow_down", str(limited),
                              {"Retry-After": str(limited.retry_after)}) from None
        except LoginFailed as failed:
            raise self._bad_login(failed.message) from None

    def _issue(
        self, caller: Caller, scopes: list[str], offline: bool, refresh: str | None = None
    ) -> dict[str, Any]:
        try:
            issued = self._control.issue_token(caller, scopes)
        except ScopeError as exc:
            raise _TokenError(400, "invalid_scope", str(exc)) from None
        document = issued.response()
        document["scope"] = " ".join(str(scope) for scope in issued.access)
        if refresh is not None:
            document["refresh_token"] = refresh
        elif offline and not caller.anonymous:
            document["refresh_token"] = self._control.refresh_token_for(caller)
        return document

    async def _get(self, request: IRequest) -> dict[str, Any]:
        args = {k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
                for k, vs in (request.args or {}).items()}
        self._check_service(_first(args, "service"))
        found = authorization(request)
        caller = ANONYMOUS_CALLER
        if found is not None:
            scheme, rest = found
            pair = basic_credentials(rest) if scheme == "basic" else None
            if pair is None:
                raise self._bad_login("the token endpoint takes Basic credentials")
            if pair != EMPTY_BASIC:
                caller = await self._login(request, *pair)
        annotate(request).user = caller.name
        offline = (_first(args, "offline_token") or "").lower() == "true"
        return self._issue(caller, args.get("scope", []), offline)

    async def _post(self, request: IRequest) -> dict[str, Any]:
        body = await read_body(request, MAX_FORM_SIZE)
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise _TokenError(400, "invalid_request", "the form is not UTF-8") from None
        self._check_service(_first(form, "service"))
        scopes = form.get("scope", [])
        grant_type = _first(form, "grant_type")
        if grant_type == "password":
            username, password = _first(form, "username"), _first(form, "password")
            if not username or password is None:
                raise _TokenError(400, "invalid_request", "the password grant needs username and password")
            caller = await self._login(request, username, password.encode("utf-8"))
            annotate(request).user = caller.name
            return self._issue(caller, scopes, _first(form, "access_type") == "offline")
        if grant_type == "refresh_token":
            refresh_token = _first(form, "refresh_token")
            if not refresh_token:
                raise _TokenError(400, "invalid_request", "the refresh_token grant needs refresh_token")
            try:
                caller = await self._control.refresh(client_address(request), refresh_token)
            except RateLimited as limited:
                raise _TokenError(429, "slow_down", str(limited),
                                  {"Retry-After": str(limited.retry_after)}) from None
            except LoginFailed as failed:
                raise _TokenError(400, "invalid_grant", failed.message) from None
            annotate(request).user = caller.name
            return self._issue(caller, scopes, False, refresh=refresh_token)
        raise _TokenError(400, "unsupported_grant_type", "grant_type must be password or refresh_token")

