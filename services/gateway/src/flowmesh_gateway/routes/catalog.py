"""The catalog (DESIGN section 16, viewer): what a workflow's nodes can be, for every
tenant alike, so no registry call; the entries are built once, in
:mod:`flowmesh_proto.entries`."""

from __future__ import annotations

from aiohttp import web

from flowmesh_gateway.api import Call, Route
from flowmesh_gateway.bodies import json_response, query_int, unprocessable
from flowmesh_proto.entries import ENTRY_CATEGORIES, ENTRY_KINDS, CatalogPage, catalog_page
from flowmesh_proto.entries import node_catalog as entries

BASE = "/api/v1/{tenant}/catalog"


def _choice(call: Call, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = call.request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise unprocessable(f"{name} must be one of {', '.join(allowed)}", name)
    return raw


def _cursor(call: Call) -> str | None:
    raw = call.request.query.get("cursor")
    if raw is None or raw == "":
        return None
    kind, sep, name = raw.partition(":")
    if not sep or kind not in ENTRY_KINDS or not name:
        raise unprocessable("cursor must be the next_cursor of a page", "cursor")
    return raw


async def list_catalog(call: Call) -> web.Response:
    page = catalog_page(
        entries(),
        limit=query_int(call.request, "limit", 1, 100) or 50,
        cursor=_cursor(call),
        kind=_choice(call, "kind", ENTRY_KINDS),
        category=_choice(call, "category", ENTRY_CATEGORIES),
    )
    return json_response(page)


ROUTES = [
    Route(
        method="GET",
        path=BASE,
        handler=list_catalog,
        role="viewer",
        summary="The catalog: every node type with its schemas and an example (a list response)",
        operation_id="catalog_list",
        response=CatalogPage,
        query=(
            ("limit", "integer"),
            ("cursor", "string"),
            ("kind", "string"),
            ("category", "string"),
        ),
    ),
]
