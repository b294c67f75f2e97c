"""
The Klein application: the route table of the distribution API.

Routes are thin: each one names its handler in the module of its resource
(:mod:`~txoci.web.blobs`, :mod:`~txoci.web.uploads`,
:mod:`~txoci.web.manifests`, :mod:`~txoci.web.listing`).  Failures of every
kind end up in one place and leave as the spec's JSON error envelope.

The application serves the tree below ``/v2``; :func:`root_resource` puts it
there, so ``putChild(b"v2", ...)`` in a host application works the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from txoci.registry.errors import RegistryError, RequestInvalid, Unsupported
from txoci.registry.operations import Registry
from txoci.web import blobs, listing, manifests, uploads
from txoci.web.accesslog import annotate
from txoci.web.errors import render_error, render_unexpected
from txoci.web.guard import Guard
from txoci.web.responses import empty, json_body
from txoci.web.site import track_handler

Handler = Callable[..., Coroutine[Any, Any, Any]]


def _shielded(handler: Handler) -> Callable[..., Deferred[Any]]:
    """
    Run ``handler`` to completion even if the client disconnects.

    Klein cancels a handler's Deferred when its connection is lost; an upload
    must still record how far it got, so the cancellation stops at the copy
    Klein holds and never reaches the coroutine.
    """

    @wraps(handler)
    def run(self: RegistryApp, request: IRequest, **kwargs: Any) -> Deferred[Any]:
        inner: Deferred[Any] = ensureDeferred(self.guarded(handler, request, kwargs))
        # A draining site waits for the handler, not for Klein's cancellable copy.
        track_handler(request, inner)
        outer: Deferred[Any] = Deferred()
        inner.chainDeferred(outer)
        return outer

    return run


_NAME = "/<path:name>"

#: Route variables as they appear in route templates (logs, metrics).
_TEMPLATE_NAMES = {"digest_text": "digest", "reference_text": "reference", "upload_id": "uuid"}
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def route_template(rule: str) -> str:
    """``/<path:name>/blobs/<digest_text>`` as ``/v2/{name}/blobs/{digest}``."""
    return "/v2" + _VARIABLE.sub(
        lambda match: "{" + _TEMPLATE_NAMES.get(match.group(1), match.group(1)) + "}", rule
    )


class _AnnotatingKlein(Klein):
    """Notes each request's route template, repository and reference for the access log."""

    _templates: dict[str, str] | None = None

    def execute_endpoint(self, endpoint: str, request: IRequest, *args: Any, **kwargs: Any) -> Any:
        templates = _AnnotatingKlein._templates
        if templates is None:
            templates = _AnnotatingKlein._templates = {
                rule.endpoint: route_template(rule.rule) for rule in self.url_map.iter_rules()
            }
        info = annotate(request)
        info.route = templates.get(endpoint)
        info.repository = kwargs.get("name")
        info.reference = kwargs.get("reference_text") or kwargs.get("digest_text")
        info.upload_id = kwargs.get("upload_id")
        return super().execute_endpoint(endpoint, request, *args, **kwargs)


async def version_check(registry: Registry, request: IRequest) -> bytes:
    """``GET /v2/``: the API is here (and, with authentication on, the caller is known)."""
    return json_body(request, {})


