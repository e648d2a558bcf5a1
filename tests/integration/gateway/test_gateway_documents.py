"""Workflow documents as text (YAML, or JSON to import) whose problems carry their line."""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pytest
import yaml

from tests.integration.harness import simple_definition, unique

from .conftest import Client

pytestmark = pytest.mark.integration

YAML = {"Content-Type": "application/yaml"}

BROKEN = """\
# Two problems: a URL that is not http(s), an edge to a node that does not exist.
name: {name}
nodes:
  - id: charge
    type: http
    parameters:
      method: POST
      url: ftp://payments.example/charge
  - id: ship
    type: noop
edges:
  - from: charge
    to: ghost
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def by_path(errors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {error["path"]: error for error in errors}


async def test_validate_yaml_answers_with_lines(client: Client) -> None:
    good = yaml.safe_dump(simple_definition("v"))
    for content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
        status, body, _ = await client(
            "POST", "/workflows/validate", data=good, headers={"Content-Type": content_type}
        )
        assert status == 200 and body == {"valid": True, "errors": []}
    text = BROKEN.format(name="v")
    status, body, _ = await client("POST", "/workflows/validate", data=text, headers=YAML)
    assert status == 200 and body["valid"] is False
    errors = by_path(body["errors"])
    assert errors["nodes[0].parameters.url"]["line"] == line_of(text, "ftp://")
    assert errors["nodes[0].parameters.url"]["column"] == 12
    assert errors["edges[0].to"]["line"] == line_of(text, "ghost")
    assert all(set(e) == {"path", "code", "message", "line", "column"} for e in body["errors"])


async def test_validate_yaml_syntax_error_is_an_answer(client: Client) -> None:
    text = "name: v\nnodes:\n  - id: a\n    type: [noop\n"
    status, body, _ = await client("POST", "/workflows/validate", data=text, headers=YAML)
    assert status == 200 and body["valid"] is False
    [error] = body["errors"]
    assert error["path"] == "$" and error["code"] == "INVALID_EXPORT_FORMAT"
    assert (error["line"], error["column"]) == (5, 1)


async def test_validate_json_is_unchanged(client: Client) -> None:
    broken = {"name": "v", "nodes": [{"id": "a", "type": "teleport"}]}
    status, body, _ = await client("POST", "/workflows/validate", json=broken)
    assert status == 200 and body["valid"] is False
    assert all(set(e) == {"path", "code", "message"} for e in body["errors"])


async def test_import_problems_carry_lines(client: Client) -> None:
    text = BROKEN.format(name=unique("imported"))
    status, body, _ = await client("POST", "/workflows/import", data=text, headers=YAML)
    assert status == 422 and body["code"] == "IMPORT_VALIDATION_FAILED"
    errors = by_path(body["errors"])
    assert errors["nodes[0].parameters.url"]["line"] == line_of(text, "ftp://")
    assert errors["edges[0].to"]["line"] == line_of(text, "ghost")
    document = {"name": unique("imported"), "nodes": [{"id": "x"}, {"id": "y", "type": "nope"}]}
    data = msgspec.json.format(msgspec.json.encode(document), indent=2)
    status, body, _ = await client(
        "POST", "/workflows/import", data=data, headers={"Content-Type": "application/json"}
    )
    assert status == 422 and body["code"] == "IMPORT_VALIDATION_FAILED"
    errors = by_path(body["errors"])
    lines = data.decode().splitlines()
    missing = errors["nodes[0].type"]["line"]  # missing: where the node starts, its brace
    assert lines[missing - 1].strip() == "{" and '"x"' in lines[missing]
    assert '"nope"' in lines[errors["nodes[1].type"]["line"] - 1]


@pytest.mark.parametrize(
    ("data", "content_type", "line", "column"),
    [
        ("name: x\nnodes: [\n", "application/yaml", 3, 1),
        ('{\n  "name": "x",\n  "nodes": oops\n}', "application/json", 3, 12),
    ],
)
async def test_import_syntax_error_says_where(
    client: Client, data: str, content_type: str, line: int, column: int
) -> None:
    status, body, _ = await client(
        "POST", "/workflows/import", data=data, headers={"Content-Type": content_type}
    )
    assert status == 400 and body["code"] == "INVALID_EXPORT_FORMAT"
    [error] = body["errors"]
    assert error["path"] == "$" and error["code"] == "INVALID_EXPORT_FORMAT"
    assert (error["line"], error["column"]) == (line, column)


async def test_put_yaml_makes_a_version(client: Client) -> None:
    wf = await client.create(unique("yaml-put"))
    path = f"/workflows/{wf['id']}"
    text = yaml.safe_dump(simple_definition(wf["name"], description="from YAML"))
    status, body, headers = await client(
        "PUT", path, data=text, headers={**YAML, "If-Match": '"v1"'}
    )
    assert status == 200 and body["version"] == 2 and headers["ETag"] == '"v2"'
    assert body["description"] == "from YAML"
    status, body, _ = await client("PUT", path, data=text, headers={**YAML, "If-Match": '"v1"'})
    assert status == 412 and body["code"] == "PRECONDITION_FAILED"
    broken = BROKEN.format(name=wf["name"])
    status, body, _ = await client("PUT", path, data=broken, headers=YAML)
    assert status == 422 and body["code"] == body["errors"][0]["code"]
    errors = by_path(body["errors"])
    assert errors["nodes[0].parameters.url"]["line"] == line_of(broken, "ftp://")
    assert errors["edges[0].to"]["line"] == line_of(broken, "ghost")
    status, body, _ = await client("PUT", path, data="name: [", headers=YAML)
    assert status == 400 and body["errors"][0]["line"] == 1
    status, got, _ = await client("GET", path)
    assert got["version"] == 2
    status, body, _ = await client("PUT", f"/workflows/{unique('x')}", data=text, headers=YAML)
    assert status == 404


async def test_document_bodies_refused_cleanly(client: Client) -> None:
    big = b"name: '" + b"x" * (1024 * 1024 + 10) + b"'\n"
    over_definition = b"name: '" + b"x" * (300 * 1024) + b"'\n"
    wf = await client.create(unique("yaml-limits"))
    put = f"/workflows/{wf['id']}"
    cases = [
        ("POST", "/workflows/validate", big, "application/yaml", 413, "PAYLOAD_TOO_LARGE"),
        ("PUT", put, big, "application/yaml", 413, "PAYLOAD_TOO_LARGE"),
        ("PUT", put, over_definition, "application/yaml", 413, "PAYLOAD_TOO_LARGE"),
        ("POST", "/workflows/validate", b"name: \xff\n", "text/yaml", 400, "BAD_REQUEST"),
        ("PUT", put, b"name: \xff\n", "application/yaml", 400, "BAD_REQUEST"),
        ("POST", "/workflows/validate", b"name: x", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("PUT", put, b"name: x", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for method, path, data, content_type, expected, code in cases:
        status, body, headers = await client(
            method, path, data=io.BytesIO(data), headers={"Content-Type": content_type}
        )
        assert status == expected, (method, content_type, body)
        assert body["code"] == code and body["status"] == status
        assert headers["Content-Type"].startswith("application/problem+json")
    status, body, _ = await client(
        "POST", "/workflows/validate", data=io.BytesIO(over_definition), headers=YAML
    )
    assert status == 200 and body["valid"] is False
    assert body["errors"][0]["code"] == "PAYLOAD_TOO_LARGE"


async def test_roles_for_yaml_bodies(client: Client) -> None:
    viewer = await client.key("viewer")
    text = yaml.safe_dump(simple_definition("v"))
    status, body, _ = await client(
        "POST", "/workflows/validate", data=text, headers=YAML, token=viewer
    )
    assert status == 200 and body["valid"] is True
    wf = await client.create(unique("yaml-roles"))
    status, body, _ = await client(
        "PUT", f"/workflows/{wf['id']}", data=text, headers=YAML, token=viewer
    )
    assert status == 403 and body["code"] == "FORBIDDEN"
    status, body, _ = await client(
        "POST", "/workflows/import", data=text, headers=YAML, token=viewer
    )
    assert status == 403
