"""
The Docker token scope grammar (auth-scope.md) and how scopes map onto policy actions.

Grammar (auth-scope.md, "Resource Scope Grammar")::

    scope          := resourcescope [ ' ' resourcescope ]*
    resourcescope  := resourcetype ":" resourcename ":" action [ ',' action ]*
    resourcetype   := resourcetypevalue [ '(' resourcetypevalue ')' ]
    resourcename   := [ hostname '/' ] component [ '/' component ]*
    action         := /[a-z]*/

The resource name may itself hold one ``:`` (a port in its hostname), so the actions are what
follows the *last* colon and the type what precedes the first.  In practice ``*`` is an action
too (``registry:catalog:*``, Docker Hub's ``repository:NAME:*``), so it is accepted.  The resource
class (``repository(plugin)``) is deprecated and "considered equal" to the bare type when
authorizing, so it is parsed, kept for round-tripping, and ignored by every check.  Several
``scope`` query parameters (GET /token) and space-separated lists (POST /token, auth-oauth.md)
are both handled by :func:`parse_scopes`, which merges entries for the same resource -- a
cross-repository mount asks for ``repository:B:pull,push`` and ``repository:A:pull`` together.

Mapping token actions onto policy actions (:data:`SCOPE_ACTIONS`) -- zot semantics:

==========  ===========================  ==================================================
scope       granted when policy allows   permits at request time
==========  ===========================  ==================================================
``pull``    ``read``                     ``read``
``push``    ``create``                   ``create`` and ``update``
``delete``  ``delete``                   ``delete``
``*``       all four actions             all four actions
==========  ===========================  ==================================================

``push`` is one token action while the policy distinguishes ``create`` (new content, new tags)
from ``update`` (moving an existing tag), so a token can't express "create but not update".
``push`` is granted to whoever may ``create`` (every push uploads blobs), and
:func:`check_access` takes the policy as well as the token: for tokens from the built-in issuer
the web layer passes both, so a ``create``-only user holding a ``push`` token still can't move a
tag, and a policy edit takes effect before the token expires.  For an external issuer whose
``access`` claims are authoritative, ``push`` means ``create`` + ``update``.

``registry:catalog:*`` is granted to any caller who could read some repository; the catalog
itself is filtered per repository with the policy.  Other resource types are never granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from txoci.auth.policy import ALL_ACTIONS, Action, Decision, Policy
from txoci.registry.errors import NameInvalid
from txoci.registry.names import validate_name

__all__ = [
    "MAX_SCOPES",
    "MAX_SCOPE_LENGTH",
    "SCOPE_ACTIONS",
    "ResourceScope",
    "ScopeError",
    "access_claim",
    "check_access",
    "grant",
    "merge",
    "parse_access_claim",
    "parse_scope",
    "parse_scopes",
    "scope_action_for",
    "token_actions_for",
]

#: Longest scope text (one parameter) we parse, and most resource scopes in one request.
MAX_SCOPE_LENGTH = 8192
MAX_SCOPES = 64

SCOPE_ACTIONS: Mapping[str, frozenset[Action]] = {
    "pull": frozenset({Action.READ}),
    "push": frozenset({Action.CREATE, Action.UPDATE}),
    "delete": frozenset({Action.DELETE}),
    "*": ALL_ACTIONS,
}

_TYPE = re.compile(r"^(?P<type>[a-z0-9]+)(?:\((?P<cls>[a-z0-9]+)\))?$")
_HOSTCOMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-*)[a-z0-9]+)*"
_NAME = re.compile(
    rf"^(?:{_HOSTCOMPONENT}(?:\.{_HOSTCOMPONENT})*(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$"
)
_ACTION = re.compile(r"^(?:[a-z]+|\*)$")


class ScopeError(ValueError):
    """A scope (or an ``access`` claim) does not follow the grammar."""


@attrs.frozen
class ResourceScope:
    """One ``type[(class)]:name:action,...`` entry; ``actions`` keep their order, without repeats."""

    type: str
    name: str
    actions: tuple[str, ...]
    resource_class: str | None = None

    def __str__(self) -> str:
        kind = f"{self.type}({self.resource_class})" if self.resource_class else self.type
        return f"{kind}:{self.name}:{','.join(self.actions)}"

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the resource (the deprecated class is ignored, per auth-scope.md)."""
        return (self.type, self.name)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _parse_one(text: str) -> ResourceScope:
    kind, sep, rest = text.partition(":")
    name, sep2, actions_text = rest.rpartition(":")
    if not sep or not sep2:
        raise ScopeError(f"scope {text[:200]!r} is not 'type:name:actions'")
    match = _TYPE.fullmatch(kind)
    if match is None:
        raise ScopeError(f"scope {text[:200]!r} has an invalid resource type")
    if not _NAME.fullmatch(name):
        raise ScopeError(f"scope {text[:200]!r} has an invalid resource name")
    actions = [a for a in actions_text.split(",") if a]
    if not all(_ACTION.fullmatch(a) for a in actions):
        raise ScopeError(f"scope {text[:200]!r} has an invalid action")
    return ResourceScope(match["type"], name, _unique(actions), match["cls"])


