"""Actions (DESIGN section 16): the tenant's own, versioned like workflows (editor to change,
viewer to read); the built-in ones are read here too (version 1, never changed). The
registry judges names and specs; the gateway reads the body strictly (unknown fields 422)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowmesh_gateway.api import Call, Route
from flowmesh_gateway.bodies import json_body, json_response, path_int, query_int
from flowmesh_proto import actions as a

BASE = "/api/v1/{tenant}/actions"

#: The body of the OpenAPI example (and of docs/tenant-actions.md): an internal API's call.
EXAMPLE: dict[str, Any] = {
    "description": "Opens a ticket in the internal helpdesk. Outputs the ticket's id.",
    "category": "integration",
    "input_schema": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["title"],
        "additionalProperties": False,
    },
    "output_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
    "request": {
        "method": "POST",
        "path": "/tickets",
        "body": {
            "title": "{{ input.title }}",
            "priority": "{{ has(input.priority) ? input.priority : null }}",
        },
        "expect_status": [201],
    },
    "result": {"output": "{'id': string(response.body.id)}"},
    "connector": {"base_url": "https://helpdesk.internal.example/api", "auth": "bearer"},
    "example": {"title": "Printer on fire", "priority": 1},
}


async def put_action(call: Call) -> web.Response:
    spec = await json_body(call.request, a.ActionSpec, call.body_limit)
    action = await call.registry(a.ActionPut(name=call.request.match_info["name"], spec=spec))
    return json_response(action, 201 if action.version == 1 else 200)


async def get_action(call: Call) -> web.Response:
    request = a.ActionGet(name=call.request.match_info["name"])
    return json_response(await call.registry(request))


async def get_version(call: Call) -> web.Response:
    version = path_int(call.request, "version")
    request = a.ActionGet(name=call.request.match_info["name"], version=version)
    return json_response(await call.registry(request))


async def list_actions(call: Call) -> web.Response:
    request = a.ActionList(
        limit=query_int(call.request, "limit", 1, a.MAX_PAGE) or 50,
        cursor=call.request.query.get("cursor") or None,
    )
    return json_response(await call.registry(request))


async def list_versions(call: Call) -> web.Response:
    request = a.ActionVersions(
        name=call.request.match_info["name"],
        limit=query_int(call.request, "limit", 1, a.MAX_PAGE) or 50,
        cursor=call.request.query.get("cursor") or None,
    )
    return json_response(await call.registry(request))


async def delete_action(call: Call) -> web.Response:
    await call.registry(a.ActionDelete(name=call.request.match_info["name"]))
    return web.Response(status=204)


PAGE_QUERY = (("limit", "integer"), ("cursor", "string"))

ROUTES = [
    Route(
        method="GET",
        path=BASE,
        handler=list_actions,
        role="viewer",
        summary="List the actions the tenant can use by name: built-in and its own (current "
        "versions)",
        operation_id="action_list",
        response=a.ActionPage,
        query=PAGE_QUERY,
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{name}}",
        handler=get_action,
        role="viewer",
        summary="An action at its current version (a built-in one: version 1)",
        operation_id="action_get",
        response=a.Action,
    ),
    Route(
        method="PUT",
        path=f"{BASE}/{{name}}",
        handler=put_action,
        role="editor",
        summary="Create (201, version 1) or change (200, the next version) the tenant's action; "
        "the same spec again answers the current version",
        operation_id="action_put",
        body=a.ActionSpec,
        response=a.Action,
        also=((201, a.Action, "Created: the action's version 1"),),
        conflicts=("409",),
        example=EXAMPLE,
    ),
    Route(
        method="DELETE",
        path=f"{BASE}/{{name}}",
        handler=delete_action,
        role="editor",
        status=204,
        summary="Delete the tenant's action with every version (a built-in one: 409)",
        operation_id="action_delete",
        conflicts=("409",),
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{name}}/versions",
        handler=list_versions,
        role="viewer",
        summary="The action's versions, newest first",
        operation_id="action_versions",
        response=a.ActionPage,
        query=PAGE_QUERY,
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{name}}/versions/{{version}}",
        handler=get_version,
        role="viewer",
        summary="The action at one version",
        operation_id="action_version_get",
        response=a.Action,
    ),
]
