"""What the API fuzz run (tests/fuzz) found, each pinned by one focused example."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_gateway.openapi import build_document
from flowmesh_gateway.routes import ROUTES
from tests.integration.harness import simple_definition, unique

from .conftest import Client

pytestmark = pytest.mark.integration

DOCUMENT = build_document(ROUTES)


def _documented(method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = DOCUMENT["paths"][path][method.lower()]
    return operation


def _problem(status: int, body: Any, headers: Any, expected: int, code: str) -> None:
    assert status == expected, body
    assert body["code"] == code and body["status"] == expected, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["request_id"] == headers["X-Request-Id"]


async def test_a_version_beyond_int32_in_a_body_is_422_not_500(client: Client) -> None:
    """PATCH current_version and clone's version reached PostgreSQL as int4: a 500."""
    wf = await client.create(unique("fz-version"))
    path = f"/workflows/{wf['id']}"
    for method, suffix, body, field in (
        ("PATCH", "", {"current_version": 2**40}, "current_version"),
        ("PATCH", "", {"current_version": 0}, "current_version"),
        ("POST", "/clone", {"name": unique("fz-clone"), "version": 2**40}, "version"),
        ("POST", "/clone", {"name": unique("fz-clone"), "version": -1}, "version"),
    ):
        status, answer, headers = await client(method, path + suffix, json=body)
        _problem(status, answer, headers, 422, "VALIDATION_FAILED")
        assert answer["errors"][0]["path"] == field
    status, answer, _ = await client("PATCH", path, json={"current_version": 1})
    assert status == 200 and answer["version"] == 1


async def test_validate_judges_any_json_and_the_document_says_so(client: Client) -> None:
    """The document said the body was a Definition; any JSON is judged, answered 200."""
    for candidate in ([], 5, "text", {}, {"name": 1}):
        status, body, _ = await client("POST", "/workflows/validate", json=candidate)
        assert status == 200 and body["valid"] is False and body["errors"], candidate
    documented = _documented("POST", "/api/v1/{tenant}/workflows/validate")
    schema = documented["requestBody"]["content"]["application/json"]["schema"]
    assert not {"$ref", "type", "required", "anyOf", "oneOf"} & set(schema), schema


async def test_an_empty_integer_query_is_not_given_and_documented_so(client: Client) -> None:
    """``?version=`` reads as no version (200), which the document did not allow."""
    wf = await client.create(unique("fz-empty"))
    status, body, _ = await client("GET", f"/workflows/{wf['id']}?version=")
    assert status == 200 and body["version"] == 1
    status, body, _ = await client("GET", "/workflows?limit=&enabled=")
    assert status == 200, body
    for method, path in (
        ("GET", "/api/v1/{tenant}/workflows/{id}"),
        ("GET", "/api/v1/{tenant}/workflows"),
    ):
        for parameter in _documented(method, path)["parameters"]:
            schema = parameter["schema"]
            if parameter["in"] == "query" and schema.get("type") != "string":
                assert {"const": ""} in schema["anyOf"], parameter


async def test_conflict_lock_and_precondition_statuses_are_documented(client: Client) -> None:
    """409, 412 and 423 are answers of these operations; the document listed none of them."""
    name = unique("fz-taken")
    wf = await client.create(name)
    base = "/api/v1/{tenant}/workflows"
    status, body, headers = await client("POST", "/workflows", json=simple_definition(name))
    seen = {("POST", base): status}
    _problem(status, body, headers, 409, "WORKFLOW_NAME_TAKEN")

    path = f"/workflows/{wf['id']}"
    definition = {"name": name, "nodes": [{"id": "only", "type": "noop"}]}
    status, body, headers = await client("PUT", path, json=definition, headers={"If-Match": '"v9"'})
    seen[("PUT", f"{base}/{{id}}")] = status
    _problem(status, body, headers, 412, "PRECONDITION_FAILED")

    editor = await client.key("editor")
    status, _, _ = await client("POST", f"{path}/lock", token=editor)
    assert status == 200
    status, body, headers = await client("PATCH", path, json={"enabled": False})
    seen[("PATCH", f"{base}/{{id}}")] = status
    _problem(status, body, headers, 423, "WORKFLOW_LOCKED")
    status, body, headers = await client("POST", f"{path}/lock")
    seen[("POST", f"{base}/{{id}}/lock")] = status
    _problem(status, body, headers, 409, "LOCK_ACQUISITION_FAILED")

    for (method, documented_path), answered in seen.items():
        assert str(answered) in _documented(method, documented_path)["responses"], (
            method,
            documented_path,
            answered,
        )


async def test_audit_with_a_cursor_it_did_not_issue_is_422(client: Client) -> None:
    for cursor in ("%C3%9C", "AAAA", "WyItaWQiLFtdXQ"):  # not base64; not JSON; ["-id",[]]
        status, body, headers = await client("GET", f"/audit?cursor={cursor}")
        _problem(status, body, headers, 422, "VALIDATION_FAILED")
