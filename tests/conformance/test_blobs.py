"""
Every way of pushing a blob, range requests, well-known blobs and bad digests.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.trial.unittest import SkipTest

from tests.conformance.base import CHUNK_MIN, REPO1, REPO2, ConformanceCase, Unsupported
from tests.conformance.testdata import TestData, digest_of


class _BlobAPIs(ConformanceCase):
    """
    Mirrors ``TestBlobAPIs`` in ``run.go`` (with ``api.go``'s ``BlobPostOnly``,
    ``BlobPostPut``, ``BlobPatchChunked``, ``BlobPatchStream``, ``BlobMount``,
    ``BlobGetReq``, ``BlobHeadExists``, ``BlobGetExistsFull``, ``BlobDelete``),
    run once per digest algorithm.

    Each push is followed by a HEAD and a GET of the blob and cleaned up by
    a DELETE and a HEAD that must answer 404; mounts also clean ``repo2``.
    Blobs are 512 random bytes; the multi-chunk ones are three minimum
    chunks less five bytes, the minimum being the larger of 1024 and the
    ``OCI-Chunk-Min-Length`` of the single-chunk push, as in the suite.
    """

    algo = "sha256"

    #: The minimum chunk size learnt from the "chunked single" push, per class.
    _min_chunk: int | None = None

    def setUp(self) -> None:
        super().setUp()
        self.td = TestData(f"Blobs {self.algo}")

    def gen(self, size: int) -> str:
        digest, _ = self.td.gen_blob(blob_size=size, algo=self.algo)
        return digest

    def scenario(
        self, push: Callable[[str], object], size: int = 512, *, mounted: bool = False, pull: bool = True
    ) -> None:
        """Push a fresh blob, HEAD and GET it if that worked, then delete it (twice if mounted)."""
        digest = self.gen(size)
        with self.step("push") as pushed:
            push(digest)
        if pushed.ok and pull:
            self.run_blob_head(REPO1, digest, self.td)
            self.run_blob_get(REPO1, digest, self.td)
        self.run_delete_blob(REPO1, digest, self.td)
        if mounted:
            self.run_delete_blob(REPO2, digest, self.td)
        self.finish()

    def min_chunk(self) -> int:
        """The suite's ``minChunkSize``, from a "chunked single" push run first if needed."""
        cls = type(self)
        if cls._min_chunk is None:
            digest = self.gen(512)
            header = self.api_blob_patch_chunked(REPO1, digest, self.td)
            self.api_blob_head_exists(REPO1, digest, self.td)
            self.api_blob_get_exists(REPO1, digest, self.td)
            self.api_blob_delete(REPO1, digest)
            cls._min_chunk = max(CHUNK_MIN, int(header)) if header.isdigit() else CHUNK_MIN
        return cls._min_chunk

    # get-missing

    def test_get_missing_blob_is_404(self) -> None:
        """A blob never pushed (the one "post cancel" will use) answers 404."""
        response = self.api_blob_get(REPO1, self.gen(512))
        self.expect_status(response, 404, what="GET of a missing blob")

    # post only, post+put, stream

    def test_post_only(self) -> None:
        """``POST ?digest=`` with the whole blob: 201 (202 is a fallback the suite skips)."""
        self.scenario(lambda d: self.api_blob_post_only(REPO1, d, self.td))

    def test_post_put(self) -> None:
        """POST a session, PUT the whole blob: 202 then 201, Location serves the blob."""
        self.scenario(lambda d: self.api_blob_post_put(REPO1, d, self.td))

    def test_stream(self) -> None:
        """POST, one PATCH of unknown length (chunked encoding), PUT ``?digest=``."""
        self.scenario(lambda d: self.api_blob_patch_stream(REPO1, d, self.td))

    # chunked

    def test_chunked_single(self) -> None:
        """A chunked push that fits one chunk; it sets the minimum chunk size of the others."""
        header: list[str] = []
        self.scenario(lambda d: header.append(self.api_blob_patch_chunked(REPO1, d, self.td)))
        if header and header[0].isdigit():
            type(self)._min_chunk = max(CHUNK_MIN, int(header[0]))

    def test_chunked_multi(self) -> None:
        """Three PATCHes with Content-Range, then an empty PUT ``?digest=``."""
        self.scenario(lambda d: self.api_blob_patch_chunked(REPO1, d, self.td), self.min_chunk() * 3 - 5)

    def test_chunked_multi_put_last_chunk(self) -> None:
        """Two PATCHes, the last chunk in the PUT ``?digest=``."""
        self.scenario(
            lambda d: self.api_blob_patch_chunked(REPO1, d, self.td, put_last_chunk=True),
            self.min_chunk() * 3 - 5,
        )

    def test_chunked_out_of_order(self) -> None:
        """Before each chunk a chunk out of order: 416, then GET the upload: 204, Range 0-<last>."""
        self.scenario(
            lambda d: self.api_blob_patch_chunked(REPO1, d, self.td, out_of_order=True),
            self.min_chunk() * 3 - 5,
        )

    def test_chunked_out_of_order_put_last_chunk(self) -> None:
        """As above, the out-of-order chunk reaching the end sent as PUT ``?digest=`` (416 too)."""
        self.scenario(
            lambda d: self.api_blob_patch_chunked(
                REPO1, d, self.td, put_last_chunk=True, out_of_order=True
            ),
            self.min_chunk() * 3 - 5,
        )

    # mounts

    def _push_then(self, then: Callable[[str], object]) -> Callable[[str], object]:
        def push(digest: str) -> None:
            with self.step("push to repo2"):
                self.push_blob_any(REPO2, digest, self.td)
            then(digest)

        return push

    def test_mount(self) -> None:
        """Push to repo2, ``POST ?mount=&from=repo2`` to repo1: 201 and a Location serving it."""
        self.scenario(
            self._push_then(lambda d: self.api_blob_mount(REPO1, REPO2, d, self.td)), mounted=True
        )

    def test_mount_anonymous(self) -> None:
        """Push to repo2, ``POST ?mount=`` without ``from`` to repo1: 201 (OCI 1.1)."""
        self.scenario(
            self._push_then(lambda d: self.api_blob_mount(REPO1, "", d, self.td)), mounted=True
        )

    def test_mount_missing(self) -> None:
        """Mounting a blob repo2 does not have must answer 202; the upload then completes."""

        def mount(digest: str) -> None:
            try:
                self.api_blob_mount(REPO1, REPO2, digest, self.td)
            except Unsupported:
                return
            self.fail("blob mount of missing blob incorrectly succeeded")

        self.scenario(mount)

    def test_post_cancel(self) -> None:
        """
        Upload cancel is off at OCI_VERSION 1.1, so the suite only cleans up:
        DELETE of the never-pushed blob (202, 404 or 405) and HEAD 404.
        """
        self.scenario(lambda d: None, pull=False)
        raise SkipTest("api Blob upload cancel is disabled in the configuration (OCI_VERSION 1.1)")

    # range requests (blob of 2048 bytes)

    def _range(self, value: str, start: int | None = None, end: int | None = None) -> None:
        """
        Push a 2048-byte blob, GET it with ``Range: value``, delete it.

        ``start``-``end`` is the part that must come back with 206 (and a
        ``Content-Range`` of ``/2048`` or ``/*``); without them the answer
        must be 416.  A 200 with the whole blob is the suite's fallback,
        which it records as unsupported.  The suite reads all six ranges of
        one pushed blob; here each range pushes and deletes its own.
        """
        digest, body = self.td.gen_blob(blob_size=2048, algo=self.algo)
        self.push_blob_any(REPO1, digest, self.td)
        n = len(body)
        with self.step(f"range {value}"):
            response = self.api_blob_get(REPO1, digest, [("Range", value)])
            try:
                if start is None or end is None:
                    self.expect_status(response, 416)
                else:
                    self.expect_body(response, body[start:end + 1])
                    self.expect_status(response, 206)
                    self.expect_header(response, "Content-Length", str(end + 1 - start))
                    ranges = (f"bytes {start}-{end}/{n}", f"bytes {start}-{end}/*")
                    if not any(r in response.values("Content-Range") for r in ranges):
                        self.fail(f"Content-Range expected one of {ranges}")
            except self.failureException as e:
                whole = (
                    response.status == 200
                    and str(n) in response.values("Content-Length")
                    and response.body == body
                )
                if not whole:
                    self.fail(f"{e}\n{response.describe()}")
                raise Unsupported("range request unsupported, full blob returned") from e
        self.run_delete_blob(REPO1, digest, self.td)
        self.finish()

    def test_range_500_1499(self) -> None:
        """``bytes=500-1499``: 206, bytes 500 to 1499."""
        self._range("bytes=500-1499", 500, 1499)

    def test_range_from_500(self) -> None:
        """``bytes=500-``: 206, byte 500 to the end."""
        self._range("bytes=500-", 500, 2047)

    def test_range_last_500(self) -> None:
        """``bytes=-500``: 206, the last 500 bytes."""
        self._range("bytes=-500", 1548, 2047)

    def test_range_past_the_end_is_clipped(self) -> None:
        """``bytes=2000-5000``: 206, byte 2000 to the end."""
        self._range("bytes=2000-5000", 2000, 2047)

    def test_range_backwards(self) -> None:
        """``bytes=500-0``: 416 (the whole blob is the suite's unsupported fallback)."""
        self._range("bytes=500-0")

    def test_range_beyond_the_blob(self) -> None:
        """``bytes=5000-10000``: 416."""
        self._range("bytes=5000-10000")

    # well-known contents

    def _known(self, content: bytes) -> None:
        digest = digest_of(content, self.algo)
        self.td.blobs[digest] = content
        with self.step("push"):
            self.push_blob_any(REPO1, digest, self.td)
        self.run_blob_head(REPO1, digest, self.td)
        self.run_blob_get(REPO1, digest, self.td)
        self.run_delete_blob(REPO1, digest, self.td)
        self.finish()

    def test_empty_blob(self) -> None:
        """The zero-byte blob: push, HEAD, GET, delete."""
        self._known(b"")

    def test_empty_json_blob(self) -> None:
        """The two-byte ``{}`` blob: push, HEAD, GET, delete."""
        self._known(b"{}")

    # bad digests: the blob's bytes no longer match the digest sent

    def _bad_digest(self, push: Callable[[str], object]) -> None:
        digest = self.gen(self.min_chunk() * 3 - 5)
        self.td.blobs[digest] += b"oh no"
        with self.step("push with a bad digest"):
            push(digest)
        self.finish()

    def test_bad_digest_post_only(self) -> None:
        """``POST ?digest=`` with bytes of another digest: 400 (or 202, then the PUT 400)."""
        self._bad_digest(lambda d: self.api_blob_post_only(REPO1, d, self.td, expect_bad_digest=True))

    def test_bad_digest_post_put(self) -> None:
        """POST, then PUT of bytes of another digest: 400."""
        self._bad_digest(lambda d: self.api_blob_post_put(REPO1, d, self.td, expect_bad_digest=True))

    def test_bad_digest_chunked(self) -> None:
        """Three PATCHes of bytes of another digest: 202s, then the closing PUT 400."""
        self._bad_digest(lambda d: self.api_blob_patch_chunked(REPO1, d, self.td, expect_bad_digest=True))

    def test_bad_digest_chunked_put_chunk(self) -> None:
        """The suite's "chunked and put chunk" bad-digest case sends the same requests as "chunked"."""
        self._bad_digest(lambda d: self.api_blob_patch_chunked(REPO1, d, self.td, expect_bad_digest=True))

    def test_bad_digest_stream(self) -> None:
        """A streamed PATCH of bytes of another digest, then the PUT: 400."""
        self._bad_digest(lambda d: self.api_blob_patch_stream(REPO1, d, self.td, expect_bad_digest=True))


class BlobAPIsSha256Tests(_BlobAPIs):
    """``run.go`` ``TestBlobAPIs`` with sha256 digests (``blobs-sha256``)."""

    algo = "sha256"


class BlobAPIsSha512Tests(_BlobAPIs):
    """``run.go`` ``TestBlobAPIs`` with sha512 digests (``blobs-sha512``, ``Data.Sha512`` on in 1.1)."""

    algo = "sha512"


del _BlobAPIs
