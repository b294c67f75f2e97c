"""
Repository names, tags and references (spec.md, "Pulling manifests").

A name is path components of ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*`` joined by
``/``; a tag is ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``; a reference is a tag or
a digest.  The grammar alone rules out every path trick (``..``, ``%2F``,
empty components, upper case), so a valid name is safe to use as a key.
"""

from __future__ import annotations

import re

import attrs

from txoci.registry.digest import Digest, is_digest
from txoci.registry.errors import ManifestInvalid, NameInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

#: Clients limit host + "/" + name to 255 characters; we keep names within that.
MAX_NAME_LENGTH = 255


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NAME_INVALID."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise NameInvalid(f"invalid repository name {name[:300]!r}")
    return name


def is_valid_tag(tag: str) -> bool:
    """Whether ``tag`` matches the spec's tag grammar."""
    return bool(_TAG.fullmatch(tag))


def validate_tag(tag: str) -> str:
    """Return ``tag`` if valid, else raise (a bad tag in a manifest URL is MANIFEST_INVALID)."""
    if not is_valid_tag(tag):
        raise ManifestInvalid(f"invalid tag {tag[:200]!r}")
    return tag


@attrs.frozen
class Reference:
    """A manifest reference: exactly one of ``tag`` and ``digest`` is set."""

    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse a tag or digest; anything else is a 400."""
        if is_digest(text):
            return cls(digest=Digest.parse(text))
        if not is_valid_tag(text):
            raise ManifestInvalid(f"reference {text[:200]!r} is neither a tag nor a digest")
        return cls(tag=text)

    def __str__(self) -> str:
        return self.tag if self.tag is not None else str(self.digest)
