"""Tenant actions over HTTP: editors change, viewers read, every bad input a problem+json 4xx
at its path, another tenant finds nothing; workflows and the catalog see the tenant's own."""

from __future__ import annotations

import io
from typing import Any

import pytest

from flowmesh_proto.action_library import builtin_actions
from flowmesh_proto.actions import MAX_SPEC_BYTES
from flowmesh_proto.entries import node_catalog
from tests.action_specs import CONNECTOR, HELPDESK, helpdesk, request_with, workflow_using

from .conftest import Client

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


async def test_put_versions_get_delete_with_roles(client: Client) -> None:
    editor = await client.key("editor")
    viewer = await client.key("viewer")
    status, made, _ = await client("PUT", "/actions/helpdesk.open", json=HELPDESK, token=editor)
    assert status == 201, made
    assert (made["name"], made["version"], made["builtin"]) == ("helpdesk.open", 1, False)
    assert made["spec"]["request"]["path"] == "/tickets"
    changed = helpdesk(description="Opens a ticket.")
    status, second, _ = await client("PUT", "/actions/helpdesk.open", json=changed, token=editor)
    assert status == 200 and second["version"] == 2
    status, same, _ = await client("PUT", "/actions/helpdesk.open", json=changed, token=editor)
    assert status == 200 and same == second

    status, answer, headers = await client(
        "PUT", "/actions/helpdesk.open", json=HELPDESK, token=viewer
    )
    assert status == 403 and answer["code"] == "FORBIDDEN"
    assert headers["Content-Type"].startswith(PROBLEM)
    status, answer, _ = await client("DELETE", "/actions/helpdesk.open", token=viewer)
    assert status == 403

    status, got, _ = await client("GET", "/actions/helpdesk.open", token=viewer)
    assert status == 200 and got == second
    status, old, _ = await client("GET", "/actions/helpdesk.open/versions/1", token=viewer)
    assert status == 200 and old == made
    status, versions, _ = await client("GET", "/actions/helpdesk.open/versions?limit=1")
    assert [v["version"] for v in versions["items"]] == [2] and versions["has_more"]
    status, rest, _ = await client(
        "GET", f"/actions/helpdesk.open/versions?limit=1&cursor={versions['next_cursor']}"
    )
    assert [v["version"] for v in rest["items"]] == [1] and not rest["has_more"]

    status, builtin, _ = await client("GET", "/actions/slack.post_message", token=viewer)
    assert status == 200 and (builtin["builtin"], builtin["version"]) == (True, 1)
    status, answer, _ = await client("DELETE", "/actions/slack.post_message", token=editor)
    assert status == 409 and answer["code"] == "CONFLICT"

    status, _, _ = await client("DELETE", "/actions/helpdesk.open", token=editor)
    assert status == 204
    for path in ("/actions/helpdesk.open", "/actions/helpdesk.open/versions/1"):
        status, answer, _ = await client("GET", path)
        assert status == 404 and answer["code"] == "NOT_FOUND", path
    status, answer, _ = await client("DELETE", "/actions/helpdesk.open")
    assert status == 404


