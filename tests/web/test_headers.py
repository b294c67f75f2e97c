"""The header parsers: typed errors only, and the RFC 9110 range semantics."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txoci.registry.errors import BlobUploadInvalid, RangeNotSatisfiable, RegistryError, RequestInvalid
from txoci.web.headers import (
    MAX_PAGE,
    ByteRange,
    Unsatisfiable,
    accepted_types,
    next_link,
    parse_byte_range,
    parse_page_size,
    parse_upload_range,
)

quick = settings(max_examples=150, deadline=None)

range_like = st.text(alphabet="bytes=0123456789-/*, \t\n", max_size=30)
numbers = st.integers(0, 10**20)
sizes = st.integers(0, 10**12)


class UploadRangePropertyTests(SynchronousTestCase):
    @quick
    @given(st.one_of(st.text(), range_like))
    def test_only_registry_errors(self, value: str) -> None:
        try:
            start, end = parse_upload_range(value)
        except RegistryError as e:
            self.assertIsInstance(e, BlobUploadInvalid)
            return
        self.assertLessEqual(0, start)
        self.assertLessEqual(start, end)

    @quick
    @given(st.integers(0, 10**18), st.integers(0, 10**18), st.sampled_from(["", "bytes=", "bytes "]))
    def test_well_formed_ranges_round_trip(self, start: int, length: int, prefix: str) -> None:
        end = start + length
        self.assertEqual(parse_upload_range(f"{prefix}{start}-{end}"), (start, end))
        self.assertEqual(parse_upload_range(f"{prefix}{start}-{end}/{end + 1}"), (start, end))
        self.assertEqual(parse_upload_range(f"{prefix}{start}-{end}/*"), (start, end))

    @quick
    @given(st.integers(1, 10**18), st.integers(1, 10**18))
    def test_backwards_ranges_are_416(self, start: int, back: int) -> None:
        error = self.assertRaises(RangeNotSatisfiable, parse_upload_range, f"{start + back}-{start}")
        self.assertEqual(error.http_status, 416)


class UploadRangeExampleTests(SynchronousTestCase):
    def test_accepted_forms(self) -> None:
        self.assertEqual(parse_upload_range("0-9"), (0, 9))
        self.assertEqual(parse_upload_range("bytes=0-9"), (0, 9))
        self.assertEqual(parse_upload_range("bytes 0-9/10"), (0, 9))
        self.assertEqual(parse_upload_range("bytes 0-9/*"), (0, 9))
        self.assertEqual(parse_upload_range(" 10-19 "), (10, 19))
        self.assertEqual(parse_upload_range("5-5"), (5, 5))

    def test_rejected_forms(self) -> None:
        for value in ["", "-", "0-", "-9", "a-b", "0-9-10", "bytes=0-9,10-19", "bytes:0-9", "0 - 9",
                      "+0-9", "0x0-9", "0-9/", "0-9/a", "1" * 20 + "-" + "1" * 20, "０-９", "0-9\x00"]:
            error = self.assertRaises(BlobUploadInvalid, parse_upload_range, value)
            self.assertEqual(error.code, "BLOB_UPLOAD_INVALID")

    def test_end_before_start(self) -> None:
        error = self.assertRaises(RangeNotSatisfiable, parse_upload_range, "10-9")
        self.assertEqual(error.http_status, 416)


class ByteRangePropertyTests(SynchronousTestCase):
    @quick
    @given(st.one_of(st.none(), st.text(), range_like), sizes)
    def test_only_unsatisfiable(self, value: str | None, size: int) -> None:
        try:
            result = parse_byte_range(value, size)
        except Unsatisfiable:
            return
        if result is not None:
            self.assertIsInstance(result, ByteRange)
            self.assertGreaterEqual(result.start, 0)
            self.assertGreaterEqual(result.length, 1)
            self.assertLessEqual(result.start + result.length, size)

    @quick
    @given(numbers, numbers, sizes)
    def test_first_last(self, first: int, last: int, size: int) -> None:
        value = f"bytes={first}-{last}"
        if len(str(first)) > 19 or len(str(last)) > 19:
            # Unparseable: ignored, the whole body is sent.
            try:
                self.assertIsNone(parse_byte_range(value, size))
            except Unsatisfiable:
                self.fail(f"{value} should be ignored, not unsatisfiable")
            return
        if last < first:
            # Ends before it starts: 416, as the conformance suite expects.
            self.assertRaises(Unsatisfiable, parse_byte_range, value, size)
            return
        if first >= size:
            self.assertRaises(Unsatisfiable, parse_byte_range, value, size)
            return
        result = parse_byte_range(value, size)
        self.assertEqual(result, ByteRange(first, min(last, size - 1) - first + 1))
        assert result is not None
        self.assertEqual(result.content_range(size), f"bytes {first}-{min(last, size - 1)}/{size}")

    @quick
    @given(st.integers(0, 10**19 - 1), sizes)
    def test_open_ended(self, first: int, size: int) -> None:
        value = f"bytes={first}-"
        if first >= size:
            self.assertRaises(Unsatisfiable, parse_byte_range, value, size)
        else:
            self.assertEqual(parse_byte_range(value, size), ByteRange(first, size - first))

    @quick
    @given(st.integers(0, 10**19 - 1), sizes)
    def test_suffix(self, suffix: int, size: int) -> None:
        value = f"bytes=-{suffix}"
        if suffix == 0 or size == 0:
            self.assertRaises(Unsatisfiable, parse_byte_range, value, size)
        else:
            taken = min(suffix, size)
            self.assertEqual(parse_byte_range(value, size), ByteRange(size - taken, taken))


class ByteRangeExampleTests(SynchronousTestCase):
    def test_first_ten(self) -> None:
        result = parse_byte_range("bytes=0-9", 100)
        self.assertEqual(result, ByteRange(0, 10))
        assert result is not None
        self.assertEqual(result.content_range(100), "bytes 0-9/100")

    def test_from_five(self) -> None:
        self.assertEqual(parse_byte_range("bytes=5-", 100), ByteRange(5, 95))

    def test_last_three(self) -> None:
        result = parse_byte_range("bytes=-3", 100)
        self.assertEqual(result, ByteRange(97, 3))
        assert result is not None
        self.assertEqual(result.content_range(100), "bytes 97-99/100")

    def test_suffix_longer_than_body_is_the_whole_body(self) -> None:
        self.assertEqual(parse_byte_range("bytes=-500", 100), ByteRange(0, 100))

    def test_end_beyond_body_is_clamped(self) -> None:
        self.assertEqual(parse_byte_range("bytes=90-200", 100), ByteRange(90, 10))

    def test_beyond_end_is_unsatisfiable(self) -> None:
        self.assertRaises(Unsatisfiable, parse_byte_range, "bytes=100-", 100)
        self.assertRaises(Unsatisfiable, parse_byte_range, "bytes=100-200", 100)
        self.assertRaises(Unsatisfiable, parse_byte_range, "bytes=0-0", 0)
        self.assertRaises(Unsatisfiable, parse_byte_range, "bytes=-1", 0)
        self.assertRaises(Unsatisfiable, parse_byte_range, "bytes=-0", 100)

    def test_ignored(self) -> None:
        for value in [None, "", "bytes=0-9,20-29", "bytes=0-9, 20-29", "items=0-9", "bytes=", "bytes=-",
                      "bytes=a-b", "bytes 0-9", "bytes=0-9/100"]:
            self.assertIsNone(parse_byte_range(value, 100), value)

    def test_backwards_is_unsatisfiable(self) -> None:
        self.assertRaises(Unsatisfiable, parse_byte_range, "bytes=9-0", 100)
        self.assertRaises(Unsatisfiable, parse_byte_range, "bytes=500-0", 2048)


class PageSizeTests(SynchronousTestCase):
    @quick
    @given(st.one_of(st.none(), st.text(), st.text(alphabet="0123456789-+ ²١１", max_size=15)))
    def test_only_request_invalid(self, value: str | None) -> None:
        try:
            result = parse_page_size(value)
        except RegistryError as e:
            self.assertIsInstance(e, RequestInvalid)
            self.assertEqual(e.http_status, 400)
            return
        if result is not None:
            self.assertTrue(0 <= result <= MAX_PAGE)

    @quick
    @given(st.integers(0, 10**12 - 1))
    def test_integers(self, n: int) -> None:
        self.assertEqual(parse_page_size(str(n)), min(n, MAX_PAGE))

    def test_examples(self) -> None:
        self.assertIsNone(parse_page_size(None))
        self.assertIsNone(parse_page_size(""))
        self.assertEqual(parse_page_size("0"), 0)
        self.assertEqual(parse_page_size("007"), 7)
        self.assertEqual(parse_page_size(str(MAX_PAGE + 1)), MAX_PAGE)
        for value in ["-1", "+1", "1.5", "a", " 1", "1" * 13, "²", "١٢", "１"]:
            self.assertRaises(RequestInvalid, parse_page_size, value)


class LinkAndAcceptTests(SynchronousTestCase):
    @quick
    @given(st.integers(0, MAX_PAGE), st.text(min_size=1, max_size=30))
    def test_next_link_round_trips(self, n: int, last: str) -> None:
        link = next_link("/v2/a/b/tags/list", n, last)
        self.assertTrue(link.startswith("</v2/a/b/tags/list?"), link)
        self.assertTrue(link.endswith('>; rel="next"'), link)
        url = link[1 : link.index(">")]
        parts = urlsplit(url)
        self.assertEqual(parts.path, "/v2/a/b/tags/list")
        query = parse_qs(parts.query, keep_blank_values=True)
        self.assertEqual(query["n"], [str(n)])
        self.assertEqual(query["last"], [last])

    def test_next_link_extra(self) -> None:
        link = next_link("/v2/_catalog", 2, "b", {"artifactType": "a/b"})
        query = parse_qs(urlsplit(link[1 : link.index(">")]).query)
        self.assertEqual(query, {"n": ["2"], "last": ["b"], "artifactType": ["a/b"]})

    @quick
    @given(st.lists(st.text(max_size=40), max_size=4))
    def test_accepted_types_never_raise(self, values: list[str]) -> None:
        for media_type in accepted_types(values):
            self.assertEqual(media_type, media_type.strip().lower())
            self.assertTrue(media_type)
            self.assertNotIn(",", media_type)

    def test_accepted_types(self) -> None:
        values = [
            "application/vnd.oci.image.manifest.v1+json, Application/JSON;q=0.5",
            "application/vnd.docker.distribution.manifest.v2+json",
            "",
            " , ;q=1",
        ]
        self.assertEqual(
            accepted_types(values),
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ],
        )