class RegistryApp:
    """
    The distribution API over one :class:`~txoci.registry.operations.Registry`.

    With a :class:`~txoci.web.guard.Guard`, every route is authenticated and
    authorized by :meth:`Guard.admit` before its handler runs.
    """

    app = _AnnotatingKlein()

    def __init__(self, registry: Registry, guard: Guard | None = None) -> None:
        self.registry = registry
        self.guard = guard

    def resource(self) -> IResource:
        """The resource serving the tree below ``/v2``."""
        return _Utf8Only(self.app.resource())

    async def guarded(self, handler: Handler, request: IRequest, arguments: dict[str, Any]) -> Any:
        if self.guard is not None:
            await self.guard.admit(request, handler.__name__, arguments)
        return await handler(self.registry, request, **arguments)

    # end-1

    base = app.route("/", methods=["GET", "HEAD"])(_shielded(version_check))

    # end-2, end-10

    blob_get = app.route(_NAME + "/blobs/<digest_text>", methods=["GET", "HEAD"])(
        _shielded(blobs.get_blob)
    )
    blob_delete = app.route(_NAME + "/blobs/<digest_text>", methods=["DELETE"])(
        _shielded(blobs.delete_blob)
    )

    # end-4, end-11

    upload_start = app.route(
        _NAME + "/blobs/uploads/", methods=["POST"], strict_slashes=False
    )(_shielded(uploads.start_upload))

    # end-5, end-6, end-13, end-14

    upload_get = app.route(_NAME + "/blobs/uploads/<upload_id>", methods=["GET", "HEAD"])(
        _shielded(uploads.upload_progress)
    )
    upload_patch = app.route(_NAME + "/blobs/uploads/<upload_id>", methods=["PATCH"])(
        _shielded(uploads.append_chunk)
    )
    upload_put = app.route(_NAME + "/blobs/uploads/<upload_id>", methods=["PUT"])(
        _shielded(uploads.finish_upload)
    )
    upload_delete = app.route(_NAME + "/blobs/uploads/<upload_id>", methods=["DELETE"])(
        _shielded(uploads.cancel_upload)
    )

    # end-3, end-7, end-9

    manifest_get = app.route(_NAME + "/manifests/<reference_text>", methods=["GET", "HEAD"])(
        _shielded(manifests.get_manifest)
    )
    manifest_put = app.route(_NAME + "/manifests/<reference_text>", methods=["PUT"])(
        _shielded(manifests.put_manifest)
    )
    manifest_delete = app.route(_NAME + "/manifests/<reference_text>", methods=["DELETE"])(
        _shielded(manifests.delete_manifest)
    )

    # end-8, end-12, catalog

    tags_list = app.route(_NAME + "/tags/list", methods=["GET", "HEAD"])(
        _shielded(listing.list_tags)
    )
    referrers_list = app.route(_NAME + "/referrers/<digest_text>", methods=["GET", "HEAD"])(
        _shielded(listing.referrers)
    )
    catalog_list = app.route("/_catalog", methods=["GET", "HEAD"])(_shielded(listing.catalog))

    # Every failure leaves as JSON.

    @app.handle_errors(RegistryError)
    def registry_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, RegistryError)
        return render_error(request, error)

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        return render_error(request, RequestInvalid("no such endpoint", status=404))

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, MethodNotAllowed)
        # RFC 9110 15.5.6: a 405 lists the methods the endpoint does allow.
        allowed = {"Allow": ", ".join(sorted(error.valid_methods or []))}
        return render_error(request, Unsupported("method not allowed on this endpoint", headers=allowed))

    @app.handle_errors(RequestRedirect)
    def redirect(self, request: IRequest, failure: Failure) -> bytes:
        # ``/v2`` and friends: send the client to the canonical path, keeping
        # the Location relative so it is right behind any proxy.
        error = failure.value
        assert isinstance(error, RequestRedirect)
        target = urlsplit(error.new_url)
        location = target.path + (f"?{target.query}" if target.query else "")
        return empty(request, error.code, {"Location": location})

    @app.handle_errors(HTTPException)
    def http_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, HTTPException)
        return render_error(request, RequestInvalid(error.description or "bad request", status=error.code))

    @app.handle_errors(Exception)
    def unexpected(self, request: IRequest, failure: Failure) -> bytes | None:
        if failure.check(CancelledError):
            return None
        return render_unexpected(request, failure)


class _NotFound(Resource):
    """Anything outside ``/v2``: the spec's error envelope, 404."""

    isLeaf = True

    def render(self, request: IRequest) -> bytes:
        return render_error(request, RequestInvalid("no such endpoint", status=404))


class _Utf8Only(Resource):
    """
    Refuses a path or host that is not UTF-8 with the spec's envelope, 400;
    Klein would answer such a request in plain text and log an error.
    """

    isLeaf = True

    def __init__(self, api: IResource) -> None:
        super().__init__()
        self._api = api

    def render(self, request: IRequest) -> Any:
        try:
            request.getRequestHostname().decode("utf-8")
            for segment in (*request.prepath, *request.postpath):
                segment.decode("utf-8")
        except UnicodeDecodeError:
            return render_error(request, RequestInvalid("the request path or host is not UTF-8"))
        return self._api.render(request)


class _V2Root(Resource):
    """
    The site root: ``/v2`` is the API, beside the operational endpoints
    (``/livez``, ``/readyz``, ``/metrics``) given to it; everything else is 404 JSON.
    """

    def __init__(self, api: IResource | None, extra: dict[bytes, IResource] | None = None) -> None:
        super().__init__()
        if api is not None:
            self.putChild(b"v2", api)
        for name, child in (extra or {}).items():
            self.putChild(name, child)

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return _NotFound()

    def render(self, request: IRequest) -> bytes:
        return _NotFound().render(request)


def root_resource(
    registry: Registry | None,
    operational: dict[bytes, IResource] | None = None,
    guard: Guard | None = None,
) -> IResource:
    """
    A site root serving the registry at ``/v2`` (none when ``registry`` is None)
    and the ``operational`` resources (``{b"livez": ...}``) beside it; with a
    ``guard``, the API checks every request's credentials and permissions.
    """
    api = None if registry is None else RegistryApp(registry, guard).resource()
    return _V2Root(api, operational)
