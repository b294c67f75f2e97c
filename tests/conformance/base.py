"""
The suite's API calls and runner steps, as assertions on a trial test case.

:class:`ConformanceCase` keeps the two halves of the Go suite apart:

* the ``api_*`` methods are ``api.go``: one registry operation each, with the
  request the suite sends and every check it makes on the answer;
* the ``run_*`` methods are the steps of ``run.go`` (``TestPush``,
  ``TestList``, ``TestHead``, ``TestPull``, ``TestReferrers``,
  ``TestDelete``...), which go on after a failed step, as the suite does,
  and report every failure at the end of the test.

An answer the suite counts as "unsupported" (its ``errRegUnsupported``: a
``405`` to a delete, a ``202`` where a blob could have been created at once,
a whole blob for a range request, no ``OCI-Filters-Applied``) raises
:class:`Unsupported`, which ends the test as a skip, as the suite records it.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from twisted.trial.unittest import SkipTest, TestCase

from tests.conformance.client import Response, request, resolve, with_query
from tests.conformance.testdata import EMPTY_DIGEST, MT_OCI_IMAGE, MT_OCI_INDEX, MT_OCTET_STREAM, TestData
from tests.support import TwistdServer

#: ``OCI_REPO1`` and ``OCI_REPO2``: the suite's default repositories.
REPO1 = "conformance/repo1"
REPO2 = "conformance/repo2"
#: ``chunkMin`` in ``config.go``: no chunk is smaller than this.
CHUNK_MIN = 1024

_servers: dict[type, TwistdServer] = {}


def _stop_servers() -> None:
    for server in _servers.values():
        server.stop()


atexit.register(_stop_servers)


class Unsupported(Exception):
    """The registry lacks something the suite treats as optional."""


class Outcome:
    """Whether a step finished without a failure."""

    ok = True


def _media_type(body: bytes) -> str:
    """``detectMediaType``: the body's ``mediaType``, OCI image manifest by default."""
    try:
        document = json.loads(body)
        value = document.get("mediaType") if isinstance(document, dict) else None
    except ValueError:
        value = None
    return value if isinstance(value, str) and value else MT_OCI_IMAGE


