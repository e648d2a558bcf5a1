"""The http step through a connector (DESIGN section 16), against real local servers: each
auth kind sends exactly its header or query parameter, and no path leaves the connector."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from flowmesh_executor.nodes import http
from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.connected import credential_forms
from flowmesh_proto.connectors import Connector
from flowmesh_proto.workflow import HttpNode, HttpParameters
from tests.integration.executor.stepkit import step_services, stored_connector

pytestmark = pytest.mark.integration

SECRET = "c0nn3ct0r-s3cr3t-value"
ACCESS = "0auth2-acc3ss-t0ken-value"
NOW = datetime(2026, 12, 6, tzinfo=UTC)


@dataclass
class Server:
    base: str = ""
    seen: list[tuple[str, CIMultiDict[str]]] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)


async def _serve(server: Server) -> AsyncIterator[Server]:
    async def anything(request: web.Request) -> web.Response:
        server.seen.append((str(request.rel_url), request.headers.copy()))
        if request.path == "/token":
            server.forms.append(dict(await request.post()))  # type: ignore[arg-type]
            if server.forms[-1].get("client_secret") != SECRET:
                return web.json_response({"error": "invalid_client"}, status=401)
            answer = {"access_token": ACCESS, "token_type": "Bearer", "expires_in": 3600}
            return web.json_response(answer)
        return web.json_response(
            {"path": request.path, "auth": request.headers.get("Authorization")}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server()
    server.base = f"http://127.0.0.1:{test_server.port}"
    try:
        yield server
    finally:
        await test_server.close()


@pytest_asyncio.fixture(loop_scope="session")
async def origin() -> AsyncIterator[Server]:
    async for server in _serve(Server()):
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def other() -> AsyncIterator[Server]:
    """A server the connector does not list: it must never get a request."""
    async for server in _serve(Server()):
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def services() -> AsyncIterator[StepServices]:
    async with step_services() as made:
        yield made


def connector(base_url: str, auth: dict[str, Any], **spec: Any) -> Connector:
    return stored_connector("svc", base_url, auth, **spec)


async def run_step(
    services: StepServices,
    svc: Connector,
    path: str,
    *,
    secrets: Mapping[str, str] | None = None,
    **parameters: Any,
) -> Any:
    params = {"connector": "svc", "path": path, **parameters}
    values = dict({"TOKEN": SECRET} if secrets is None else secrets)
    values |= credential_forms({"svc": svc}, values)
    call = StepCall(
        tenant="acme",
        run_id="run-1",
        workflow_id="wf-1",
        version=1,
        node=HttpNode(id="call", parameters=msgspec.convert(params, HttpParameters)),
        attempt=1,
        idempotency_key="run-1:call",
        parameters=params,
        variables={},
        started_at=NOW,
        deadline=None,
        secrets=values,
        connectors={"svc": svc},
    )
    return await http.run(call, services)


async def fails(services: StepServices, svc: Connector, path: str, **kwargs: Any) -> StepError:
    with pytest.raises(StepError) as caught:
        await run_step(services, svc, path, **kwargs)
    return caught.value


def _auth_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")}


async def test_bearer_sends_exactly_the_authorization_header(
    services: StepServices, origin: Server
) -> None:
    svc = connector(origin.base + "/api", {"kind": "bearer", "secret": "TOKEN"})
    output = await run_step(services, svc, "/chat.postMessage")
    assert output["status"] == 200
    path, headers = origin.seen[-1]
    assert path == "/api/chat.postMessage"
    assert _auth_headers(headers) == {"Authorization": f"Bearer {SECRET}"}
    assert output["body"]["path"] == "/api/chat.postMessage"  # the engine redacts outputs


async def test_basic_sends_base64_of_username_and_secret(
    services: StepServices, origin: Server
) -> None:
    svc = connector(origin.base, {"kind": "basic", "username": "me", "password_secret": "TOKEN"})
    await run_step(services, svc, "/x")
    token = base64.b64encode(f"me:{SECRET}".encode()).decode()
    assert _auth_headers(origin.seen[-1][1]) == {"Authorization": f"Basic {token}"}
    assert credential_forms({"svc": svc}, {"TOKEN": SECRET}) == {"connector:svc:basic": token}


async def test_header_auth_sends_its_header_and_replaces_the_nodes(
    services: StepServices, origin: Server
) -> None:
    svc = connector(origin.base, {"kind": "header", "name": "X-Api-Key", "secret": "TOKEN"})
    await run_step(services, svc, "/x", headers={"x-api-key": "forged"})
    assert _auth_headers(origin.seen[-1][1]) == {"X-Api-Key": SECRET}


async def test_query_auth_adds_its_parameter_and_no_header(
    services: StepServices, origin: Server
) -> None:
    svc = connector(origin.base, {"kind": "query", "name": "api_key", "secret": "TOKEN"})
    await run_step(services, svc, "/search?q=a", query={"n": "1", "api_key": "forged"})
    path, headers = origin.seen[-1]
    assert path == f"/search?q=a&n=1&api_key={SECRET}"
    assert _auth_headers(headers) == {}


async def test_default_headers_are_added_and_the_nodes_own_win(
    services: StepServices, origin: Server
) -> None:
    svc = connector(
        origin.base,
        {"kind": "none"},
        headers={"Accept": "application/json", "X-Team": "core"},
    )
    await run_step(services, svc, "/x", headers={"x-team": "mine"})
    headers = origin.seen[-1][1]
    assert headers["Accept"] == "application/json"
    assert headers["X-Team"] == "mine"
    assert _auth_headers(headers) == {}


async def test_a_missing_secret_is_a_step_error_naming_it(
    services: StepServices, origin: Server
) -> None:
    svc = connector(origin.base, {"kind": "bearer", "secret": "GONE"})
    before = len(origin.seen)
    error = await fails(services, svc, "/x", secrets={})
    assert error.error_class == "ConnectorSecretMissing"
    assert "GONE" in error.message
    assert len(origin.seen) == before


def oauth2(origin: Server, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "oauth2_client_credentials",
        "token_url": origin.base + "/token",
        "client_id": "flowmesh",
        "client_secret": "TOKEN",
        **extra,
    }


async def test_oauth2_asks_a_token_once_and_sends_it_as_bearer(
    services: StepServices, origin: Server
) -> None:
    svc = connector(origin.base + "/api", oauth2(origin, scopes=["a.read", "b"], audience="x"))
    before = len(origin.forms)
    first = await run_step(services, svc, "/one")
    second = await run_step(services, svc, "/two")
    assert origin.forms[before:] == [
        {
            "grant_type": "client_credentials",
            "client_id": "flowmesh",
            "client_secret": SECRET,
            "scope": "a.read b",
            "audience": "x",
        }
    ]  # the second step used the cached token
    assert [path for path, _ in origin.seen[-2:]] == ["/api/one", "/api/two"]
    assert all(h["Authorization"] == f"Bearer {ACCESS}" for _, h in origin.seen[-2:])
    assert first["body"]["auth"] == second["body"]["auth"] == "Bearer [redacted]"
    assert ACCESS not in str(first)


async def test_oauth2_tokens_are_cached_per_connector_version(
    services: StepServices, origin: Server
) -> None:
    svc = connector(origin.base, oauth2(origin))
    newer = msgspec.structs.replace(svc, version=2)
    before = len(origin.forms)
    await run_step(services, newer, "/x")
    await run_step(services, newer, "/x")
    assert len(origin.forms) == before + 1
    assert len(services.tokens) >= 1


async def test_oauth2_a_refused_token_is_a_step_error_without_credentials(
    services: StepServices, origin: Server
) -> None:
    svc = msgspec.structs.replace(connector(origin.base, oauth2(origin)), version=3)
    error = await fails(services, svc, "/x", secrets={"TOKEN": "wrong-client-secret"})
    assert error.error_class == "ConnectorTokenFailed"
    assert "answered 401" in error.message
    assert "wrong-client-secret" not in error.message
    assert origin.seen[-1][0] == "/token"  # the API was never called


async def test_oauth2_a_token_url_off_the_hosts_is_refused(
    services: StepServices, origin: Server
) -> None:
    port = origin.base.rpartition(":")[2]
    auth = {**oauth2(origin), "token_url": f"http://localhost:{port}/token"}
    svc = msgspec.structs.replace(connector(origin.base, auth), version=4)
    before = len(origin.seen)
    error = await fails(services, svc, "/x")
    assert error.error_class == "ConnectorRefused"
    assert len(origin.seen) == before


def escapes(other: Server) -> list[str]:
    authority = other.base.removeprefix("http://")
    return [
        f"//{authority}/x",
        f"@{authority}/x",
        f"{other.base}/x",
        f"/%2f%2f{authority}/x",
        f"/..%2f..%2f{authority}",
        "/%2e%2e/%2e%2e/x",
        "/../../x",
        f"/\\\\{authority}/x",
        f"/%5c%5c{authority}/x",
        f"/%40{authority}/x",
    ]


async def test_no_path_leaves_the_connector(
    services: StepServices, origin: Server, other: Server
) -> None:
    svc = connector(origin.base + "/api", {"kind": "bearer", "secret": "TOKEN"})
    before = len(origin.seen)
    for path in escapes(other):
        error = await fails(services, svc, path)
        assert error.error_class == "ConnectorRefused", path
        assert SECRET not in error.message
    assert other.seen == []
    assert len(origin.seen) == before


async def test_an_at_sign_after_the_slash_stays_on_the_host(
    services: StepServices, origin: Server, other: Server
) -> None:
    svc = connector(origin.base + "/api", {"kind": "bearer", "secret": "TOKEN"})
    authority = other.base.removeprefix("http://")
    await run_step(services, svc, f"/@{authority}/x")
    assert origin.seen[-1][0] == f"/api/@{authority}/x"
    assert other.seen == []


async def test_an_error_names_the_url_with_the_secret_redacted(
    services: StepServices, origin: Server
) -> None:
    svc = connector("http://127.0.0.1:1/api", {"kind": "bearer", "secret": "TOKEN"})
    node_path = "/x/{{ secrets.TOKEN }}"
    params = {"connector": "svc", "path": f"/x/{SECRET}"}
    call = StepCall(
        tenant="acme",
        run_id="run-1",
        workflow_id="wf-1",
        version=1,
        node=HttpNode(id="call", parameters=HttpParameters(connector="svc", path=node_path)),
        attempt=1,
        idempotency_key="run-1:call",
        parameters=params,
        variables={},
        started_at=NOW,
        deadline=None,
        secrets={"TOKEN": SECRET},
        connectors={"svc": svc},
    )
    with pytest.raises(StepError) as caught:
        await http.run(call, services)
    assert caught.value.error_class == "HttpError"
    assert "http://127.0.0.1:1/api/x/[redacted]" in caught.value.message
    assert SECRET not in caught.value.message


async def test_an_unknown_connector_is_a_step_error(services: StepServices) -> None:
    params = {"connector": "gone", "path": "/x"}
    call = StepCall(
        tenant="acme",
        run_id="run-1",
        workflow_id="wf-1",
        version=1,
        node=HttpNode(id="call", parameters=HttpParameters(connector="gone", path="/x")),
        attempt=1,
        idempotency_key="run-1:call",
        parameters=params,
        variables={},
        started_at=NOW,
        deadline=None,
        secrets={},
    )
    with pytest.raises(StepError) as caught:
        await http.run(call, services)
    assert caught.value.error_class == "ConnectorNotFound"


@dataclass
class Rotating:
    """A token endpoint giving a new token each time, and an API taking only live ones."""

    base: str = ""
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)  # the token each API call carried


@pytest_asyncio.fixture(loop_scope="session")
async def rotating() -> AsyncIterator[Rotating]:
    server = Rotating()

    async def token(request: web.Request) -> web.Response:
        server.issued.append(f"rotating-token-{len(server.issued) + 1}-value")
        return web.json_response({"access_token": server.issued[-1], "expires_in": 3600})

    async def api(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        server.calls.append(given)
        if given not in server.issued or given in server.revoked:
            return web.json_response({"error": f"token {given} is not valid"}, status=401)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_route("*", "/api/{tail:.*}", api)
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server()
    server.base = f"http://127.0.0.1:{test_server.port}"
    try:
        yield server
    finally:
        await test_server.close()


def _rotating_connector(server: Rotating, version: int) -> Connector:
    auth = {**oauth2(Server(base=server.base)), "token_url": server.base + "/token"}
    return msgspec.structs.replace(connector(server.base + "/api", auth), version=version)


async def test_oauth2_a_cached_token_refused_is_dropped_and_a_new_one_sent_once(
    services: StepServices, rotating: Rotating
) -> None:
    svc = _rotating_connector(rotating, 10)
    await run_step(services, svc, "/a")  # asks token 1, caches it
    first = rotating.issued[-1]
    rotating.revoked.add(first)  # revoked early by the provider
    answer = await run_step(services, svc, "/b")
    second = rotating.issued[-1]
    assert second != first and rotating.calls[-2:] == [first, second]
    assert answer["body"] == {"ok": True}
    await run_step(services, svc, "/c")  # the new token is the cached one now
    assert rotating.calls[-1] == second and rotating.issued[-1] == second


async def test_oauth2_a_fresh_token_refused_fails_once_and_is_not_kept(
    services: StepServices, rotating: Rotating
) -> None:
    svc = _rotating_connector(rotating, 11)
    rotating.revoked.add(f"rotating-token-{len(rotating.issued) + 1}-value")  # the next one
    before = len(rotating.calls)
    error = await fails(services, svc, "/a")
    assert error.error_class == "HttpStatus" and "answered 401" in error.message
    assert len(rotating.calls) == before + 1  # a fresh token refused is not asked again
    refused = rotating.calls[-1]
    assert refused not in error.message and "[redacted]" in error.message
    await run_step(services, svc, "/b")  # the next step asks for another token
    assert rotating.calls[-1] != refused and rotating.issued[-1] == rotating.calls[-1]


async def test_oauth2_a_refused_token_named_in_a_second_refusal_stays_redacted(
    services: StepServices, rotating: Rotating
) -> None:
    svc = _rotating_connector(rotating, 12)
    await run_step(services, svc, "/a")
    first = rotating.issued[-1]
    rotating.revoked.add(first)
    rotating.revoked.add(f"rotating-token-{len(rotating.issued) + 1}-value")
    error = await fails(services, svc, "/b")
    second = rotating.calls[-1]
    assert rotating.calls[-2:] == [first, second]  # sent once more, no more
    assert error.error_class == "HttpStatus"
    assert first not in error.message and second not in error.message


#: Headers the HTTP client owns. The session's connections are shared by every tenant's
#: steps: a ``Content-Length`` longer than the body sent leaves the connection (back in the
#: pool) waiting for bytes, and the next request on it (another tenant's, credentials and
#: all) becomes the rest of this body; ``Host`` sends the connector's credentials to
#: another virtual host behind the connector's address.
CLIENT_OWNED = [
    ("Content-Length", "300"),
    ("content-length", "0"),
    ("Transfer-Encoding", "chunked"),
    ("Host", "evil.example"),
    ("Connection", "keep-alive"),
    ("Upgrade", "h2c"),
    ("TE", "trailers"),
    ("Trailer", "X-Late"),
    ("Expect", "100-continue"),
    ("Keep-Alive", "timeout=600"),
    ("Proxy-Authorization", "Basic eDp5"),
]


@pytest.mark.parametrize(("name", "value"), CLIENT_OWNED)
async def test_headers_the_client_owns_are_refused_and_nothing_is_sent(
    services: StepServices, origin: Server, name: str, value: str
) -> None:
    svc = connector(origin.base, {"kind": "bearer", "secret": "TOKEN"})
    before = len(origin.seen)
    error = await fails(services, svc, "/x", method="POST", headers={name: value}, body="short")
    assert error.error_class == "InvalidParameters"
    assert name in error.message and SECRET not in error.message
    assert len(origin.seen) == before
    plain = {"url": origin.base + "/x", "method": "POST", "headers": {name: value}}
    call = StepCall(
        tenant="acme",
        run_id="run-1",
        workflow_id="wf-1",
        version=1,
        node=HttpNode(id="call", parameters=msgspec.convert(plain, HttpParameters)),
        attempt=1,
        idempotency_key="run-1:call",
        parameters={**plain, "body": "short"},
        variables={},
        started_at=NOW,
        deadline=None,
        secrets={},
    )
    with pytest.raises(StepError) as caught:  # an http node with a url as well
        await http.run(call, services)
    assert caught.value.error_class == "InvalidParameters"
    assert len(origin.seen) == before


async def test_oauth2_a_connector_deleted_and_made_again_never_sends_the_old_token(
    services: StepServices, rotating: Rotating, other: Server
) -> None:
    """A connector made again starts at version 1 once more: the token the old one got
    (for its own token endpoint and hosts) must not be sent to the new one's hosts."""
    old = msgspec.structs.replace(_rotating_connector(rotating, 1), name="remade")
    await run_step(services, old, "/a")
    old_token = rotating.calls[-1]
    assert old_token in rotating.issued
    remade = msgspec.structs.replace(connector(other.base, oauth2(other)), name="remade")
    await run_step(services, remade, "/b")
    assert other.seen[-1][0] == "/b"
    assert other.seen[-1][1]["Authorization"] == f"Bearer {ACCESS}"  # its own token
    assert all(old_token not in str(headers) for _, headers in other.seen)


