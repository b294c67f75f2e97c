"""
Per-repository access policies with zot-compatible semantics.

The configuration mirrors zot's ``accessControl`` section (so a zot policy migrates by copying
it), loaded with :meth:`Policy.from_dict` from the ``[auth.access]`` table of ``txoci.toml``
(the TOML loader is not part of this module)::

    [auth.access.groups.team]            # optional: group membership kept in the policy file
    users = ["carol", "dave"]

    [auth.access.repositories."**"]      # every repository, unless a longer pattern matches
    defaultPolicy = ["read"]             # any authenticated user
    [[auth.access.repositories."**".policies]]
    users = ["ci"]
    actions = ["read", "create"]

    [auth.access.repositories."team/**"]
    [[auth.access.repositories."team/**".policies]]
    groups = ["team"]
    actions = ["read", "create", "update", "delete"]

    [auth.access.repositories."public/**"]
    anonymousPolicy = ["read"]           # no credentials at all
    defaultPolicy = ["read"]

    [auth.access.adminPolicy]
    users = ["admin"]
    groups = []
    actions = ["read", "create", "update", "delete"]   # optional; all four when omitted

Schema (the dict :meth:`Policy.from_dict` takes; unknown keys are errors, never ignored):

- ``repositories``: table of *pattern* -> rule.  A rule has ``policies`` (a list of
  ``{users = [...], groups = [...], actions = [...]}``), ``defaultPolicy`` (actions for any
  authenticated user) and ``anonymousPolicy`` (actions for callers without credentials).
- ``adminPolicy``: ``{users, groups, actions}`` applying to every repository.
- ``groups``: table of group name -> ``{users = [...]}``; these memberships are added to any the
  authenticator supplies.
- Actions are ``read`` (pull, HEAD, list tags, referrers), ``create`` (push new content and new
  tags), ``update`` (move an existing tag) and ``delete``.

Patterns (zot uses doublestar globs): components separated by ``/``; ``*`` matches any run of
characters within one component, ``?`` exactly one character other than ``/``, and a component
that is exactly ``**`` matches zero or more whole components (so ``team/**`` matches ``team``,
``team/a`` and ``team/a/b``; ``**`` matches everything).  Literal characters are those of
repository names (``a-z0-9._-``); anything else -- upper case, ``[``, ``{``, ``\\``, ``**`` inside a
component -- is refused when the policy is loaded, since it could never match or would mean
something else in zot.

Decisions (zot's ``can``):

1. The repository name is validated with :func:`txoci.registry.names.validate_name` first; an
   invalid name (``..``, ``%2F``, upper case, empty components...) is denied and never matched
   against any pattern.
2. Among the patterns that match, the *longest* wins -- zot compares ``len(pattern)``; equal
   lengths (which zot leaves to Go's random map order) are broken deterministically: fewer
   wildcard characters first, then alphabetical.  Only that one rule is consulted: a more
   specific rule *replaces* broader ones, it does not add to them.
3. Within the rule, an action is allowed when a ``policies`` entry names the user (or one of
   their groups) with that action, or ``defaultPolicy`` has it and the caller is authenticated,
   or ``anonymousPolicy`` has it and the caller is anonymous.
4. Otherwise an ``adminPolicy`` user or group member with that action is allowed, on every
   repository (whatever rule matched, or none).
5. Everything else is denied (no matching rule means no access).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from txoci.registry.errors import NameInvalid
from txoci.registry.names import validate_name

__all__ = [
    "ALL_ACTIONS",
    "Action",
    "Decision",
    "Pattern",
    "Policy",
    "PolicyError",
    "Rule",
    "Subject",
    "UserPolicy",
    "check_table",
    "glob_matches",
]


class PolicyError(ValueError):
    """The policy configuration is invalid; the message names the key and the problem."""


class Action(enum.StrEnum):
    """What a caller wants to do to a repository (zot's action names)."""

    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


ALL_ACTIONS: frozenset[Action] = frozenset(Action)

_LITERAL = "abcdefghijklmnopqrstuvwxyz0123456789._-"
_COMPONENT_PATTERN = re.compile(r"^[a-z0-9._\-*?]+$")


@attrs.frozen
class Pattern:
    """A compiled repository glob (see the module docstring for the syntax)."""

    text: str
    regex: re.Pattern[str] = attrs.field(repr=False, eq=False)

    @property
    def wildcards(self) -> int:
        """How many wildcard characters the pattern has (a tie-breaker for equal lengths)."""
        return sum(self.text.count(c) for c in "*?")

    def matches(self, name: str) -> bool:
        """Whether the (already validated) repository ``name`` matches."""
        return self.regex.fullmatch(name) is not None

    @classmethod
    def compile(cls, text: str) -> Pattern:
        """Compile ``text``, raising :class:`PolicyError` for anything outside the syntax."""
        if not isinstance(text, str) or not text:
            raise PolicyError("a repository pattern must be a non-empty string")
        components: list[str] = []
        for component in text.split("/"):
            if not (component == "**" and components and components[-1] == "**"):
                components.append(component)  # "**/**" means the same as "**"
        parts: list[str] = []
        for index, component in enumerate(components):
            last = index == len(components) - 1
            if component == "**":
                if index == 0 and last:
                    parts.append(r"(?:[^/]+(?:/[^/]+)*)?")
                elif index == 0:
                    parts.append(r"(?:[^/]+/)*")
                elif last:
                    parts.append(r"(?:/[^/]+)*")
                else:
                    parts.append(r"/(?:[^/]+/)*")
                continue
            if not component:
                raise PolicyError(f"repository pattern {text!r} has an empty component")
            if "**" in component:
                raise PolicyError(f"repository pattern {text!r}: '**' must be a whole component")
            if not _COMPONENT_PATTERN.fullmatch(component):
                raise PolicyError(
                    f"repository pattern {text!r} has characters that can never match a repository "
                    "name (names are lower-case a-z, 0-9, '.', '_', '-' and '/'; wildcards are * ? **)"
                )
            body = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in component)
            previous_is_globstar = index > 0 and components[index - 1] == "**"
            parts.append(body if index == 0 or previous_is_globstar else "/" + body)
        return cls(text, re.compile("".join(parts)))