async def test_the_list_merges_builtin_and_own_over_pages(client: Client) -> None:
    own = ["aaa", "helpdesk.open", "zzz"]
    for name in own:
        status, _, _ = await client("PUT", f"/actions/{name}", json=HELPDESK)
        assert status == 201
    names: list[str] = []
    cursor = ""
    for _ in range(10):
        status, page, _ = await client("GET", f"/actions?limit=2&cursor={cursor}")
        assert status == 200 and len(page["items"]) <= 2
        names += [x["name"] for x in page["items"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert names == sorted([*own, *builtin_actions()])


BAD: list[tuple[str, str, Any, int, str]] = [
    ("a reserved name", "slack.mine", HELPDESK, 422, "name"),
    ("a bad name", "Helpdesk", HELPDESK, 422, "name"),
    ("an unknown field", "ok", helpdesk(colour="blue"), 422, "$"),
    ("an unknown request field", "ok", request_with(timeout=5), 422, "request"),
    ("a wrong type", "ok", helpdesk(description=5), 422, "description"),
    (
        "a schema that does not compile",
        "ok",
        helpdesk(input_schema={"type": "object", "required": 5}),
        422,
        "input_schema",
    ),
    (
        "a request reading secrets",
        "ok",
        request_with(headers={"X-Token": "{{ secrets.T }}"}),
        422,
        "request.headers.X-Token",
    ),
    (
        "a request reading trigger",
        "ok",
        request_with(path="/{{ trigger.id }}"),
        422,
        "request.path",
    ),
    ("a path to another host", "ok", request_with(path="//evil.example/x"), 422, "request.path"),
    ("a dot segment", "ok", request_with(path="/../x"), 422, "request.path"),
    (
        "an Authorization header",
        "ok",
        request_with(headers={"Authorization": "Bearer {{ input.title }}"}),
        422,
        "request.headers.Authorization",
    ),
    ("an example off its schema", "ok", helpdesk(example={"title": ""}), 422, "example.title"),
    ("NUL in a description", "ok", helpdesk(description="a\x00b"), 422, "description"),
    (
        "a spec over 64 KiB",
        "ok",
        helpdesk(output_schema={"description": "x" * MAX_SPEC_BYTES}),
        422,
        "$",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "path"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
async def test_each_bad_input_is_a_problem_at_its_path(
    client: Client, name: str, body: Any, status: int, path: str
) -> None:
    answered, answer, headers = await client("PUT", f"/actions/{name}", json=body)
    assert answered == status, answer
    assert headers["Content-Type"].startswith(PROBLEM)
    assert [e["path"] for e in answer["errors"]] == [path], answer
    status, answer, _ = await client("GET", f"/actions/{name}")
    assert status == 404


async def test_bad_bodies_and_paths_are_problems(client: Client) -> None:
    status, answer, headers = await client(
        "PUT", "/actions/ok", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, answer["code"]) == (400, "BAD_REQUEST")
    assert headers["Content-Type"].startswith(PROBLEM)
    status, answer, _ = await client(
        "PUT", "/actions/ok", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    big = io.BytesIO(b'{"description": "' + b"x" * (1024 * 1024 + 1) + b'"}')
    status, answer, _ = await client(
        "PUT", "/actions/ok", data=big, headers={"Content-Type": "application/json"}
    )
    assert (status, answer["code"]) == (413, "PAYLOAD_TOO_LARGE")
    status, _, _ = await client("PUT", "/actions/helpdesk.open", json=HELPDESK)
    assert status == 201
    for version, code in (("x", 422), ("0", 422), ("1234567890", 422), ("2", 404)):
        status, answer, _ = await client("GET", f"/actions/helpdesk.open/versions/{version}")
        assert status == code, (version, answer)
        if code == 422:
            assert [e["path"] for e in answer["errors"]] == ["version"], version
    for query, path in (("limit=0", "limit"), ("limit=x", "limit"), ("cursor=zz", "cursor")):
        status, answer, _ = await client("GET", f"/actions?{query}")
        assert status == 422 and [e["path"] for e in answer["errors"]] == [path], query
    status, answer, _ = await client("GET", "/actions/Not%20A%20Name")
    assert status == 404


async def test_another_tenant_finds_nothing(client: Client, other_client: Client) -> None:
    status, _, _ = await client("PUT", "/actions/private.thing", json=HELPDESK)
    assert status == 201
    for path in ("/actions/private.thing", "/actions/private.thing/versions/1"):
        status, answer, _ = await other_client("GET", path)
        assert status == 404 and answer["code"] == "NOT_FOUND", path
    status, answer, _ = await other_client("DELETE", "/actions/private.thing")
    assert status == 404
    status, listing, _ = await other_client("GET", "/actions?limit=100")
    assert "private.thing" not in {x["name"] for x in listing["items"]}
    status, catalog, _ = await other_client("GET", "/catalog?kind=action&limit=100")
    assert "private.thing" not in {x["name"] for x in catalog["items"]}
    path = f"/api/v1/{client.tenant.id}/actions/private.thing"
    status, answer, _ = await other_client.http.request(
        "GET", path, token=other_client.tenant.admin_key
    )
    assert status == 403 and answer["code"] == "TENANT_MISMATCH"


async def test_a_workflow_using_the_tenant_action(client: Client) -> None:
    status, _, _ = await client("PUT", "/connectors/helpdesk", json=CONNECTOR)
    assert status == 201
    status, _, _ = await client("PUT", "/actions/helpdesk.open", json=HELPDESK)
    assert status == 201
    bad = workflow_using("helpdesk.open", {"title": "Down", "priority": "high"})
    status, answer, _ = await client("POST", "/workflows", json=bad)
    assert status == 422, answer
    assert [e["path"] for e in answer["errors"]] == ["nodes[0].parameters.input.priority"]
    for definition, path in (
        (workflow_using("helpdesk.nope", {"title": "x"}), "nodes[0].parameters.action"),
        (workflow_using("helpdesk.open", {"title": "x"}, version=2), "nodes[0].parameters.version"),
    ):
        status, answer, _ = await client("POST", "/workflows", json=definition)
        assert status == 422 and answer["code"] == "MISSING_VARIABLE", answer
        assert [e["path"] for e in answer["errors"]] == [path]
    good = workflow_using("helpdesk.open", {"title": "{{ trigger.data.title }}"}, version=1)
    status, made, _ = await client("POST", "/workflows", json=good)
    assert status == 201, made


async def test_the_catalog_lists_own_actions_and_pages_across_kinds(client: Client) -> None:
    for name in ("aaa", "zzz"):
        status, _, _ = await client("PUT", f"/actions/{name}", json=HELPDESK)
        assert status == 201
    viewer = await client.key("viewer")
    keys: list[tuple[str, str]] = []
    entries: dict[str, Any] = {}
    cursor = ""
    for _ in range(20):
        status, page, _ = await client("GET", f"/catalog?limit=4&cursor={cursor}", token=viewer)
        assert status == 200 and len(page["items"]) <= 4, page
        keys += [(e["kind"], e["name"]) for e in page["items"]]
        entries |= {e["name"]: e for e in page["items"] if e["kind"] == "action"}
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    actions = sorted(["aaa", "zzz", *builtin_actions()])
    assert keys == [("action", n) for n in actions] + sorted(
        ("node", e.name) for e in node_catalog()
    )
    own = entries["zzz"]
    assert own["category"] == "integration" and own["description"] == HELPDESK["description"]
    schema = own["parameters_schema"]["properties"]["input"]
    assert schema["properties"] == HELPDESK["input_schema"]["properties"]
    assert own["example"]["input"] == HELPDESK["example"]
    status, page, _ = await client("GET", "/catalog?kind=action&category=integration")
    assert [e["name"] for e in page["items"]] == ["aaa", "zzz"] and not page["has_more"]
    status, page, _ = await client("GET", "/catalog?limit=2&cursor=action:yyy")
    assert [e["name"] for e in page["items"]][:1] == ["zzz"]