def parse_scope(text: str) -> list[ResourceScope]:
    """Parse one ``scope`` value: space-separated resource scopes.  Raises only :class:`ScopeError`."""
    if not isinstance(text, str):
        raise ScopeError("a scope must be text")
    if len(text) > MAX_SCOPE_LENGTH:
        raise ScopeError(f"a scope is limited to {MAX_SCOPE_LENGTH} characters")
    parts = [part for part in text.split(" ") if part]
    if len(parts) > MAX_SCOPES:
        raise ScopeError(f"at most {MAX_SCOPES} scopes may be requested at once")
    return [_parse_one(part) for part in parts]


def merge(scopes: Iterable[ResourceScope]) -> list[ResourceScope]:
    """Merge entries for the same resource (type and name), uniting their actions in order."""
    merged: dict[tuple[str, str], ResourceScope] = {}
    for scope in scopes:
        previous = merged.get(scope.key)
        if previous is None:
            merged[scope.key] = attrs.evolve(scope, resource_class=None)
        else:
            merged[scope.key] = attrs.evolve(previous, actions=_unique(previous.actions + scope.actions))
    return list(merged.values())


def parse_scopes(values: Iterable[str]) -> list[ResourceScope]:
    """Parse every ``scope`` parameter of a token request and merge them (see :func:`merge`)."""
    scopes: list[ResourceScope] = []
    for value in values:
        scopes.extend(parse_scope(value))
        if len(scopes) > MAX_SCOPES:
            raise ScopeError(f"at most {MAX_SCOPES} scopes may be requested at once")
    return merge(scopes)


def scope_action_for(action: Action | str) -> str:
    """The token action a request needing policy ``action`` must hold (for challenges)."""
    return {Action.READ: "pull", Action.CREATE: "push", Action.UPDATE: "push", Action.DELETE: "delete"}[
        Action(action)
    ]


def _granted_token_actions(allowed: frozenset[Action], requested: Sequence[str]) -> tuple[str, ...]:
    granted = []
    for action in requested:
        if action == "pull" and Action.READ in allowed:
            granted.append(action)
        elif action == "push" and Action.CREATE in allowed:
            granted.append(action)
        elif action == "delete" and Action.DELETE in allowed:
            granted.append(action)
        elif action == "*" and allowed >= ALL_ACTIONS:
            granted.append(action)
    return tuple(granted)


def grant(requested: Iterable[ResourceScope], policy: Policy, user: Any) -> list[ResourceScope]:
    """Intersect ``requested`` scopes with what ``policy`` allows ``user`` (auth-jwt.md, "Getting a
    Bearer Token").  Entries left with no action are dropped; asking for more is never an error."""
    result: list[ResourceScope] = []
    for scope in merge(requested):
        if scope.type == "repository":
            try:
                validate_name(scope.name)
            except NameInvalid:
                continue
            actions = _granted_token_actions(policy.allowed_actions(user, scope.name), scope.actions)
        elif scope.type == "registry" and scope.name == "catalog":
            actions = ("*",) if "*" in scope.actions and policy.can_read_anything(user) else ()
        else:
            actions = ()
        if actions:
            result.append(attrs.evolve(scope, actions=actions, resource_class=None))
    return result


def access_claim(scopes: Iterable[ResourceScope]) -> list[dict[str, Any]]:
    """The JWT ``access`` claim for ``scopes`` (auth-jwt.md)."""
    return [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in scopes]


def parse_access_claim(value: Any) -> list[ResourceScope]:
    """Validate a JWT ``access`` claim; a missing claim (``None``) grants nothing."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SCOPES:
        raise ScopeError(f"the access claim must be a list of at most {MAX_SCOPES} entries")
    scopes = []
    for entry in value:
        if not isinstance(entry, dict):
            raise ScopeError("each access entry must be an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions", [])
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
            raise ScopeError("an access entry needs string 'type' and 'name' and a list of 'actions'")
        if not all(isinstance(a, str) for a in actions):
            raise ScopeError("access actions must be strings")
        match = _TYPE.fullmatch(kind)
        if match is None:
            raise ScopeError("an access entry has an invalid type")
        scopes.append(ResourceScope(match["type"], name, _unique(actions), None))
    return merge(scopes)


def token_actions_for(access: Iterable[ResourceScope], resource_type: str, name: str) -> frozenset[str]:
    """The token actions ``access`` holds for one resource (class ignored, exact name match)."""
    held: set[str] = set()
    for scope in access:
        if scope.type == resource_type and scope.name == name:
            held.update(scope.actions)
    return frozenset(held)


def check_access(
    access: Iterable[ResourceScope],
    repository: str,
    action: Action | str,
    *,
    policy: Policy | None = None,
    user: Any = None,
) -> Decision:
    """Whether a bearer token's ``access`` lets the caller take ``action`` on ``repository``.

    The token must name exactly this repository (a token for A never works on B) with a token
    action that covers ``action`` (:data:`SCOPE_ACTIONS`).  When ``policy`` is given the policy
    must allow it for ``user`` too -- pass it for tokens the built-in issuer made.
    """
    wanted = Action(action)
    try:
        validate_name(repository)
    except NameInvalid:
        return Decision(False, None, f"{repository[:300]!r} is not a valid repository name")
    held = token_actions_for(access, "repository", repository)
    if not any(wanted in SCOPE_ACTIONS.get(token_action, frozenset()) for token_action in held):
        needed = scope_action_for(wanted)
        return Decision(False, None, f"the token does not grant {needed!r} on repository {repository!r}")
    if policy is not None:
        return policy.decide(user, repository, wanted)
    return Decision(True, None, f"the token grants {wanted} on repository {repository!r}")
