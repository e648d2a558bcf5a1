"""The OpenAPI 3.1 document, built from the route table, so it cannot drift from the routes.

``python -m flowmesh_gateway.openapi`` writes it to ``services/gateway/openapi.json`` (kept
in the repository; a test fails when the file is stale).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, get_args

import msgspec

from flowmesh_gateway.api import CONSOLE, EVENT_STREAM, PLATFORM, SIGNATURE, Route
from flowmesh_proto.errors import Problem
from flowmesh_proto.runs import RunEvent
from flowmesh_proto.workflow import Definition

ERRORS = {
    "400": "Malformed request",
    "401": "Missing or invalid credentials",
    "403": "Wrong tenant or role too low",
    "404": "Not found",
    "413": "Body too large",
    "415": "Unsupported media type",
    "422": "Invalid body or definition (every problem listed)",
    "429": "Rate limited (Retry-After)",
    "503": "A service behind the gateway is unavailable",
}
CONFLICTS = {
    "409": "Conflict with the current state (see `code`): the name is taken, the edit lock "
    "is held by another or not held, the workflow is disabled or invalid, the run has "
    "finished or has not, the tenant has as many connectors (actions, versions of an action) "
    "as it may, the action is built in",
    "412": "Precondition failed: If-Match (or if_version) names a stale version",
    "423": "The workflow is locked for editing by another principal",
}
#: ``POST /workflows/validate`` judges whatever JSON it is given, answering 200 either way.
CANDIDATE = {
    "description": "A candidate definition (see Definition): any JSON value is judged, "
    "and its problems are answered in `errors`",
}
#: A workflow document as YAML text (also application/x-yaml, text/yaml, text/x-yaml).
YAML_DOCUMENT = {
    "type": "string",
    "description": "A workflow document as YAML 1.2 text, read by the registry: each problem "
    "in `errors` carries the `line` and `column` where its value is written",
}
#: ``POST /workflows/validate`` judges any YAML document too, answering 200 either way.
YAML_CANDIDATE = {
    "description": "A candidate definition as YAML 1.2 text (see Definition): any document is "
    "judged, and each problem in `errors` carries the `line` and `column` where it is written "
    "(text that is not YAML is one INVALID_EXPORT_FORMAT problem at `$`)",
}
#: A webhook's body: any JSON (it becomes the run's input and ``trigger.data``).
ANY_JSON = {"description": "Any JSON value: the run's input and `trigger.data`"}
#: The headers of a signed request (the signature itself is the security scheme).
SIGNED_HEADERS = [
    {
        "name": "Flowmesh-Timestamp",
        "in": "header",
        "required": True,
        "description": "When the request was signed (unix seconds); within the gateway's "
        "tolerance (5 minutes) of now",
        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
    },
]
WEBHOOK_SIGNATURE = {
    "type": "apiKey",
    "in": "header",
    "name": "Flowmesh-Signature",
    "description": "v1=<hex HMAC-SHA256 of '<Flowmesh-Timestamp>.<raw body>' under the "
    "webhook's secret>; several v1= values may be given, comma-separated",
}
CONSOLE_SESSION = {
    "type": "apiKey",
    "in": "cookie",
    "name": "fm_session",
    "description": "A console session (POST /console/session); a change made with it needs "
    "the X-CSRF-Token header",
}
_PARAM = re.compile(r"{(\w+)}")
#: A route's tag: the first segment of its path after the API's base (``connectors``,
#: ``workflows``, ``admin``, ``console`` ...), so a generated client groups by resource.
_TAG = re.compile(r"^(?:/api/v1(?:/\{tenant\})?)?/(?P<tag>[^/{]+)")


def _tag(path: str) -> str:
    match = _TAG.match(path)
    return match.group("tag") if match else "other"


RUN_EVENTS = get_args(RunEvent)


def _schemas(routes: list[Route]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    types: set[Any] = {Problem, Definition}
    if any(route.response == EVENT_STREAM for route in routes):
        types.update(RUN_EVENTS)
    for route in routes:
        for kind in (route.body, route.response, *(kind for _, kind, _ in route.also)):
            if kind is not None and not isinstance(kind, str):
                types.add(kind)
    ordered = sorted(types, key=lambda t: t.__name__)
    refs, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    return dict(zip(ordered, refs, strict=True)), components


def _body(route: Route, refs: dict[Any, dict[str, Any]]) -> dict[str, Any] | None:
    if route.body is None:
        return None
    if route.body == "document":
        return {
            "required": True,
            "content": {
                "application/json": {"schema": refs[Definition]},
                "application/yaml": {"schema": YAML_DOCUMENT},
            },
        }
    if route.body == "candidate":
        return {
            "required": True,
            "content": {
                "application/json": {"schema": CANDIDATE},
                "application/yaml": {"schema": YAML_CANDIDATE},
            },
        }
    if route.body == "any":
        schema = ANY_JSON
    else:
        schema = refs[Definition] if route.body == "definition" else refs[route.body]
    content: dict[str, Any] = {"schema": schema}
    if route.example is not None:
        content["example"] = route.example
    return {"required": route.body_required, "content": {"application/json": content}}


def _sse_event(refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """One Server-Sent Event (OpenAPI 3.1: the schema of a text/event-stream is an event's)."""
    return {
        "type": "object",
        "description": "One stored run event: `id` its stream sequence (what `Last-Event-ID` "
        "resumes after), `event` its kind, `data` its JSON. A `steps` batch is one event. "
        "Comments (`: keep-alive`) come between events on a quiet stream.",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [refs[kind] for kind in RUN_EVENTS]},
            },
        },
    }


