"""Versions over HTTP: a version read is a snapshot of its definition; the history is a
list response (``items``, ``next_cursor``, ``has_more``) paged by ``limit`` and ``cursor``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.harness import simple_definition, unique

from .conftest import Client

pytestmark = pytest.mark.integration

ITEM_KEYS = {"version", "created_at", "created_by", "validation_status", "content_hash"}


async def with_versions(client: Client, count: int) -> dict[str, Any]:
    wf = await client.create(unique("http-versions"), description="v1")
    for n in range(2, count + 1):
        changed = simple_definition(wf["name"], description=f"v{n}")
        status, body, _ = await client("PUT", f"/workflows/{wf['id']}", json=changed)
        assert status == 200 and body["version"] == n, body
    return wf


async def test_rename_then_read_version_one(client: Client) -> None:
    old_name = unique("http-before")
    wf = await client.create(
        old_name, tags=["old"], triggers=[{"id": "nightly", "kind": "cron", "cron": "0 2 * * *"}]
    )
    path = f"/workflows/{wf['id']}"
    renamed = {
        **simple_definition(unique("http-after"), description="renamed"),
        "tags": ["new"],
        "triggers": [{"id": "orders", "kind": "event", "event": "order.created"}],
        "nodes": [{"id": "only", "type": "noop"}],
        "edges": [],
        "vars": {},
    }
    status, current, _ = await client("PUT", path, json=renamed)
    assert status == 200 and current["name"] == renamed["name"] and current["version"] == 2
    status, history, _ = await client("GET", f"{path}/versions")
    v1_stored = next(item for item in history["items"] if item["version"] == 1)
    for url in (f"{path}?version=1", f"{path}/versions/1"):
        status, v1, headers = await client("GET", url)
        assert status == 200 and headers["ETag"] == '"v1"', url
        assert v1["name"] == old_name and v1["tags"] == ["old"], url
        assert v1["description"] == wf["description"] and v1["vars"] == wf["vars"], url
        assert [t["id"] for t in v1["triggers"]] == ["nightly"], url
        assert v1["nodes"] == wf["nodes"] and v1["edges"] == wf["edges"], url
        assert v1["version"] == 1 and v1["versions"] == 2, url
        assert v1["id"] == wf["id"] and v1["created_at"] == wf["created_at"], url
        assert v1["updated_at"] == v1_stored["created_at"], url
        assert v1["updated_by"] == v1_stored["created_by"], url
    status, now, _ = await client("GET", path)
    assert now["name"] == renamed["name"] and [n["id"] for n in now["nodes"]] == ["only"]


async def test_versions_list_pages_with_limit_and_cursor(client: Client) -> None:
    wf = await with_versions(client, 3)
    path = f"/workflows/{wf['id']}/versions"
    status, first, _ = await client("GET", f"{path}?limit=2")
    assert status == 200 and set(first) == {"items", "next_cursor", "has_more"}
    assert [v["version"] for v in first["items"]] == [3, 2]
    assert all(set(item) == ITEM_KEYS for item in first["items"])
    assert first["has_more"] is True and isinstance(first["next_cursor"], str)
    cursor = quote(first["next_cursor"])
    status, last, _ = await client("GET", f"{path}?limit=2&cursor={cursor}")
    assert status == 200 and [v["version"] for v in last["items"]] == [1]
    assert (last["has_more"], last["next_cursor"]) == (False, None)
    status, whole, _ = await client("GET", path)
    assert [v["version"] for v in whole["items"]] == [3, 2, 1] and whole["has_more"] is False


async def test_bad_limit_and_cursor_are_422_at_their_path(client: Client) -> None:
    wf = await with_versions(client, 2)
    other = await with_versions(client, 2)
    status, page, _ = await client("GET", f"/workflows/{other['id']}/versions?limit=1")
    assert status == 200 and page["has_more"]
    status, listing, _ = await client("GET", "/workflows?limit=1")
    assert status == 200 and listing["next_cursor"]
    for query, path in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("cursor=zzz", "cursor"),
        (f"cursor={quote(listing['next_cursor'])}", "cursor"),  # the workflow listing's
        (f"cursor={quote(page['next_cursor'])}", "cursor"),  # another workflow's
    ):
        status, body, headers = await client("GET", f"/workflows/{wf['id']}/versions?{query}")
        assert status == 422 and body["code"] == "VALIDATION_FAILED", query
        assert headers["Content-Type"].startswith("application/problem+json"), query
        assert [e["path"] for e in body["errors"]] == [path], query


async def test_missing_version_and_other_tenants_versions_are_404(
    client: Client, other_client: Client
) -> None:
    wf = await with_versions(client, 2)
    path = f"/workflows/{wf['id']}"
    for url in (f"{path}/versions/3", f"{path}?version=3"):
        status, body, _ = await client("GET", url)
        assert status == 404 and body["code"] == "NOT_FOUND", url
        assert "version 3" in body["detail"], url
    for url in (
        f"{path}/versions",
        f"{path}/versions?limit=2",
        f"{path}/versions/1",
        f"{path}?version=1",
    ):
        status, body, _ = await other_client("GET", url)
        assert status == 404 and body["code"] == "WORKFLOW_NOT_FOUND", url
    status, _, _ = await client("DELETE", path)
    assert status == 204
    for url in (f"{path}/versions", f"{path}/versions/1"):
        status, body, _ = await client("GET", url)
        assert status == 404 and body["code"] == "WORKFLOW_NOT_FOUND", url
