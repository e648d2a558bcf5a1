"""Platform administration: tenants (the platform admin token only)."""

from __future__ import annotations

from aiohttp import web

from flowmesh_gateway.api import PLATFORM, Call, Route
from flowmesh_gateway.bodies import json_body, json_response
from flowmesh_proto import http as h
from flowmesh_proto import registry as r


async def create_tenant(call: Call) -> web.Response:
    body = await json_body(call.request, h.TenantBody, call.body_limit)
    created = await call.registry("tenant_create", r.TenantCreate(id=body.id, name=body.name))
    return json_response(created, 201, {"Cache-Control": "no-store"})


ROUTES = [
    Route(
        method="POST",
        path="/api/v1/admin/tenants",
        handler=create_tenant,
        role=PLATFORM,
        status=201,
        summary="Create a tenant and its first admin key",
        operation_id="tenant_create",
        body=h.TenantBody,
        response=r.TenantCreated,
    ),
]
