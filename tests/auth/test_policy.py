"""Per-repository policies: zot semantics, longest-pattern rule, glob-bypass names, properties."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.auth.fixtures import ACCESS
from txoci.auth.cred import ANONYMOUS_USER, RegistryUser
from txoci.auth.policy import Action, Pattern, Policy, PolicyError, Subject, glob_matches
from txoci.registry.errors import NameInvalid
from txoci.registry.names import validate_name

quick = settings(max_examples=200, deadline=None)

#: The acceptance policy of issue 5 (an admin, a read-only user, a team with push on team/**,
#: anonymous read on public/**), and a repository where the team may only read.
CONFIG = {
    **ACCESS,
    "repositories": {
        **ACCESS["repositories"],
        "team/frozen": {"policies": [{"groups": ["team"], "actions": ["read"]}]},
    },
}

ADMIN = Subject("admin")
READER = Subject("reader")
CI = Subject("ci")
CAROL = Subject("carol")
STRANGER = Subject("stranger")
ANON = Subject(anonymous=True)


class PolicyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.policy = Policy.from_dict(CONFIG)

    def allowed(self, who: object, repo: str, action: str) -> bool:
        return self.policy.decide(who, repo, action).allowed

    def test_admin_can_do_everything_everywhere(self) -> None:
        for repo in ["a", "team/x", "team/frozen", "public/p", "deep/er/repo"]:
            for action in Action:
                decision = self.policy.decide(ADMIN, repo, action)
                self.assertTrue(decision.allowed, (repo, action))
        self.assertEqual(self.policy.decide(ADMIN, "a", "delete").rule, "adminPolicy")

    def test_read_only_user(self) -> None:
        self.assertTrue(self.allowed(READER, "anything/at/all", "read"))
        for action in ("create", "update", "delete"):
            self.assertFalse(self.allowed(READER, "anything", action))

    def test_longest_pattern_replaces_broader_rules(self) -> None:
        # reader may read "**", but "team/**" is longer and does not mention reader.
        decision = self.policy.decide(READER, "team/app", "read")
        self.assertFalse(decision.allowed)
        self.assertEqual(decision.rule, "team/**")
        self.assertIn("team/**", decision.reason)
        # The team may push team/app, but team/frozen is an exact, longer rule: read only.
        self.assertTrue(self.allowed(CAROL, "team/app", "update"))
        self.assertTrue(self.allowed(CAROL, "team/a/b/c", "delete"))
        self.assertTrue(self.allowed(CAROL, "team", "create"), "team/** matches team itself (doublestar)")
        self.assertFalse(self.allowed(CAROL, "team/frozen", "create"))
        self.assertEqual(self.policy.decide(CAROL, "team/frozen", "read").rule, "team/frozen")
        self.assertFalse(self.allowed(CAROL, "other", "read"))

    def test_create_but_not_update(self) -> None:
        self.assertTrue(self.allowed(CI, "app", "create"))
        decision = self.policy.decide(CI, "app", "update")
        self.assertFalse(decision.allowed)
        self.assertIn("update", decision.reason)
        self.assertEqual(self.policy.allowed_actions(CI, "app"), {Action.READ, Action.CREATE})

    def test_anonymous_policy(self) -> None:
        self.assertTrue(self.allowed(ANON, "public/p", "read"))
        self.assertEqual(
            self.policy.decide(ANON, "public/p", "read").reason.split(": ")[-1], "anonymousPolicy"
        )
        self.assertFalse(self.allowed(ANON, "public/p", "create"))
        self.assertFalse(self.allowed(ANON, "private", "read"))
        self.assertFalse(self.allowed(ANONYMOUS_USER, "team/x", "read"))
        # defaultPolicy is for authenticated users only, anonymousPolicy for anonymous ones only.
        self.assertTrue(self.allowed(STRANGER, "public/p", "read"))
        only_anon = Policy.from_dict({"repositories": {"**": {"anonymousPolicy": ["read"]}}})
        self.assertFalse(only_anon.decide(STRANGER, "x", "read").allowed)
        only_default = Policy.from_dict({"repositories": {"**": {"defaultPolicy": ["read"]}}})
        self.assertFalse(only_default.decide(ANON, "x", "read").allowed)

    def test_anonymous_never_matches_a_named_empty_user(self) -> None:
        """The anonymous caller's name is "", so "" may not be named in a policy at all."""
        self.assertRaises(PolicyError, Policy.from_dict, {"adminPolicy": {"users": [""]}})
        self.assertRaises(
            PolicyError,
            Policy.from_dict,
            {"repositories": {"**": {"policies": [{"users": [""], "actions": ["read"]}]}}},
        )

    def test_avatars_and_policy_groups(self) -> None:
        self.assertTrue(self.allowed(RegistryUser("dave"), "team/x", "update"))
        self.assertTrue(self.allowed(RegistryUser("eve", frozenset({"team"})), "team/x", "update"))
        self.assertFalse(self.allowed(RegistryUser("eve"), "team/x", "update"))

    def test_glob_bypass_names_never_match(self) -> None:
        """Only validated names reach the matcher: no .., encoded slash, case or empty-component trick."""
        tricks = [
            "team/../secret",
            "team/./x",
            "team%2Fx",
            "team%2fx",
            "TEAM/x",
            "Team/x",
            "team//x",
            "/team/x",
            "team/x/",
            "team/x\x00",
            "team/x\n",
            "team\\x",
            "public/../team/x",
            "public/%2e%2e/team",
            "",
            "team/" + "a" * 300,
        ]
        for name in tricks:
            for who in (ADMIN, CAROL, ANON):
                decision = self.policy.decide(who, name, "read")
                self.assertFalse(decision.allowed, (who, name))
                self.assertIsNone(decision.rule)
            self.assertEqual(self.policy.allowed_actions(ADMIN, name), frozenset())

    def test_no_rule_means_no_access(self) -> None:
        policy = Policy.from_dict({"repositories": {"a": {"defaultPolicy": ["read"]}}})
        decision = policy.decide(READER, "b", "read")
        self.assertFalse(decision.allowed)
        self.assertIsNone(decision.rule)
        self.assertIn("no rule", decision.reason)
        self.assertFalse(Policy().decide(READER, "b", "read"))

    def test_unknown_action(self) -> None:
        self.assertFalse(self.policy.decide(ADMIN, "a", "pull").allowed)

    def test_can_read_anything(self) -> None:
        self.assertTrue(self.policy.can_read_anything(ANON))
        self.assertTrue(self.policy.can_read_anything(READER))
        closed = Policy.from_dict(
            {"repositories": {"x": {"policies": [{"users": ["a"], "actions": ["read"]}]}}}
        )
        self.assertFalse(closed.can_read_anything(ANON))
        self.assertFalse(closed.can_read_anything(Subject("b")))
        self.assertTrue(closed.can_read_anything(Subject("a")))

    def test_admin_actions_can_be_limited(self) -> None:
        policy = Policy.from_dict({"adminPolicy": {"groups": ["ops"], "actions": ["read", "delete"]}})
        ops = Subject("o", frozenset({"ops"}))
        self.assertTrue(policy.decide(ops, "x", "delete").allowed)
        self.assertFalse(policy.decide(ops, "x", "create").allowed)