def glob_matches(pattern: str, name: str) -> bool:
    """Whether repository ``name`` matches ``pattern`` (both as strings; the pattern is compiled)."""
    return Pattern.compile(pattern).matches(name)


def _string_list(value: Any, key: str) -> frozenset[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{key}: expected a list of non-empty strings")
    return frozenset(value)


def _actions(value: Any, key: str) -> frozenset[Action]:
    names = _string_list(value, key)
    try:
        return frozenset(Action(name) for name in names)
    except ValueError:
        bad = sorted(n for n in names if n not in {a.value for a in Action})
        raise PolicyError(
            f"{key}: unknown action {bad[0]!r}; actions are read, create, update, delete"
        ) from None


def check_table(
    table: Any, allowed: Iterable[str], key: str, error: type[ValueError] = PolicyError
) -> Mapping[str, Any]:
    """``table`` if it is a table with only ``allowed`` keys; else ``error``, naming the key."""
    if not isinstance(table, Mapping):
        raise error(f"{key}: expected a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise error(f"{key}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return table


@attrs.frozen
class UserPolicy:
    """One entry of a rule's ``policies`` (or the ``adminPolicy``): who may do what."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    actions: frozenset[Action] = frozenset()

    def applies_to(self, subject: Subject) -> bool:
        """Whether this entry names ``subject`` or one of its groups (never an anonymous caller)."""
        if subject.anonymous:
            return False
        return subject.name in self.users or not self.groups.isdisjoint(subject.groups)

    @classmethod
    def from_dict(
        cls, table: Any, key: str, *, default_actions: frozenset[Action] | None = None
    ) -> UserPolicy:
        """Load ``{users, groups, actions}`` (``actions`` optional only when a default is given)."""
        table = check_table(table, ("users", "groups", "actions"), key)
        if "actions" in table:
            actions = _actions(table["actions"], f"{key}.actions")
        elif default_actions is not None:
            actions = default_actions
        else:
            raise PolicyError(f"{key}: missing 'actions'")
        return cls(
            users=_string_list(table.get("users", []), f"{key}.users"),
            groups=_string_list(table.get("groups", []), f"{key}.groups"),
            actions=actions,
        )


@attrs.frozen
class Rule:
    """The policies for repositories matching one pattern."""

    pattern: Pattern
    policies: tuple[UserPolicy, ...] = ()
    default_actions: frozenset[Action] = frozenset()
    anonymous_actions: frozenset[Action] = frozenset()

    def allowed_actions(self, subject: Subject) -> frozenset[Action]:
        """Every action this rule gives ``subject``."""
        if subject.anonymous:
            return self.anonymous_actions
        granted = set(self.default_actions)
        for policy in self.policies:
            if policy.applies_to(subject):
                granted |= policy.actions
        return frozenset(granted)

    def _why(self, subject: Subject, action: Action) -> str | None:
        if subject.anonymous:
            return "anonymousPolicy" if action in self.anonymous_actions else None
        for policy in self.policies:
            if action in policy.actions:
                if subject.name in policy.users:
                    return f"a policy naming user {subject.name!r}"
                shared = sorted(policy.groups & subject.groups)
                if shared:
                    return f"a policy naming group {shared[0]!r}"
        return "defaultPolicy" if action in self.default_actions else None

    @classmethod
    def from_dict(cls, pattern: str, table: Any) -> Rule:
        key = f"repositories.{pattern!r}"
        compiled = Pattern.compile(pattern)
        table = check_table(table, ("policies", "defaultPolicy", "anonymousPolicy"), key)
        raw_policies = table.get("policies", [])
        if not isinstance(raw_policies, list | tuple):
            raise PolicyError(f"{key}.policies: expected a list of tables")
        return cls(
            pattern=compiled,
            policies=tuple(
                UserPolicy.from_dict(entry, f"{key}.policies[{i}]") for i, entry in enumerate(raw_policies)
            ),
            default_actions=_actions(table.get("defaultPolicy", []), f"{key}.defaultPolicy"),
            anonymous_actions=_actions(table.get("anonymousPolicy", []), f"{key}.anonymousPolicy"),
        )


@attrs.frozen
class Subject:
    """Who is asking: a user name and groups, or anonymous.

    Anything providing ``name``, ``groups`` and ``anonymous`` (such as
    :class:`txoci.auth.cred.IRegistryUser` avatars) converts with :meth:`of`.
    """

    name: str = ""
    groups: frozenset[str] = frozenset()
    anonymous: bool = False

    @classmethod
    def of(cls, user: Any) -> Subject:
        if isinstance(user, Subject):
            return user
        anonymous = bool(user.anonymous)
        return cls(
            name="" if anonymous else str(user.name),
            groups=frozenset() if anonymous else frozenset(user.groups),
            anonymous=anonymous,
        )


ANONYMOUS_SUBJECT = Subject(anonymous=True)


@attrs.frozen
class Decision:
    """The outcome of :meth:`Policy.decide`, with the rule that made it and why (for ``access explain``)."""

    allowed: bool
    rule: str | None
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@attrs.frozen
class Policy:
    """A complete access policy: repository rules, an admin policy and extra group memberships."""

    rules: tuple[Rule, ...] = ()
    admin: UserPolicy = UserPolicy()
    groups: Mapping[str, frozenset[str]] = attrs.field(factory=dict)

    @classmethod
    def from_dict(cls, table: Any) -> Policy:
        """Load a policy from the configuration dict described in the module docstring."""
        table = check_table(table, ("repositories", "adminPolicy", "groups"), "access")
        repositories = table.get("repositories", {})
        if not isinstance(repositories, Mapping):
            raise PolicyError("repositories: expected a table of pattern -> rule")
        rules = tuple(Rule.from_dict(pattern, rule) for pattern, rule in repositories.items())
        admin = (
            UserPolicy.from_dict(table["adminPolicy"], "adminPolicy", default_actions=ALL_ACTIONS)
            if "adminPolicy" in table
            else UserPolicy()
        )
        raw_groups = table.get("groups", {})
        if not isinstance(raw_groups, Mapping):
            raise PolicyError("groups: expected a table of group -> {users = [...]}")
        groups: dict[str, frozenset[str]] = {}
        for group, members in raw_groups.items():
            members = check_table(members, ("users",), f"groups.{group!r}")
            groups[str(group)] = _string_list(members.get("users", []), f"groups.{group!r}.users")
        return cls(rules=rules, admin=admin, groups=groups)

    # -- queries ---------------------------------------------------------------------------------

    def subject(self, user: Any) -> Subject:
        """``user`` as a :class:`Subject`, with the groups the policy file adds for that name."""
        subject = Subject.of(user)
        if subject.anonymous:
            return ANONYMOUS_SUBJECT
        extra = frozenset(g for g, members in self.groups.items() if subject.name in members)
        return attrs.evolve(subject, groups=subject.groups | extra) if extra else subject

    def rule_for(self, repository: str) -> Rule | None:
        """The rule for an already-validated ``repository``: the longest matching pattern, or ``None``."""
        matching = [rule for rule in self.rules if rule.pattern.matches(repository)]
        if not matching:
            return None
        return min(matching, key=lambda r: (-len(r.pattern.text), r.pattern.wildcards, r.pattern.text))

    def _admin_actions(self, subject: Subject) -> frozenset[Action]:
        return self.admin.actions if self.admin.applies_to(subject) else frozenset()

    def allowed_actions(self, user: Any, repository: str) -> frozenset[Action]:
        """Every action ``user`` may take on ``repository`` (empty for an invalid name)."""
        try:
            validate_name(repository)
        except NameInvalid:
            return frozenset()
        subject = self.subject(user)
        rule = self.rule_for(repository)
        granted = rule.allowed_actions(subject) if rule is not None else frozenset()
        return granted | self._admin_actions(subject)

    def can_read_anything(self, user: Any) -> bool:
        """Whether some repository could be readable by ``user`` (gates ``registry:catalog:*``)."""
        subject = self.subject(user)
        return Action.READ in self._admin_actions(subject) or any(
            Action.READ in rule.allowed_actions(subject) for rule in self.rules
        )

    def decide(self, user: Any, repository: str, action: Action | str) -> Decision:
        """Whether ``user`` may take ``action`` on ``repository``, and which rule decided.

        ``user`` is a :class:`Subject` or anything with ``name``, ``groups`` and ``anonymous``.
        """
        try:
            wanted = Action(action)
        except ValueError:
            return Decision(False, None, f"unknown action {str(action)[:40]!r}")
        try:
            validate_name(repository)
        except NameInvalid:
            return Decision(False, None, f"{repository[:300]!r} is not a valid repository name")
        subject = self.subject(user)
        who = "anonymous" if subject.anonymous else f"user {subject.name!r}"
        rule = self.rule_for(repository)
        if rule is not None:
            why = rule._why(subject, wanted)
            if why is not None:
                return Decision(True, rule.pattern.text, f"{who} may {wanted} {repository!r}: {why}")
        if wanted in self._admin_actions(subject):
            return Decision(True, "adminPolicy", f"{who} may {wanted} {repository!r}: adminPolicy")
        if rule is None:
            return Decision(False, None, f"no rule matches {repository!r}, so {who} may not {wanted} it")
        return Decision(
            False, rule.pattern.text, f"rule {rule.pattern.text!r} does not let {who} {wanted} {repository!r}"
        )
