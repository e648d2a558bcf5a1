"""GET /catalog over HTTP: a viewer reads every node type and built-in action as a list
response, pages cover them all once, bad query values are 422 at their names; the same for
every tenant (its own actions: test_gateway_actions.py)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_proto.action_library import builtin_actions
from flowmesh_proto.entries import node_catalog
from flowmesh_proto.workflow import Node

from .conftest import Client

pytestmark = pytest.mark.integration

NODE_TYPES = {str(m.__struct_config__.tag) for m in Node.__args__}  # type: ignore[attr-defined]
EVERY = {("node", name) for name in NODE_TYPES} | {("action", name) for name in builtin_actions()}


async def test_a_viewer_reads_every_node_type(client: Client) -> None:
    viewer = await client.key("viewer")
    status, body, headers = await client("GET", "/catalog", token=viewer)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert set(body) == {"items", "next_cursor", "has_more"}
    assert body["has_more"] is False and body["next_cursor"] is None
    assert {(e["kind"], e["name"]) for e in body["items"]} == EVERY
    http = next(e for e in body["items"] if e["name"] == "http")
    assert set(http) == {
        "kind",
        "name",
        "description",
        "category",
        "parameters_schema",
        "output_schema",
        "example",
        "requires",
    }
    assert http["kind"] == "node" and http["category"] == "integration"
    assert http["requires"] == {"role": "editor", "secrets": []}
    # `url`, or `connector` and `path`: none is required by the schema alone.
    assert not http["parameters_schema"].get("required")
    assert {"url", "connector", "path"} <= set(http["parameters_schema"]["properties"])
    assert set(http["output_schema"]["properties"]) == {"status", "headers", "body"}


async def test_pages_cover_every_entry_exactly_once(client: Client) -> None:
    names: list[tuple[str, str]] = []
    cursor = ""
    for _ in range(len(EVERY)):
        status, page, _ = await client("GET", f"/catalog?limit=4&cursor={cursor}")
        assert status == 200 and len(page["items"]) <= 4
        names += [(e["kind"], e["name"]) for e in page["items"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert sorted(names) == names and len(names) == len(set(names)) and set(names) == EVERY
    assert len(names) == len(node_catalog()) + len(builtin_actions())


async def test_filters(client: Client) -> None:
    status, page, _ = await client("GET", "/catalog?kind=node&category=waiting")
    assert status == 200 and [e["name"] for e in page["items"]] == ["delay", "wait_for_event"]
    status, page, _ = await client("GET", "/catalog?kind=action")
    assert status == 200 and {e["name"] for e in page["items"]} == set(builtin_actions())
    status, page, _ = await client("GET", "/catalog?category=ai")
    assert [e["name"] for e in page["items"]] == ["openai.chat_completion"]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("kind=nodes", "kind"),
        ("category=misc", "category"),
        ("cursor=nonsense", "cursor"),
        ("cursor=action:Not%20a%20name", "cursor"),
    ],
)
async def test_bad_query_values_are_422_at_their_names(
    client: Client, query: str, path: str
) -> None:
    status, body, _ = await client("GET", f"/catalog?{query}")
    assert status == 422 and body["code"] == "VALIDATION_FAILED"
    assert [item["path"] for item in body["errors"]] == [path]


async def test_no_key_is_401_and_another_tenant_is_403(
    client: Client, other_client: Client
) -> None:
    status, body, _ = await client.http.request("GET", f"{client.prefix}/catalog")
    assert status == 401 and body["code"] == "UNAUTHENTICATED"
    other: Any = other_client.prefix + "/catalog"
    status, body, _ = await client.http.request("GET", other, token=client.tenant.admin_key)
    assert status == 403 and body["code"] == "TENANT_MISMATCH"
