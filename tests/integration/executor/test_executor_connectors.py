"""Runs whose http nodes name a connector (DESIGN section 16): the executor reads the
connector and its secret from the registry, sends the auth, and no event holds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest_asyncio
from aiohttp import web

from flowmesh_proto import registry as r
from flowmesh_proto.connectors import ConnectorPut, ConnectorSpec
from tests.integration.executor.runs import Runs

SECRET = "run-c0nn3ct0r-t0ken-value"
ACCESS = "run-0auth2-acc3ss-value"


@pytest_asyncio.fixture(loop_scope="session")
async def echo() -> AsyncIterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """A local server answering every request with its path and Authorization header."""
    seen: list[tuple[str, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((str(request.rel_url), dict(request.headers)))
        if request.path == "/token":
            return web.json_response({"access_token": ACCESS, "expires_in": 600})
        auth = request.headers.get("Authorization")
        return web.json_response({"path": str(request.rel_url), "authorization": auth})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def _connector(runs: Runs, name: str, spec: dict[str, Any]) -> None:
    await runs.api(
        "connector_put", ConnectorPut(name=name, spec=msgspec.convert(spec, ConnectorSpec))
    )


async def test_a_connector_sends_its_auth_and_no_event_holds_it(
    runs: Runs, echo: tuple[str, list[tuple[str, dict[str, str]]]]
) -> None:
    url, seen = echo
    await runs.api("secret_put", r.SecretPut(name="SVC_TOKEN", value=SECRET))
    await _connector(
        runs, "svc", {"base_url": f"{url}/api", "auth": {"kind": "bearer", "secret": "SVC_TOKEN"}}
    )
    definition = {
        "name": "connected",
        "nodes": [
            {
                "id": "call",
                "type": "http",
                "parameters": {"connector": "svc", "path": "/items/{{ trigger.data.id }}"},
            },
            {
                "id": "escape",
                "type": "http",
                "parameters": {"connector": "svc", "path": "/{{ trigger.data.evil }}"},
                "retry": {"max_attempts": 3},
                "on_error": "continue",
            },
            {
                "id": "each",
                "type": "map",
                "parameters": {
                    "items": "[1, 2]",
                    "node": {
                        "type": "http",
                        "parameters": {"connector": "svc", "path": "/each/{{ item }}"},
                    },
                },
            },
        ],
        "edges": [{"from": "call", "to": "escape"}, {"from": "escape", "to": "each"}],
    }
    before = len(seen)
    state = await runs.run(definition, {"id": 7, "evil": "/evil.example/x"})
    assert state.status == "succeeded", state.error
    paths = sorted(path for path, _ in seen[before:])
    assert paths == ["/api/each/1", "/api/each/2", "/api/items/7"]  # the escape sent nothing
    assert {h["Authorization"] for _, h in seen[before:]} == {f"Bearer {SECRET}"}
    each = [item["body"]["authorization"] for item in state.nodes["each"].output]
    assert each == ["Bearer [redacted]"] * 2
    assert state.nodes["call"].output["body"]["authorization"] == "Bearer [redacted]"
    escape = state.nodes["escape"]
    assert escape.error_class == "ConnectorRefused"
    assert escape.attempt == 1  # never retried
    raw = b"".join(msgspec.json.encode(e) for e in await runs.events(state.ref.run_id))  # type: ignore[union-attr]
    assert SECRET.encode() not in raw


async def test_a_missing_secret_fails_the_step_naming_it(
    runs: Runs, echo: tuple[str, list[tuple[str, dict[str, str]]]]
) -> None:
    url, seen = echo
    await _connector(
        runs,
        "unset",
        {"base_url": url, "auth": {"kind": "header", "name": "X-Api-Key", "secret": "NOT_SET"}},
    )
    definition = {
        "name": "unset-secret",
        "nodes": [
            {"id": "call", "type": "http", "parameters": {"connector": "unset", "path": "/"}}
        ],
        "edges": [],
    }
    before = len(seen)
    state = await runs.run(definition)
    assert state.status == "failed"
    assert state.nodes["call"].error_class == "ConnectorSecretMissing"
    assert "NOT_SET" in (state.nodes["call"].error or "")
    assert len(seen) == before


async def test_an_oauth2_token_is_sent_and_no_event_holds_it(
    runs: Runs, echo: tuple[str, list[tuple[str, dict[str, str]]]]
) -> None:
    url, seen = echo
    await runs.api("secret_put", r.SecretPut(name="SVC_CLIENT", value=SECRET))
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": f"{url}/token",
        "client_id": "flowmesh",
        "client_secret": "SVC_CLIENT",
    }
    await _connector(runs, "oauth", {"base_url": f"{url}/v1", "auth": auth})
    definition = {
        "name": "oauth-connected",
        "nodes": [
            {"id": "call", "type": "http", "parameters": {"connector": "oauth", "path": "/me"}}
        ],
        "edges": [],
    }
    state = await runs.run(definition)
    assert state.status == "succeeded", state.error
    assert seen[-1][0] == "/v1/me" and seen[-1][1]["Authorization"] == f"Bearer {ACCESS}"
    assert state.nodes["call"].output["body"]["authorization"] == "Bearer [redacted]"
    raw = b"".join(msgspec.json.encode(e) for e in await runs.events(state.ref.run_id))  # type: ignore[union-attr]
    assert ACCESS.encode() not in raw and SECRET.encode() not in raw