def _subject(body: bytes) -> dict[str, Any] | None:
    """``detectSubject``: the body's ``subject`` descriptor, if any."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    subject = document.get("subject") if isinstance(document, dict) else None
    return subject if isinstance(subject, dict) else None


def _same_descriptor(found: dict[str, Any], goal: dict[str, Any]) -> bool:
    """The referrers entry matches: digest, mediaType, size, artifactType, annotations included."""
    annotations = found.get("annotations") or {}
    return (
        found.get("digest") == goal["digest"]
        and found.get("mediaType") == goal["mediaType"]
        and found.get("size") == goal["size"]
        and (found.get("artifactType") or "") == (goal.get("artifactType") or "")
        and all(annotations.get(k) == v for k, v in (goal.get("annotations") or {}).items())
    )


#: What follows the repository name in an API path.
_REPOSITORY_PATH = re.compile(r"/(?:blobs|manifests|tags|referrers)/.*$")


class ConformanceCase(TestCase):
    """
    A real ``twistd -n oci`` per test class (started on first use), and the suite's steps.

    With :attr:`auth_mode` set (``basic`` or ``token``), the registry serves the acceptance
    policy of ``tests.auth.fixtures`` and every request carries :attr:`credentials`, as the
    suite does with ``OCI_USERNAME`` and ``OCI_PASSWORD``: Basic credentials, or in token
    mode a bearer token fetched from the challenge's realm (and then reused per scope).
    """

    #: None (an open registry), ``"basic"`` or ``"token"``.
    auth_mode: str | None = None
    #: The user the suite runs as when authentication is on.
    credentials: tuple[str, str] = ("admin", "admin-password")

    def setUp(self) -> None:
        server = _servers.get(type(self))
        if server is None or server.process.poll() is not None:
            data_dir = tempfile.mkdtemp(prefix="oci-conformance-", dir=os.getcwd())
            extra: list[str] = []
            if self.auth_mode is not None:
                from tests.auth.fixtures import write_config

                extra = ["--config", write_config(data_dir + "-auth", self.auth_mode)]
            server = _servers[type(self)] = TwistdServer(data_dir, *extra)
        self._tokens: dict[str, str] = {}
        #: ``schemeReg``: where the suite sends its requests.
        self.registry = f"http://{server.address}"
        self._failures: list[str] = []
        self._skips: list[str] = []

    # Requests, with credentials when authentication is on.

    def send(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        content_length: int | None = None,
    ) -> Response:
        """``client.request``, authenticated as :attr:`credentials` when :attr:`auth_mode` is set."""
        headers = list(headers)
        if self.auth_mode == "basic":
            pair = base64.b64encode(":".join(self.credentials).encode()).decode("ascii")
            headers.append(("Authorization", f"Basic {pair}"))
            return request(method, url, headers, body, content_length)
        if self.auth_mode is None:
            return request(method, url, headers, body, content_length)
        for _attempt in range(2):
            scope_key = _REPOSITORY_PATH.sub("", urlsplit(url).path)
            token = self._tokens.get(scope_key)
            sent = headers + ([("Authorization", f"Bearer {token}")] if token else [])
            response = request(method, url, sent, body, content_length)
            challenge = response.get("WWW-Authenticate")
            if response.status != 401 or not challenge.startswith("Bearer "):
                return response
            source = dict(parse_qsl(urlsplit(url).query)).get("from")
            token = self._fetch_token(challenge, source)
            if source is None:
                self._tokens[scope_key] = token
            else:
                headers = headers + [("Authorization", f"Bearer {token}")]
                return request(method, url, headers, body, content_length)
        return response

    def _fetch_token(self, challenge: str, mount_source: str | None = None) -> str:
        """The suite's token flow: GET the realm with the challenge's service and scope (and, for a
        cross-repository mount, pull on the source too, as docker asks)."""
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = [("service", fields.get("service", ""))]
        if "scope" in fields:
            # One token per repository for everything the suite does there.
            kind, _, rest = fields["scope"].partition(":")
            name = rest.rpartition(":")[0]
            query.append(("scope", f"repository:{name}:pull,push,delete" if kind == "repository"
                          else fields["scope"]))
        if mount_source is not None:
            query.append(("scope", f"repository:{mount_source}:pull"))
        pair = base64.b64encode(":".join(self.credentials).encode()).decode("ascii")
        realm = fields["realm"] + "?" + urlencode(query)
        answer = request("GET", realm, [("Authorization", f"Basic {pair}")])
        self.expect_status(answer, 200, what="token request")
        return str(json.loads(answer.body)["token"])

    # Results: the suite's ChildRun, TestFail and TestSkip.

    @contextmanager
    def step(self, name: str) -> Iterator[Outcome]:
        """Run one step; a failure is recorded and the test goes on."""
        outcome = Outcome()
        try:
            yield outcome
        except Unsupported as e:
            outcome.ok = False
            self._skips.append(f"{name}: {e}")
        except self.failureException as e:
            outcome.ok = False
            self._failures.append(f"{name}: {e}")

    def finish(self) -> None:
        """Fail with every recorded failure; otherwise skip if something was unsupported."""
        if self._failures:
            self.fail("\n\n".join(self._failures + [f"(unsupported) {s}" for s in self._skips]))
        if self._skips:
            raise SkipTest("registry reported unsupported: " + "; ".join(self._skips))

    # Checks on one answer (apiExpectStatus, apiExpectHeader, apiExpectBody).

    def expect_status(self, response: Response, *codes: int, what: str = "") -> None:
        if response.status not in codes:
            self.fail(f"{what}: expected status in {list(codes)}, got\n{response.describe()}")

    def expect_header(self, response: Response, name: str, value: str = "", what: str = "") -> None:
        """The header is there (``value`` empty) or one of its values is ``value``."""
        values = response.values(name)
        if not values:
            self.fail(f"{what}: missing header {name!r}\n{response.describe()}")
        if value and value not in values:
            self.fail(f"{what}: header {name!r} expected {value!r}, got {values!r}")

    def expect_body(self, response: Response, body: bytes, what: str = "") -> None:
        if response.body != body:
            self.fail(
                f"{what}: body mismatch, expected {len(body)} bytes {body[:100]!r}, "
                f"got {len(response.body)} bytes {response.body[:100]!r}"
            )

    def verify_digest(self, response: Response, digest: str, what: str = "") -> None:
        """``VerifyDigest``: a ``Docker-Content-Digest``, if sent, names ``digest``."""
        sent = response.get("Docker-Content-Digest")
        if sent and digest and sent != digest:
            self.fail(f"{what}: Docker-Content-Digest expected {digest!r}, got {sent!r}")

    # URLs

    def blob_url(self, repo: str, digest: str) -> str:
        return f"{self.registry}/v2/{repo}/blobs/{digest}"

    def uploads_url(self, repo: str) -> str:
        return f"{self.registry}/v2/{repo}/blobs/uploads/"

    def manifest_url(self, repo: str, reference: str) -> str:
        return f"{self.registry}/v2/{repo}/manifests/{reference}"

    # api.go

    def api_ping(self) -> Response:
        """``PingReq``: the suite only needs an HTTP answer to ``GET /v2/``."""
        return self.send("GET", f"{self.registry}/v2/")

    def api_blob_delete(self, repo: str, digest: str) -> None:
        response = self.send("DELETE", self.blob_url(repo, digest))
        self.expect_status(response, 202, 404, 405, what="blob delete")
        if response.status == 405:
            raise Unsupported(f"blob delete returned {response.status}")

    def api_blob_get(self, repo: str, digest: str, headers: list[tuple[str, str]] = []) -> Response:
        return self.send("GET", self.blob_url(repo, digest), headers)

    def api_blob_head(self, repo: str, digest: str) -> Response:
        return self.send("HEAD", self.blob_url(repo, digest))

    def _known_length(self, td: TestData, digest: str) -> bytes | None:
        content = td.blobs.get(digest)
        if content is not None and (len(content) > 0 or digest == EMPTY_DIGEST):
            return content
        return None

    def api_blob_get_exists(self, repo: str, digest: str, td: TestData) -> None:
        """``BlobGetExistsFull``"""
        response = self.api_blob_get(repo, digest)
        self.expect_status(response, 200, what="blob get")
        content = self._known_length(td, digest)
        if content is not None:
            self.expect_body(response, content, what="blob get")
            self.expect_header(response, "Content-Length", str(len(content)), what="blob get")
        self.verify_digest(response, digest, what="blob get")

    def api_blob_head_exists(self, repo: str, digest: str, td: TestData) -> None:
        """``BlobHeadExists``"""
        response = self.api_blob_head(repo, digest)
        self.expect_status(response, 200, what="blob head")
        self.expect_body(response, b"", what="blob head")
        content = self._known_length(td, digest)
        if content is not None:
            self.expect_header(response, "Content-Length", str(len(content)), what="blob head")
        self.verify_digest(response, digest, what="blob head")

    def api_blob_verify_location(self, url: str, location: str, body: bytes) -> None:
        """``BlobVerifyLocation``: the ``Location`` of a new blob serves it."""
        if not location:
            self.fail("location header missing")
        response = self.send("GET", resolve(url, location))
        self.expect_body(response, body, what="GET Location")
        self.expect_status(response, 200, what="GET Location")

    def api_blob_mount(self, repo: str, source: str, digest: str, td: TestData) -> None:
        """``BlobMount``: ``POST ?mount=`` (``&from=`` unless anonymous); 201, or 202 and a fallback."""
        body = td.blobs[digest]
        params = {"mount": digest}
        if source:
            params["from"] = source
        url = with_query(self.uploads_url(repo), **params)
        response = self.send("POST", url)
        self.expect_status(response, 201, 202, what="blob mount")
        location = response.get("Location")
        if not location:
            self.fail("blob mount did not return a location")
        unsupported = ""
        if response.status == 202:
            url = with_query(resolve(url, location), digest=digest)
            response = self.send(
                "PUT", url, [("Content-Type", MT_OCTET_STREAM)], body, content_length=len(body)
            )
            self.expect_status(response, 201, what="blob put after mount fallback")
            location = response.get("Location") or location
            unsupported = "registry returned status 202, fell back to blob POST+PUT"
        self.verify_digest(response, digest, what="blob mount")
        self.api_blob_verify_location(url, location, body)
        if unsupported:
            raise Unsupported(unsupported)

    def api_blob_patch_chunked(
        self, repo: str, digest: str, td: TestData, *, put_last_chunk: bool = False,
        out_of_order: bool = False, expect_bad_digest: bool = False,
    ) -> str:
        """``BlobPatchChunked``; returns the ``OCI-Chunk-Min-Length`` the POST advertised."""
        body = td.blobs[digest]
        url = self.uploads_url(repo)
        response = self.send("POST", url, content_length=0)
        self.expect_status(response, 202, what="chunked upload POST")
        min_length = response.get("OCI-Chunk-Min-Length")
        location = response.get("Location")
        chunk_size = len(body) // 3 + 1
        if min_length:
            chunk_size = max(chunk_size, int(min_length))
        chunk_size = min(max(chunk_size, CHUNK_MIN), len(body))
        last_byte = -1
        final: Response | None = None
        while last_byte < len(body) - 1:
            if out_of_order:
                if not location:
                    self.fail("blob request did not return a location")
                url = resolve(url, location)
                bad_start = last_byte + 1 + chunk_size
                if bad_start >= len(body):
                    bad_start = 0
                bad_last = min(bad_start + chunk_size - 1, len(body) - 1)
                method = "PATCH"
                if put_last_chunk and bad_last == len(body) - 1:
                    method = "PUT"
                    url = with_query(url, digest=digest)
                response = self.send(
                    method, url,
                    [("Content-Type", MT_OCTET_STREAM), ("Content-Range", f"{bad_start}-{bad_last}")],
                    body[bad_start:bad_last + 1], content_length=bad_last - bad_start + 1,
                )
                self.expect_status(response, 416, what=f"out-of-order chunk {bad_start}-{bad_last}")
                location = response.get("Location") or location
                # recover: ask where the upload stands
                response = self.send("GET", url)
                self.expect_status(response, 204, what="upload status after out-of-order chunk")
                location = response.get("Location") or location
                upload_range = response.get("Range")
                if not upload_range.startswith("0-"):
                    self.fail(f"Range header is missing the 0- prefix: {upload_range!r}")
                try:
                    range_last = int(upload_range[2:])
                except ValueError:
                    self.fail(f"Range header could not be parsed: {upload_range!r}")
                if last_byte >= 0 and range_last != last_byte:
                    self.fail(f"Range unexpected, received {upload_range!r}, expected '0-{last_byte}'")
            if not location:
                self.fail("blob request did not return a location")
            url = resolve(url, location)
            start = last_byte + 1
            last_byte = min(start + chunk_size - 1, len(body) - 1)
            headers = [("Content-Type", MT_OCTET_STREAM), ("Content-Range", f"{start}-{last_byte}")]
            chunk = body[start:last_byte + 1]
            if put_last_chunk and last_byte == len(body) - 1:
                url = with_query(url, digest=digest)
                response = self.send("PUT", url, headers, chunk, content_length=len(chunk))
                if expect_bad_digest:
                    self.expect_status(response, 400, what="PUT of last chunk with a bad digest")
                else:
                    self.expect_status(response, 201, what="PUT of last chunk")
                    location = response.get("Location") or location
                    final = response
            else:
                response = self.send("PATCH", url, headers, chunk, content_length=len(chunk))
                self.expect_status(response, 202, what=f"PATCH chunk {start}-{last_byte}")
                location = response.get("Location") or location
        if not put_last_chunk:
            if not location:
                self.fail("blob patch did not return a location")
            url = with_query(resolve(url, location), digest=digest)
            response = self.send("PUT", url, [("Content-Type", MT_OCTET_STREAM)], content_length=0)
            if expect_bad_digest:
                self.expect_status(response, 400, what="closing PUT with a bad digest")
            else:
                self.expect_status(response, 201, what="closing PUT")
                location = response.get("Location") or location
                final = response
        if expect_bad_digest:
            return min_length
        assert final is not None
        self.verify_digest(final, digest, what="chunked upload")
        self.api_blob_verify_location(url, location, body)
        return min_length

    def api_blob_patch_stream(
        self, repo: str, digest: str, td: TestData, *, expect_bad_digest: bool = False
    ) -> None:
        """``BlobPatchStream``: one PATCH of unknown length (chunked encoding), then PUT."""
        body = td.blobs[digest]
        url = self.uploads_url(repo)
        response = self.send("POST", url, content_length=0)
        self.expect_status(response, 202, what="streamed upload POST")
        location = response.get("Location")
        if not location:
            self.fail("blob post did not return a location")
        url = resolve(url, location)
        response = self.send("PATCH", url, [("Content-Type", MT_OCTET_STREAM)], body)
        self.expect_status(response, 202, what="streamed PATCH")
        location = response.get("Location")
        if not location:
            self.fail("blob patch did not return a location")
        url = with_query(resolve(url, location), digest=digest)
        response = self.send("PUT", url, [("Content-Type", MT_OCTET_STREAM)], content_length=0)
        if expect_bad_digest:
            self.expect_status(response, 400, what="closing PUT with a bad digest")
            return
        self.expect_status(response, 201, what="closing PUT")
        self.expect_header(response, "Location", what="closing PUT")
        location = response.get("Location") or location
        self.verify_digest(response, digest, what="streamed upload")
        self.api_blob_verify_location(url, location, body)

    def api_blob_post_only(
        self, repo: str, digest: str, td: TestData, *, expect_bad_digest: bool = False
    ) -> None:
        """``BlobPostOnly``: the whole blob in ``POST ?digest=``; 202 means a PUT fallback."""
        body = td.blobs[digest]
        url = with_query(self.uploads_url(repo), digest=digest)
        response = self.send("POST", url, [("Content-Type", MT_OCTET_STREAM)], body, content_length=len(body))
        if expect_bad_digest:
            self.expect_status(response, 400, 202, what="POST with a bad digest")
        else:
            self.expect_status(response, 201, 202, what="POST with digest")
            self.expect_header(response, "Location", what="POST with digest")
        location = response.get("Location")
        if response.status == 202:
            url = with_query(resolve(url, location), digest=digest)
            response = self.send(
                "PUT", url, [("Content-Type", MT_OCTET_STREAM)], body, content_length=len(body)
            )
            self.expect_status(response, 400 if expect_bad_digest else 201, what="PUT after POST fallback")
            raise Unsupported("registry does not support content in the POST, fallback to PUT")
        if expect_bad_digest:
            return
        self.verify_digest(response, digest, what="POST with digest")
        self.api_blob_verify_location(url, location, body)

    def api_blob_post_put(
        self, repo: str, digest: str, td: TestData, *, expect_bad_digest: bool = False
    ) -> None:
        """``BlobPostPut``: POST a session, PUT the whole blob with ``?digest=``."""
        body = td.blobs[digest]
        url = self.uploads_url(repo)
        response = self.send("POST", url)
        self.expect_status(response, 202, what="upload POST")
        location = response.get("Location")
        if not location:
            self.fail("blob post did not return a location")
        url = with_query(resolve(url, location), digest=digest)
        response = self.send("PUT", url, [("Content-Type", MT_OCTET_STREAM)], body, content_length=len(body))
        if expect_bad_digest:
            self.expect_status(response, 400, what="PUT with a bad digest")
            return
        self.expect_status(response, 201, what="upload PUT")
        location = response.get("Location") or location
        self.verify_digest(response, digest, what="upload PUT")
        self.api_blob_verify_location(url, location, body)

    def api_manifest_delete(self, repo: str, reference: str) -> None:
        response = self.send("DELETE", self.manifest_url(repo, reference))
        self.expect_status(response, 202, 404, 400, 405, what=f"manifest delete {reference}")
        if response.status in (400, 405):
            raise Unsupported(f"manifest delete returned {response.status}")

    _ACCEPT = [("Accept", MT_OCI_INDEX), ("Accept", MT_OCI_IMAGE)]

    def api_manifest_get(self, repo: str, reference: str) -> Response:
        return self.send("GET", self.manifest_url(repo, reference), self._ACCEPT)

    def api_manifest_head(self, repo: str, reference: str) -> Response:
        return self.send("HEAD", self.manifest_url(repo, reference), self._ACCEPT)

    def api_manifest_get_exists(self, repo: str, reference: str, digest: str, td: TestData) -> None:
        """``ManifestGetExists``"""
        response = self.api_manifest_get(repo, reference)
        self.expect_status(response, 200, what=f"manifest get {reference}")
        body = td.manifests.get(digest)
        if body:
            self.expect_body(response, body, what=f"manifest get {reference}")
            self.expect_header(response, "Content-Type", _media_type(body), what=f"manifest get {reference}")
            self.expect_header(response, "Content-Length", str(len(body)), what=f"manifest get {reference}")
            self.verify_digest(response, digest, what=f"manifest get {reference}")

    def api_manifest_head_exists(self, repo: str, reference: str, digest: str, td: TestData) -> None:
        """``ManifestHeadExists``"""
        response = self.api_manifest_head(repo, reference)
        self.expect_status(response, 200, what=f"manifest head {reference}")
        self.expect_body(response, b"", what=f"manifest head {reference}")
        body = td.manifests.get(digest)
        if body:
            what = f"manifest head {reference}"
            self.expect_header(response, "Content-Type", _media_type(body), what=what)
            self.expect_header(response, "Content-Length", str(len(body)), what=what)
            self.verify_digest(response, digest, what=what)

    def api_manifest_put(
        self, repo: str, reference: str, digest: str, td: TestData, *, expect_bad_digest: bool = False
    ) -> None:
        """``ManifestPut``: body of unknown length, referrers enabled so ``OCI-Subject`` is checked."""
        body = td.manifests[digest]
        media_type = _media_type(body)
        url = self.manifest_url(repo, reference)
        response = self.send("PUT", url, [("Content-Type", media_type)], body)
        what = f"manifest put {reference}"
        if expect_bad_digest:
            self.expect_status(response, 400, what=what)
            return
        self.expect_status(response, 201, what=what)
        subject = _subject(body)
        if subject is not None:
            self.expect_header(response, "OCI-Subject", subject["digest"], what=what)
        self.verify_digest(response, digest, what=what)
        location = response.get("Location")
        if not location:
            self.fail(f"{what}: did not return a location")
        fetched = self.send("GET", resolve(url, location), self._ACCEPT)
        self.expect_status(fetched, 200, what=f"{what}: GET Location")
        self.expect_header(fetched, "Content-Type", media_type, what=f"{what}: GET Location")
        self.expect_header(fetched, "Content-Length", str(len(body)), what=f"{what}: GET Location")
        self.expect_body(fetched, body, what=f"{what}: GET Location")

    def api_referrers_list(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> tuple[dict[str, Any], Response]:
        """``ReferrersList``: 200, an OCI index with its media type, schema version 2."""
        url = f"{self.registry}/v2/{repo}/referrers/{digest}"
        if artifact_type is not None:
            url = with_query(url, artifactType=artifact_type)
        response = self.send("GET", url)
        self.expect_header(response, "Content-Type", MT_OCI_INDEX, what="referrers")
        self.expect_status(response, 200, what="referrers")
        try:
            index = json.loads(response.body)
        except ValueError:
            self.fail(f"referrers response is not JSON: {response.body[:200]!r}")
        if not isinstance(index, dict) or index.get("mediaType") != MT_OCI_INDEX \
                or index.get("schemaVersion") != 2:
            self.fail("referrers response is not a valid OCI index (media type and schema version)")
        return index, response

    def api_tag_list(self, repo: str, last: str | None = None) -> list[str]:
        """``TagList``: 200 with a JSON tag list, or 404."""
        url = f"{self.registry}/v2/{repo}/tags/list"
        if last is not None:
            url = with_query(url, last=last)
        response = self.send("GET", url)
        self.expect_status(response, 200, 404, what="tag list")
        if response.status == 404:
            return []
        try:
            document = json.loads(response.body)
        except ValueError:
            self.fail(f"tag list is not JSON: {response.body[:200]!r}")
        tags = document.get("tags") if isinstance(document, dict) else None
        return list(tags or [])

    # run.go

    def push_blob_any(self, repo: str, digest: str, td: TestData) -> None:
        """
        ``TestPushBlobAny``: once every push API has been tried, the suite
        uses the first that passed, in its order of preference: POST+PUT.
        """
        self.api_blob_post_put(repo, digest, td)

    def run_delete_blob(self, repo: str, digest: str, td: TestData) -> None:
        """``TestDeleteBlob``: delete, then the blob is gone at once."""
        with self.step(f"blob-delete {repo} {digest}") as deleted:
            self.api_blob_delete(repo, digest)
        if deleted.ok:
            with self.step(f"blob-delete atomic {repo} {digest}"):
                self.expect_status(self.api_blob_head(repo, digest), 404, what="HEAD after blob delete")

    def run_blob_head(self, repo: str, digest: str, td: TestData) -> None:
        with self.step(f"blob-head {digest}"):
            self.api_blob_head_exists(repo, digest, td)

    def run_blob_get(self, repo: str, digest: str, td: TestData) -> None:
        with self.step(f"blob-get {digest}"):
            self.api_blob_get_exists(repo, digest, td)

    def run_push(self, td: TestData, repo: str) -> None:
        """``TestPush``: blobs, manifests by digest in order, then tags."""
        for digest in td.blobs:
            with self.step(f"push blob {digest}"):
                self.push_blob_any(repo, digest, td)
        for digest in td.man_order:
            with self.step(f"push manifest by digest {digest}"):
                self.api_manifest_put(repo, digest, digest, td,
                                      expect_bad_digest=digest in td.expect_bad_digest)
        for tag, digest in td.tags.items():
            if tag in td.tag_pushed:
                continue
            with self.step(f"push manifest by tag {tag}") as pushed:
                self.api_manifest_put(repo, tag, digest, td,
                                      expect_bad_digest=digest in td.expect_bad_digest)
            if pushed.ok:
                td.tag_pushed.add(tag)

    def run_list(self, td: TestData, repo: str) -> None:
        """``TestList``: every tag listed, and ``?last=`` pages past the first half."""
        with self.step("tag-list"):
            tags = self.api_tag_list(repo)
            missing = [tag for tag in td.tags if tag not in tags]
            problems = [f"missing tag {tag!r} from listing {tags!r}" for tag in missing]
            if len(tags) >= 2:
                ordered = sorted(tags)
                end = len(ordered) // 2
                last = ordered[end - 1]
                partial = self.api_tag_list(repo, last=last)
                problems += [f"tag {t!r} returned when last set to {last!r}"
                             for t in ordered[:end] if t in partial]
                problems += [f"tag {t!r} missing when last set to {last!r}"
                             for t in ordered[end:] if t not in partial]
            if problems:
                self.fail("\n".join(problems))

    def run_head(self, td: TestData, repo: str) -> None:
        """``TestHead``: HEAD every tag, manifest and blob."""
        for tag, digest in td.tags.items():
            if digest in td.skip_pull:
                continue
            with self.step(f"manifest-head-by-tag {tag}"):
                self.api_manifest_head_exists(repo, tag, digest, td)
        for digest in td.man_order:
            if digest in td.skip_pull:
                continue
            with self.step(f"manifest-head-by-digest {digest}"):
                self.api_manifest_head_exists(repo, digest, digest, td)
        for digest in td.blobs:
            self.run_blob_head(repo, digest, td)

    def run_pull(self, td: TestData, repo: str) -> None:
        """``TestPull``: GET every tag, manifest and blob."""
        for tag, digest in td.tags.items():
            if digest in td.skip_pull:
                continue
            with self.step(f"manifest-by-tag {tag}"):
                self.api_manifest_get_exists(repo, tag, digest, td)
        for digest in td.man_order:
            if digest in td.skip_pull:
                continue
            with self.step(f"manifest-by-digest {digest}"):
                self.api_manifest_get_exists(repo, digest, digest, td)
        for digest in td.blobs:
            self.run_blob_get(repo, digest, td)

    def run_referrers(self, td: TestData, repo: str) -> None:
        """``TestReferrers``: each subject lists its referrers, also filtered by artifactType."""
        for subject, goals in td.referrers.items():
            with self.step(f"referrers {subject}"):
                index, _ = self.api_referrers_list(repo, subject)
                found = index.get("manifests") or []
                for goal in goals:
                    if not any(_same_descriptor(entry, goal) for entry in found):
                        self.fail(f"entry missing from referrers list, subject {subject}, "
                                  f"referrer {goal}, got {found}")
            artifact_types = list(dict.fromkeys(goal.get("artifactType", "") for goal in goals))
            for artifact_type in artifact_types:
                with self.step(f"referrers {subject} artifactType={artifact_type}"):
                    index, response = self.api_referrers_list(repo, subject, artifact_type)
                    found = index.get("manifests") or []
                    filters = [f.strip() for f in response.get("OCI-Filters-Applied").split(",")]
                    applied = "artifactType" in filters
                    for goal in goals:
                        wanted = not applied or goal.get("artifactType", "") == artifact_type
                        if wanted and not any(_same_descriptor(entry, goal) for entry in found):
                            self.fail(f"entry missing from filtered referrers list, subject {subject}, "
                                      f"referrer {goal}, got {found}")
                    if applied:
                        for entry in found:
                            if entry.get("artifactType", "") != artifact_type:
                                self.fail(f"referrers filter for artifactType {artifact_type} "
                                          f"included descriptor {entry}")
                    else:
                        raise Unsupported(
                            "registry does not set the expected OCI-Filters-Applied header "
                            "for the artifactType"
                        )

    def run_delete(self, td: TestData, repo: str) -> None:
        """``TestDelete``: pushed tags, manifests newest first, then blobs; each gone at once."""
        for tag in td.tags:
            if tag not in td.tag_pushed:
                continue
            with self.step(f"tag-delete {tag}") as deleted:
                self.api_manifest_delete(repo, tag)
            if deleted.ok:
                with self.step(f"tag-delete atomic {tag}"):
                    self.expect_status(self.api_manifest_head(repo, tag), 404, what="HEAD after tag delete")
        for digest in reversed(td.man_order):
            with self.step(f"manifest-delete {digest}") as deleted:
                self.api_manifest_delete(repo, digest)
            if deleted.ok:
                with self.step(f"manifest-delete atomic {digest}"):
                    self.expect_status(self.api_manifest_head(repo, digest), 404,
                                       what="HEAD after manifest delete")
        for digest in td.blobs:
            self.run_delete_blob(repo, digest, td)

    def run_data_set(self, td: TestData, repo: str = REPO1) -> None:
        """One data set, as ``TestAll`` runs it: push, list, head, pull, referrers, delete."""
        self.run_push(td, repo)
        self.run_list(td, repo)
        self.run_head(td, repo)
        self.run_pull(td, repo)
        self.run_referrers(td, repo)
        self.run_delete(td, repo)
        self.finish()
