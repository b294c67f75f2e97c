"""The twisted.cred pieces: htpasswd checker (in a thread), realm, anonymous access, portal."""

from __future__ import annotations

from typing import Any

import bcrypt
from twisted.cred import checkers, credentials, error
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from txoci.auth.cred import (
    ANONYMOUS_USER,
    HtpasswdChecker,
    IRegistryUser,
    RegistryRealm,
    RegistryUser,
    make_portal,
)
from txoci.auth.htpasswd import HtpasswdFile
from txoci.auth.policy import Policy


def synchronously(function: Any, *args: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(function, *args)


def make_file(case: SynchronousTestCase) -> HtpasswdFile:
    path = case.mktemp()
    with open(path, "w") as handle:
        for user, password in [("alice", "wonderland"), ("bob", "builder")]:
            handle.write(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n")
    return HtpasswdFile(path)


class CheckerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.checker = HtpasswdChecker(make_file(self), run_in_thread=synchronously)

    def test_interface(self) -> None:
        verifyObject(checkers.ICredentialsChecker, self.checker)
        self.assertEqual(self.checker.credentialInterfaces, (credentials.IUsernamePassword,))

    def test_good_password(self) -> None:
        avatar_id = self.successResultOf(
            self.checker.requestAvatarId(credentials.UsernamePassword(b"alice", b"wonderland"))
        )
        self.assertEqual(avatar_id, b"alice")

    def test_every_failure_is_the_same(self) -> None:
        for username, password in [
            (b"alice", b"builder"),
            (b"carol", b"wonderland"),
            (b"alice", b""),
            (b"", b""),
            (b"\xff\xfe", b"wonderland"),
        ]:
            failure = self.failureResultOf(
                self.checker.requestAvatarId(credentials.UsernamePassword(username, password)),
                error.UnauthorizedLogin,
            )
            self.assertEqual(str(failure.value), "invalid user name or password")
            self.assertNotIn("wonderland", str(failure.value))


class ThreadedCheckerTests(TestCase):
    """The default checker really runs bcrypt in the reactor's thread pool."""

    @defer.inlineCallbacks
    def test_defer_to_thread(self) -> Any:
        checker = HtpasswdChecker(make_file(self))
        d = checker.requestAvatarId(credentials.UsernamePassword(b"bob", b"builder"))
        self.assertIsInstance(d, defer.Deferred)
        self.assertEqual((yield d), b"bob")
        with self.assertRaises(error.UnauthorizedLogin):
            yield checker.requestAvatarId(credentials.UsernamePassword(b"bob", b"wrong"))


class RealmTests(SynchronousTestCase):
    def test_users_and_anonymous(self) -> None:
        realm = RegistryRealm({"alice": ["team"]})
        interface, avatar, logout = realm.requestAvatar(b"alice", None, IRegistryUser)
        self.assertIs(interface, IRegistryUser)
        self.assertEqual(avatar, RegistryUser("alice", frozenset({"team"})))
        verifyObject(IRegistryUser, avatar)
        logout()
        _, anon, _ = realm.requestAvatar(checkers.ANONYMOUS, None, IRegistryUser)
        self.assertIs(anon, ANONYMOUS_USER)
        self.assertTrue(anon.anonymous)
        self.assertRaises(NotImplementedError, realm.requestAvatar, b"alice", None)
        self.assertRaises(error.UnauthorizedLogin, realm.requestAvatar, b"", None, IRegistryUser)

    def test_callable_groups(self) -> None:
        realm = RegistryRealm(lambda name: {name + "-group"})
        _, avatar, _ = realm.requestAvatar("x", None, IRegistryUser)
        self.assertEqual(avatar.groups, {"x-group"})


class PortalTests(SynchronousTestCase):
    def test_login_flow_with_policy(self) -> None:
        portal = make_portal(make_file(self), allow_anonymous=True, run_in_thread=synchronously)
        policy = Policy.from_dict(
            {
                "repositories": {
                    "**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]},
                    "public/**": {"anonymousPolicy": ["read"]},
                }
            }
        )
        _, alice, _ = self.successResultOf(
            portal.login(credentials.UsernamePassword(b"alice", b"wonderland"), None, IRegistryUser)
        )
        self.assertTrue(policy.decide(alice, "app", "create").allowed)
        _, anon, _ = self.successResultOf(portal.login(credentials.Anonymous(), None, IRegistryUser))
        self.assertTrue(policy.decide(anon, "public/x", "read").allowed)
        self.assertFalse(policy.decide(anon, "app", "read").allowed)
        self.failureResultOf(
            portal.login(credentials.UsernamePassword(b"alice", b"nope"), None, IRegistryUser),
            error.UnauthorizedLogin,
        )

    def test_anonymous_refused_unless_allowed(self) -> None:
        portal = make_portal(make_file(self), allow_anonymous=False, run_in_thread=synchronously)
        self.failureResultOf(
            portal.login(credentials.Anonymous(), None, IRegistryUser), error.UnhandledCredentials
        )
