"""API keys and the audit log of a tenant (admin role)."""

from __future__ import annotations

from aiohttp import web

from flowmesh_gateway.api import Call, Route
from flowmesh_gateway.bodies import json_body, json_response, query_int
from flowmesh_proto import http as h
from flowmesh_proto import registry as r

BASE = "/api/v1/{tenant}"


async def list_keys(call: Call) -> web.Response:
    return json_response(await call.registry(r.ApiKeyList()))


async def create_key(call: Call) -> web.Response:
    body = await json_body(call.request, h.ApiKeyBody, call.body_limit)
    created = await call.registry(r.ApiKeyCreate(name=body.name, role=body.role))
    return json_response(created, 201, {"Cache-Control": "no-store"})


async def revoke_key(call: Call) -> web.Response:
    await call.registry(r.ApiKeyRevoke(id=call.request.match_info["id"]))
    return web.Response(status=204)


async def audit(call: Call) -> web.Response:
    q = call.request.query
    request = r.AuditList(
        limit=query_int(call.request, "limit", 1, 100) or 50,
        cursor=q.get("cursor") or None,
        action=q.get("action") or None,
        actor=q.get("actor") or None,
        target=q.get("target") or None,
    )
    return json_response(await call.registry(request))


ROUTES = [
    Route(
        method="GET",
        path=f"{BASE}/api-keys",
        handler=list_keys,
        role="admin",
        summary="List API keys (never their secrets)",
        operation_id="apikey_list",
        response=r.ApiKeyPage,
    ),
    Route(
        method="POST",
        path=f"{BASE}/api-keys",
        handler=create_key,
        role="admin",
        status=201,
        summary="Create an API key; the key is shown in this response only",
        operation_id="apikey_create",
        body=h.ApiKeyBody,
        response=r.ApiKeySecret,
    ),
    Route(
        method="DELETE",
        path=f"{BASE}/api-keys/{{id}}",
        handler=revoke_key,
        role="admin",
        status=204,
        summary="Revoke an API key",
        operation_id="apikey_revoke",
    ),
    Route(
        method="GET",
        path=f"{BASE}/audit",
        handler=audit,
        role="admin",
        summary="The audit log, newest first",
        operation_id="audit_list",
        response=r.AuditPage,
        query=(
            ("limit", "integer"),
            ("cursor", "string"),
            ("action", "string"),
            ("actor", "string"),
            ("target", "string"),
        ),
    ),
]
