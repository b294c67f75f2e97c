"""Discovery: ``tags/list``, ``_catalog`` and ``referrers``."""

from __future__ import annotations

from twisted.web.iweb import IRequest

from txoci.registry import mediatypes as mt
from txoci.registry.digest import Digest
from txoci.registry.operations import Page, Registry
from txoci.web.guard import access_of
from txoci.web.headers import MAX_PAGE, next_link, parse_page_size
from txoci.web.responses import API_ROOT, json_body, query_value


def _page_request(request: IRequest) -> tuple[int | None, str | None]:
    return parse_page_size(query_value(request, "n")), query_value(request, "last")


def _page_headers(path: str, n: int | None, page: Page) -> dict[str, str]:
    if not page.more or not page.items:
        return {}
    return {"Link": next_link(path, n if n is not None else MAX_PAGE, page.items[-1])}


async def list_tags(registry: Registry, request: IRequest, name: str) -> bytes:
    n, last = _page_request(request)
    page = await registry.list_tags(name, MAX_PAGE if n is None else n, last)
    path = f"{API_ROOT}/{name}/tags/list"
    return json_body(request, {"name": name, "tags": page.items}, headers=_page_headers(path, n, page))


async def catalog(registry: Registry, request: IRequest) -> bytes:
    n, last = _page_request(request)
    access = access_of(request)
    visible = access.catalog_visible if access.restricted else None
    page = await registry.catalog(MAX_PAGE if n is None else n, last, visible)
    path = f"{API_ROOT}/_catalog"
    return json_body(request, {"repositories": page.items}, headers=_page_headers(path, n, page))


async def referrers(registry: Registry, request: IRequest, name: str, digest_text: str) -> bytes:
    subject = Digest.parse(digest_text)
    artifact_type = query_value(request, "artifactType")
    descriptors = await registry.referrers(name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
    return json_body(request, index, content_type=mt.OCI_INDEX, headers=headers)