class ConfigErrorTests(SynchronousTestCase):
    def assertConfigError(self, config: object, *fragments: str) -> None:  # noqa: N802
        with self.assertRaises(PolicyError) as caught:
            Policy.from_dict(config)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_errors_name_the_key(self) -> None:
        self.assertConfigError({"repository": {}}, "access.repository: unknown key")
        self.assertConfigError(
            {"repositories": {"a": {"defaultPolicy": ["pull"]}}}, "defaultPolicy", "'pull'"
        )
        self.assertConfigError(
            {"repositories": {"a": {"policies": [{"users": ["x"]}]}}}, "policies[0]", "actions"
        )
        self.assertConfigError({"repositories": {"a": {"policies": {"users": []}}}}, "policies")
        self.assertConfigError({"repositories": {"a": {"policys": []}}}, ".policys: unknown key")
        self.assertConfigError({"repositories": {"a": {"defaultPolicy": "read"}}}, "defaultPolicy")
        self.assertConfigError({"groups": {"g": {"members": []}}}, "groups", ".members: unknown key")
        self.assertConfigError({"adminPolicy": {"users": ["a"], "actions": ["all"]}}, "adminPolicy.actions")
        self.assertConfigError([], "access")

    def test_bad_patterns(self) -> None:
        for pattern in ["", "Team/*", "team/[ab]", "team/{a,b}", "a**", "team//x", "team/", "a\\b", "x y"]:
            self.assertConfigError({"repositories": {pattern: {}}}, "pattern")


