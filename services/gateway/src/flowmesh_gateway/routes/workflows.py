"""Workflow endpoints: handlers only translate between HTTP and registry operations."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from flowmesh_gateway.api import Call, Route
from flowmesh_gateway.bodies import (
    document_body,
    etag,
    if_match_version,
    is_yaml,
    json_body,
    json_response,
    path_int,
    query_bool,
    query_int,
    query_list,
    require_json,
    unprocessable,
)
from flowmesh_proto import http as h
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.registry import ExportFormat, WorkflowSort
from flowmesh_shared.errors import FlowmeshError

BASE = "/api/v1/{tenant}/workflows"
EXPORT_TYPES = {"application/yaml": "yaml", "application/x-yaml": "yaml", "text/yaml": "yaml"}
SORTS = ("name", "-name", "created_at", "-created_at", "updated_at", "-updated_at")
DEFINITION_TYPES = "application/json or application/yaml"
MAX_VERSION = h.MAX_VERSION  # a version number the API reads (query or body) is 1..MAX_VERSION


def workflow_response(workflow: r.Workflow, status: int = 200) -> web.Response:
    headers = {"ETag": etag(workflow.version)}
    if status == 201:
        headers["Location"] = f"/api/v1/{workflow.tenant_id}/workflows/{workflow.id}"
    return json_response(workflow, status, headers)


async def create(call: Call) -> web.Response:
    definition = await json_body(call.request, Any, call.body_limit)
    workflow = await call.registry(r.WorkflowCreate(definition=definition))
    return workflow_response(workflow, 201)


async def list_(call: Call) -> web.Response:
    q = call.request.query
    sort = q.get("sort", "-updated_at")
    if sort not in SORTS:
        raise unprocessable(f"sort must be one of {', '.join(SORTS)}", "sort")
    request = r.WorkflowList(
        limit=query_int(call.request, "limit", 1, 100) or 50,
        cursor=q.get("cursor") or None,
        offset=query_int(call.request, "offset", 0, 1_000_000),
        category=q.get("category") or None,
        tags=query_list(call.request, "tags"),
        enabled=query_bool(call.request, "enabled", "active"),
        q=q.get("q") or None,
        sort=cast(WorkflowSort, sort),
    )
    return json_response(await call.registry(request))


async def get(call: Call) -> web.Response:
    version = query_int(call.request, "version", 1, MAX_VERSION)
    request = r.WorkflowGet(id=call.request.match_info["id"], version=version)
    return workflow_response(await call.registry(request))


async def update(call: Call) -> web.Response:
    wid = call.request.match_info["id"]
    expected = if_match_version(call.request)
    await call.registry(r.WorkflowGet(id=wid))  # 404 before the body
    if is_yaml(call.request):  # read by the registry: its problems carry their lines
        text, fmt = await document_body(call.request, call.body_limit)
        request = r.WorkflowUpdate(id=wid, document=text, format=fmt, if_version=expected)
    else:
        require_json(call.request, DEFINITION_TYPES)
        definition = await json_body(call.request, Any, call.body_limit)
        request = r.WorkflowUpdate(id=wid, definition=definition, if_version=expected)
    return workflow_response(await call.registry(request))


async def patch(call: Call) -> web.Response:
    wid = call.request.match_info["id"]
    expected = if_match_version(call.request)
    await call.registry(r.WorkflowGet(id=wid))
    body = await json_body(call.request, h.WorkflowPatchBody, call.body_limit)
    request = r.WorkflowPatch(
        id=wid,
        enabled=body.enabled,
        tags=body.tags,
        current_version=_body_version(body.current_version, "current_version"),
        if_version=expected,
    )
    return workflow_response(await call.registry(request))


async def delete(call: Call) -> web.Response:
    await call.registry(r.WorkflowDelete(id=call.request.match_info["id"]))
    return web.Response(status=204)


async def apply(call: Call) -> web.Response:
    name = call.request.match_info["name"]
    definition = await json_body(call.request, Any, call.body_limit)
    applied = await call.registry(r.WorkflowApply(name=name, definition=definition))
    return workflow_response(applied.workflow, 201 if applied.created else 200)


async def batch(call: Call) -> web.Response:
    body = await json_body(call.request, r.WorkflowBatch, call.body_limit)
    deletes = any(isinstance(op, r.BatchDelete) for op in body.operations)
    if deletes and call.identity is not None and not call.identity.allows("admin"):
        raise FlowmeshError(
            ErrorCode.FORBIDDEN, "a batch with delete operations needs the admin role"
        )
    return json_response(await call.registry(body))


async def versions(call: Call) -> web.Response:
    request = r.WorkflowVersions(
        id=call.request.match_info["id"],
        limit=query_int(call.request, "limit", 1, 100) or 50,
        cursor=call.request.query.get("cursor") or None,
    )
    return json_response(await call.registry(request))


async def version(call: Call) -> web.Response:
    number = path_int(call.request, "n")
    request = r.WorkflowGet(id=call.request.match_info["id"], version=number)
    return workflow_response(await call.registry(request))


async def clone(call: Call) -> web.Response:
    wid = call.request.match_info["id"]
    await call.registry(r.WorkflowGet(id=wid))
    body = await json_body(call.request, h.CloneBody, call.body_limit)
    version = _body_version(body.version, "version")
    request = r.WorkflowClone(id=wid, name=body.name, version=version)
    return workflow_response(await call.registry(request), 201)


async def export(call: Call) -> web.Response:
    fmt = call.request.query.get("format") or EXPORT_TYPES.get(
        call.request.headers.get("Accept", "").split(",")[0].strip().lower(), "json"
    )
    if fmt != "json" and fmt != "yaml":
        raise unprocessable("format must be json or yaml", "format")
    version_number = query_int(call.request, "version", 1, MAX_VERSION)
    request = r.WorkflowExport(
        id=call.request.match_info["id"], version=version_number, format=cast(ExportFormat, fmt)
    )
    exported = await call.registry(request)
    return web.Response(text=exported.document, content_type=exported.content_type)


async def import_(call: Call) -> web.Response:
    text, fmt = await document_body(call.request, call.body_limit)
    workflow = await call.registry(r.WorkflowImport(document=text, format=fmt))
    return workflow_response(workflow, 201)


async def validate(call: Call) -> web.Response:
    # A question, not a store: what cannot be kept, or (YAML) cannot be read, is one of the
    # answer's errors. A YAML document is read by the registry: its errors carry their lines.
    if is_yaml(call.request):
        text, fmt = await document_body(call.request, call.body_limit)
        result = await call.registry(r.WorkflowValidate(document=text, format=fmt))
    else:
        require_json(call.request, DEFINITION_TYPES)
        definition = await json_body(call.request, Any, call.body_limit, kept=False)
        result = await call.registry(r.WorkflowValidate(definition=definition))
    return json_response(h.ValidationAnswer(valid=result.valid, errors=result.errors))


async def lock(call: Call) -> web.Response:
    wid = call.request.match_info["id"]
    await call.registry(r.WorkflowGet(id=wid))
    body = (
        await json_body(call.request, h.LockBody, call.body_limit)
        if call.request.body_exists
        else h.LockBody()
    )
    return json_response(await call.registry(r.WorkflowLock(id=wid, ttl_seconds=body.ttl_seconds)))


async def unlock(call: Call) -> web.Response:
    await call.registry(r.WorkflowUnlock(id=call.request.match_info["id"]))
    return web.Response(status=204)


def _body_version(value: int | None, name: str) -> int | None:
    """A version number from a body, bounded as in a query: a larger one is no version (422)."""
    if value is not None and not 1 <= value <= MAX_VERSION:
        raise unprocessable(f"{name} must be between 1 and {MAX_VERSION}", name)
    return value


ROUTES = [
    Route(
        method="POST",
        path=BASE,
        handler=create,
        role="editor",
        status=201,
        summary="Create a workflow",
        operation_id="workflow_create",
        conflicts=("409",),
        body="definition",
        response=r.Workflow,
    ),
    Route(
        method="GET",
        path=BASE,
        handler=list_,
        role="viewer",
        summary="List workflows",
        operation_id="workflow_list",
        response=r.WorkflowPage,
        query=(
            ("limit", "integer"),
            ("cursor", "string"),
            ("offset", "integer"),
            ("category", "string"),
            ("tags", "string"),
            ("enabled", "boolean"),
            ("active", "boolean"),
            ("q", "string"),
            ("sort", "string"),
        ),
    ),
    Route(
        method="POST",
        path=f"{BASE}/validate",
        handler=validate,
        role="viewer",
        summary="Validate a definition without storing it",
        operation_id="workflow_validate",
        body="candidate",
        response=h.ValidationAnswer,
    ),
    Route(
        method="POST",
        path=f"{BASE}/batch",
        handler=batch,
        role="editor",
        summary="Up to 100 create/update/upsert/delete operations, all or nothing",
        operation_id="workflow_batch",
        conflicts=("409", "412", "423"),
        body=r.WorkflowBatch,
        response=r.BatchResults,
    ),
    Route(
        method="POST",
        path=f"{BASE}/import",
        handler=import_,
        role="editor",
        status=201,
        summary="Import a workflow document (JSON or YAML)",
        operation_id="workflow_import",
        conflicts=("409",),
        body="document",
        response=r.Workflow,
    ),
    Route(
        method="PUT",
        path=f"{BASE}/by-name/{{name}}",
        handler=apply,
        role="editor",
        summary="Create, or add a version if the content changed",
        operation_id="workflow_apply",
        conflicts=("409", "423"),
        body="definition",
        response=r.Workflow,
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{id}}",
        handler=get,
        role="viewer",
        summary="Get a workflow (current version, or ?version=N)",
        operation_id="workflow_get",
        response=r.Workflow,
        query=(("version", "integer"),),
    ),
    Route(
        method="PUT",
        path=f"{BASE}/{{id}}",
        handler=update,
        role="editor",
        summary="Update: a new immutable version (If-Match for optimistic concurrency)",
        operation_id="workflow_update",
        conflicts=("409", "412", "423"),
        body="document",
        response=r.Workflow,
    ),
    Route(
        method="PATCH",
        path=f"{BASE}/{{id}}",
        handler=patch,
        role="editor",
        summary="Enable, tag, or roll back",
        operation_id="workflow_patch",
        conflicts=("409", "412", "423"),
        body=h.WorkflowPatchBody,
        response=r.Workflow,
    ),
    Route(
        method="DELETE",
        path=f"{BASE}/{{id}}",
        handler=delete,
        role="admin",
        status=204,
        summary="Delete (soft)",
        operation_id="workflow_delete",
        conflicts=("423",),
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{id}}/versions",
        handler=versions,
        role="viewer",
        summary="Version history, newest first (a list response: limit, cursor)",
        operation_id="workflow_versions",
        response=r.VersionPage,
        query=(("limit", "integer"), ("cursor", "string")),
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{id}}/versions/{{n}}",
        handler=version,
        role="viewer",
        summary="The workflow as it was at version n",
        operation_id="workflow_version",
        response=r.Workflow,
    ),
    Route(
        method="POST",
        path=f"{BASE}/{{id}}/clone",
        handler=clone,
        role="editor",
        status=201,
        summary="Copy under a new name",
        operation_id="workflow_clone",
        conflicts=("409",),
        body=h.CloneBody,
        response=r.Workflow,
    ),
    Route(
        method="GET",
        path=f"{BASE}/{{id}}/export",
        handler=export,
        role="viewer",
        summary="Export as JSON or YAML (Accept or ?format=)",
        operation_id="workflow_export",
        response="document",
        query=(("format", "string"), ("version", "integer")),
    ),
    Route(
        method="POST",
        path=f"{BASE}/{{id}}/lock",
        handler=lock,
        role="editor",
        summary="Take or refresh the edit lock",
        operation_id="workflow_lock",
        conflicts=("409",),
        body=h.LockBody,
        body_required=False,
        response=r.LockInfo,
    ),
    Route(
        method="DELETE",
        path=f"{BASE}/{{id}}/lock",
        handler=unlock,
        role="editor",
        status=204,
        summary="Release the edit lock",
        operation_id="workflow_unlock",
        conflicts=("409",),
    ),
]
