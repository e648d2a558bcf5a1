"""Connectors (DESIGN §16): admin to change, viewer to read. A connector names its secrets,
never holds a value, so every answer shows it whole (``missing_secrets``: names not set)."""

from __future__ import annotations

from aiohttp import web

from flowmesh_gateway.api import Call, Route
from flowmesh_gateway.bodies import json_body, json_response, query_int
from flowmesh_proto import connectors as c

BASE = "/api/v1/{tenant}/connectors"


async def put_connector(call: Call) -> web.Response:
    spec = await json_body(call.request, c.ConnectorSpec, call.body_limit)
    request = c.ConnectorPut(name=call.request.match_info["name"], spec=spec)
    connector = await call.registry(request)
    return json_response(connector, 201 if connector.version == 1 else 200)


async def get_connector(call: Call) -> web.Response:
    request = c.ConnectorGet(name=call.request.match_info["name"])
    return json_response(await call.registry(request))


async def list_connectors(call: Call) -> web.Response:
    request = c.ConnectorList(
        limit=query_int(call.request, "limit", 1, c.MAX_PAGE) or 50,
        cursor=call.request.query.get("cursor") or None,
    )
    return json_response(await call.registry(request))


async def delete_connector(call: Call) -> web.Response:
    await call.registry(c.ConnectorDelete(name=call.request.match_info["name"]))
    return web.Response(status=204)


ROUTES = [
    Route(
        method="GET",
        path=BASE,
        handler=list_connectors,
        role="viewer",
        summary="List connectors by name (secret names only, never values)",
        operation_id="connector_list",
        response=c.ConnectorPage,
        query=(("limit", "integer"), ("cursor", "string")),
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{name}}",
        handler=get_connector,
        role="viewer",
        summary="A connector (secret names only, never values)",
        operation_id="connector_get",
        response=c.Connector,
    ),
    Route(
        method="PUT",
        path=f"{BASE}/{{name}}",
        handler=put_connector,
        role="admin",
        summary="Create (201) or replace (200, version + 1) a connector",
        operation_id="connector_put",
        body=c.ConnectorSpec,
        response=c.Connector,
        also=((201, c.Connector, "Created: the connector's version 1"),),
        conflicts=("409",),
    ),
    Route(
        method="DELETE",
        path=f"{BASE}/{{name}}",
        handler=delete_connector,
        role="admin",
        status=204,
        summary="Delete a connector",
        operation_id="connector_delete",
    ),
]