class GlobTests(SynchronousTestCase):
    def test_examples(self) -> None:
        table = [
            ("**", "a", True),
            ("**", "a/b/c", True),
            ("team/*", "team/a", True),
            ("team/*", "team/a/b", False),
            ("team/*", "team", False),
            ("team/**", "team", True),
            ("team/**", "team/a/b", True),
            ("team/**", "teams/a", False),
            ("team*", "teamx", True),
            ("team*", "team/x", False),
            ("**/app", "app", True),
            ("**/app", "x/y/app", True),
            ("**/app", "x/app2", False),
            ("a/**/b", "a/b", True),
            ("a/**/b", "a/x/y/b", True),
            ("a/**/b", "ab", False),
            ("a?c", "abc", True),
            ("a?c", "a/c", False),
            ("a.b", "axb", False),
            ("a/**/**", "a", True),
            ("exact/name", "exact/name", True),
            ("exact/name", "exact/name2", False),
        ]
        for pattern, name, expected in table:
            self.assertEqual(glob_matches(pattern, name), expected, (pattern, name))

    def test_ties_are_deterministic(self) -> None:
        policy = Policy.from_dict(
            {
                "repositories": {
                    "a/*c": {"defaultPolicy": ["delete"]},
                    "a/bc": {"defaultPolicy": ["read"]},
                    "a/b*": {"defaultPolicy": ["create"]},
                }
            }
        )
        self.assertEqual(policy.decide(READER, "a/bc", "read").rule, "a/bc", "fewer wildcards win a tie")
        policy2 = Policy.from_dict(
            {"repositories": {"a/b*": {"defaultPolicy": ["create"]}, "a/*c": {"defaultPolicy": ["read"]}}}
        )
        self.assertEqual(policy2.decide(READER, "a/bc", "read").rule, "a/*c", "then alphabetical order")


_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_component = st.text(alphabet=_ALNUM, min_size=1, max_size=4)
names = st.lists(_component, min_size=1, max_size=4).map("/".join)
_pattern_component = st.one_of(
    st.just("**"), st.text(alphabet="ab1.-*?", min_size=1, max_size=4).filter(lambda c: "**" not in c)
)
patterns = st.lists(_pattern_component, min_size=1, max_size=4).map("/".join)
junk = st.text(alphabet="ab1./*?-_[]{}\\A %\x00", max_size=12)


def reference_match(pattern: str, name: str) -> bool:
    """A slow, obviously-correct matcher: recursion over components."""

    def component(p: str, c: str) -> bool:
        regex = "".join("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in p)
        return re.fullmatch(regex, c) is not None

    def walk(ps: list[str], cs: list[str]) -> bool:
        if not ps:
            return not cs
        if ps[0] == "**":
            return any(walk(ps[1:], cs[i:]) for i in range(len(cs) + 1))
        return bool(cs) and component(ps[0], cs[0]) and walk(ps[1:], cs[1:])

    return walk(pattern.split("/"), name.split("/"))


class GlobPropertyTests(SynchronousTestCase):
    @quick
    @given(patterns, names)
    def test_agrees_with_reference(self, pattern: str, name: str) -> None:
        self.assertEqual(glob_matches(pattern, name), reference_match(pattern, name))

    @quick
    @given(names)
    def test_literal_pattern_matches_only_itself(self, name: str) -> None:
        self.assertTrue(glob_matches(name, name))
        self.assertTrue(glob_matches("**", name))
        self.assertFalse(glob_matches(name, name + "x"))

    @quick
    @given(junk)
    def test_compile_raises_only_policy_error(self, pattern: str) -> None:
        try:
            compiled = Pattern.compile(pattern)
        except PolicyError:
            return
        self.assertEqual(compiled.text, pattern)

    @quick
    @given(st.one_of(names, junk), st.sampled_from(list(Action)))
    def test_decide_never_raises_and_invalid_names_are_denied(self, name: str, action: Action) -> None:
        policy = Policy.from_dict(CONFIG)
        decision = policy.decide(ADMIN, name, action)
        try:
            validate_name(name)
        except NameInvalid:
            self.assertFalse(decision.allowed)
        else:
            self.assertTrue(decision.allowed)

    @quick
    @given(st.lists(patterns, min_size=1, max_size=5, unique=True), names)
    def test_chosen_rule_is_a_longest_match(self, pattern_list: list[str], name: str) -> None:
        policy = Policy.from_dict({"repositories": {p: {} for p in pattern_list}})
        rule = policy.rule_for(name)
        matching = [p for p in pattern_list if reference_match(p, name)]
        if not matching:
            self.assertIsNone(rule)
        else:
            assert rule is not None
            self.assertIn(rule.pattern.text, matching)
            self.assertEqual(len(rule.pattern.text), max(map(len, matching)))