def _responses(route: Route, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": route.summary}
    if route.response == EVENT_STREAM:
        ok["content"] = {"text/event-stream": {"schema": _sse_event(refs)}}
    elif route.response == "document":
        ok["content"] = {
            "application/json": {"schema": refs[Definition]},
            "application/yaml": {"schema": {"type": "string"}},
        }
    elif route.response is not None:
        ok["content"] = {"application/json": {"schema": refs[route.response]}}
    problem = {"application/problem+json": {"schema": refs[Problem]}}
    responses = {str(route.status): ok}
    for code, kind, text in route.also:
        responses[str(code)] = {"description": text}
        if kind is not None:
            responses[str(code)]["content"] = {"application/json": {"schema": refs[kind]}}
    errors = {**ERRORS, **{status: CONFLICTS[status] for status in route.conflicts}}
    for status, text in sorted(errors.items()):
        responses[status] = {"description": text, "content": problem}
    return responses


def _query_schema(kind: str) -> dict[str, Any]:
    """An empty integer or boolean (``?limit=``) reads as not given (query_int, query_bool)."""
    if kind in ("integer", "boolean"):
        return {"anyOf": [{"type": kind}, {"const": ""}]}
    return {"type": kind}


def _operation(route: Route, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": _query_schema(kind)}
        for name, kind in route.query
    ]
    if route.role == SIGNATURE:
        parameters += SIGNED_HEADERS
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "tags": [_tag(route.path)],
        "summary": route.summary,
        "description": _needs(route.role),
        "parameters": parameters,
        "responses": _responses(route, refs),
        "security": _security(route),
    }
    body = _body(route, refs)
    if body is not None:
        operation["requestBody"] = body
    return operation


def _needs(role: str) -> str:
    if role == PLATFORM:
        return "Needs the platform admin token."
    if role == SIGNATURE:
        return (
            "Needs a valid signature, no bearer token: a missing, wrong, expired or replayed "
            "signature, and an unknown workflow or trigger, all answer 401 INVALID_SIGNATURE."
        )
    if role == CONSOLE:
        return (
            "The console's session: signing in takes an API key in the body (a bad key is "
            "401, audited, and counts against the address's budget); the others need the "
            "fm_session cookie, and a change its X-CSRF-Token."
        )
    return (
        f"Needs the {role} role. The console's fm_session cookie stands for the key it was "
        "signed in with (a change then needs X-CSRF-Token)."
    )


def _security(route: Route) -> list[dict[str, list[str]]]:
    if route.role == PLATFORM:
        return [{"adminToken": []}]
    if route.role == SIGNATURE:
        return [{"webhookSignature": []}]
    if route.role == CONSOLE:
        return [] if route.method == "POST" else [{"consoleSession": []}]
    return [{"apiKey": []}, {"jwt": []}, {"consoleSession": []}]


def build_document(routes: list[Route]) -> dict[str, Any]:
    refs, components = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    for path, summary in (
        ("/healthz", "Liveness"),
        ("/readyz", "Readiness: 503 while a dependency is down"),
        ("/metrics", "Prometheus metrics"),
        ("/openapi.json", "This document"),
    ):
        paths[path] = {
            "get": {
                "operationId": path.strip("/").replace(".", "_"),
                "summary": summary,
                "security": [],
                "responses": {"200": {"description": summary}},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flowmesh API",
            "version": "1.0.0",
            "description": "Multi-tenant workflow platform. Errors are RFC 9457 problem+json.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "fm_... API key"},
                "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "adminToken": {"type": "http", "scheme": "bearer"},
                "webhookSignature": WEBHOOK_SIGNATURE,
                "consoleSession": CONSOLE_SESSION,
            },
        },
    }


def committed_path() -> Path:
    return Path(__file__).resolve().parents[2] / "openapi.json"


def render(routes: list[Route]) -> str:
    return json.dumps(build_document(routes), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - a command
    from flowmesh_gateway.routes import ROUTES

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else committed_path()
    target.write_text(render(ROUTES))
    print(f"wrote {target}")
