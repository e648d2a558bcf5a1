"""Secrets over HTTP: write-only values, admin only, names checked, effects on workflows."""

from __future__ import annotations

import pytest

from tests.integration.harness import unique

from .conftest import Client

pytestmark = pytest.mark.integration


async def test_secret_lifecycle_never_shows_the_value(client: Client) -> None:
    value = "s3cr3t-" + unique("v")
    status, body, _ = await client("PUT", "/secrets/PAYMENTS_TOKEN", json={"value": value})
    assert status == 200 and body["name"] == "PAYMENTS_TOKEN" and value not in str(body)
    status, listing, _ = await client("GET", "/secrets")
    assert [s["name"] for s in listing["items"]] == ["PAYMENTS_TOKEN"] and value not in str(listing)
    definition = {
        "name": unique("uses-secret"),
        "nodes": [
            {
                "id": "call",
                "type": "http",
                "parameters": {
                    "url": "https://payments.example/charge",
                    "headers": {"Authorization": "Bearer {{ secrets.PAYMENTS_TOKEN }}"},
                },
            }
        ],
    }
    status, wf, _ = await client("POST", "/workflows", json=definition)
    assert status == 201
    status, body, _ = await client("DELETE", "/secrets/PAYMENTS_TOKEN")
    assert status == 200 and body["invalidated"] == [{"workflow_id": wf["id"], "version": 1}]
    status, wf_after, _ = await client("GET", f"/workflows/{wf['id']}")
    assert wf_after["validation_status"] == "invalid"
    status, audit, _ = await client("GET", "/audit?limit=100")
    assert value not in str(audit)


async def test_secret_input_errors_and_roles(client: Client) -> None:
    for name, body, expected in [
        ("lower", {"value": "x"}, 422),
        ("OK_NAME", {"value": ""}, 422),
        ("OK_NAME", {"value": "x", "extra": 1}, 422),
        ("OK_NAME", {}, 422),
    ]:
        status, answer, _ = await client("PUT", f"/secrets/{name}", json=body)
        assert status == expected, (name, body, answer)
    status, answer, _ = await client("DELETE", "/secrets/NEVER_SET")
    assert status == 404
    editor = await client.key("editor")
    status, answer, _ = await client("GET", "/secrets", token=editor)
    assert status == 403 and answer["code"] == "FORBIDDEN"
