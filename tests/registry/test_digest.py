"""Digest parsing: only registered algorithms with their exact hex length."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txoci.registry.digest import ALGORITHMS, Digest, is_digest, new_hasher, validate_algorithm
from txoci.registry.errors import DigestInvalid, RegistryError

HEX = "0123456789abcdef"
quick = settings(max_examples=100, deadline=None)


@st.composite
def digests(draw: st.DrawFn) -> str:
    algorithm = draw(st.sampled_from(sorted(ALGORITHMS)))
    length = ALGORITHMS[algorithm]
    encoded = draw(st.text(alphabet=HEX, min_size=length, max_size=length))
    return f"{algorithm}:{encoded}"


#: Text that is close to a digest: a real one with one character changed, added or removed.
@st.composite
def near_digests(draw: st.DrawFn) -> str:
    text = draw(digests())
    index = draw(st.integers(0, len(text) - 1))
    char = draw(st.sampled_from("0aAfgG:+._-\n \x00é"))
    mutation = draw(st.sampled_from(["replace", "insert", "delete"]))
    if mutation == "replace":
        return text[:index] + char + text[index + 1 :]
    if mutation == "insert":
        return text[:index] + char + text[index:]
    return text[:index] + text[index + 1 :]


def _is_valid(text: str) -> bool:
    algorithm, sep, encoded = text.partition(":")
    return (
        bool(sep)
        and algorithm in ALGORITHMS
        and len(encoded) == ALGORITHMS[algorithm]
        and all(c in HEX for c in encoded)
    )


class DigestPropertyTests(SynchronousTestCase):
    @quick
    @given(st.one_of(st.text(), digests(), near_digests()))
    def test_parse_text_raises_only_digest_invalid(self, text: str) -> None:
        try:
            digest = Digest.parse(text)
        except DigestInvalid:
            self.assertFalse(_is_valid(text), text)
        else:
            self.assertTrue(_is_valid(text), text)
            self.assertEqual(str(digest), text)

    @quick
    @given(st.binary())
    def test_parse_bytes_raises_only_digest_invalid(self, data: bytes) -> None:
        try:
            Digest.parse(data)
        except DigestInvalid:
            pass

    @quick
    @given(digests())
    def test_valid_digests_round_trip(self, text: str) -> None:
        digest = Digest.parse(text)
        self.assertEqual(str(digest), text)
        self.assertEqual(Digest.parse(text.encode("ascii")), digest)
        self.assertEqual(Digest.parse(str(digest)), digest)
        self.assertTrue(is_digest(text))

    @quick
    @given(st.binary(max_size=256), st.sampled_from(sorted(ALGORITHMS)))
    def test_of_matches_hashlib_and_parses(self, data: bytes, algorithm: str) -> None:
        digest = Digest.of(data, algorithm)
        self.assertEqual(digest.algorithm, algorithm)
        self.assertEqual(digest.encoded, hashlib.new(algorithm, data).hexdigest())
        self.assertEqual(Digest.parse(str(digest)), digest)

    @quick
    @given(near_digests())
    def test_near_misses_are_rejected_unless_still_valid(self, text: str) -> None:
        if _is_valid(text):
            Digest.parse(text)
        else:
            self.assertRaises(DigestInvalid, Digest.parse, text)


class DigestExampleTests(SynchronousTestCase):
    def test_errors_are_registry_errors(self) -> None:
        error = self.assertRaises(RegistryError, Digest.parse, "nope")
        self.assertEqual(error.code, "DIGEST_INVALID")
        self.assertEqual(error.http_status, 400)

    def test_rejected(self) -> None:
        good = "a" * 64
        for text in [
            "",
            ":",
            "sha256",
            "sha256:",
            f"sha256:{good}a",
            f"sha256:{good[:-1]}",
            f"SHA256:{good}",
            f"sha256:{good.upper()}",
            f"sha384:{'a' * 96}",
            f"md5:{'a' * 32}",
            f"sha512:{good}",
            f"sha256:{good[:-1]}\n",
            f"sha256:{good}\n",
            f" sha256:{good}",
            f"sha256 :{good}",
            f"sha256:{good[:-1]}g",
            f"sha256:{good}:",
            f"sha256+b64u:{good}",
        ]:
            self.assertRaises(DigestInvalid, Digest.parse, text)

    def test_non_ascii_bytes_rejected(self) -> None:
        self.assertRaises(DigestInvalid, Digest.parse, "sha256:é".encode())

    def test_of_defaults_to_sha256(self) -> None:
        self.assertEqual(
            str(Digest.of(b"{}")),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        )

    def test_ordering_and_equality(self) -> None:
        a = Digest.parse("sha256:" + "0" * 64)
        b = Digest.parse("sha256:" + "1" * 64)
        self.assertLess(a, b)
        self.assertEqual(a, Digest("sha256", "0" * 64))
        self.assertEqual(len({a, b, Digest("sha256", "0" * 64)}), 2)

    def test_algorithms(self) -> None:
        self.assertEqual(validate_algorithm("sha512"), "sha512")
        self.assertRaises(DigestInvalid, validate_algorithm, "sha1")
        self.assertRaises(DigestInvalid, new_hasher, "md5")
        hasher = new_hasher("sha256")
        hasher.update(b"abc")
        self.assertEqual(hasher.hexdigest(), hashlib.sha256(b"abc").hexdigest())
