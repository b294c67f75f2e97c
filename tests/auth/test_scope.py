"""The token scope grammar (auth-scope.md), granting, and request-time checks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.auth.test_policy import CONFIG
from txoci.auth.policy import Policy, Subject
from txoci.auth.scope import (
    MAX_SCOPES,
    ResourceScope,
    ScopeError,
    access_claim,
    check_access,
    grant,
    parse_access_claim,
    parse_scope,
    parse_scopes,
    scope_action_for,
)

quick = settings(max_examples=150, deadline=None)


class ParseTests(SynchronousTestCase):
    def test_simple(self) -> None:
        self.assertEqual(
            parse_scope("repository:samalba/my-app:pull,push"),
            [ResourceScope("repository", "samalba/my-app", ("pull", "push"))],
        )

    def test_resource_class_is_kept_but_ignored_for_identity(self) -> None:
        [scope] = parse_scope("repository(plugin):a/b:pull")
        self.assertEqual(scope.resource_class, "plugin")
        self.assertEqual(str(scope), "repository(plugin):a/b:pull")
        self.assertEqual(scope.key, ("repository", "a/b"))

    def test_hostname_with_port_in_name(self) -> None:
        [scope] = parse_scope("repository:localhost:5000/foo/bar:pull")
        self.assertEqual(scope.name, "localhost:5000/foo/bar")
        self.assertEqual(scope.actions, ("pull",))

    def test_catalog_and_star(self) -> None:
        self.assertEqual(parse_scope("registry:catalog:*"), [ResourceScope("registry", "catalog", ("*",))])

    def test_space_separated_and_several_parameters_merge(self) -> None:
        scopes = parse_scopes(
            ["repository:b:pull,push", "repository:a:pull repository(plugin):b:delete", "registry:catalog:*"]
        )
        self.assertEqual(
            scopes,
            [
                ResourceScope("repository", "b", ("pull", "push", "delete")),
                ResourceScope("repository", "a", ("pull",)),
                ResourceScope("registry", "catalog", ("*",)),
            ],
        )
        self.assertEqual(parse_scopes([""]), [])

    def test_duplicate_and_empty_actions(self) -> None:
        [scope] = parse_scope("repository:a:pull,,pull,push,")
        self.assertEqual(scope.actions, ("pull", "push"))

    def test_invalid(self) -> None:
        for text in [
            "repository",
            "repository:a",
            "Repository:a:pull",
            "repository:A:pull",
            "repository:a/../b:pull",
            "repository:a%2fb:pull",
            "repository:a//b:pull",
            "repository:a:PULL",
            "repository:a:pu ll",
            "repository():a:pull",
            "repository(x:a:pull",
            "repository:a:pull;rm",
            ":a:pull",
        ]:
            self.assertRaises(ScopeError, parse_scope, text)

    def test_limits(self) -> None:
        self.assertRaises(ScopeError, parse_scope, "x" * 10_000)
        many = " ".join(f"repository:r{i}:pull" for i in range(MAX_SCOPES + 1))
        self.assertRaises(ScopeError, parse_scope, many)
        self.assertRaises(ScopeError, parse_scopes, ["repository:a:pull"] * (MAX_SCOPES + 1))

    def test_access_claim_round_trip(self) -> None:
        scopes = parse_scopes(["repository:a:pull,push registry:catalog:*"])
        self.assertEqual(parse_access_claim(access_claim(scopes)), scopes)
        self.assertEqual(parse_access_claim(None), [])
        for bad in [
            "x",
            [1],
            [{"type": "repository"}],
            [{"type": "r", "name": "a", "actions": "pull"}],
            [{"type": "r", "name": "a", "actions": [1]}],
            [{"type": "R!", "name": "a"}],
        ]:
            self.assertRaises(ScopeError, parse_access_claim, bad)


class GrantTests(SynchronousTestCase):
    """The issuer grants the intersection of the request and the policy (auth-jwt.md)."""

    def setUp(self) -> None:
        self.policy = Policy.from_dict(CONFIG)

    def granted(self, who: Subject, *scopes: str) -> list[str]:
        return [str(s) for s in grant(parse_scopes(scopes), self.policy, who)]

    def test_more_scope_than_allowed_is_cut_down_not_refused(self) -> None:
        self.assertEqual(
            self.granted(Subject("reader"), "repository:app:pull,push,delete"), ["repository:app:pull"]
        )
        self.assertEqual(self.granted(Subject("reader"), "repository:team/x:pull,push"), [])
        self.assertEqual(self.granted(Subject("stranger"), "repository:app:*"), [])

    def test_push_follows_create(self) -> None:
        self.assertEqual(
            self.granted(Subject("ci"), "repository:app:pull,push"), ["repository:app:pull,push"]
        )
        self.assertEqual(self.granted(Subject("ci"), "repository:app:*"), [])
        self.assertEqual(self.granted(Subject("admin"), "repository:app:*"), ["repository:app:*"])

    def test_cross_repository_mount_scopes(self) -> None:
        granted = self.granted(Subject("carol"), "repository:team/b:pull,push", "repository:team/a:pull")
        self.assertEqual(granted, ["repository:team/b:pull,push", "repository:team/a:pull"])
        self.assertEqual(
            self.granted(Subject("carol"), "repository:team/b:pull,push", "repository:secret:pull"),
            ["repository:team/b:pull,push"],
        )

    def test_anonymous(self) -> None:
        anon = Subject(anonymous=True)
        self.assertEqual(self.granted(anon, "repository:public/x:pull,push"), ["repository:public/x:pull"])
        self.assertEqual(self.granted(anon, "repository:team/x:pull"), [])
        self.assertEqual(self.granted(anon, "registry:catalog:*"), ["registry:catalog:*"])
        closed = Policy.from_dict({"repositories": {"x": {"defaultPolicy": ["read"]}}})
        self.assertEqual(grant(parse_scope("registry:catalog:*"), closed, anon), [])

    def test_unknown_types_and_foreign_names_are_dropped(self) -> None:
        self.assertEqual(self.granted(Subject("admin"), "namespace:team:pull", "registry:other:*"), [])
        self.assertEqual(self.granted(Subject("admin"), "repository:localhost:5000/app:pull"), [])
        self.assertEqual(
            self.granted(Subject("admin"), "repository(plugin):app:pull"), ["repository:app:pull"]
        )


class CheckAccessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.policy = Policy.from_dict(CONFIG)

    def test_token_for_a_is_useless_on_b(self) -> None:
        access = parse_scope("repository:team/a:pull,push")
        self.assertTrue(check_access(access, "team/a", "read").allowed)
        for repo in ["team/b", "team/a/sub", "team", "team/a2"]:
            decision = check_access(access, repo, "read")
            self.assertFalse(decision.allowed, repo)
            self.assertIn("'pull'", decision.reason)

    def test_actions_map(self) -> None:
        pull_only = parse_scope("repository:a:pull")
        self.assertFalse(check_access(pull_only, "a", "create").allowed)
        push = parse_scope("repository:a:push")
        self.assertTrue(check_access(push, "a", "create").allowed)
        self.assertTrue(check_access(push, "a", "update").allowed)
        self.assertFalse(check_access(push, "a", "read").allowed)
        self.assertFalse(check_access(push, "a", "delete").allowed)
        star = parse_scope("repository:a:*")
        for action in ("read", "create", "update", "delete"):
            self.assertTrue(check_access(star, "a", action).allowed)
        self.assertEqual(
            [scope_action_for(a) for a in ("read", "create", "update", "delete")],
            ["pull", "push", "push", "delete"],
        )

    def test_create_but_not_update_holds_with_a_push_token(self) -> None:
        access = grant(parse_scope("repository:app:pull,push"), self.policy, Subject("ci"))
        self.assertTrue(check_access(access, "app", "create", policy=self.policy, user=Subject("ci")).allowed)
        decision = check_access(access, "app", "update", policy=self.policy, user=Subject("ci"))
        self.assertFalse(decision.allowed)

    def test_policy_changes_apply_before_expiry(self) -> None:
        access = parse_scope("repository:app:pull")
        tighter = Policy.from_dict({})
        self.assertFalse(check_access(access, "app", "read", policy=tighter, user=Subject("reader")).allowed)

    def test_invalid_repository_names(self) -> None:
        access = [
            ResourceScope("repository", "Team/A", ("*",)),
            ResourceScope("repository", "a/../b", ("*",)),
        ]
        self.assertFalse(check_access(access, "Team/A", "read").allowed)
        self.assertFalse(check_access(access, "a/../b", "read").allowed)

    def test_resource_class_is_ignored(self) -> None:
        access = parse_access_claim([{"type": "repository(plugin)", "name": "a", "actions": ["pull"]}])
        self.assertTrue(check_access(access, "a", "read").allowed)


_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_component = st.builds(
    lambda first, rest: first + "".join(sep + run for sep, run in rest),
    st.text(alphabet=_ALNUM, min_size=1, max_size=5),
    st.lists(
        st.tuples(
            st.sampled_from([".", "_", "__", "-", "--"]), st.text(alphabet=_ALNUM, min_size=1, max_size=5)
        ),
        max_size=2,
    ),
)
_hostcomponent = st.builds(
    lambda edge, middle, tail: edge + middle + tail if middle or tail else edge,
    st.text(alphabet=_ALNUM + "ABZ", min_size=1, max_size=1),
    st.text(alphabet=_ALNUM + "-AZ", max_size=4),
    st.text(alphabet=_ALNUM + "Z", min_size=1, max_size=1),
)
_host = st.builds(
    lambda parts, port: ".".join(parts) + (f":{port}" if port is not None else ""),
    st.lists(_hostcomponent, min_size=1, max_size=3),
    st.one_of(st.none(), st.integers(0, 65535)),
)
_names = st.builds(
    lambda host, parts: "/".join(([host] if host else []) + parts),
    st.one_of(st.none(), _host),
    st.lists(_component, min_size=1, max_size=3),
)
_types = st.builds(
    lambda t, c: f"{t}({c})" if c else t,
    st.text(alphabet=_ALNUM, min_size=1, max_size=10),
    st.one_of(st.none(), st.text(alphabet=_ALNUM, min_size=1, max_size=6)),
)
_actions = st.lists(
    st.one_of(st.just("*"), st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)),
    min_size=1,
    max_size=4,
    unique=True,
)
resource_scopes = st.builds(lambda t, n, a: f"{t}:{n}:{','.join(a)}", _types, _names, _actions)
scope_lists = st.lists(resource_scopes, max_size=5).map(" ".join)
junk = st.text(alphabet="repository:(plugin)ab/._-:,* %A\x00é", max_size=40)


class ScopePropertyTests(SynchronousTestCase):
    @quick
    @given(scope_lists)
    def test_round_trip(self, text: str) -> None:
        scopes = parse_scope(text)
        self.assertEqual(" ".join(str(s) for s in scopes), text)
        self.assertEqual(parse_scope(" ".join(str(s) for s in scopes)), scopes)

    @quick
    @given(st.one_of(junk, st.text(max_size=60), scope_lists))
    def test_raises_only_scope_error(self, text: str) -> None:
        try:
            scopes = parse_scope(text)
        except ScopeError:
            return
        for scope in scopes:
            self.assertEqual(parse_scope(str(scope)), [scope])

    @quick
    @given(st.lists(scope_lists, max_size=4))
    def test_merge_keeps_every_action(self, values: list[str]) -> None:
        merged = parse_scopes(values)
        keys = [s.key for s in merged]
        self.assertEqual(len(keys), len(set(keys)))
        for value in values:
            for scope in parse_scope(value):
                [target] = [m for m in merged if m.key == scope.key]
                self.assertTrue(set(scope.actions) <= set(target.actions))

    @quick
    @given(scope_lists, st.sampled_from(["admin", "reader", "ci", "carol", "stranger", ""]))
    def test_grant_is_a_subset_of_the_request(self, text: str, name: str) -> None:
        who = Subject(name) if name else Subject(anonymous=True)
        requested = {s.key: set(s.actions) for s in parse_scopes([text])}
        for scope in grant(parse_scope(text), Policy.from_dict(CONFIG), who):
            self.assertTrue(set(scope.actions) <= requested[scope.key])
            self.assertTrue(scope.actions)
