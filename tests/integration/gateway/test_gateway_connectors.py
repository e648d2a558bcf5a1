"""Connectors over HTTP: admin changes, viewer reads, every bad field a 422 at its path, and
no answer ever holds a secret's value."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from .conftest import Client

pytestmark = pytest.mark.integration

SLACK = {
    "base_url": "https://slack.com/api",
    "headers": {"Accept": "application/json"},
    "auth": {"kind": "bearer", "secret": "SLACK_TOKEN"},
}


async def test_put_get_list_delete_with_roles(client: Client) -> None:
    status, made, _ = await client("PUT", "/connectors/slack", json=SLACK)
    assert status == 201, made
    assert made["name"] == "slack" and made["version"] == 1 and made["hosts"] == ["slack.com"]
    assert made["auth"] == {"kind": "bearer", "secret": "SLACK_TOKEN"}
    assert made["missing_secrets"] == ["SLACK_TOKEN"]
    status, replaced, _ = await client("PUT", "/connectors/slack", json=SLACK)
    assert status == 200 and replaced["version"] == 2

    viewer = await client.key("viewer")
    status, got, _ = await client("GET", "/connectors/slack", token=viewer)
    assert status == 200 and got == replaced
    status, listing, _ = await client("GET", "/connectors?limit=1", token=viewer)
    assert status == 200 and [x["name"] for x in listing["items"]] == ["slack"]
    assert listing["has_more"] is False and listing["next_cursor"] is None

    editor = await client.key("editor")
    for method, body in (("PUT", SLACK), ("DELETE", None)):
        status, answer, _ = await client(method, "/connectors/slack", json=body, token=editor)
        assert status == 403 and answer["code"] == "FORBIDDEN", method
    status, answer, _ = await client("PUT", "/connectors/slack", json=SLACK, token=viewer)
    assert status == 403 and answer["code"] == "FORBIDDEN"

    status, _, _ = await client("DELETE", "/connectors/slack")
    assert status == 204
    status, answer, _ = await client("DELETE", "/connectors/slack")
    assert status == 404 and answer["code"] == "NOT_FOUND"
    status, answer, _ = await client("GET", "/connectors/slack")
    assert status == 404 and answer["code"] == "NOT_FOUND"


async def test_another_tenant_is_refused_or_finds_nothing(
    client: Client, other_client: Client
) -> None:
    status, _, _ = await client("PUT", "/connectors/private", json=SLACK)
    assert status == 201
    path = f"/api/v1/{client.tenant.id}/connectors/private"
    for method in ("GET", "PUT", "DELETE"):
        status, answer, _ = await other_client.http.request(
            method, path, token=other_client.tenant.admin_key, json=SLACK
        )
        assert status == 403 and answer["code"] == "TENANT_MISMATCH", method
    status, answer, _ = await other_client("GET", "/connectors/private")
    assert status == 404 and answer["code"] == "NOT_FOUND"
    status, listing, _ = await other_client("GET", "/connectors")
    assert status == 200 and listing["items"] == []


def _with(**fields: Any) -> dict[str, Any]:
    return {**SLACK, **fields}


BAD: list[tuple[str, str, Any, str]] = [
    ("name pattern", "Slack", SLACK, "name"),
    ("credentials in base_url", "ok", _with(base_url="https://u:p@slack.com/api"), "base_url"),
    ("a host not in hosts", "ok", _with(hosts=["example.com"]), "base_url"),
    ("a bad host", "ok", _with(hosts=["slack.com", "not a host"]), "hosts[1]"),
    (
        "a lowercase secret name",
        "ok",
        _with(auth={"kind": "bearer", "secret": "slack_token"}),
        "auth.secret",
    ),
    (
        "an Authorization default header",
        "ok",
        _with(headers={"Authorization": "Bearer xoxb-1"}),
        "headers.Authorization",
    ),
    ("an unknown auth kind", "ok", _with(auth={"kind": "magic"}), "auth.kind"),
    ("an extra field", "ok", _with(extra=True), "$"),
    ("an extra auth field", "ok", _with(auth={"kind": "none", "token": "x"}), "auth"),
    ("NUL in a header value", "ok", _with(headers={"X-Team": "a\x00b"}), 'headers["X-Team"]'),
    (
        "NUL in a username",
        "ok",
        _with(auth={"kind": "basic", "username": "a\x00", "password_secret": "P"}),
        "auth.username",
    ),
    ("an oversized base_url", "ok", _with(base_url="https://slack.com/" + "a" * 3000), "base_url"),
    (
        "too many headers",
        "ok",
        _with(headers={f"X-H{i}": "v" for i in range(40)}),
        "headers",
    ),
    ("oversized spec", "ok", _with(headers={f"X-H{i}": "v" * 4000 for i in range(20)}), "$"),
    ("no auth", "ok", {"base_url": "https://slack.com/api"}, "$"),
]


@pytest.mark.parametrize(("name", "body", "path"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_each_bad_input_is_a_422_at_its_path(
    client: Client, name: str, body: Any, path: str
) -> None:
    status, answer, _ = await client("PUT", f"/connectors/{name}", json=body)
    assert status == 422 and answer["code"] == "VALIDATION_FAILED", answer
    assert path in [e["path"] for e in answer["errors"]], answer
    status, listing, _ = await client("GET", "/connectors")
    assert listing["items"] == []


async def test_no_answer_holds_a_secret_value(client: Client) -> None:
    value = "xoxb-" + secrets.token_hex(16)
    status, _, _ = await client("PUT", "/secrets/SLACK_TOKEN", json={"value": value})
    assert status == 200
    status, made, _ = await client("PUT", "/connectors/slack", json=SLACK)
    assert status == 201 and made["missing_secrets"] == []
    answers = [made]
    for path in ("/connectors/slack", "/connectors", "/audit?limit=100"):
        status, body, _ = await client("GET", path)
        assert status == 200
        answers.append(body)
    assert value not in repr(answers)


async def test_each_auth_kind_round_trips(client: Client) -> None:
    kinds = [
        {"kind": "none"},
        {"kind": "basic", "username": "bot", "password_secret": "BOT_PASSWORD"},
        {"kind": "header", "name": "X-Api-Key", "secret": "API_KEY"},
        {"kind": "query", "name": "api_key", "secret": "API_KEY"},
        {
            "kind": "oauth2_client_credentials",
            "token_url": "https://login.example.com/oauth2/token",
            "client_id": "flowmesh",
            "client_secret": "CLIENT_SECRET",
            "scopes": ["chat:write"],
            "audience": "https://api.example.com",
        },
    ]
    for i, auth in enumerate(kinds):
        body = {
            "base_url": "https://api.example.com/v2",
            "hosts": ["api.example.com", "login.example.com"],
            "auth": auth,
        }
        status, made, _ = await client("PUT", f"/connectors/k{i}", json=body)
        assert status == 201 and made["auth"] == auth, made


def _connected(name: str, connector: str, path: str) -> dict[str, Any]:
    node = {"id": "call", "type": "http", "parameters": {"connector": connector, "path": path}}
    return {"name": name, "nodes": [node], "edges": []}


async def test_an_http_node_names_a_connector_of_its_tenant(
    client: Client, other_client: Client
) -> None:
    at = "nodes[0].parameters.connector"
    status, answer, _ = await client("POST", "/workflows", json=_connected("c1", "nowhere", "/x"))
    assert status == 422 and answer["code"] == "MISSING_VARIABLE", answer
    assert [(e["path"], e["code"]) for e in answer["errors"]] == [(at, "MISSING_VARIABLE")]
    status, answer, _ = await client(
        "POST", "/workflows/validate", json=_connected("c1", "nowhere", "/x")
    )
    assert status == 200 and answer["valid"] is False
    assert [(e["path"], e["code"]) for e in answer["errors"]] == [(at, "MISSING_VARIABLE")]

    status, _, _ = await other_client("PUT", "/connectors/theirs", json=SLACK)
    assert status == 201
    status, answer, _ = await client("POST", "/workflows", json=_connected("c2", "theirs", "/x"))
    assert status == 422 and answer["errors"][0]["path"] == at  # another tenant's: unknown

    status, _, _ = await client("PUT", "/connectors/mine", json=SLACK)
    assert status == 201
    status, made, _ = await client("POST", "/workflows", json=_connected("c3", "mine", "/x"))
    assert status == 201, made
    status, answer, _ = await client("POST", "/workflows", json=_connected("c4", "mine", "//evil"))
    assert status == 422 and answer["errors"][0]["path"] == "nodes[0].parameters.path"
