"""
Content digests: ``algorithm ":" encoded`` (image-spec descriptor.md, "Digests").

Only the algorithms registered by the image spec are accepted, sha256 and
sha512, each with its exact lowercase-hex encoded length.  Anything else is
``DIGEST_INVALID`` (400), as the distribution spec asks for digests that are
invalid or use an unsupported algorithm.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

import attrs

from txoci.registry.errors import DigestInvalid

#: Registered algorithms and the length of their hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
DEFAULT_ALGORITHM = "sha256"

_ALGORITHM_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*$")
_HEX = re.compile(r"^[a-f0-9]+$")


class Hasher(Protocol):
    """The part of a :mod:`hashlib` object the registry uses."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Hasher: ...


@attrs.frozen(order=True)
class Digest:
    """A validated digest of a registered algorithm."""

    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @classmethod
    def parse(cls, text: str | bytes) -> Digest:
        """Parse and validate ``text``; raise :class:`DigestInvalid` otherwise."""
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError:
                raise DigestInvalid("digest is not ASCII") from None
        algorithm, sep, encoded = text.partition(":")
        if not sep or not _ALGORITHM_GRAMMAR.fullmatch(algorithm):
            raise DigestInvalid(f"malformed digest {text[:200]!r}")
        length = ALGORITHMS.get(algorithm)
        if length is None:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm[:40]!r}")
        if len(encoded) != length or not _HEX.fullmatch(encoded):
            raise DigestInvalid(f"malformed {algorithm} digest {text[:200]!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
        """The digest of ``data``."""
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.hexdigest())


def is_digest(text: str) -> bool:
    """Whether ``text`` has the shape of a digest (valid or not)."""
    return ":" in text


def validate_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if the registry supports it, else raise."""
    if algorithm not in ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm {algorithm[:40]!r}")
    return algorithm


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hashlib object for a registered ``algorithm``."""
    validate_algorithm(algorithm)
    return hashlib.new(algorithm)  # type: ignore[return-value]
