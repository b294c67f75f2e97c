"""
``twisted.cred`` pieces: the avatar interface, a realm, and an htpasswd-backed checker.

The web layer builds a :class:`twisted.cred.portal.Portal` with :class:`RegistryRealm` and the
checkers it needs -- :class:`HtpasswdChecker` for Basic credentials (and the token endpoint's
password grant) and, when anonymous access is configured,
:class:`twisted.cred.checkers.AllowAnonymousAccess` for :class:`~twisted.cred.credentials.IAnonymous`
-- and logs callers in for :class:`IRegistryUser`.  :func:`make_portal` does exactly that.

bcrypt is slow by design (tens to hundreds of milliseconds per check), so the checker runs it in
the reactor's thread pool with ``deferToThread``; the reactor keeps serving meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, threads
from zope.interface import Attribute, Interface, implementer

from txoci.auth.htpasswd import HtpasswdFile

__all__ = [
    "ANONYMOUS_USER",
    "HtpasswdChecker",
    "IRegistryUser",
    "RegistryRealm",
    "RegistryUser",
    "make_portal",
]

_T = TypeVar("_T")


class IRegistryUser(Interface):
    """Who a request acts for: the avatar the realm hands out."""

    name = Attribute("The user name (str); '' for anonymous callers.")
    groups = Attribute("frozenset[str] of group names, for group policies.")
    anonymous = Attribute("bool: True when the caller gave no credentials.")


@implementer(IRegistryUser)
@attrs.frozen
class RegistryUser:
    """The :class:`IRegistryUser` avatar."""

    name: str
    groups: frozenset[str] = frozenset()
    anonymous: bool = False


ANONYMOUS_USER = RegistryUser(name="", anonymous=True)


def _text(value: bytes | str) -> str | None:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _run_in_thread(function: Callable[..., _T], *args: Any) -> defer.Deferred[_T]:
    return threads.deferToThread(function, *args)


@implementer(checkers.ICredentialsChecker)
class HtpasswdChecker:
    """Checks :class:`IUsernamePassword` credentials against an :class:`HtpasswdFile`.

    The avatar id is the UTF-8 user name (``bytes``, as ``ICredentialsChecker`` declares).  Every
    failure -- unknown user, wrong password, undecodable input, unusable file -- is the same
    :class:`UnauthorizedLogin`, after the same bcrypt work.  ``run_in_thread`` defaults to ``deferToThread``.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(
        self,
        htpasswd: HtpasswdFile,
        *,
        run_in_thread: Callable[..., defer.Deferred[Any]] = _run_in_thread,
    ) -> None:
        self.htpasswd = htpasswd
        self._run_in_thread = run_in_thread

    def requestAvatarId(self, creds: Any) -> defer.Deferred[bytes | tuple[()]]:  # noqa: N802 (twisted.cred API)
        username = _text(creds.username)
        password = creds.password
        if username is None or not isinstance(password, bytes | str):
            username, password = "", b""

        def decided(ok: bool) -> bytes | tuple[()]:
            if not ok or not username:
                raise error.UnauthorizedLogin("invalid user name or password")
            return username.encode("utf-8")

        d = self._run_in_thread(self.htpasswd.verify, username, password)
        d.addCallback(decided)
        return d


@implementer(portal.IRealm)
class RegistryRealm:
    """Hands out :class:`IRegistryUser` avatars.

    :param groups_for: a user's groups from the authenticator's side (e.g. a future LDAP); the
        policy adds the memberships it defines itself (``Policy.subject``).
    """

    def __init__(
        self, groups_for: Callable[[str], Iterable[str]] | Mapping[str, Iterable[str]] | None = None
    ) -> None:
        if groups_for is None:
            self._groups_for: Callable[[str], Iterable[str]] = lambda name: ()
        elif isinstance(groups_for, Mapping):
            table = groups_for
            self._groups_for = lambda name: table.get(name, ())
        else:
            self._groups_for = groups_for

    def requestAvatar(  # noqa: N802 (twisted.cred API)
        self,
        avatarId: Any,
        mind: Any,
        *interfaces: Any,  # noqa: N803
    ) -> tuple[Any, RegistryUser, Callable[[], None]]:
        if IRegistryUser not in interfaces:
            raise NotImplementedError("RegistryRealm only provides IRegistryUser")
        if avatarId is checkers.ANONYMOUS or avatarId == checkers.ANONYMOUS:
            return IRegistryUser, ANONYMOUS_USER, lambda: None
        name = _text(avatarId)
        if not name:
            raise error.UnauthorizedLogin("empty avatar id")
        return IRegistryUser, RegistryUser(name, frozenset(self._groups_for(name))), lambda: None


def make_portal(
    htpasswd: HtpasswdFile | None,
    *,
    allow_anonymous: bool,
    realm: RegistryRealm | None = None,
    run_in_thread: Callable[..., defer.Deferred[Any]] = _run_in_thread,
) -> portal.Portal:
    """A portal with the htpasswd checker (if any) and anonymous access (if allowed)."""
    checker_list: list[checkers.ICredentialsChecker] = []
    if htpasswd is not None:
        checker_list.append(HtpasswdChecker(htpasswd, run_in_thread=run_in_thread))
    if allow_anonymous:
        checker_list.append(checkers.AllowAnonymousAccess())
    return portal.Portal(realm or RegistryRealm(), checker_list)
