"""Every workflow endpoint over real HTTP, through the real registry."""

from __future__ import annotations

import msgspec
import pytest
import yaml

from tests.integration.harness import simple_definition, unique

from .conftest import Client

pytestmark = pytest.mark.integration


async def test_create_get_and_etag(client: Client) -> None:
    name = unique("http-create")
    status, body, headers = await client("POST", "/workflows", json=simple_definition(name))
    assert status == 201
    assert headers["Location"] == f"{client.prefix}/workflows/{body['id']}"
    assert headers["ETag"] == '"v1"'
    assert headers["Content-Type"].startswith("application/json")
    assert body["name"] == name and body["tenant_id"] == client.tenant.id
    status, got, headers = await client("GET", f"/workflows/{body['id']}")
    assert status == 200 and got == body and headers["ETag"] == '"v1"'
    assert headers["X-Request-Id"]


async def test_put_if_match_and_versions(client: Client) -> None:
    wf = await client.create(unique("http-put"))
    path = f"/workflows/{wf['id']}"
    changed = simple_definition(wf["name"], description="two")
    status, body, headers = await client("PUT", path, json=changed, headers={"If-Match": '"v1"'})
    assert status == 200 and body["version"] == 2 and headers["ETag"] == '"v2"'
    again = simple_definition(wf["name"], description="three")
    status, body, _ = await client("PUT", path, json=again, headers={"If-Match": '"v1"'})
    assert status == 412 and body["code"] == "PRECONDITION_FAILED"
    status, body, _ = await client("PUT", path, json=again, headers={"If-Match": "garbage"})
    assert status == 412
    status, history, _ = await client("GET", f"{path}/versions")
    assert status == 200 and set(history) == {"items", "next_cursor", "has_more"}
    assert [v["version"] for v in history["items"]] == [2, 1]
    assert (history["has_more"], history["next_cursor"]) == (False, None)
    assert set(history["items"][0]) == {
        "version",
        "created_at",
        "created_by",
        "validation_status",
        "content_hash",
    }
    status, v1, _ = await client("GET", f"{path}/versions/1")
    assert status == 200 and v1["description"] == "Charge, then decide."
    status, old, _ = await client("GET", f"{path}?version=1")
    assert old == v1
    status, body, _ = await client("GET", f"{path}/versions/9")
    assert status == 404 and body["code"] == "NOT_FOUND"


async def test_patch_rollback_delete(client: Client) -> None:
    wf = await client.create(unique("http-patch"))
    path = f"/workflows/{wf['id']}"
    status, body, _ = await client("PATCH", path, json={"enabled": False, "tags": ["x"]})
    assert status == 200 and body["enabled"] is False and body["tags"] == ["x"]
    status, body, _ = await client("PATCH", path, json={"colour": "red"})
    assert status == 422 and body["code"] == "VALIDATION_FAILED" and "colour" in body["detail"]
    status, body, _ = await client("DELETE", path)
    assert status == 204 and body == b""
    status, body, _ = await client("GET", path)
    assert status == 404 and body["code"] == "WORKFLOW_NOT_FOUND"


