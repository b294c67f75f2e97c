"""Repository names, tags and references against the spec's grammars."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txoci.registry.digest import Digest
from txoci.registry.errors import DigestInvalid, ManifestInvalid, NameInvalid, RegistryError
from txoci.registry.names import MAX_NAME_LENGTH, Reference, is_valid_tag, validate_name, validate_tag

#: The grammars exactly as the distribution spec writes them.
SPEC_NAME = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
SPEC_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"

quick = settings(max_examples=100, deadline=None)

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_runs = st.text(alphabet=_ALNUM, min_size=1, max_size=8)
#: One path component, built the way the spec's grammar builds it (from_regex is too slow here).
_components = st.builds(
    lambda first, rest: first + "".join(sep + run for sep, run in rest),
    _runs,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "--", "----"]), _runs), max_size=3),
)
names = st.lists(_components, min_size=1, max_size=5).map("/".join)
tags = st.from_regex(SPEC_TAG, fullmatch=True)
#: Text over the characters that matter, so both sides of the grammar come up often.
name_like = st.text(alphabet="ab09._-/A%\n \x00é", max_size=24)
tag_like = st.text(alphabet="aZ09._-:/\n \x00é", max_size=24)


def _spec_name(text: str) -> bool:
    return re.fullmatch(SPEC_NAME, text) is not None and len(text) <= MAX_NAME_LENGTH


def _spec_tag(text: str) -> bool:
    return re.fullmatch(SPEC_TAG, text) is not None


class NamePropertyTests(SynchronousTestCase):
    @quick
    @given(st.one_of(st.text(), name_like, names))
    def test_validate_name_agrees_with_spec(self, text: str) -> None:
        try:
            result = validate_name(text)
        except NameInvalid:
            self.assertFalse(_spec_name(text), repr(text))
        else:
            self.assertTrue(_spec_name(text), repr(text))
            self.assertEqual(result, text)

    @quick
    @given(names)
    def test_generated_names_are_accepted(self, name: str) -> None:
        self.assertTrue(_spec_name(name), name)
        self.assertEqual(validate_name(name), name)

    @quick
    @given(st.one_of(st.text(), tag_like, tags))
    def test_tags_agree_with_spec(self, text: str) -> None:
        self.assertEqual(is_valid_tag(text), _spec_tag(text), repr(text))
        try:
            validate_tag(text)
        except ManifestInvalid:
            self.assertFalse(_spec_tag(text))

    @quick
    @given(tags)
    def test_generated_tags_round_trip_as_references(self, tag: str) -> None:
        reference = Reference.parse(tag)
        self.assertEqual(reference.tag, tag)
        self.assertIsNone(reference.digest)
        self.assertEqual(str(reference), tag)
        self.assertEqual(validate_tag(tag), tag)

    @quick
    @given(st.one_of(st.text(), tag_like, tags))
    def test_reference_parse_raises_only_registry_errors(self, text: str) -> None:
        try:
            reference = Reference.parse(text)
        except (ManifestInvalid, DigestInvalid):
            return
        self.assertEqual(str(reference), text)
        self.assertTrue((reference.tag is None) != (reference.digest is None))


class NameExampleTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        for name in [
            "a",
            "library/ubuntu",
            "a/b/c/d",
            "foo.bar",
            "foo_bar",
            "foo__bar",
            "foo---bar",
            "0/1",
            "a" * MAX_NAME_LENGTH,
        ]:
            self.assertEqual(validate_name(name), name)

    def test_path_tricks_rejected(self) -> None:
        for name in [
            "",
            ".",
            "..",
            "../a",
            "a/..",
            "a/../b",
            "a/./b",
            "a//b",
            "/a",
            "a/",
            "A",
            "Library/ubuntu",
            "a%2Fb",
            "a%2e%2e",
            "a\\b",
            "a b",
            "a\n",
            "a\nb",
            "a\x00",
            "a\u0131",  # dotless i, which some case mappings fold to "i"
            "foo___bar",
            "foo._bar",
            "-foo",
            "foo-",
            "foo.",
            "_foo",
            "a" * (MAX_NAME_LENGTH + 1),
            "a/" * 127 + "ab",  # 256 characters
        ]:
            error = self.assertRaises(NameInvalid, validate_name, name)
            self.assertEqual(error.code, "NAME_INVALID")

    def test_tags(self) -> None:
        for tag in ["latest", "v1.0.0", "_", "A", "a" * 128, "1-2_3.4", "__"]:
            self.assertTrue(is_valid_tag(tag), tag)
        for tag in ["", ".a", "-a", "a" * 129, "a:b", "a/b", "a b", "v1\n", "é", "a+b"]:
            self.assertFalse(is_valid_tag(tag), tag)
            self.assertRaises(ManifestInvalid, validate_tag, tag)

    def test_reference_digest(self) -> None:
        text = "sha256:" + "ab" * 32
        reference = Reference.parse(text)
        self.assertEqual(reference.digest, Digest.parse(text))
        self.assertIsNone(reference.tag)
        self.assertEqual(str(reference), text)

    def test_reference_bad(self) -> None:
        self.assertRaises(DigestInvalid, Reference.parse, "sha256:abc")
        self.assertRaises(ManifestInvalid, Reference.parse, "-bad")
        self.assertRaises(RegistryError, Reference.parse, "")
