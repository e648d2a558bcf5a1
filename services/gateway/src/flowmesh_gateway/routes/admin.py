"""Platform administration: tenants (the platform admin token only)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from flowmesh_gateway.api import PLATFORM, RUNS, Call, Route
from flowmesh_gateway.bodies import json_body, json_response
from flowmesh_proto import http as h
from flowmesh_proto import registry as r


async def create_tenant(call: Call) -> web.Response:
    body = await json_body(call.request, h.TenantBody, call.body_limit)
    created = await call.registry(r.TenantCreate(id=body.id, name=body.name))
    return json_response(created, 201, {"Cache-Control": "no-store"})


async def get_tenant(call: Call) -> web.Response:
    found = await call.registry(r.TenantGet(id=call.request.match_info["id"]))
    runs = await call.request.app[RUNS].tenant_runs(found.id)
    return json_response(h.TenantView(**msgspec.structs.asdict(found), runs=runs))


async def patch_tenant(call: Call) -> web.Response:
    body = await json_body(call.request, h.TenantPatchBody, call.body_limit)
    request = r.TenantUpdate(
        id=call.request.match_info["id"],
        name=body.name,
        rate_limit=body.rate_limit,
        run_retention_days=body.run_retention_days,
        max_holds=body.max_holds,
        max_queued_runs=body.max_queued_runs,
        weight=body.weight,
        max_running=body.max_running,
    )
    return json_response(await call.registry(request))


ROUTES = [
    Route(
        method="POST",
        path="/api/v1/admin/tenants",
        handler=create_tenant,
        role=PLATFORM,
        status=201,
        summary="Create a tenant and its first admin key",
        operation_id="tenant_create",
        conflicts=("409",),
        body=h.TenantBody,
        response=r.TenantCreated,
    ),
    Route(
        method="GET",
        path="/api/v1/admin/tenants/{id}",
        handler=get_tenant,
        role=PLATFORM,
        summary="A tenant, its settings, and its runs now (queued, running)",
        operation_id="tenant_get",
        response=h.TenantView,
    ),
    Route(
        method="PATCH",
        path="/api/v1/admin/tenants/{id}",
        handler=patch_tenant,
        role=PLATFORM,
        summary="Rename a tenant, set its rate limit, run retention, quotas, weight or max_running "
        "(null: the default)",
        operation_id="tenant_update",
        body=h.TenantPatchBody,
        response=r.Tenant,
    ),
]