async def test_oauth2_a_token_answer_sent_in_pieces_is_read_whole(services: StepServices) -> None:
    async def token(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"access_token": "pie')
        await asyncio.sleep(0.05)  # the rest arrives in another packet
        await response.write(b'ces-token-value", "expires_in": 60}')
        await response.write_eof()
        return response

    async def api(request: web.Request) -> web.Response:
        return web.json_response({"auth": request.headers.get("Authorization")})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/api/x", api)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        base = f"http://127.0.0.1:{server.port}"
        auth = {**oauth2(Server(base=base)), "token_url": base + "/token"}
        svc = msgspec.structs.replace(connector(base + "/api", auth), version=20)
        answer = await run_step(services, svc, "/x")
        assert answer["body"]["auth"] == "Bearer [redacted]"
    finally:
        await server.close()


async def test_oauth2_a_token_that_is_no_b64token_is_refused_and_not_kept(
    services: StepServices,
) -> None:
    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "abc\r\nX-Injected: 1", "expires_in": 60})

    app = web.Application()
    app.router.add_post("/token", token)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        base = f"http://127.0.0.1:{server.port}"
        auth = {**oauth2(Server(base=base)), "token_url": base + "/token"}
        svc = msgspec.structs.replace(connector(base + "/api", auth), version=21)
        kept = len(services.tokens)
        error = await fails(services, svc, "/x")
        assert error.error_class == "ConnectorTokenFailed" and "b64token" in error.message
        assert len(services.tokens) == kept
    finally:
        await server.close()