async def test_list_filters_and_pages(client: Client) -> None:
    tag = unique("t")
    names = sorted(unique(f"http-list-{i}") for i in range(5))
    for i, name in enumerate(names):
        await client.create(name, tags=[tag, "odd" if i % 2 else "even"])
    seen, cursor = [], None
    while True:
        query = f"/workflows?tags={tag}&sort=name&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await client("GET", query)
        assert status == 200
        seen += [item["name"] for item in page["items"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == names
    for query in (f"tags={tag},even", f"tags={tag}&tags=even"):
        status, page, _ = await client("GET", f"/workflows?{query}&sort=name")
        assert [i["name"] for i in page["items"]] == names[0::2]
    status, page, _ = await client("GET", f"/workflows?tags={tag}&active=false")
    assert page["items"] == []
    for bad in (
        "limit=0",
        "limit=abc",
        "limit=%2B5",
        "limit=1_0",
        "limit=%205",
        "sort=colour",
        "enabled=maybe",
        "cursor=zzz",
    ):
        status, body, _ = await client("GET", f"/workflows?{bad}")
        assert status == 422 and body["code"] == "VALIDATION_FAILED", bad


async def test_apply_by_name(client: Client) -> None:
    name = unique("http-apply")
    status, body, _ = await client(
        "PUT", f"/workflows/by-name/{name}", json=simple_definition(name)
    )
    assert status == 201 and body["version"] == 1
    status, body, _ = await client(
        "PUT", f"/workflows/by-name/{name}", json=simple_definition(name)
    )
    assert status == 200 and body["version"] == 1
    changed = simple_definition(name, description="changed")
    status, body, _ = await client("PUT", f"/workflows/by-name/{name}", json=changed)
    assert status == 200 and body["version"] == 2


async def test_clone_export_import(client: Client) -> None:
    wf = await client.create(unique("http-export"))
    path = f"/workflows/{wf['id']}"
    status, copy, headers = await client("POST", f"{path}/clone", json={"name": unique("copy")})
    assert status == 201 and copy["nodes"] == wf["nodes"] and "Location" in headers
    status, text, headers = await client(
        "GET", f"{path}/export", headers={"Accept": "application/yaml"}
    )
    assert status == 200 and headers["Content-Type"].startswith("application/yaml")
    document = yaml.safe_load(text)
    assert document["name"] == wf["name"]
    status, data, _ = await client("GET", f"{path}/export")
    assert status == 200 and data["nodes"] == wf["nodes"]
    document["name"] = unique("imported")
    status, imported, _ = await client(
        "POST",
        "/workflows/import",
        data=yaml.safe_dump(document),
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 201 and imported["name"] == document["name"]
    status, body, _ = await client(
        "POST", "/workflows/import", data="name: [", headers={"Content-Type": "application/yaml"}
    )
    assert status == 400 and body["code"] == "INVALID_EXPORT_FORMAT"
    bad = msgspec.json.encode({"name": unique("bad"), "nodes": [{"id": "x", "type": "nope"}]})
    status, body, _ = await client(
        "POST", "/workflows/import", data=bad, headers={"Content-Type": "application/json"}
    )
    assert status == 422 and body["code"] == "IMPORT_VALIDATION_FAILED"
    assert body["errors"][0]["path"] == "nodes[0].type"


async def test_validate_is_a_question(client: Client) -> None:
    status, body, _ = await client("POST", "/workflows/validate", json=simple_definition("v"))
    assert status == 200 and body == {"valid": True, "errors": []}
    broken = {"name": "v", "nodes": [{"id": "a", "type": "noop"}, {"id": "a", "type": "noop"}]}
    status, body, _ = await client("POST", "/workflows/validate", json=broken)
    assert status == 200 and body["valid"] is False
    assert {"path", "code", "message"} == set(body["errors"][0])


async def test_create_refuses_invalid_with_every_problem(client: Client) -> None:
    broken = {
        "name": unique("broken"),
        "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "teleport"}],
        "edges": [{"from": "a", "to": "ghost"}],
    }
    status, body, headers = await client("POST", "/workflows", json=broken)
    assert status == 422 and headers["Content-Type"].startswith("application/problem+json")
    paths = [e["path"] for e in body["errors"]]
    assert paths == sorted(paths) and len(paths) >= 2
    assert body["code"] == body["errors"][0]["code"]
    assert body["code_num"] in (4220, 4221)
    assert body["request_id"] and body["type"] and body["title"]


async def test_locks_over_http(client: Client) -> None:
    wf = await client.create(unique("http-lock"))
    path = f"/workflows/{wf['id']}"
    status, lock, _ = await client("POST", f"{path}/lock", json={"ttl_seconds": 60})
    assert status == 200 and lock["locked_by"].startswith(f"key:{client.tenant.id}:")
    editor = await client.key("editor")
    status, body, _ = await client("PATCH", path, json={"enabled": False}, token=editor)
    assert status == 423 and body["code"] == "WORKFLOW_LOCKED" and body["code_num"] == 4231
    status, body, _ = await client("POST", f"{path}/lock", token=editor)
    assert status == 409 and body["code"] == "LOCK_ACQUISITION_FAILED"
    status, body, _ = await client("DELETE", f"{path}/lock", token=editor)
    assert status == 409 and body["code"] == "LOCK_NOT_OWNED"
    status, _, _ = await client("DELETE", f"{path}/lock")
    assert status == 204
    status, body, _ = await client("PATCH", path, json={"enabled": False}, token=editor)
    assert status == 200


async def test_batch_over_http(client: Client) -> None:
    wf = await client.create(unique("http-batch"))
    body = {
        "operations": [
            {"op": "create", "definition": simple_definition(unique("b1"))},
            {"op": "upsert", "definition": simple_definition(wf["name"], description="new")},
        ]
    }
    status, done, _ = await client("POST", "/workflows/batch", json=body)
    assert status == 200 and [x["op"] for x in done["results"]] == ["create", "upsert"]
    assert done["results"][1]["version"] == 2
    editor = await client.key("editor")
    deleting = {"operations": [{"op": "delete", "id": wf["id"]}]}
    status, answer, _ = await client("POST", "/workflows/batch", json=deleting, token=editor)
    assert status == 403 and answer["code"] == "FORBIDDEN"
    status, answer, _ = await client(
        "POST", "/workflows/batch", json={"operations": [{"op": "explode"}]}
    )
    assert status == 422 and answer["code"] == "VALIDATION_FAILED"
    status, answer, _ = await client("POST", "/workflows/batch", json=deleting)
    assert status == 200
