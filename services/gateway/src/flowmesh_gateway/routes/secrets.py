"""Tenant secrets (admin role): values are write-only; no response ever carries one."""

from __future__ import annotations

from aiohttp import web

from flowmesh_gateway.api import Call, Route
from flowmesh_gateway.bodies import json_body, json_response
from flowmesh_proto import http as h
from flowmesh_proto import registry as r

BASE = "/api/v1/{tenant}/secrets"


async def put_secret(call: Call) -> web.Response:
    body = await json_body(call.request, h.SecretBody, call.body_limit)
    request = r.SecretPut(name=call.request.match_info["name"], value=body.value)
    return json_response(await call.registry(request))


async def delete_secret(call: Call) -> web.Response:
    request = r.SecretDelete(name=call.request.match_info["name"])
    return json_response(await call.registry(request))


async def list_secrets(call: Call) -> web.Response:
    return json_response(await call.registry(r.SecretList()))


ROUTES = [
    Route(
        method="GET",
        path=BASE,
        handler=list_secrets,
        role="admin",
        summary="List secret names (never values)",
        operation_id="secret_list",
        response=r.SecretPage,
    ),
    Route(
        method="PUT",
        path=f"{BASE}/{{name}}",
        handler=put_secret,
        role="admin",
        summary="Create or replace a secret (write-only)",
        operation_id="secret_put",
        body=h.SecretBody,
        response=r.Secret,
    ),
    Route(
        method="DELETE",
        path=f"{BASE}/{{name}}",
        handler=delete_secret,
        role="admin",
        summary="Delete a secret; versions naming it turn invalid (listed)",
        operation_id="secret_delete",
        response=r.SecretDeleted,
    ),
]
